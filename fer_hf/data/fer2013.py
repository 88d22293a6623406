"""FER2013 (Goodfellow et al., 2013, "Challenges in Representation Learning") as a `datasets.DatasetDict`
with an ``image`` (`datasets.Image`), a ``label`` (`datasets.ClassLabel`, canonical FER2013 ids) and an
``image_id`` column.

FER2013 is accepted as (a) the original Kaggle ``fer2013.csv`` (``emotion,pixels,Usage``), (b) the
image-folder layout (``train/<class>/Training_*.jpg``, ``test/<class>/{PublicTest,PrivateTest}_*.jpg``),
zipped or unpacked, or (c) a Hugging Face Hub dataset id. Splits: ``train`` = Training, ``validation`` =
PublicTest, ``test`` = PrivateTest.

Classes: FER2013 has exactly the 7 classes of ``label_set="fer2013"``. With ``label_set="ferplus"`` the
``label`` column has 8 names and ``contempt`` (id 7) stays empty (reported with a `LabelSetWarning`).
"""

from __future__ import annotations

import csv
import io
import math
import os
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from ..labels import FER2013_LABELS, canonical_label, label_names
from .common import (HUB_SPLIT_NAMES, DroppedRows, MixedTestSplitWarning, build_dataset_dict,
                     check_image_bytes, corpus_features, find_split, hub_image_bytes, hub_labelled_records,
                     iter_folder_files, iter_zip_files, looks_like_hub_id, pixel_hash, read_row_image,
                     report_label_coverage)

USAGE_TO_SPLIT = {"Training": "train", "PublicTest": "validation", "PrivateTest": "test"}

# Old private names, kept for code that imported them from ``fer_hf.data``.
_check_image_bytes = check_image_bytes
_iter_folder_files = iter_folder_files
_iter_zip_files = iter_zip_files


def _features(label_set: str = "fer2013"):
    return corpus_features(label_set)


def _build(rows_by_split: dict, dropped: DroppedRows, source: str, label_set: str = "fer2013"):
    """``rows_by_split[split]``: list of (image dict, label id, image id[, pixel hash]) tuples."""
    rows = {split: [{"image": r[0], "label": r[1], "image_id": r[2], "_pixel_hash": r[3] if len(r) > 3 else None}
                    for r in split_rows]
            for split, split_rows in rows_by_split.items()}
    out = build_dataset_dict(rows, _features(label_set), dropped, source)
    present = {label_names(label_set)[r[1]] for split_rows in rows_by_split.values() for r in split_rows}
    lacks = [name for name in label_names(label_set) if name not in present and name not in FER2013_LABELS]
    report_label_coverage(out, "FER2013", label_set, lacks=lacks)
    return out


def _split_from_name(filename: str) -> Optional[str]:
    stem = os.path.basename(filename)
    for usage, split in USAGE_TO_SPLIT.items():
        if stem.startswith(usage + "_"):
            return split
    return None


def load_fer2013_image_folder(path, validate_images: bool = True, seed: int = 42, label_set: str = "fer2013"):
    """FER2013 in the image-folder layout, zipped (``.zip``) or unpacked.

    Expected: ``<anything>/<class name>/<Usage>_<id>.<ext>``; the class comes from the parent folder
    name (mapped by name to the canonical id), the split from the file-name prefix ``Training_``,
    ``PublicTest_`` or ``PrivateTest_``. Files without a prefix take their split from a ``train`` /
    ``test`` folder in their path; if the test files carry no PublicTest/PrivateTest prefix (a single
    mixed ``test/``), ``validation`` is a stratified 10% of train (``seed``) and ``test`` is the mixed
    test set, with a `MixedTestSplitWarning`: numbers on that test split are then not comparable with
    published PrivateTest results.

    ``label_set``: ``"fer2013"`` (7 classes) or ``"ferplus"`` (8; ``contempt`` stays empty).

    Returns: `datasets.DatasetDict` with ``train``/``validation``/``test``; ``image_id`` is the path
    inside the folder or zip (unique even where two class folders hold the same file name).
    Invalid rows (unknown class folder, no split, undecodable image) are dropped and reported
    (`InvalidRowsWarning`, also in ``result.dropped``).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if no image files are found.
    """
    label_names(label_set)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"FER2013 data not found at {path} (expected a zip or a folder of "
                                "<class>/<Usage>_<id>.jpg images)")
    dropped = DroppedRows()
    files = iter_zip_files(path, dropped) if path.is_file() else iter_folder_files(path, dropped)
    rows = {"train": [], "validation": [], "test": []}
    mixed_test = []
    n_files = 0
    for name, read in files:
        n_files += 1
        parts = Path(name).parts
        label = canonical_label(parts[-2], label_set) if len(parts) >= 2 else None
        if label is None:
            dropped.add(name, f"unknown label folder {parts[-2] if len(parts) >= 2 else '(none)'!r}",
                        "unknown label folder")
            continue
        split = _split_from_name(name)
        if split is None:
            lowered = [p.lower() for p in parts[:-2]]
            if any(p in ("train", "training") for p in lowered):
                split = "train"
            elif any(p in ("test", "val", "validation") for p in lowered):
                split = "mixed_test"
            else:
                dropped.add(name, "no Training_/PublicTest_/PrivateTest_ prefix and no train/test folder")
                continue
        image = read_row_image(read, name, dropped, validate_images)
        if image is None:
            continue
        row = ({"bytes": image[0], "path": name}, label, name, image[1])
        (mixed_test if split == "mixed_test" else rows[split]).append(row)
    if n_files == 0:
        raise ValueError(f"No image files found in {path}")
    if mixed_test:
        if rows["validation"] or rows["test"]:
            for row in mixed_test:
                dropped.add(row[2], "test file without PublicTest_/PrivateTest_ prefix next to prefixed ones")
        else:
            warnings.warn(
                f"{path} has a single test set ({len(mixed_test)} images) without PublicTest/PrivateTest "
                "prefixes: 'validation' is a stratified 10% of train and 'test' is the whole mixed test set, "
                "so test numbers are NOT comparable with published FER2013 PrivateTest results.",
                MixedTestSplitWarning,
                stacklevel=2,
            )
            rows["validation"], rows["train"] = _stratified_holdout(rows["train"], 0.1, seed)
            rows["test"] = mixed_test
    return _build(rows, dropped, str(path), label_set)


