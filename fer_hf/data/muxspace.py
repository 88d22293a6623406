"""muxspace facial_expressions (github.com/muxspace/facial_expressions): real-photo face crops, 12,794 from
LFW news photos (Huang et al., "Labeled Faces in the Wild", UMass TR 07-49, 2007; identity in the file
name ``<First_Last>_<NNNN>.jpg``) and 924 film stills of Indian actors (``<Name>_<n>.jpg``), labelled by a
university class. Mostly neutral and happy; label quality differs by class (see the data card)."""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

from .common import DroppedRows
from ..labels import canonical_label, outside_label_set
from .protocols import DEFAULT_SPLIT_FRACTIONS, identity_split_dataset

_LFW_NAME = re.compile(r"^(?P<identity>.+)_(?P<number>\d{4})\.[A-Za-z]+$")
_FILM_NAME = re.compile(r"^(?P<identity>.+?)_(?P<number>\d+)\.[A-Za-z]+$")


def muxspace_identity(file_name: str) -> tuple[str, str]:
    """(identity, source) of a muxspace image name: ``("George_W_Bush", "lfw")`` for
    ``George_W_Bush_0001.jpg`` (LFW numbers have 4 digits), ``("Avinash", "film")`` for ``Avinash_12.jpg``;
    the stem and ``"unknown"`` for a name that fits neither."""
    name = Path(file_name).name
    match = _LFW_NAME.match(name)
    if match:
        return match.group("identity"), "lfw"
    match = _FILM_NAME.match(name)
    if match:
        return match.group("identity"), "film"
    return Path(name).stem, "unknown"


def load_muxspace(path, label_set: str = "fer2013", fractions=DEFAULT_SPLIT_FRACTIONS, validate_images: bool = True):
    """muxspace facial_expressions as a `datasets.DatasetDict` with identity-disjoint ``train``,
    ``validation`` (a real-photo development split: never train on it) and ``test`` splits.

    Args:
        path: the folder holding ``labels.csv`` (``image,label``) and ``images/``.
        label_set: ``"fer2013"`` (default: the 9 ``contempt`` images are dropped and reported) or ``"ferplus"``.
        fractions: (train, validation, test) shares of the images; identities are assigned with
            `fer_hf.data.protocols.identity_disjoint_splits` (stable: from the names alone).
        validate_images: decode every image and drop undecodable ones.
    Returns:
        `datasets.DatasetDict` ``{"train", "validation", "test"}``: ``image`` (grayscale for LFW, RGB for
        the film stills, as stored), ``label``, ``image_id`` (the file name), ``identity`` (LFW name or actor)
        and ``source`` (``"lfw"`` or ``"film"``). Unlabelled images (empty label), the one image with two
        labels (``conflict:...``), classes outside ``label_set`` and unreadable files are dropped and
        reported (`InvalidRowsWarning`, ``result.dropped``).
    Raises:
        FileNotFoundError: if ``path`` or its ``labels.csv`` does not exist.
        ValueError: if ``labels.csv`` has no ``image`` and ``label`` columns.
    """
    from datasets import Value

    root = Path(str(path)).expanduser()
    if root.is_dir() and not (root / "labels.csv").is_file() and (root / "muxspace" / "labels.csv").is_file():
        root = root / "muxspace"
    labels_file = root / "labels.csv"
    if not labels_file.is_file():
        raise FileNotFoundError(f"muxspace data not found at {path} (expected labels.csv and images/)")
    with open(labels_file, newline="", encoding="utf-8") as handle:
        records = list(csv.DictReader(handle))
    if records and not {"image", "label"} <= set(records[0]):
        raise ValueError(f"{labels_file} must have the columns image,label; got {sorted(records[0])}")
    dropped, outside, kept = DroppedRows(), Counter(), []
    for record in records:
        image, raw = record["image"], (record["label"] or "").strip()
        if not raw:
            dropped.add(image, "no label in legend.csv", "unlabelled")
            continue
        if raw.startswith("conflict:"):
            dropped.add(image, f"two labels ({raw})", "conflicting labels")
            continue
        label = canonical_label(raw, label_set)
        if label is None:
            if outside_label_set(raw, label_set):
                outside[raw.lower()] += 1
                dropped.add(image, f"class {raw!r} not in label_set {label_set!r}", "not in label_set")
            else:
                dropped.add(image, f"unknown label {raw!r}", "unknown label")
            continue
        identity, source = muxspace_identity(image)
        kept.append({"image": image, "label": label, "identity": identity, "source": source})
    return identity_split_dataset(kept, root / "images", "identity", "muxspace", label_set, fractions,
                                  {"identity": Value("string"), "source": Value("string")}, dropped,
                                  validate_images, dict(outside))
