"""FER corpora as `datasets.DatasetDict`s with an ``image`` (`datasets.Image`) and a ``label``
(`datasets.ClassLabel`, canonical FER2013 ids) column.

FER2013 (Goodfellow et al., 2013, "Challenges in Representation Learning") is accepted as
(a) the original Kaggle ``fer2013.csv`` (``emotion,pixels,Usage``), (b) the image-folder layout
(``train/<class>/Training_*.jpg``, ``test/<class>/{PublicTest,PrivateTest}_*.jpg``), zipped or unpacked,
or (c) a Hugging Face Hub dataset id. Splits: ``train`` = Training, ``validation`` = PublicTest,
``test`` = PrivateTest.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
from PIL import Image

from .models.vgg.configuration_fer_vgg import FER2013_LABELS

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".pgm"}
USAGE_TO_SPLIT = {"Training": "train", "PublicTest": "validation", "PrivateTest": "test"}

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


class InvalidRowsWarning(UserWarning):
    """Emitted when a loader drops invalid rows; the message gives their count and examples."""


class MixedTestSplitWarning(UserWarning):
    """Emitted when a FER2013 copy has a single test set instead of PublicTest/PrivateTest."""


@dataclass
class DroppedRows:
    """Rows a loader dropped: ``reasons`` maps a row id (file path or CSV line) to why it was dropped."""

    reasons: dict = field(default_factory=dict)

    def add(self, row_id: str, reason: str) -> None:
        self.reasons[str(row_id)] = reason

    def __len__(self) -> int:
        return len(self.reasons)

    def report(self, source: str, max_examples: int = 5) -> None:
        if not self.reasons:
            return
        examples = "; ".join(f"{k}: {v}" for k, v in list(self.reasons.items())[:max_examples])
        message = f"Dropped {len(self.reasons)} invalid row(s) from {source}. Examples: {examples}"
        logger.warning(message)
        warnings.warn(message, InvalidRowsWarning, stacklevel=3)


def canonical_label(name) -> Optional[int]:
    """Canonical FER2013 id for a label name or id ('Happy', 'happiness', 3, '3'), or None if unknown."""
    return LABEL_ALIASES.get(str(name).strip().lower())


def _features():
    from datasets import ClassLabel, Features, Image as ImageFeature, Value

    return Features({"image": ImageFeature(), "label": ClassLabel(names=FER2013_LABELS), "image_id": Value("string")})


def _build(rows_by_split: dict, dropped: DroppedRows, source: str):
    from datasets import Dataset, DatasetDict

    dropped.report(source)
    features = _features()
    out = DatasetDict()
    for split in ("train", "validation", "test"):
        rows = rows_by_split.get(split, [])
        out[split] = Dataset.from_dict(
            {"image": [r[0] for r in rows], "label": [r[1] for r in rows], "image_id": [r[2] for r in rows]},
            features=features,
        )
    out.dropped = dropped  # type: ignore[attr-defined]
    return out


def _check_image_bytes(data: bytes) -> Optional[str]:
    """None when the bytes decode to an image, else the reason."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            if im.size[0] < 1 or im.size[1] < 1:
                return "empty image"
    except Exception as error:  # noqa: BLE001 - any decoder error means "undecodable"
        return f"undecodable image ({type(error).__name__}: {error})"
    return None


def _split_from_name(filename: str) -> Optional[str]:
    stem = os.path.basename(filename)
    for usage, split in USAGE_TO_SPLIT.items():
        if stem.startswith(usage + "_"):
            return split
    return None


def _iter_folder_files(root: Path) -> Iterable[tuple[str, callable]]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
            yield path.relative_to(root).as_posix(), path.read_bytes


def _iter_zip_files(zip_path: Path) -> Iterable[tuple[str, callable]]:
    with zipfile.ZipFile(zip_path) as archive:
        for name in sorted(archive.namelist()):
            if name.endswith("/") or Path(name).suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            yield name, (lambda n=name: archive.read(n))


