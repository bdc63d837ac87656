"""The toolkit's version: the one place it is written (pyproject.toml reads it, `main.py --version` prints it)."""

__version__ = "0.1.0"
