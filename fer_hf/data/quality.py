"""Data-quality reports for any loader's `DatasetDict`: rows the loader dropped, exact duplicate images
(same decoded pixels) inside a split and across splits, conflicting labels among duplicates, class balance;
and `drop_cross_split_duplicates`, which removes from ``train`` every image that also occurs in an
evaluation split (FER2013 has pixel-identical images crossing Training / PublicTest / PrivateTest)."""

from __future__ import annotations

import io
from collections import defaultdict

from PIL import Image

from .common import cached_pixel_hashes, pixel_hash, remember_pixel_hashes


def image_hashes(dataset) -> list:
    """`fer_hf.data.common.pixel_hash` (SHA-1 of the decoded pixels: mode, size and raw bytes; palette images
    expanded) of every row's ``image``, in row order. Re-encodings of the same pixels hash the same; any
    pixel change differs. Hashes the loader computed while validating are reused (by dataset fingerprint)."""
    from datasets import Image as ImageFeature

    cached = cached_pixel_hashes(dataset)
    if cached is not None:
        return cached
    ds = dataset.select_columns(["image"]).cast_column("image", ImageFeature(decode=False))
    hashes = []
    for batch in ds.iter(batch_size=1000):
        for image in batch["image"]:
            data = image.get("bytes")
            if not data:
                with open(image["path"], "rb") as handle:
                    data = handle.read()
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                hashes.append(pixel_hash(im))
    remember_pixel_hashes(dataset, hashes)
    return hashes


def _ids(dataset) -> list:
    return list(dataset["image_id"][:]) if "image_id" in dataset.column_names else [str(i) for i in range(len(dataset))]


def _class_names(dataset):
    feature = dataset.features.get("label")
    return getattr(feature, "names", None)


def data_quality_report(dataset_dict, max_examples: int = 5) -> dict:
    """Quality report of a loader's `DatasetDict` (plain JSON types).

    Returns:
        ``{"rows": {split: n},
        "dropped": {"total", "by_reason": {reason: n}, "examples": {row id: reason}}`` (the loader's
        ``result.dropped``; None when the object has none), ``"label_report"`` (the loader's, or None),
        ``"class_balance": {split: {"counts": {class: n}, "fractions": {class: f}, "empty_classes": [...],
        "imbalance_ratio": largest / smallest non-empty class}}``,
        ``"duplicates": {"all": {"groups", "images"}, "within_split": {split: {"groups", "images",
        "redundant", "examples"}}, "cross_split": {"groups", "images", "images_per_split": {split: n},
        "split_pairs": {"train/test": groups, ...}, "examples"}}`` (a group = images with identical decoded
        pixels; ``images`` counts every member, ``redundant`` the members beyond the first),
        ``"conflicting_labels": {"groups", "within_split_groups", "cross_split_groups", "examples"}}``
        (duplicate groups whose members carry different labels); examples are lists of image ids.
    """
    splits = list(dataset_dict)
    dropped = getattr(dataset_dict, "dropped", None)
    report = {
        "rows": {s: len(dataset_dict[s]) for s in splits},
        "dropped": dropped.to_dict(max_examples) if dropped is not None else None,
        "label_report": getattr(dataset_dict, "label_report", None),
        "class_balance": {},
    }
    members = defaultdict(list)  # hash -> [(split, image id, label)]
    for split in splits:
        ds = dataset_dict[split]
        names = _class_names(ds)
        labels = list(ds["label"][:]) if "label" in ds.column_names else [None] * len(ds)
        if names is not None:
            counts = [0] * len(names)
            for label in labels:
                if label is not None and 0 <= label < len(names):
                    counts[label] += 1
            total = max(sum(counts), 1)
            nonzero = [c for c in counts if c]
            report["class_balance"][split] = {
                "counts": dict(zip(names, counts)),
                "fractions": {n: round(c / total, 4) for n, c in zip(names, counts)},
                "empty_classes": [n for n, c in zip(names, counts) if c == 0],
                "imbalance_ratio": round(max(nonzero) / min(nonzero), 2) if nonzero else None,
            }
        if len(ds) == 0:
            continue
        label_names = names or []
        for h, image_id, label in zip(image_hashes(ds), _ids(ds), labels):
            name = label_names[label] if label is not None and 0 <= label < len(label_names) else label
            members[h].append((split, str(image_id), name))
    groups = [m for m in members.values() if len(m) > 1]
    within = {}
    for split in splits:
        split_groups = [[i for s, i, _ in m if s == split] for m in groups]
        split_groups = [g for g in split_groups if len(g) > 1]
        within[split] = {"groups": len(split_groups), "images": sum(map(len, split_groups)),
                         "redundant": sum(len(g) - 1 for g in split_groups), "examples": split_groups[:max_examples]}
    cross = [m for m in groups if len({s for s, _, _ in m}) > 1]
    per_split = {s: sum(1 for m in cross for t, _, _ in m if t == s) for s in splits}
    pairs = {}
    for i, a in enumerate(splits):
        for b in splits[i + 1:]:
            pairs[f"{a}/{b}"] = sum(1 for m in cross if {a, b} <= {s for s, _, _ in m})
    conflicts = [m for m in groups if len({label for _, _, label in m}) > 1]
    report["duplicates"] = {
        "all": {"groups": len(groups), "images": sum(map(len, groups))},
        "within_split": within,
        "cross_split": {"groups": len(cross), "images": sum(map(len, cross)), "images_per_split": per_split,
                        "split_pairs": pairs,
                        "examples": [[f"{s}:{i}" for s, i, _ in m] for m in cross[:max_examples]]},
    }
    report["conflicting_labels"] = {
        "groups": len(conflicts),
        "within_split_groups": sum(1 for m in conflicts if len({s for s, _, _ in m}) == 1),
        "cross_split_groups": sum(1 for m in conflicts if len({s for s, _, _ in m}) > 1),
        "examples": [{"image_ids": [f"{s}:{i}" for s, i, _ in m], "labels": [label for _, _, label in m]}
                     for m in conflicts[:max_examples]],
    }
    return report