def load_fer2013_image_folder(path, validate_images: bool = True, seed: int = 42):
    """FER2013 in the image-folder layout, zipped (``.zip``) or unpacked.

    Expected: ``<anything>/<class name>/<Usage>_<id>.<ext>``; the class comes from the parent folder
    name (mapped by name to the canonical id), the split from the file-name prefix ``Training_``,
    ``PublicTest_`` or ``PrivateTest_``. Files without a prefix take their split from a ``train`` /
    ``test`` folder in their path; if the test files carry no PublicTest/PrivateTest prefix (a single
    mixed ``test/``), ``validation`` is a stratified 10% of train (``seed``) and ``test`` is the mixed
    test set, with a `MixedTestSplitWarning`: numbers on that test split are then not comparable with
    published PrivateTest results.

    Returns: `datasets.DatasetDict` with ``train``/``validation``/``test``; ``image_id`` is the path
    inside the folder or zip (unique even where two class folders hold the same file name).
    Invalid rows (unknown class folder, no split, undecodable image) are dropped and reported
    (`InvalidRowsWarning`, also in ``result.dropped``).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if no image files are found.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"FER2013 data not found at {path}")
    files = _iter_zip_files(path) if path.is_file() else _iter_folder_files(path)
    dropped = DroppedRows()
    rows = {"train": [], "validation": [], "test": []}
    mixed_test = []
    n_files = 0
    for name, read in files:
        n_files += 1
        parts = Path(name).parts
        label = canonical_label(parts[-2]) if len(parts) >= 2 else None
        if label is None:
            dropped.add(name, f"unknown label folder {parts[-2] if len(parts) >= 2 else '(none)'!r}")
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
        data = read()
        if validate_images:
            problem = _check_image_bytes(data)
            if problem:
                dropped.add(name, problem)
                continue
        row = ({"bytes": data, "path": name}, label, name)
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
    return _build(rows, dropped, str(path))


def _stratified_holdout(rows: list, fraction: float, seed: int):
    from sklearn.model_selection import train_test_split

    labels = [r[1] for r in rows]
    train, held = train_test_split(rows, test_size=fraction, stratify=labels, random_state=seed)
    return held, train


def load_fer2013_csv(path):
    """FER2013 from the original Kaggle CSV (columns ``emotion,pixels,Usage``; 48x48 = 2,304
    space-separated grey levels 0..255 per row; Usage Training / PublicTest / PrivateTest).

    Returns: `datasets.DatasetDict` (``train``/``validation``/``test``); ``image_id`` is ``"row<i>"``
    with ``i`` the 0-based data-row index (the index FER+ uses). Rows with a wrong pixel count,
    non-numeric or out-of-range pixels, an unknown emotion or an unknown Usage are dropped and
    reported (`InvalidRowsWarning`, also in ``result.dropped``).

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if the header lacks ``emotion``, ``pixels`` or ``Usage``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"FER2013 CSV not found at {path}")
    dropped = DroppedRows()
    rows = {"train": [], "validation": [], "test": []}
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"emotion", "pixels", "Usage"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path} is not a FER2013 CSV: missing column(s) {sorted(missing)}")
        for index, record in enumerate(reader):
            row_id = f"row{index}"
            label = canonical_label(record.get("emotion", ""))
            if label is None:
                dropped.add(row_id, f"unknown emotion {record.get('emotion')!r}")
                continue
            split = USAGE_TO_SPLIT.get((record.get("Usage") or "").strip())
            if split is None:
                dropped.add(row_id, f"unknown Usage {record.get('Usage')!r}")
                continue
            try:
                values = np.array((record.get("pixels") or "").split(), dtype=np.float64)
            except ValueError:
                dropped.add(row_id, "non-numeric pixels")
                continue
            if values.size != 48 * 48:
                dropped.add(row_id, f"{values.size} pixels instead of 2304")
                continue
            if values.min() < 0 or values.max() > 255 or not np.all(values == np.round(values)):
                dropped.add(row_id, "pixel values outside integers 0..255")
                continue
            image = Image.fromarray(values.reshape(48, 48).astype(np.uint8), mode="L")
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            rows[split].append(({"bytes": buffer.getvalue(), "path": None}, label, row_id))
    return _build(rows, dropped, str(path))


