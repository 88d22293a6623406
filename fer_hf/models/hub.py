"""Where models come from: the released folders under ``model_cards/``, the default one, and how a name,
a local path or a Hub id is resolved to something ``from_pretrained`` loads."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

MODEL_CARDS_DIR = Path(__file__).resolve().parent.parent.parent / "model_cards"
#: The model fer_hf loads when none is named: trained by this project on a mix of corpora for faces in real
#: photos and shipped in the repo, chosen by the rule of docs/real_photos_rules.md (the best mean balanced
#: accuracy on the real-photo development splits among models that keep the webcam path real-time on a small
#: CPU; the figures are in benchmarks/results/real_photo_default*.md and its model card, not here, so that they
#: cannot go stale in code). FER2013-only models stay released (``fer-vgg-44-distilled-ft`` is the most
#: accurate single one on FER2013).
DEFAULT_MODEL_NAME = "fer-ensemble-real"
DEFAULT_MODEL_DIR = MODEL_CARDS_DIR / DEFAULT_MODEL_NAME


def resolve_model(name_or_path: Optional[Union[str, os.PathLike]] = None) -> str:
    """Model location: None -> the default released model; a folder name under ``model_cards/``; a
    local path; otherwise the string is returned as a Hub model id."""
    if name_or_path is None or str(name_or_path) == "":
        return str(DEFAULT_MODEL_DIR)
    candidate = MODEL_CARDS_DIR / str(name_or_path)
    if (candidate / "config.json").is_file():
        return str(candidate)
    return str(name_or_path)


def available_models() -> list:
    """Names of the released model folders under ``model_cards/`` (each with a config.json)."""
    if not MODEL_CARDS_DIR.is_dir():
        return []
    return sorted(p.name for p in MODEL_CARDS_DIR.iterdir() if (p / "config.json").is_file())
