"""Identity-disjoint split protocols for corpora that come without splits (muxspace, tfeid): every image
of one person goes to one split, chosen from the person's name alone, so that the splits never share a
person and do not change when images are added, removed or reordered."""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Iterable

from ..labels import label_names
from .common import build_dataset_dict, corpus_features, logger, read_row_image, report_label_coverage

#: The default (train, validation, test) shares of identities' images.
DEFAULT_SPLIT_FRACTIONS = (0.7, 0.15, 0.15)


def identity_order_key(identity: str, salt: str = "fer_hf") -> str:
    """A stable pseudo-random sort key of ``identity`` (SHA-256 of ``salt`` + name): the same on every
    machine and Python version (Python's ``hash`` of a string is salted per process)."""
    return hashlib.sha256(f"{salt}\0{identity}".encode()).hexdigest()


def identity_disjoint_splits(identities: Iterable[str], fractions=DEFAULT_SPLIT_FRACTIONS,
                             salt: str = "fer_hf", labels: Iterable | None = None) -> dict:
    """Assign every identity to ``train``, ``validation`` or ``test`` so that the splits hold about
    ``fractions`` of the images (of each class, when ``labels`` are given) and share no identity.

    Identities are visited in the order of `identity_order_key` (pseudo-random, stable) and each goes to
    the split with the largest deficit against its target share, counted over the identity's own images:
    per class when ``labels`` are given (so that a rare class held by a few people, such as muxspace's film
    actors' disgust and sad faces, is spread over the splits too), else over all images. One person with
    hundreds of images (LFW's George W Bush: 520) then still leaves the shares close to ``fractions``.

    Args:
        identities: one identity per image (repeats = images of the same person).
        fractions: (train, validation, test) shares of the images, each >= 0, summing to 1.
        salt: changes the pseudo-random order (another split of the same corpus).
        labels: optional, one label per image (same order as ``identities``).
    Returns:
        ``{identity: "train" | "validation" | "test"}``.
    Raises:
        ValueError: for fractions that are negative or do not sum to 1, or labels of another length.
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions must be three shares >= 0 summing to 1; got {fractions}")
    identities = list(identities)
    labels = [0] * len(identities) if labels is None else list(labels)
    if len(labels) != len(identities):
        raise ValueError(f"{len(labels)} labels for {len(identities)} identities")
    per_identity: dict = {}
    for identity, label in zip(identities, labels):
        per_identity.setdefault(identity, Counter())[label] += 1
    names = ("train", "validation", "test")
    targets = dict(zip(names, fractions))
    assigned, filled, seen = {}, {n: Counter() for n in names}, Counter()
    for identity in sorted(per_identity, key=lambda name: identity_order_key(name, salt)):
        counts = per_identity[identity]
        seen.update(counts)

        def deficit(split):  # images of this identity's classes still missing from the split, weighted
            return sum(n * (targets[split] * seen[c] - filled[split][c]) / seen[c] for c, n in counts.items())

        split = max((n for n in names if targets[n] > 0), key=deficit)
        assigned[identity] = split
        filled[split].update(counts)
    return assigned


def identity_split_dataset(kept: list, image_folder, identity_key: str, corpus: str, label_set: str, fractions,
                           extra_features: dict, dropped, validate_images: bool = True, outside=None):
    """The `datasets.DatasetDict` ``{"train", "validation", "test"}`` of a corpus without splits, split by
    person with `identity_disjoint_splits`.

    Args:
        kept: one dict per labelled image: ``image`` (file name in ``image_folder``), ``label`` (id) and the
            columns of ``extra_features`` (``identity_key`` among them).
        image_folder: folder of the image files; an unreadable or undecodable file is dropped and reported.
        identity_key: the column naming the person.
        corpus / label_set / fractions: for the report, the labels and the split shares.
        extra_features: {column: `datasets` feature} beside ``image``, ``label``, ``image_id``.
        dropped: the loader's `DroppedRows` (reported here).
        outside: {class: rows dropped for being outside ``label_set``} for the label report.
    """
    from pathlib import Path

    names = label_names(label_set)
    splits = identity_disjoint_splits([row[identity_key] for row in kept], fractions, salt=corpus,
                                      labels=[row["label"] for row in kept])
    rows = {"train": [], "validation": [], "test": []}
    for row in kept:
        file = Path(image_folder) / row["image"]
        image = read_row_image(lambda f=file: f.read_bytes(), row["image"], dropped, validate_images)
        if image is None:
            continue
        rows[splits[row[identity_key]]].append({**row, "image": {"bytes": image[0], "path": row["image"]},
                                                "image_id": row["image"], "_pixel_hash": image[1]})
    out = build_dataset_dict(rows, corpus_features(label_set, extra_features), dropped, str(image_folder))
    present = {names[r["label"]] for split_rows in rows.values() for r in split_rows}
    report_label_coverage(out, corpus, label_set, lacks=[n for n in names if n not in present], outside=outside)
    logger.info("%s from %s: %s rows, dropped %s", corpus, image_folder, {s: len(out[s]) for s in out},
                dropped.counts())
    return out