def drop_cross_split_duplicates(dataset_dict, train_split: str = "train", eval_splits=None, max_examples: int = 5):
    """Remove from ``train_split`` every row whose decoded pixels also occur in an evaluation split
    (default: every other split); the evaluation splits are left untouched.

    Returns:
        ``(new DatasetDict, report)`` with ``report = {"train_split", "eval_splits", "rows_before",
        "rows_after", "removed", "removed_matching": {split: train rows matching an image of that split},
        "examples": [image ids]}``. The new dict keeps the loader's ``dropped`` / ``label_report`` /
        ``face_report`` attributes and carries the report as ``duplicate_removal``.

    Raises:
        KeyError: if ``train_split`` is missing.
    """
    from datasets import DatasetDict

    if train_split not in dataset_dict:
        raise KeyError(f"No {train_split!r} split in {list(dataset_dict)}")
    eval_splits = [s for s in (eval_splits or dataset_dict) if s != train_split]
    eval_hashes = {s: set(image_hashes(dataset_dict[s])) if len(dataset_dict[s]) else set() for s in eval_splits}
    train = dataset_dict[train_split]
    ids = _ids(train)
    keep, removed, matching = [], [], {s: 0 for s in eval_splits}
    for index, h in enumerate(image_hashes(train) if len(train) else []):
        hit = [s for s in eval_splits if h in eval_hashes[s]]
        if hit:
            removed.append(ids[index])
            for s in hit:
                matching[s] += 1
        else:
            keep.append(index)
    out = DatasetDict({s: (train.select(keep) if s == train_split else ds) for s, ds in dataset_dict.items()})
    for attribute in ("dropped", "label_report", "face_report"):
        if hasattr(dataset_dict, attribute):
            setattr(out, attribute, getattr(dataset_dict, attribute))
    report = {"train_split": train_split, "eval_splits": eval_splits, "rows_before": len(train),
              "rows_after": len(keep), "removed": len(removed), "removed_matching": matching,
              "examples": removed[:max_examples]}
    out.duplicate_removal = report  # type: ignore[attr-defined]
    return out, report
