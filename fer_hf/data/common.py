"""Helpers shared by every corpus loader: the report of
dropped rows, image checks, file iteration over folders and zips, the `datasets` schema builder and the
Hugging Face Hub column detection."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import stat
import warnings
import zipfile
import zlib
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Optional

import numpy as np
from PIL import Image

from ..image_io import IMAGE_EXTENSIONS, ImageTooLargeError, max_image_pixels, open_image
from ..labels import label_names

logger = logging.getLogger("fer_hf.data")


class InvalidRowsWarning(UserWarning):
    """Emitted when a loader drops rows; the message gives their count, the count per reason and examples."""


class MixedTestSplitWarning(UserWarning):
    """Emitted when a FER2013 copy has a single test set instead of PublicTest/PrivateTest."""


class LabelSetWarning(UserWarning):
    """Emitted when a corpus lacks classes of the requested label set (they stay empty) or has classes the
    label set lacks (their rows are dropped)."""


@dataclass
class DroppedRows:
    """Rows a loader dropped: ``reasons`` maps a row id (file path or CSV line) to why it was dropped,
    ``categories`` maps the same id to a short reason category (what `counts` groups by; defaults to the
    reason itself)."""

    reasons: dict = field(default_factory=dict)
    categories: dict = field(default_factory=dict)

    def add(self, row_id: str, reason: str, category: Optional[str] = None) -> None:
        self.reasons[str(row_id)] = reason
        self.categories[str(row_id)] = category or reason

    def __len__(self) -> int:
        return len(self.reasons)

    def counts(self) -> dict:
        """{category: number of rows}, largest first."""
        return dict(Counter(self.categories.values()).most_common())

    def examples(self, max_examples: int = 5) -> dict:
        """Up to ``max_examples`` {row id: reason}, at least one per category (first categories first)."""
        chosen, seen = [], set()
        for row_id, category in self.categories.items():
            if category not in seen:
                seen.add(category)
                chosen.append(row_id)
        for row_id in self.reasons:
            if len(chosen) >= max_examples:
                break
            if row_id not in chosen:
                chosen.append(row_id)
        return {row_id: self.reasons[row_id] for row_id in chosen[:max(max_examples, 1)]}

    def to_dict(self, max_examples: int = 5) -> dict:
        """JSON-serialisable summary: ``{"total", "by_reason", "examples"}``."""
        return {"total": len(self), "by_reason": self.counts(), "examples": self.examples(max_examples)}

    def report(self, source: str, max_examples: int = 5) -> None:
        """Log and warn (`InvalidRowsWarning`) the count, the count per reason and examples; silent if empty."""
        if not self.reasons:
            return
        counts = self.counts()
        by_reason = ""
        if len(counts) > 1 or any(self.categories[k] != v for k, v in self.reasons.items()):
            by_reason = " (by reason: " + "; ".join(f"{c}: {n}" for c, n in counts.items()) + ")"
        examples = "; ".join(f"{k}: {v}" for k, v in self.examples(max_examples).items())
        message = f"Dropped {len(self.reasons)} invalid row(s) from {source}{by_reason}. Examples: {examples}"
        logger.warning(message)
        warnings.warn(message, InvalidRowsWarning, stacklevel=3)


def pixel_hash(image: Image.Image) -> str:
    """SHA-1 of an image's decoded pixels (mode, size and raw bytes; palette images expanded to RGB(A)):
    re-encodings of the same pixels hash the same, any pixel change does not."""
    if image.mode in ("P", "PA"):
        image = image.convert("RGBA" if "transparency" in image.info or image.mode == "PA" else "RGB")
    header = f"{image.mode}|{image.size[0]}x{image.size[1]}|".encode()
    return hashlib.sha1(header + image.tobytes()).hexdigest()


def inspect_image_bytes(data: Optional[bytes]) -> tuple:
    """(None, `pixel_hash`) when the bytes decode to a usable image, else (the reason, None).

    The image is opened with `fer_hf.image_io.open_image`: its size is checked against
    ``FER_HF_MAX_IMAGE_PIXELS`` (50 megapixels) from the header, before any pixel is decoded, and float
    images with NaN / infinite pixels are refused. The reason starts with its category (`problem_category`):
    ``missing image``, ``empty file``, ``not an image``, ``image too large``, ``invalid pixel values``,
    ``empty image`` (0 pixels) or ``undecodable image``, followed by the details in brackets.

    Raises:
        ValueError: if ``FER_HF_MAX_IMAGE_PIXELS`` is set to something that is not a positive number.
    """
    if data is None:
        return "missing image", None
    if len(data) == 0:
        return "empty file (0 bytes)", None
    limit = max_image_pixels()  # a bad FER_HF_MAX_IMAGE_PIXELS is the caller's error, not every row's
    try:
        image = open_image(io.BytesIO(data), limit)
    except ImageTooLargeError as error:
        return f"image too large ({error})", None
    except Image.UnidentifiedImageError as error:
        return f"not an image ({error})", None
    except ValueError as error:  # NaN / infinite float pixels, or no pixels at all
        return f"{'invalid pixel values' if 'NaN' in str(error) else 'empty image'} ({error})", None
    except MemoryError:
        raise
    except Exception as error:  # noqa: BLE001 - any decoder error means "undecodable"
        return f"undecodable image ({type(error).__name__}: {error})", None
    with image:
        return None, pixel_hash(image)


def problem_category(reason: str) -> str:
    """The category of an `inspect_image_bytes` / `read_file_bytes` reason (the text before `` (``)."""
    return str(reason).split(" (", 1)[0]


def check_image_bytes(data: bytes) -> Optional[str]:
    """None when the bytes decode to an image, else the reason."""
    return inspect_image_bytes(data)[0]


class UnreadableFileError(OSError):
    """A file or zip entry whose bytes cannot be read (a corrupt or encrypted zip entry, an I/O error)."""


def read_file_bytes(read: Callable[[], bytes]) -> tuple:
    """(bytes, None) from a reader of `iter_image_files`, or (None, reason) when it cannot be read, the
    reason starting with ``unreadable file``."""
    try:
        return read(), None
    except MemoryError:
        raise
    except OSError as error:
        return None, f"unreadable file ({type(error).__name__}: {error})"


def read_row_image(read: Callable[[], bytes], row_id: str, dropped: "DroppedRows",
                   validate_images: bool = True) -> Optional[tuple]:
    """``(bytes, pixel hash)`` of one row's image file (``read``: a reader of `iter_image_files`), the hash
    None unless ``validate_images`` (then the bytes must decode: `inspect_image_bytes`); None when the file
    cannot be read or does not decode, the reason then recorded under ``row_id`` in ``dropped``."""
    data, problem = read_file_bytes(read)
    digest = None
    if validate_images and problem is None:
        problem, digest = inspect_image_bytes(data)
    if problem:
        dropped.add(row_id, problem, problem_category(problem))
        return None
    return data, digest


# Dataset fingerprint -> pixel hashes of its rows: the loaders decode every image once to validate it and
# keep the hashes here, so that `fer_hf.data.quality` does not decode again. A fingerprint changes with
# any transform, so an entry can never describe other rows.
_PIXEL_HASHES: "OrderedDict[str, list]" = OrderedDict()
_PIXEL_HASHES_SIZE = 64


def remember_pixel_hashes(dataset, hashes: list) -> None:
    key = getattr(dataset, "_fingerprint", None)
    if key is None or len(hashes) != len(dataset) or any(h is None for h in hashes):
        return
    _PIXEL_HASHES[key] = list(hashes)
    _PIXEL_HASHES.move_to_end(key)
    while len(_PIXEL_HASHES) > _PIXEL_HASHES_SIZE:
        _PIXEL_HASHES.popitem(last=False)


def cached_pixel_hashes(dataset) -> Optional[list]:
    key = getattr(dataset, "_fingerprint", None)
    if key is None or key not in _PIXEL_HASHES:
        return None
    _PIXEL_HASHES.move_to_end(key)
    return list(_PIXEL_HASHES[key])


def iter_folder_files(root: Path, dropped: Optional["DroppedRows"] = None) -> Iterable[tuple[str, Callable[[], bytes]]]:
    """(path relative to ``root`` with ``/``, reader) for every image file under ``root``, sorted. Only
    regular files (and links to them) are read: FIFOs, devices and broken links are skipped. ``dropped``
    is accepted for symmetry with `iter_zip_files` (nothing in a folder is unsafe to read)."""
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
            yield path.relative_to(root).as_posix(), path.read_bytes


def unsafe_zip_entry(info: zipfile.ZipInfo) -> Optional[str]:
    """Why a zip entry must be neither extracted nor read as a file (None: a regular file with a safe
    relative name). The one check shared by the corpus loaders (which read zips in memory) and
    `fer_hf.app.uploads.extract_zip_safely` (which writes entries to disk):

    - ``"symbolic link"`` / ``"not a regular file"``: the Unix file type in ``external_attr`` says so;
    - ``"absolute path"``: a name starting with ``/`` or a drive letter (``C:``);
    - ``"'..' in the path"``: a ``..`` component, with ``\\`` read as a separator too;
    - ``"invalid name"``: empty, or with a NUL byte;
    - ``"encrypted (password needed)"``: the encryption flag is set.
    """
    name = info.filename.replace("\\", "/")
    mode = info.external_attr >> 16
    if mode and stat.S_ISLNK(mode):
        return "symbolic link"
    if mode and stat.S_IFMT(mode) and not stat.S_ISREG(mode):
        return "not a regular file"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    parts = PurePosixPath(name).parts
    if ".." in parts:
        return "'..' in the path"
    if "\x00" in name or not parts:
        return "invalid name"
    if info.flag_bits & 0x1:
        return "encrypted (password needed)"
    return None


def iter_zip_files(zip_path: Path, dropped: Optional["DroppedRows"] = None) -> Iterable[tuple[str, Callable[[], bytes]]]:
    """(member name, reader) for every image member of a zip, sorted (directory entries skipped). The zip
    is read in memory: nothing is extracted. Entries that are unsafe (`unsafe_zip_entry`: links, absolute
    or ``..`` paths, encrypted) and repeated names (after the first) are skipped and, with ``dropped``,
    reported there. A reader raises `UnreadableFileError` (an OSError) for a corrupt entry.

    Raises:
        ValueError: if ``zip_path`` is not a readable zip file.
    """
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as error:
        raise ValueError(f"{zip_path} is not a readable zip file ({error})") from None
    with archive:
        seen = set()
        for info in sorted(archive.infolist(), key=lambda i: i.filename):
            name = info.filename
            if info.is_dir() or Path(name).suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            reason = unsafe_zip_entry(info) or ("repeated name in the zip (the first one is kept)" if name in seen
                                                else None)
            seen.add(name)
            if reason is not None:
                if dropped is not None:
                    dropped.add(name, reason, "unsafe or repeated zip entry")
                else:
                    logger.warning("%s: skipped zip entry %r (%s)", zip_path, name, reason)
                continue
            yield name, (lambda i=info: _read_zip_entry(archive, i))


def _read_zip_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    try:
        return archive.read(info)
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError, ValueError) as error:
        # a bad CRC or corrupt compressed data, an encrypted entry, an unsupported compression method
        raise UnreadableFileError(f"corrupt zip entry {info.filename!r}: {type(error).__name__}: {error}") from None


def iter_image_files(path: Path, dropped: Optional["DroppedRows"] = None) -> Iterable[tuple[str, Callable[[], bytes]]]:
    """`iter_zip_files` for a file, `iter_folder_files` for a folder."""
    return iter_zip_files(path, dropped) if path.is_file() else iter_folder_files(path, dropped)


def looks_like_hub_id(text: str) -> bool:
    """True for ``owner/name`` strings that are not paths (no leading ``.``/``/``/``~``, no file suffix)."""
    text = str(text)
    return not (text.startswith((".", "/", "~")) or text.count("/") != 1
                or Path(text).suffix.lower() in (".csv", ".zip"))


def local_path_or_hub_id(path, corpus: str, expected: str) -> Optional[Path]:
    """``path`` (``~`` expanded) when it exists, None when it does not but `looks_like_hub_id` (the caller
    loads it from the Hub).

    Raises:
        FileNotFoundError: if neither, saying ``{corpus} data not found at {path} ({expected})``.
    """
    local = Path(str(path)).expanduser()
    if local.exists():
        return local
    if not looks_like_hub_id(str(path)):
        raise FileNotFoundError(f"{corpus} data not found at {path} ({expected})")
    return None


def corpus_features(label_set: str = "fer2013", extra: Optional[dict] = None):
    """`datasets.Features`: ``image`` (Image), ``label`` (ClassLabel of ``label_set``), ``image_id``
    (string), then the ``extra`` {name: feature} columns."""
    from datasets import ClassLabel, Features, Image as ImageFeature, Value

    columns = {"image": ImageFeature(), "label": ClassLabel(names=label_names(label_set)),
               "image_id": Value("string")}
    columns.update(extra or {})
    return Features(columns)


def build_dataset_dict(rows_by_split: dict, features, dropped: DroppedRows, source: str,
                       splits: Iterable[str] = ("train", "validation", "test")):
    """`datasets.DatasetDict` with one `Dataset` per name in ``splits`` (empty when it has no rows);
    ``rows_by_split[split]`` is a list of dicts keyed by the feature names (plus an optional
    ``"_pixel_hash"``, kept for the quality report). Reports ``dropped`` and keeps it as ``result.dropped``."""
    from datasets import Dataset, DatasetDict

    dropped.report(source)
    out = DatasetDict()
    for split in splits:
        rows = rows_by_split.get(split, [])
        out[split] = Dataset.from_dict({name: [r[name] for r in rows] for name in features}, features=features)
        remember_pixel_hashes(out[split], [r.get("_pixel_hash") for r in rows])
    out.dropped = dropped  # type: ignore[attr-defined]
    return out


def report_label_coverage(out, corpus: str, label_set: str, lacks: Iterable[str] = (),
                          outside: Optional[dict] = None) -> dict:
    """Say (log + `LabelSetWarning`) which classes of ``label_set`` the corpus lacks (``lacks``: they
    stay empty) and which corpus classes the label set lacks (``outside``: {class: rows dropped}); keep the
    summary as ``out.label_report`` and return it."""
    lacks = [name for name in lacks if name in label_names(label_set)]
    outside = {k: int(v) for k, v in (outside or {}).items()}
    report = {"corpus": corpus, "label_set": label_set, "classes": label_names(label_set),
              "empty_classes": lacks, "dropped_classes": outside}
    parts = []
    if lacks:
        parts.append(f"{corpus} has no {', '.join(repr(n) for n in lacks)} images: "
                     f"{'that class stays' if len(lacks) == 1 else 'those classes stay'} empty "
                     f"(exclude {'it' if len(lacks) == 1 else 'them'} from macro averages)")
    if outside:
        parts.append(f"label_set={label_set!r} has no " + ", ".join(
            f"{name!r} ({count} row(s) dropped)" for name, count in outside.items()))
    if parts:
        message = f"{corpus} with label_set={label_set!r}: " + "; ".join(parts) + "."
        logger.warning(message)
        warnings.warn(message, LabelSetWarning, stacklevel=3)
    out.label_report = report  # type: ignore[attr-defined]
    return report


def hub_image_and_label_columns(ds):
    """(image column, label column, ClassLabel names or None) of a Hub `Dataset`: the first `Image`
    column, and the first `ClassLabel` column or an integer / string column named ``label``, ``labels``,
    ``emotion``, ``expression``.

    Raises:
        ValueError: if either is missing.
    """
    from datasets import ClassLabel, Image as ImageFeature

    image_col = next((k for k, f in ds.features.items() if isinstance(f, ImageFeature)), None)
    label_col = next((k for k, f in ds.features.items() if isinstance(f, ClassLabel)), None)
    label_col = label_col or next((k for k in ("label", "labels", "emotion", "expression") if k in ds.features), None)
    if image_col is None or label_col is None:
        raise ValueError(f"Dataset has no Image column or no label column: {ds.features}")
    feature = ds.features[label_col]
    return image_col, label_col, (feature.names if isinstance(feature, ClassLabel) else None)


def hub_labelled_records(ds):
    """The rows of a Hub `Dataset` with their images left undecoded, as an iterator of ``(index, record,
    label name, image)``: the label column's value mapped through its ClassLabel names (a string label as it
    is), the image as a ``{"bytes", "path"}`` dict (`hub_image_bytes`). The columns are those of
    `hub_image_and_label_columns`, found before the first row is asked for.

    Raises:
        ValueError: if the dataset has no image or no label column (at the call, not at the first row).
    """
    from datasets import Image as ImageFeature

    image_col, label_col, names = hub_image_and_label_columns(ds)
    ds = ds.cast_column(image_col, ImageFeature(decode=False))

    def records():
        for index, record in enumerate(ds):
            raw_label = record[label_col]
            name = names[raw_label] if names is not None and isinstance(raw_label, int) else raw_label
            yield index, record, name, record[image_col]

    return records()


def hub_image_bytes(image: dict) -> Optional[bytes]:
    """Bytes of an undecoded `datasets.Image` value (``{"bytes", "path"}``), or None."""
    if image is None:
        return None
    if image.get("bytes"):
        return image["bytes"]
    if image.get("path") and os.path.isfile(image["path"]):
        with open(image["path"], "rb") as handle:
            return handle.read()
    return None


def find_split(raw, candidates) -> Optional[str]:
    """The first name of ``candidates`` that is a split of ``raw`` (a `DatasetDict`), else None."""
    return next((c for c in candidates if c in raw), None)


HUB_SPLIT_NAMES = {
    "train": ["train", "training", "Training"],
    "validation": ["validation", "valid", "val", "PublicTest", "public_test"],
    "test": ["test", "PrivateTest", "private_test"],
}


def dataset_to_uint8(dataset, image_processor, desc: str = "decode"):
    """Decode a split into memory: returns (images uint8 tensor (N, C, H, W), labels int64 tensor (N,)),
    every image passed through ``image_processor.convert_and_resize`` (the processor's own path).

    Raises:
        ValueError: naming the row, for an image that cannot be read or decoded (or is over the pixel
            limit); the loaders' image validation drops such rows beforehand.
    """
    import torch
    from datasets import Image as ImageFeature
    from tqdm.auto import tqdm

    ds = dataset.cast_column("image", ImageFeature(decode=False))
    images = np.empty((len(ds), image_processor.size["height"], image_processor.size["width"],
                       image_processor.num_channels), dtype=np.uint8)
    for i, record in enumerate(tqdm(ds, desc=desc, mininterval=2, disable=len(ds) < 2000)):
        try:
            data = record["image"]["bytes"] or open(record["image"]["path"], "rb").read()
            with open_image(io.BytesIO(data)) as im:
                images[i] = image_processor.convert_and_resize(im)
        except (OSError, ValueError) as error:
            image_id = record.get("image_id", record["image"].get("path"))
            raise ValueError(f"Row {i} ({image_id}) of the dataset is not a usable image: {type(error).__name__}: "
                             f"{error} (the fer_hf.data loaders drop such rows when they validate images)") from None
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.tensor(ds["label"][:], dtype=torch.long)
