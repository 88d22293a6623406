"""The emotion label sets fer_hf knows (FER2013's 7 classes, FER+'s 8) and how the names corpora use map to
their ids: the one place label names are defined for the package (each released model folder keeps its own
copy of `FER2013_LABELS` in its configuration file, because such a folder must load without fer_hf)."""

from __future__ import annotations

from typing import Optional

#: The 7 FER2013 emotions in id order (the ``id2label`` of every model trained on FER2013).
FER2013_LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]

#: The 8 FER+ emotions: the 7 FER2013 classes with their FER2013 ids (0-6) plus ``contempt`` (id 7).
FERPLUS_LABELS = list(FER2013_LABELS) + ["contempt"]

#: ``label_set`` name -> class names in id order (``ClassLabel`` names of every loader's ``label`` column).
LABEL_SETS = {"fer2013": list(FER2013_LABELS), "ferplus": FERPLUS_LABELS}

#: Folder / column names seen in FER mirrors, mapped to canonical FER2013 ids (by name, never by order).
LABEL_ALIASES = {
    "angry": 0, "anger": 0, "0": 0,
    "disgust": 1, "disgusted": 1, "1": 1,
    "fear": 2, "fearful": 2, "scared": 2, "2": 2,
    "happy": 3, "happiness": 3, "3": 3,
    "sad": 4, "sadness": 4, "4": 4,
    "surprise": 5, "surprised": 5, "5": 5,
    "neutral": 6, "6": 6,
}

#: `LABEL_ALIASES` plus FER+'s eighth class (id 7).
FERPLUS_LABEL_ALIASES = {**LABEL_ALIASES, "contempt": 7, "contemptuous": 7, "7": 7}

#: Every emotion name any corpus uses (for telling "a class outside the label set" from "an unknown name").
_KNOWN_EMOTIONS = FERPLUS_LABEL_ALIASES


def label_names(label_set: str) -> list:
    """Class names of ``label_set`` (``"fer2013"``: 7 classes, ``"ferplus"``: 8) in id order.

    Raises:
        ValueError: for any other name.
    """
    if label_set not in LABEL_SETS:
        raise ValueError(f"Unknown label_set {label_set!r}; choose one of {sorted(LABEL_SETS)}")
    return list(LABEL_SETS[label_set])


def canonical_label(name, label_set: str = "fer2013") -> Optional[int]:
    """Canonical id for a label name or id ('Happy', 'happiness', 3, '3'; 'contempt' / 7 only with
    ``label_set="ferplus"``), or None if the name is unknown or outside the label set."""
    aliases = FERPLUS_LABEL_ALIASES if label_set == "ferplus" else LABEL_ALIASES
    return aliases.get(str(name).strip().lower())


def outside_label_set(name, label_set: str) -> bool:
    """True when ``name`` is a known emotion that ``label_set`` does not have (e.g. contempt for fer2013)."""
    key = str(name).strip().lower()
    return key in _KNOWN_EMOTIONS and not key.isdigit() and canonical_label(key, label_set) is None
