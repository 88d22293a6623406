"""Where fer_hf keeps what it can rebuild (ONNX exports, detector-cropped evaluation splits, JAFFE face crops)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$FER_HF_CACHE``, else ``$XDG_CACHE_HOME/fer_hf``, else ``~/.cache/fer_hf``. Nothing is created here."""
    if os.environ.get("FER_HF_CACHE"):
        return Path(os.environ["FER_HF_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "fer_hf"


def cache_dir(name: str) -> Path:
    """``cache_root() / name``: one sub-folder per kind of cached artefact."""
    return cache_root() / name
