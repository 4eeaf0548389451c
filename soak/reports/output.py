"""Writing a command's output to stdout or to a file, never half a file."""

from __future__ import annotations

import os
import sys
import tempfile

from soak.errors import BadInput


def write_output(text: str, path: str | None) -> None:
    if not path:
        sys.stdout.write(text)
        return
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=".soak-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except OSError as exc:
        raise BadInput(f"cannot write {path!r}: {exc.strerror}") from exc