def load_fer2013_hub(dataset_id: str, **load_kwargs):
    """FER2013 from a Hugging Face Hub dataset id (or any `datasets.load_dataset` argument).

    The image column is the first `datasets.Image` column; the label column the first `ClassLabel`
    (or an integer / string column named ``label``, ``labels``, ``emotion``). Labels are remapped to
    canonical ids by name. A split named ``validation`` / ``valid`` / ``PublicTest`` is validation and
    ``test`` / ``PrivateTest`` is test; without a validation split, a stratified 10% of train is used
    and a `MixedTestSplitWarning` is emitted.
    """
    from datasets import ClassLabel, Image as ImageFeature, load_dataset

    raw = load_dataset(dataset_id, **load_kwargs)
    dropped = DroppedRows()
    split_names = {
        "train": ["train", "training", "Training"],
        "validation": ["validation", "valid", "val", "PublicTest", "public_test"],
        "test": ["test", "PrivateTest", "private_test"],
    }
    rows = {"train": [], "validation": [], "test": []}
    for target, candidates in split_names.items():
        source = next((c for c in candidates if c in raw), None)
        if source is None:
            continue
        ds = raw[source]
        image_col = next((k for k, f in ds.features.items() if isinstance(f, ImageFeature)), None)
        label_col = next((k for k, f in ds.features.items() if isinstance(f, ClassLabel)), None)
        label_col = label_col or next((k for k in ("label", "labels", "emotion") if k in ds.features), None)
        if image_col is None or label_col is None:
            raise ValueError(f"{dataset_id}[{source}] has no Image column or no label column: {ds.features}")
        feature = ds.features[label_col]
        names = feature.names if isinstance(feature, ClassLabel) else None
        ds = ds.cast_column(image_col, ImageFeature(decode=False))
        for index, record in enumerate(ds):
            raw_label = record[label_col]
            name = names[raw_label] if names is not None and isinstance(raw_label, int) else raw_label
            label = canonical_label(name)
            row_id = f"{source}/{index}"
            if label is None:
                dropped.add(row_id, f"unknown label {name!r}")
                continue
            image = record[image_col]
            data = image.get("bytes") or (open(image["path"], "rb").read() if image.get("path") else None)
            problem = _check_image_bytes(data) if data else "missing image"
            if problem:
                dropped.add(row_id, problem)
                continue
            rows[target].append(({"bytes": data, "path": image.get("path")}, label, row_id))
    if not rows["validation"] and rows["train"]:
        warnings.warn(
            f"{dataset_id} has no validation (PublicTest) split: using a stratified 10% of train; test numbers "
            "may not be comparable with published FER2013 PrivateTest results.",
            MixedTestSplitWarning,
            stacklevel=2,
        )
        rows["validation"], rows["train"] = _stratified_holdout(rows["train"], 0.1, 42)
    return _build(rows, dropped, dataset_id)


def load_fer2013(path_or_id, **kwargs):
    """Load FER2013 from a CSV file, a zip, an image folder or a Hub dataset id (dispatches to
    `load_fer2013_csv`, `load_fer2013_image_folder` or `load_fer2013_hub`).

    A directory that holds ``fer2013.csv`` or ``fer2013_images.zip`` is resolved to that file.
    """
    path = Path(str(path_or_id)).expanduser()
    if path.is_dir():
        for candidate in ("fer2013.csv", "fer2013_images.zip", "fer2013/fer2013.csv", "fer2013/fer2013_images.zip"):
            if (path / candidate).is_file():
                path = path / candidate
                break
    if path.is_file() and path.suffix.lower() == ".csv":
        return load_fer2013_csv(path)
    if path.exists():
        return load_fer2013_image_folder(path, **kwargs)
    text = str(path_or_id)
    looks_like_path = (text.startswith((".", "/", "~")) or text.count("/") != 1
                       or Path(text).suffix.lower() in (".csv", ".zip"))
    if looks_like_path:
        raise FileNotFoundError(f"FER2013 data not found at {text} (expected fer2013.csv, a zip or a folder)")
    return load_fer2013_hub(str(path_or_id), **kwargs)


def dataset_to_uint8(dataset, image_processor, desc: str = "decode"):
    """Decode a split into memory: returns (images uint8 tensor (N, C, H, W), labels int64 tensor (N,)),
    every image passed through ``image_processor.convert_and_resize`` (the processor's own path)."""
    import torch
    from datasets import Image as ImageFeature
    from tqdm.auto import tqdm

    ds = dataset.cast_column("image", ImageFeature(decode=False))
    images = np.empty((len(ds), image_processor.size["height"], image_processor.size["width"],
                       image_processor.num_channels), dtype=np.uint8)
    for i, record in enumerate(tqdm(ds, desc=desc, mininterval=2, disable=len(ds) < 2000)):
        data = record["image"]["bytes"] or open(record["image"]["path"], "rb").read()
        with Image.open(io.BytesIO(data)) as im:
            images[i] = image_processor.convert_and_resize(im)
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.tensor(ds["label"], dtype=torch.long)
