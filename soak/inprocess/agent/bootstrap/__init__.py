"""The folder ``python -m soak.agent`` puts on its service's PYTHONPATH (see sitecustomize)."""
