"""FER+ (Barsoum, Zhang, Canton Ferrer and Zhang, "Training Deep Networks for Facial Expression Recognition
with Crowd-Sourced Label Distribution", ICMI 2016; github.com/microsoft/FERPlus): 10 crowd votes for every
FER2013 image over ``neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF``
(NF = not a face).

Two sources of the same votes are read:

(a) the official layout written by Microsoft's ``generate_training_data.py``: ``FER2013Train/``,
    ``FER2013Valid/``, ``FER2013Test/`` (= FER2013 Training / PublicTest / PrivateTest), each with its PNGs
    and a ``label.csv`` (``<name>,"(0, 0, 48, 48)",<10 votes>``), zipped or unpacked;
(b) ``fer2013new.csv`` (``Usage, Image name, <10 votes>``; row *i* = row *i* of ``fer2013.csv``) joined to
    FER2013 images: to the Kaggle ``fer2013.csv`` by row index, or to the image-folder zip through the
    link table ``fer2013_images_to_ferplus.csv`` (columns ``image``, ``usage``, ``fer2013_row``,
    ``ferplus_image_name``, ``match``, ...; see the data card).

Caution: Microsoft's ``label.csv`` files (2016) and ``fer2013new.csv`` (2017) disagree on the votes of
1,602 of the 35,710 named images (4.5%, all three splits), so (a) and (b) give slightly different labels.
Published FER+ numbers come from Microsoft's own training code, which reads (a).
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections import Counter
from pathlib import Path
from typing import Optional

import numpy as np

from .common import (HUB_SPLIT_NAMES, DroppedRows, UnreadableFileError, _read_zip_entry, build_dataset_dict,
                     corpus_features, find_split, hub_image_and_label_columns, hub_image_bytes, inspect_image_bytes,
                     iter_image_files, logger, looks_like_hub_id, problem_category, read_file_bytes,
                     report_label_coverage, unsafe_zip_entry)
from ..labels import canonical_label, label_names
from .fer2013 import USAGE_TO_SPLIT, load_fer2013_csv

#: The 10 vote columns, in the order of ``label.csv`` and ``fer2013new.csv``.
FERPLUS_VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
                        "unknown", "NF")
#: split -> folder of the official FER+ layout.
FERPLUS_FOLDERS = {"train": "FER2013Train", "validation": "FER2013Valid", "test": "FER2013Test"}
FERPLUS_LABEL_MODES = ("majority", "distribution")

# vote column (first 8) -> FER+ class id (0 angry ... 6 neutral, 7 contempt)
_VOTE_TO_ID = [canonical_label(name, "ferplus") for name in FERPLUS_VOTE_COLUMNS[:8]]


def ferplus_soft_label(votes, label_set: str = "ferplus") -> Optional[list]:
    """Vote distribution over the classes of ``label_set`` (list of floats in label-id order, sum 1): the
    raw emotion votes normalised, ``unknown`` and ``NF`` (and ``contempt`` for ``"fer2013"``) excluded.
    None when none of those classes got a vote."""
    n_classes = len(label_names(label_set))
    counts = np.zeros(n_classes, dtype=np.float64)
    for column, class_id in enumerate(_VOTE_TO_ID):
        if class_id < n_classes:
            counts[class_id] += float(votes[column])
    total = counts.sum()
    return None if total <= 0 else (counts / total).tolist()


def ferplus_majority_label(votes, label_set: str = "ferplus"):
    """FER+ majority vote as in Microsoft's reference reader (``src/ferplus.py``, ``_process_data``,
    mode ``majority``) -> ``(label id, None)`` or ``(None, reason)``.

    1. Outlier removal: a column with a single vote counts as 0.
    2. The top column must hold a strict majority, more than half of the remaining votes of all 10
       columns. Ties can therefore never win: a tie for the most votes drops the image (deterministic,
       no tie-breaking by column order).
    3. A majority for ``unknown`` or ``NF`` drops the image (the paper's protocol), and so does a
       ``contempt`` majority with ``label_set="fer2013"``.

    On the official layout this keeps 25,045 / 3,191 / 3,137 of the 28,558 / 3,579 / 3,573 images.
    """
    counts = np.asarray([float(v) for v in votes[:10]])
    counts[counts <= 1] = 0.0
    total = counts.sum()
    top = float(counts.max())
    if total <= 0 or top <= 0.5 * total:
        if total > 0 and int((counts == top).sum()) > 1:
            return None, "no majority: tie for the most votes"
        return None, "no majority: top class has at most half of the votes"
    column = int(np.argmax(counts))
    if FERPLUS_VOTE_COLUMNS[column] == "unknown":
        return None, "majority unknown"
    if FERPLUS_VOTE_COLUMNS[column] == "NF":
        return None, "majority not a face (NF)"
    class_id = _VOTE_TO_ID[column]
    if class_id >= len(label_names(label_set)):
        return None, f"majority {FERPLUS_VOTE_COLUMNS[column]}, not in label_set {label_set!r}"
    return class_id, None


def ferplus_distribution_label(votes, label_set: str = "ferplus"):
    """Rows kept for training on the vote distribution -> ``(label id, None)`` or ``(None, reason)``.

    Kept when the most-voted class of ``label_set`` has strictly more votes than ``unknown``, than ``NF``
    and than every emotion outside the label set (``contempt`` for ``"fer2013"``); raw votes, no outlier
    removal. On the official layout with ``label_set="ferplus"`` this keeps 28,150 / 3,526 / 3,522 images.
    ``label`` is the most-voted class, ties going to the smallest label id (use it for stratification and
    monitoring; evaluate with ``labels="majority"``)."""
    soft = ferplus_soft_label(votes, label_set)
    if soft is None:
        return None, "no emotion votes in the label set"
    n_classes = len(label_names(label_set))
    top = max(float(votes[c]) for c, i in enumerate(_VOTE_TO_ID) if i < n_classes)
    if max(float(votes[8]), float(votes[9])) >= top:
        return None, "unknown / not-a-face votes tie or beat the top emotion"
    if any(float(votes[c]) >= top for c, i in enumerate(_VOTE_TO_ID) if i >= n_classes):
        return None, f"contempt votes tie or beat the top emotion, not in label_set {label_set!r}"
    return int(np.argmax(soft)), None


def _features(label_set: str):
    from datasets import List, Value

    return corpus_features(label_set, {"ferplus_name": Value("string"), "votes": List(Value("int32")),
                                       "soft_label": List(Value("float32"))})


def _parse_votes(fields) -> Optional[list]:
    """10 vote counts (whole numbers 0 .. 2**31 - 1, written as ints or floats such as ``2.0``), else None."""
    try:
        values = [float(v) for v in fields]
    except (TypeError, ValueError):
        return None
    if len(values) != 10 or not all(0 <= v < 2 ** 31 and v == int(v) for v in values):  # NaN / inf fail too
        return None
    return [int(v) for v in values]


def _decode_text(data: bytes) -> str:
    """A CSV file's text: UTF-8 with or without a byte-order mark; undecodable bytes become U+FFFD (the
    rows holding them are then invalid, not the file)."""
    return data.decode("utf-8-sig", errors="replace")


def _csv_rows(text_or_handle):
    """The rows of a CSV text or open file, ``None`` for a line the csv module cannot parse (e.g. a field over
    `csv.field_size_limit`); the reader goes on with the next line."""
    reader = csv.reader(io.StringIO(text_or_handle) if isinstance(text_or_handle, str) else text_or_handle)
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error:
            yield None


def _unsafe_image_name(name: str) -> Optional[str]:
    """Why a ``label.csv`` image name cannot be read (None: a plain file name such as ``fer0000000.png``)."""
    if not name:
        return "empty image name"
    if "/" in name or "\\" in name or name in (".", "..") or "\x00" in name:
        return "image name with a path (only file names are read)"
    return None


class _Collector:
    """Turns (row id, split, image bytes, FER+ name, votes) into rows, dropping and counting."""

    def __init__(self, labels: str, label_set: str, validate_images: bool):
        if labels not in FERPLUS_LABEL_MODES:
            raise ValueError(f"labels must be one of {FERPLUS_LABEL_MODES}, not {labels!r}")
        label_names(label_set)
        self.labels, self.label_set, self.validate = labels, label_set, validate_images
        self.rows = {split: [] for split in FERPLUS_FOLDERS}
        self.dropped = DroppedRows()
        self.outside = Counter()

    def add(self, row_id: str, split: str, data: Optional[bytes], name: str, votes: list, path=None) -> None:
        if data is None:
            self.dropped.add(row_id, "image file missing", "image file missing")
            return
        rule = ferplus_majority_label if self.labels == "majority" else ferplus_distribution_label
        label, reason = rule(votes, self.label_set)
        if label is None:
            if "not in label_set" in reason:
                self.outside["contempt"] += 1
            self.dropped.add(row_id, f"{reason} (votes {votes})", reason)
            return
        digest = None
        if self.validate:
            problem, digest = inspect_image_bytes(data)
            if problem:
                self.dropped.add(row_id, problem, problem_category(problem))
                return
        self.rows[split].append({"image": {"bytes": data, "path": path}, "label": label, "image_id": row_id,
                                 "ferplus_name": name, "votes": list(votes),
                                 "soft_label": ferplus_soft_label(votes, self.label_set), "_pixel_hash": digest})

    def build(self, source: str):
        out = build_dataset_dict(self.rows, _features(self.label_set), self.dropped, source)
        report_label_coverage(out, "FER+", self.label_set, outside=dict(self.outside))
        counts = {split: len(out[split]) for split in out}
        logger.info("FER+ from %s (labels=%r, label_set=%r): %s rows; dropped %s", source, self.labels,
                    self.label_set, counts, self.dropped.counts())
        return out


def _read_label_csv(text: str):
    """[(name, votes or None, raw row)] of one ``label.csv``; a line the csv module cannot parse gives
    ``("line <n>", None, "<unparsable line>")``."""
    out = []
    for number, row in enumerate(_csv_rows(text), 1):
        if row is None:
            out.append((f"line {number}", None, "<unparsable CSV line>"))
            continue
        if not row:
            continue
        out.append((row[0].strip(), _parse_votes(row[2:]) if len(row) >= 12 else None, row))
    return out


def _label_rows(collector: "_Collector", folder: str, text: str):
    """(row id, name, votes) of the valid rows of one ``label.csv``; malformed rows, unsafe names and repeated
    names are dropped into ``collector``."""
    seen = set()
    for name, votes, raw in _read_label_csv(text):
        row_id = f"{folder}/{name}"
        if votes is None:
            shown = raw if len(repr(raw)) < 300 else f"{repr(raw)[:300]}..."
            collector.dropped.add(row_id, f"malformed label.csv row {shown!r}", "malformed label.csv row")
            continue
        problem = _unsafe_image_name(name) or ("repeated image name in label.csv" if name in seen else None)
        seen.add(name)
        if problem:
            collector.dropped.add(row_id, problem, problem)
            continue
        yield row_id, name, votes


def _load_official(path: Path, collector: _Collector, source: str):
    """FER+ official layout from a zip (any prefix before ``FER2013Train/``) or a folder."""
    if path.is_file():
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, zipfile.LargeZipFile) as error:
            raise ValueError(f"{path} is not a readable zip file ({error})") from None
        with archive:
            names = set(archive.namelist())
            found = False
            for split, folder in FERPLUS_FOLDERS.items():
                label_member = next((n for n in sorted(names) if n == f"{folder}/label.csv"
                                     or n.endswith(f"/{folder}/label.csv")), None)
                if label_member is None:
                    logger.warning("FER+ zip %s has no %s/label.csv: split %r stays empty", path, folder, split)
                    continue
                found = True
                prefix = label_member[: -len("label.csv")]
                try:
                    text = _decode_text(_read_zip_entry(archive, archive.getinfo(label_member)))
                except UnreadableFileError as error:
                    raise ValueError(f"{path}: {label_member} cannot be read ({error})") from None
                for row_id, name, votes in _label_rows(collector, folder, text):
                    member = prefix + name
                    data = None
                    if member in names:
                        info = archive.getinfo(member)
                        problem = unsafe_zip_entry(info)
                        if problem is None:
                            data, problem = read_file_bytes(lambda i=info: _read_zip_entry(archive, i))
                        if problem:
                            collector.dropped.add(row_id, problem, problem_category(problem))
                            continue
                    collector.add(row_id, split, data, name, votes, member)
            if not found:
                raise FileNotFoundError(f"{path} holds no FER2013Train/, FER2013Valid/ or FER2013Test/ label.csv "
                                        "(expected the official FER+ layout)")
        return collector.build(source)
    found = False
    for split, folder in FERPLUS_FOLDERS.items():
        label_path = path / folder / "label.csv"
        if not label_path.is_file():
            logger.warning("FER+ folder %s has no %s/label.csv: split %r stays empty", path, folder, split)
            continue
        found = True
        for row_id, name, votes in _label_rows(collector, folder, _decode_text(label_path.read_bytes())):
            image_path = path / folder / name
            data = None
            if image_path.is_file():
                data, problem = read_file_bytes(image_path.read_bytes)
                if problem:
                    collector.dropped.add(row_id, problem, problem_category(problem))
                    continue
            collector.add(row_id, split, data, name, votes, f"{folder}/{name}")
    if not found:
        raise FileNotFoundError(f"{path} holds no FER2013Train/, FER2013Valid/ or FER2013Test/ label.csv "
                                "(expected the official FER+ layout)")
    return collector.build(source)


def read_fer2013new(csv_path) -> list:
    """Rows of ``fer2013new.csv`` in file order (row *i* = row *i* of ``fer2013.csv``):
    ``[(usage, image name or "", votes (10 ints) or None), ...]``.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if the header lacks ``Usage`` or one of the 10 vote columns.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"FER+ votes not found at {csv_path} (expected fer2013new.csv)")
    with open(csv_path, newline="", encoding="utf-8-sig", errors="replace") as handle:
        records = _csv_rows(handle)
        header = [h.strip() for h in (next(records, None) or [])]
        missing = [c for c in ("Usage",) + FERPLUS_VOTE_COLUMNS if c not in header]
        if missing:
            raise ValueError(f"{csv_path} is not fer2013new.csv: missing column(s) {missing}")
        usage_i = header.index("Usage")
        name_i = header.index("Image name") if "Image name" in header else None
        vote_i = [header.index(c) for c in FERPLUS_VOTE_COLUMNS]
        rows = []
        for record in records:
            if record is None:  # an unparsable line still is a row: row i must stay row i of fer2013.csv
                rows.append(("", "", None))
                continue
            if not record:
                continue
            votes = _parse_votes([record[i] for i in vote_i]) if len(record) == len(header) else None
            name = record[name_i].strip() if name_i is not None and len(record) > name_i else ""
            rows.append((record[usage_i].strip() if len(record) > usage_i else "", name, votes))
    return rows


