"""``soak --version``: the installed leaksoak's version and the Python that runs it.

One source for the version: ``soak.__version__``, which pyproject.toml's dynamic version reads
when the package is built, so the wheel's metadata and this line cannot disagree.
"""

from __future__ import annotations

import platform
import sys

import typer

from soak import __version__


def version_line() -> str:
    """``leaksoak 0.1.0 (CPython 3.12.1, /path/to/python)``."""
    return f"leaksoak {__version__} ({platform.python_implementation()} {platform.python_version()}, {sys.executable})"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(version_line())
        raise typer.Exit()


def main_options(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version of leaksoak and of the Python it runs on, and exit."),
) -> None:
    """Long-running memory-leak soak tests for Python."""