def _stratified_holdout(rows: list, fraction: float, seed: int):
    """(held-out ``fraction`` of ``rows``, the rest), stratified by label; a plain random split where a
    class has a single row (stratification impossible), nothing held out from fewer than 2 rows."""
    from collections import Counter

    from sklearn.model_selection import train_test_split

    if len(rows) < 2:
        return [], list(rows)
    labels = [r[1] for r in rows]
    counts = Counter(labels)
    n_held = math.ceil(fraction * len(rows))  # what train_test_split holds out for test_size=fraction
    stratify = labels if min(counts.values()) >= 2 and len(counts) <= n_held <= len(rows) - len(counts) else None
    train, held = train_test_split(rows, test_size=fraction, stratify=stratify, random_state=seed)
    return held, train


def load_fer2013_csv(path, label_set: str = "fer2013"):
    """FER2013 from the original Kaggle CSV (columns ``emotion,pixels,Usage``; 48x48 = 2,304
    space-separated grey levels 0..255 per row; Usage Training / PublicTest / PrivateTest).

    Returns: `datasets.DatasetDict` (``train``/``validation``/``test``); ``image_id`` is ``"row<i>"``
    with ``i`` the 0-based data-row index (the index FER+ uses). Rows with a wrong pixel count,
    non-numeric or out-of-range pixels, an unknown emotion or an unknown Usage are dropped and
    reported (`InvalidRowsWarning`, also in ``result.dropped``).

    The header may carry a UTF-8 byte-order mark and spaces around the names; bytes that are not UTF-8
    and CSV lines that cannot be parsed (e.g. a field over `csv.field_size_limit`) make their row invalid,
    not the file. Row indices count every data line (blank lines excepted), valid or not.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if the header lacks ``emotion``, ``pixels`` or ``Usage`` (the message names the missing
            columns), e.g. for an empty or binary file.
    """
    label_names(label_set)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"FER2013 CSV not found at {path} (expected fer2013.csv: emotion,pixels,Usage)")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not a FER2013 CSV file")
    dropped = DroppedRows()
    rows = {"train": [], "validation": [], "test": []}
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as handle:
        reader = csv.reader(handle)
        try:
            header = [name.strip() for name in next(reader, [])]
        except csv.Error as error:
            raise ValueError(f"{path} is not a FER2013 CSV: its header line cannot be parsed ({error})") from None
        missing = {"emotion", "pixels", "Usage"} - set(header)
        if missing:
            shown = ", ".join(repr(h[:30]) for h in header[:8]) + (", ..." if len(header) > 8 else "")
            raise ValueError(f"{path} is not a FER2013 CSV: missing column(s) {sorted(missing)} "
                             f"(header: {shown or 'none, the file is empty'})")
        columns = {name: len(header) - 1 - header[::-1].index(name) for name in ("emotion", "pixels", "Usage")}
        for index, record in enumerate(_csv_records(reader, columns)):
            row_id = f"row{index}"
            if isinstance(record, csv.Error):
                dropped.add(row_id, f"malformed CSV line ({record})", "malformed CSV line")
                continue
            label = canonical_label(record.get("emotion", ""), label_set)
            if label is None or label > 6:
                dropped.add(row_id, f"unknown emotion {record.get('emotion')!r}", "unknown emotion")
                continue
            split = USAGE_TO_SPLIT.get((record.get("Usage") or "").strip())
            if split is None:
                dropped.add(row_id, f"unknown Usage {record.get('Usage')!r}", "unknown Usage")
                continue
            try:
                values = np.array((record.get("pixels") or "").split(), dtype=np.float64)
            except ValueError:
                dropped.add(row_id, "non-numeric pixels")
                continue
            if values.size != 48 * 48:
                dropped.add(row_id, f"{values.size} pixels instead of 2304", "wrong pixel count")
                continue
            if values.min() < 0 or values.max() > 255 or not np.all(values == np.round(values)):
                dropped.add(row_id, "pixel values outside integers 0..255")
                continue
            image = Image.fromarray(values.reshape(48, 48).astype(np.uint8), mode="L")
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            rows[split].append(({"bytes": buffer.getvalue(), "path": None}, label, row_id, pixel_hash(image)))
    return _build(rows, dropped, str(path), label_set)


