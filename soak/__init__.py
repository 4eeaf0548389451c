"""leaksoak: long-running memory-leak soak tests for Python.

The Python API lives in :mod:`soak.api`. This package stays light on import because the
worker process imports it too, and its heap is what is being measured.
"""

__version__ = "0.1.0"
"""The one place the version is written: pyproject.toml reads it (``[tool.setuptools.dynamic]``)."""
