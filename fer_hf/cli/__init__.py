"""The ``fer-hf`` command line (``fer-hf = "fer_hf.cli:main"``, ``python -m fer_hf``) and its subcommands."""

from .commands import main

__all__ = ["main"]