def _csv_records(reader, columns: dict):
    """{column: value or None} per data line of ``reader`` (blank lines skipped, like `csv.DictReader`), or
    the `csv.Error` of a line that cannot be parsed (the reader goes on with the next line)."""
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield error
            continue
        if fields:
            yield {name: fields[i] if i < len(fields) else None for name, i in columns.items()}


def load_fer2013_hub(dataset_id: str, label_set: str = "fer2013", **load_kwargs):
    """FER2013 from a Hugging Face Hub dataset id (or any `datasets.load_dataset` argument).

    The image column is the first `datasets.Image` column; the label column the first `ClassLabel`
    (or an integer / string column named ``label``, ``labels``, ``emotion``). Labels are remapped to
    canonical ids by name. A split named ``validation`` / ``valid`` / ``PublicTest`` is validation and
    ``test`` / ``PrivateTest`` is test; without a validation split, a stratified 10% of train is used
    and a `MixedTestSplitWarning` is emitted.
    """
    from datasets import load_dataset

    label_names(label_set)
    raw = load_dataset(dataset_id, **load_kwargs)
    dropped = DroppedRows()
    rows = {"train": [], "validation": [], "test": []}
    for target, candidates in HUB_SPLIT_NAMES.items():
        source = find_split(raw, candidates)
        if source is None:
            continue
        try:
            records = hub_labelled_records(raw[source])
        except ValueError as error:
            raise ValueError(f"{dataset_id}[{source}]: {error}") from None
        for index, record, name, image in records:
            label = canonical_label(name, label_set)
            row_id = f"{source}/{index}"
            if label is None:
                dropped.add(row_id, f"unknown label {name!r}", "unknown label")
                continue
            checked = read_row_image(lambda: hub_image_bytes(image), row_id, dropped)
            if checked is None:
                continue
            rows[target].append(({"bytes": checked[0], "path": image.get("path")}, label, row_id, checked[1]))
    if not rows["validation"] and rows["train"]:
        warnings.warn(
            f"{dataset_id} has no validation (PublicTest) split: using a stratified 10% of train; test numbers "
            "may not be comparable with published FER2013 PrivateTest results.",
            MixedTestSplitWarning,
            stacklevel=2,
        )
        rows["validation"], rows["train"] = _stratified_holdout(rows["train"], 0.1, 42)
    return _build(rows, dropped, dataset_id, label_set)


def load_fer2013(path_or_id, label_set: str = "fer2013", **kwargs):
    """Load FER2013 from a CSV file, a zip, an image folder or a Hub dataset id (dispatches to
    `load_fer2013_csv`, `load_fer2013_image_folder` or `load_fer2013_hub`; ``kwargs`` go to the latter two).

    A directory that holds ``fer2013.csv`` or ``fer2013_images.zip`` is resolved to that file.
    ``label_set``: ``"fer2013"`` (default, 7 classes) or ``"ferplus"`` (8 names; ``contempt`` stays empty).

    Raises:
        FileNotFoundError: for a path that does not exist (anything but an ``owner/name`` Hub id).
    """
    path = Path(str(path_or_id)).expanduser()
    if path.is_dir():
        for candidate in ("fer2013.csv", "fer2013_images.zip", "fer2013/fer2013.csv", "fer2013/fer2013_images.zip"):
            if (path / candidate).is_file():
                path = path / candidate
                break
    if path.is_file() and path.suffix.lower() == ".csv":
        return load_fer2013_csv(path, label_set=label_set)
    if path.exists():
        return load_fer2013_image_folder(path, label_set=label_set, **kwargs)
    if not looks_like_hub_id(str(path_or_id)):
        raise FileNotFoundError(f"FER2013 data not found at {path_or_id} (expected fer2013.csv, a zip or a folder "
                                "of <class>/<Usage>_<id>.jpg images, or a Hub dataset id owner/name)")
    return load_fer2013_hub(str(path_or_id), label_set=label_set, **kwargs)

