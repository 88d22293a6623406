"""CK+ (Extended Cohn-Kanade; Lucey et al., CVPR Workshops 2010; Kanade et al., FG 2000) in the common
CK+48 layout: ``CK+48/<class>/S005_001_00000011.png`` (48x48 grayscale, the last three frames of each
sequence; classes anger, contempt, disgust, fear, happy, sadness, surprise; no neutral)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from .common import (DroppedRows, build_dataset_dict, corpus_features, hub_image_bytes, hub_labelled_records,
                     iter_image_files, logger, local_path_or_hub_id, read_row_image, report_label_coverage)
from ..labels import canonical_label, label_names, outside_label_set

_NAME = re.compile(r"^(S\d+)_(\d+)_(\d+)\.[A-Za-z]+$")


def _features(label_set: str):
    from datasets import Value

    return corpus_features(label_set, {"subject": Value("string"), "sequence": Value("string")})


def _resolve(path: Path) -> Path:
    if path.is_dir() and not any(canonical_label(p.name, "ferplus") is not None for p in path.iterdir() if p.is_dir()):
        for candidate in (path / "CK+48", path / "ckplus" / "CK+48"):
            if candidate.is_dir():
                return candidate
    return path


def load_ckplus(path, label_set: str = "ferplus", validate_images: bool = True, **hub_kwargs):
    """CK+48 as a `datasets.DatasetDict` with a single ``train`` split (CK+ has no official split: use
    subject-independent folds, `fer_hf.data.subject_kfold` / `leave_one_subject_out`).

    Args:
        path: the ``CK+48`` folder (one sub-folder per class, mapped to ids by name: anger -> angry,
            sadness -> sad, ...), a folder holding ``CK+48/``, a zip of that layout, or a Hub dataset id
            (``hub_kwargs`` go to `datasets.load_dataset`; the label column is mapped by name and a
            ``subject`` column is used if present, else the subject is parsed from the image file name).
        label_set: ``"ferplus"`` (default: contempt keeps id 7) or ``"fer2013"`` (contempt images are
            dropped and reported). CK+48 has no neutral images: ``neutral`` (id 6) stays empty in both
            sets (reported with a `LabelSetWarning`; leave it out of macro averages).
        validate_images: decode every image and drop undecodable ones.

    Returns:
        `datasets.DatasetDict` ``{"train"}``: ``image``, ``label``, ``image_id`` (path relative to CK+48),
        ``subject`` (``S005``) and ``sequence`` (``S005_001``). Rows without a subject in their file name
        (``S<subject>_<sequence>_<frame>``), with an unknown class folder, outside the label set or
        undecodable are dropped and reported (`InvalidRowsWarning`, ``result.dropped``).

    Raises:
        FileNotFoundError: if ``path`` does not exist (and is not an ``owner/name`` Hub id).
        ValueError: if no image is found.
    """
    names = label_names(label_set)
    text = str(path)
    dropped, rows, outside = DroppedRows(), [], Counter()
    path = local_path_or_hub_id(text, "CK+", "expected the CK+48 folder with one sub-folder per class, a zip of "
                                             "it, or a Hub id owner/name")
    if path is None:
        items = _hub_items(text, **hub_kwargs)
        source = text
    else:
        path = _resolve(path)
        items = ((name, Path(name).parts[-2] if len(Path(name).parts) >= 2 else "", read, None)
                 for name, read in iter_image_files(path, dropped))
        source = str(path)
    n_files = 0
    for row_id, class_name, read, subject in items:
        n_files += 1
        label = canonical_label(class_name, label_set)
        if label is None:
            if outside_label_set(class_name, label_set):
                outside[str(class_name).lower()] += 1
                dropped.add(row_id, f"class {class_name!r} not in label_set {label_set!r}",
                            f"{str(class_name).lower()} not in label_set {label_set!r}")
            else:
                dropped.add(row_id, f"unknown label {class_name!r}", "unknown label")
            continue
        match = _NAME.match(Path(row_id).name)
        if subject is None and match is None:
            dropped.add(row_id, "file name is not S<subject>_<sequence>_<frame>", "no subject in the file name")
            continue
        image = read_row_image(read, row_id, dropped, validate_images)
        if image is None:
            continue
        data, digest = image
        rows.append({"image": {"bytes": data, "path": row_id}, "label": label, "image_id": row_id,
                     "_pixel_hash": digest,
                     "subject": subject or match.group(1),
                     "sequence": f"{match.group(1)}_{match.group(2)}" if match else ""})
    if n_files == 0:
        raise ValueError(f"No image files found in {source}")
    out = build_dataset_dict({"train": rows}, _features(label_set), dropped, source, splits=("train",))
    present = {names[r["label"]] for r in rows}
    report_label_coverage(out, "CK+", label_set, lacks=[n for n in names if n not in present], outside=dict(outside))
    logger.info("CK+ from %s: %d images, %d subjects", source, len(rows), len({r["subject"] for r in rows}))
    return out


def _hub_items(dataset_id: str, **load_kwargs):
    from datasets import load_dataset

    raw = load_dataset(dataset_id, **load_kwargs)
    for split in raw:
        for index, record, name, image in hub_labelled_records(raw[split]):
            data = hub_image_bytes(image)
            file_name = Path(image.get("path") or "").name
            row_id = f"{split}/{file_name}" if file_name else f"{split}/{index}"
            yield row_id, name, (lambda d=data: d), (str(record["subject"]) if "subject" in record else None)
