"""Taiwanese posed expressions (Chen, Cho and Tseng, "Taiwan corpora of Chinese emotions and relevant
psychophysiological data: normative data for facial expressions of professional performers", Chinese
Journal of Psychology 55(4), 2013): 29 professional performers, front view, 7 expressions, colour studio
photos named ``PPTVxNN.jpg`` (performer, performance type, view, expression letter a-g)."""

from __future__ import annotations

import csv
from pathlib import Path

from .common import DroppedRows
from ..labels import canonical_label
from .protocols import DEFAULT_SPLIT_FRACTIONS, identity_split_dataset

#: Expression letter of the file name -> label name.
TFEID_CODES = {"a": "neutral", "b": "happy", "c": "sad", "d": "angry", "e": "disgust", "f": "fear", "g": "surprise"}


def load_tfeid(path, label_set: str = "fer2013", fractions=DEFAULT_SPLIT_FRACTIONS, validate_images: bool = True):
    """The Taiwanese posed-expression faces as a `datasets.DatasetDict` with performer-disjoint ``train``,
    ``validation`` (development: never train on it) and ``test`` splits.

    Args:
        path: the folder holding ``labels.csv`` (``image,performer,performance_type,view,label``) and ``faces/``.
        label_set: ``"fer2013"`` (default) or ``"ferplus"`` (``contempt`` stays empty, reported).
        fractions: (train, validation, test) shares of the images, assigned by performer with
            `fer_hf.data.protocols.identity_disjoint_splits` (29 performers, so shares are approximate).
        validate_images: decode every image and drop undecodable ones.
    Returns:
        `datasets.DatasetDict` ``{"train", "validation", "test"}``: ``image`` (RGB), ``label``, ``image_id``
        (file name), ``performer`` (``"01"``) and ``performance_type`` (1 theatrical, 2 Ekman FACS criteria,
        3 personal event; 0 where the name does not say). Rows with an unknown label or an unreadable file are
        dropped and reported.
    Raises:
        FileNotFoundError: if ``path`` or its ``labels.csv`` does not exist.
        ValueError: if ``labels.csv`` lacks the ``image``, ``performer`` or ``label`` column.
    """
    from datasets import Value

    root = Path(str(path)).expanduser()
    if root.is_dir() and not (root / "labels.csv").is_file() and (root / "tfeid" / "labels.csv").is_file():
        root = root / "tfeid"
    labels_file = root / "labels.csv"
    if not labels_file.is_file():
        raise FileNotFoundError(f"tfeid data not found at {path} (expected labels.csv and faces/)")
    with open(labels_file, newline="", encoding="utf-8") as handle:
        records = list(csv.DictReader(handle))
    if records and not {"image", "performer", "label"} <= set(records[0]):
        raise ValueError(f"{labels_file} must have the columns image,performer,label; got {sorted(records[0])}")
    dropped, kept = DroppedRows(), []
    for record in records:
        label = canonical_label((record["label"] or "").strip(), label_set)
        if label is None:
            dropped.add(record["image"], f"unknown label {record['label']!r}", "unknown label")
            continue
        kept.append({"image": record["image"], "label": label, "performer": record["performer"],
                     "performance_type": int(record.get("performance_type") or 0)})
    return identity_split_dataset(kept, root / "faces", "performer", "tfeid", label_set, fractions,
                                  {"performer": Value("string"), "performance_type": Value("int32")}, dropped,
                                  validate_images)