def read_link_table(link_table) -> dict:
    """``fer2013_images_to_ferplus.csv`` -> {image path in the FER2013 zip: (usage, fer2013 row or None, match)}.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if it lacks the ``image``, ``usage``, ``fer2013_row`` or ``match`` column.
    """
    link_table = Path(link_table)
    if not link_table.is_file():
        raise FileNotFoundError(f"FER2013-to-FER+ link table not found at {link_table} "
                                "(expected fer2013_images_to_ferplus.csv)")
    with open(link_table, newline="", encoding="utf-8-sig", errors="replace") as handle:
        records = _csv_rows(handle)
        header = [h.strip() for h in (next(records, None) or [])]
        missing = {"image", "usage", "fer2013_row", "match"} - set(header)
        if missing:
            raise ValueError(f"{link_table} is not a FER2013-to-FER+ link table: missing column(s) {sorted(missing)}")
        index = {name: header.index(name) for name in ("image", "usage", "fer2013_row", "match")}
        table = {}
        for fields in records:
            if not fields or len(fields) <= index["image"]:  # unparsable or empty line: its image stays unlinked
                continue
            get = {name: (fields[i].strip() if i < len(fields) else "") for name, i in index.items()}
            row = _row_number(get["fer2013_row"])
            table[fields[index["image"]]] = (get["usage"], row,
                                             get["match"] if row is not None or not get["fer2013_row"]
                                             else f"invalid fer2013_row {get['fer2013_row'][:20]!r}")
    return table


def _row_number(text: str) -> Optional[int]:
    """A 0-based row number (``12``, ``12.0``), else None (empty, negative, fractional, NaN, text)."""
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if 0 <= value < 2 ** 31 and value == int(value) else None


def _resolve_fer2013(csv_path: Path, fer2013_path) -> Path:
    if fer2013_path is not None:
        path = Path(fer2013_path).expanduser()
        if path.is_dir():
            for candidate in ("fer2013.csv", "fer2013_images.zip"):
                if (path / candidate).is_file():
                    return path / candidate
        if not path.exists():
            raise FileNotFoundError(f"FER2013 images not found at {path} (expected fer2013.csv, fer2013_images.zip "
                                    "or an image folder)")
        return path
    for candidate in (csv_path.parent / "fer2013.csv", csv_path.parent / "fer2013_images.zip",
                      csv_path.parent.parent / "fer2013" / "fer2013.csv",
                      csv_path.parent.parent / "fer2013" / "fer2013_images.zip"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{csv_path} holds only votes: pass fer2013_path= (the Kaggle fer2013.csv, or the "
                            "FER2013 image-folder zip/folder together with link_table=)")


def _load_from_fer2013new(csv_path: Path, collector: _Collector, fer2013_path, link_table):
    votes_rows = read_fer2013new(csv_path)
    images = _resolve_fer2013(csv_path, fer2013_path)
    source = f"{csv_path} + {images}"

    def add(row_id, row, data, path):
        if row is None or not 0 <= row < len(votes_rows):
            collector.dropped.add(row_id, f"fer2013 row {row} not in {csv_path.name}", "no FER+ row")
            return
        usage, name, votes = votes_rows[row]
        split = USAGE_TO_SPLIT.get(usage)
        if votes is None or split is None:
            collector.dropped.add(row_id, f"malformed {csv_path.name} row {row}", f"malformed {csv_path.name} row")
        elif not name:
            collector.dropped.add(row_id, f"{csv_path.name} row {row} has an empty Image name (FER+ leaves it out)",
                                  "empty FER+ Image name")
        else:
            collector.add(row_id, split, data, name, votes, path)

    if images.suffix.lower() == ".csv":  # Kaggle fer2013.csv: row i <-> row i
        from datasets import Image as ImageFeature

        fer = load_fer2013_csv(images)
        for split in fer:
            ds = fer[split].cast_column("image", ImageFeature(decode=False))
            for record in ds:
                add(record["image_id"], int(record["image_id"][3:]), record["image"]["bytes"], None)
        return collector.build(source)
    if link_table is None:
        link_table = csv_path.parent / "fer2013_images_to_ferplus.csv"
        if not link_table.is_file():
            raise FileNotFoundError(f"Joining {csv_path.name} to the FER2013 images in {images} needs the link table "
                                    f"fer2013_images_to_ferplus.csv (not found next to it): pass link_table=")
    table = read_link_table(link_table)
    n_files = 0
    for name, read in iter_image_files(images, collector.dropped):
        n_files += 1
        entry = table.get(name)
        if entry is None:
            collector.dropped.add(name, "image not in the link table", "image not in the link table")
            continue
        usage, row, match = entry
        if row is None:
            collector.dropped.add(name, f"no FER+ row for this image (link table match: {match})",
                                  f"no FER+ row ({match})")
            continue
        if USAGE_TO_SPLIT.get(usage) != USAGE_TO_SPLIT.get(votes_rows[row][0] if 0 <= row < len(votes_rows) else None):
            collector.dropped.add(name, f"link table usage {usage!r} differs from fer2013new.csv row {row}",
                                  "usage mismatch")
            continue
        data, problem = read_file_bytes(read)
        if problem:
            collector.dropped.add(name, problem, problem_category(problem))
            continue
        add(name, row, data, name)
    if n_files == 0:
        raise ValueError(f"No image files found in {images}")
    return collector.build(source)


def load_ferplus_hub(dataset_id: str, labels: str = "majority", label_set: str = "ferplus", **load_kwargs):
    """FER+ from a Hugging Face Hub dataset id. With the 10 vote columns (named as in
    `FERPLUS_VOTE_COLUMNS`) or a ``votes`` list column, labels follow ``labels``; otherwise the label column
    is mapped by name (``labels="majority"`` only), ``votes`` is empty and ``soft_label`` one-hot.
    Splits: ``train`` / ``validation`` (``valid``, ``val``, ``PublicTest``) / ``test`` (``PrivateTest``)."""
    from datasets import Image as ImageFeature, load_dataset

    collector = _Collector(labels, label_set, validate_images=True)
    raw = load_dataset(dataset_id, **load_kwargs)
    n_classes = len(label_names(label_set))
    for target, candidates in HUB_SPLIT_NAMES.items():
        source = find_split(raw, candidates)
        if source is None:
            continue
        ds = raw[source]
        image_col = next((k for k, f in ds.features.items() if isinstance(f, ImageFeature)), None)
        if image_col is None:
            raise ValueError(f"{dataset_id}[{source}] has no Image column: {ds.features}")
        lower = {k.lower(): k for k in ds.features}
        vote_cols = [lower.get(c.lower()) for c in FERPLUS_VOTE_COLUMNS]
        has_votes = all(vote_cols) or "votes" in ds.features
        label_col = names = None
        if not has_votes:
            if labels != "majority":
                raise ValueError(f"{dataset_id} has no FER+ vote columns: labels='distribution' needs them")
            _, label_col, names = hub_image_and_label_columns(ds)
        ds = ds.cast_column(image_col, ImageFeature(decode=False))
        for index, record in enumerate(ds):
            row_id = f"{source}/{index}"
            image = record[image_col]
            data = hub_image_bytes(image)
            if has_votes:
                votes = _parse_votes(record["votes"] if "votes" in record and not all(vote_cols)
                                     else [record[c] for c in vote_cols])
                if votes is None:
                    collector.dropped.add(row_id, "malformed votes", "malformed votes")
                    continue
                collector.add(row_id, target, data, str(record.get("image_name") or row_id), votes, image.get("path"))
                continue
            raw_label = record[label_col]
            name = names[raw_label] if names is not None and isinstance(raw_label, int) else raw_label
            label = canonical_label(name, label_set)
            if label is None:
                collector.dropped.add(row_id, f"unknown label {name!r}", "unknown label")
                continue
            problem, digest = inspect_image_bytes(data)
            if problem:
                collector.dropped.add(row_id, problem, problem_category(problem))
                continue
            one_hot = [0.0] * n_classes
            one_hot[label] = 1.0
            collector.rows[target].append({"image": {"bytes": data, "path": image.get("path")}, "label": label,
                                           "image_id": row_id, "ferplus_name": "", "votes": [],
                                           "soft_label": one_hot, "_pixel_hash": digest})
    return collector.build(dataset_id)


def load_ferplus(path, labels: str = "majority", label_set: str = "ferplus", link_table=None, fer2013_path=None,
                 validate_images: bool = True, **hub_kwargs):
    """FER+ as a `datasets.DatasetDict` with ``train`` (FER2013 Training), ``validation`` (PublicTest) and
    ``test`` (PrivateTest).

    Args:
        path: one of
            - the official layout: a zip such as ``ferplus/ferplus_images.zip`` or a folder holding
              ``FER2013Train/``, ``FER2013Valid/``, ``FER2013Test/`` (each ``label.csv`` + PNGs), or a folder
              holding ``ferplus_images.zip``;
            - ``fer2013new.csv`` (or a folder holding it, when it has no official layout or when
              ``link_table`` / ``fer2013_path`` is given), joined to FER2013 images (see ``fer2013_path``);
            - a Hub dataset id (`load_ferplus_hub`; ``hub_kwargs`` go to `datasets.load_dataset`).
        labels: ``"majority"`` (default; the FER+ paper's evaluation protocol): `ferplus_majority_label`,
            i.e. Microsoft's reference rule (single votes removed, strict majority of the rest, ties and
            unknown / not-a-face majorities dropped). ``"distribution"``: rows for training on the vote
            distribution, kept by `ferplus_distribution_label`.
        label_set: ``"ferplus"`` (default; 8 classes, contempt = 7) or ``"fer2013"`` (7 classes: images
            whose majority is contempt are dropped and reported; in distribution mode contempt votes are
            left out of ``soft_label`` like unknown and NF). FER+ lacks no class of either set.
        link_table: ``fer2013_images_to_ferplus.csv`` for joining ``fer2013new.csv`` to the FER2013
            image-folder zip (default: next to ``fer2013new.csv``). Not needed with the Kaggle CSV.
        fer2013_path: the FER2013 images for ``fer2013new.csv``: the Kaggle ``fer2013.csv`` (joined by row
            index) or the image-folder zip / folder (joined through ``link_table``). Default: looked for
            next to ``fer2013new.csv`` and in ``../fer2013/``.
        validate_images: decode every image and drop undecodable ones.

    Returns:
        `datasets.DatasetDict`; columns ``image``, ``label`` (`ClassLabel` of ``label_set``), ``image_id``
        (``FER2013Train/fer0000000.png`` in the official layout, the FER2013 image path or ``row<i>`` for
        ``fer2013new.csv``), ``ferplus_name`` (``fer0000000.png``, the join key of the two sources),
        ``votes`` (the 10 raw counts in `FERPLUS_VOTE_COLUMNS` order, int32) and ``soft_label`` (float32,
        one entry per class of ``label_set`` in label-id order, the emotion votes normalised with unknown
        / NF excluded). Dropped rows are reported with counts per reason (`InvalidRowsWarning`,
        ``result.dropped``); ``result.label_report`` says how classes were treated.

    Raises:
        FileNotFoundError: if ``path`` (or the FER2013 images / link table it needs) does not exist or
            holds neither layout.
        ValueError: for an unknown ``labels`` / ``label_set`` or a CSV without the FER+ columns.
    """
    collector = _Collector(labels, label_set, validate_images)
    text = str(path)
    path = Path(text).expanduser()
    if path.is_dir():
        official = None
        for candidate in (path, path / "data", path / "ferplus"):
            if any((candidate / f / "label.csv").is_file() for f in FERPLUS_FOLDERS.values()):
                official = candidate
                break
        if official is None:
            for candidate in (path / "ferplus_images.zip", path / "ferplus" / "ferplus_images.zip"):
                if candidate.is_file():
                    official = candidate
                    break
        votes_csv = next((c for c in (path / "fer2013new.csv", path / "ferplus" / "fer2013new.csv") if c.is_file()),
                         None)
        if votes_csv is not None and (official is None or link_table is not None or fer2013_path is not None):
            return _load_from_fer2013new(votes_csv, collector, fer2013_path, link_table)
        if official is None:
            raise FileNotFoundError(f"No FER+ data in {path}: expected FER2013Train/ FER2013Valid/ FER2013Test/ with "
                                    "label.csv, ferplus_images.zip, or fer2013new.csv")
        return _load_official(official, collector, str(official))
    if path.is_file():
        if path.suffix.lower() == ".csv":
            return _load_from_fer2013new(path, collector, fer2013_path, link_table)
        if path.suffix.lower() == ".zip":
            return _load_official(path, collector, str(path))
        raise ValueError(f"{path}: expected a FER+ zip, fer2013new.csv or a folder")
    if not looks_like_hub_id(text):
        raise FileNotFoundError(f"FER+ data not found at {text} (expected ferplus_images.zip, a folder with "
                                "FER2013Train/ FER2013Valid/ FER2013Test/, fer2013new.csv, or a Hub id owner/name)")
    return load_ferplus_hub(text, labels=labels, label_set=label_set, **hub_kwargs)
