"""SFEW 2.0 (Static Facial Expressions in the Wild; Dhall, Goecke, Lucey and Gedeon, ICCV Workshops 2011;
EmotiW 2015 image sub-challenge): the organisers' aligned face crops of movie frames, 143x181 RGB, in
``Train/<Class>/*.png`` and ``Val/<Class>/*.png`` (test labels were never released)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Optional

from .common import (DroppedRows, build_dataset_dict, corpus_features, hub_image_bytes, hub_labelled_records,
                     iter_image_files, logger, local_path_or_hub_id, read_row_image, report_label_coverage)
from ..labels import canonical_label, label_names, outside_label_set

_BLACK = "unusable: all-black image (face-detector failure in the original release)"
_NOT_A_FACE = "unusable: background, body or a face fragment, not a face (face-detector failure)"

#: The 31 files of SFEW 2.0 (this copy: github.com/Caterina1996/SFEW_dataset @ 80567a2) that are not usable
#: faces, checked file by file for ``shared/data/README.md``: path relative to the SFEW folder -> reason.
#: `load_sfew` drops them and reports them.
SFEW_UNUSABLE = {
    **{name: _BLACK for name in (
        "Val/Fear/Hangover_001949614_00000089.png",
        "Val/Happy/21_001010160_00000010.png",
        "Val/Happy/21_001010160_00000011.png",
        "Val/Happy/21_001010160_00000017.png",
        "Val/Happy/21_001010160_00000021.png",
        "Val/Happy/Hangover_004104894_00000041.png",
        "Val/Happy/Hangover_013036534_00000011.png",
        "Val/Neutral/FriendsWithBenefit_010944320_00000001.png",
        "Val/Neutral/Unstoppable_010135638_00000032.png",
        "Val/Sad/FriendsWithBenefit_013714720_00000005.png",
        "Val/Surprise/Unstoppable_004406878_00000006.png",
        "Val/Surprise/Unstoppable_004406878_00000020.png",
    )},
    **{name: _NOT_A_FACE for name in (
        "Train/Angry/GirlWithAPearlEarring_012432920_00000021.png",
        "Train/Disgust/ThereIsSomethingAboutMary_014003120_00000019.png",
        "Train/Happy/ItsComplicated_001242687_00000009.png",
        "Train/Happy/NotSuitableForChildren_004004880_00000021.png",
        "Train/Happy/NotSuitableForChildren_004004880_00000036.png",
        "Val/Angry/Unstoppable_004417618_00000027.png",
        "Val/Happy/ChangeUp_000451280_00000014.png",
        "Val/Happy/Hangover_005242454_00000016.png",
        "Val/Happy/Hangover_013036534_00000022.png",
        "Val/Happy/RememberMe_001001280_00000038.png",
        "Val/Sad/FriendsWithBenefit_013139640_00000016.png",
        "Val/Sad/Hangover_011616534_00000027.png",
        "Val/Sad/RememberMe_011901800_00000002.png",
        "Val/Sad/RememberMe_011901800_00000003.png",
        "Val/Surprise/21_002221960_00000007.png",
        "Val/Surprise/AboutABoy_000919327_00000007.png",
        "Val/Surprise/AboutABoy_000919327_00000013.png",
        "Val/Surprise/AboutABoy_000919327_00000015.png",
        "Val/Surprise/Unstoppable_004406878_00000003.png",
    )},
}

_UNUSABLE_LOWER = {name.lower(): reason for name, reason in SFEW_UNUSABLE.items()}
_SPLITS = {"train": "train", "val": "validation", "validation": "validation", "valid": "validation"}
# <Movie>_<clip timestamp>_<frame>.png; movie names may contain "_" (data card)
_NAME = re.compile(r"(.+?)[-_]+(\d+)_+(\d+)\.[A-Za-z]+$")


def sfew_movie_and_clip(file_name: str) -> tuple[Optional[str], Optional[str]]:
    """(movie, clip) of an SFEW file name: ``HarryPotter_Deathly_Hallows_1_001610960_00000028.png`` ->
    (``HarryPotter_Deathly_Hallows_1``, ``HarryPotter_Deathly_Hallows_1_001610960``); (None, None) if the
    name does not follow ``<Movie>_<clip timestamp>_<frame>``."""
    match = _NAME.match(Path(file_name).name)
    if match is None:
        return None, None
    return match.group(1), f"{match.group(1)}_{match.group(2)}"


def _features(label_set: str):
    from datasets import Value

    return corpus_features(label_set, {"movie": Value("string"), "clip": Value("string")})


def _resolve(path: Path) -> Path:
    if (path.is_dir() and not any((path / d).is_dir() for d in ("Train", "Val", "train", "val"))
            and (path / "sfew").is_dir()):
        return path / "sfew"
    return path


def load_sfew(path, label_set: str = "fer2013", validate_images: bool = True, drop_unusable: bool = True,
              **hub_kwargs):
    """SFEW 2.0 aligned faces as a `datasets.DatasetDict` with ``train`` (SFEW Train) and ``validation``
    (SFEW Val, a development set for generalisation: never train on it); SFEW has no labelled test set.

    Args:
        path: the SFEW folder holding ``Train/<Class>/*.png`` and ``Val/<Class>/*.png`` (classes mapped to
            ids by name), a folder holding ``sfew/``, a zip of that layout, or a Hub dataset id
            (``hub_kwargs`` go to `datasets.load_dataset`; labels mapped by name; movie parsed from the
            image file name when it has one).
        label_set: ``"fer2013"`` (default; SFEW has exactly these 7 classes) or ``"ferplus"`` (``contempt``
            stays empty, reported with a `LabelSetWarning`).
        validate_images: decode every image and drop undecodable ones.
        drop_unusable: drop the 31 files of `SFEW_UNUSABLE` (12 all-black images and 19 crops of background,
            body or a face fragment; reported as dropped with their reason).

    Returns:
        `datasets.DatasetDict` ``{"train", "validation"}`` (on this copy: 855 and 405 rows): ``image``,
        ``label``, ``image_id`` (``Train/Angry/<file>.png``), ``movie`` and ``clip`` (``<Movie>_<clip
        timestamp>``: frames of one clip are near-duplicates and Train and Val share no movie, so build
        folds by ``movie``).

    Raises:
        FileNotFoundError: if ``path`` does not exist (and is not an ``owner/name`` Hub id).
        ValueError: if no image is found.
    """
    names = label_names(label_set)
    text = str(path)
    dropped, rows, outside = DroppedRows(), {"train": [], "validation": []}, Counter()
    path = local_path_or_hub_id(text, "SFEW", "expected a folder or zip with Train/<Class>/ and Val/<Class>/ PNGs, "
                                              "or a Hub id owner/name")
    if path is None:
        items, source = _hub_items(text, **hub_kwargs), text
    else:
        path = _resolve(path)
        items, source = _folder_items(path, dropped), str(path)
    n_files = 0
    for row_id, split, class_name, read in items:
        n_files += 1
        parts = Path(row_id).parts
        key = f"{'Train' if split == 'train' else 'Val'}/{'/'.join(parts[-2:])}".lower()
        if drop_unusable and key in _UNUSABLE_LOWER:
            reason = _UNUSABLE_LOWER[key]
            dropped.add(row_id, reason, reason.split(" (")[0])
            continue
        if split is None:
            dropped.add(row_id, "not under a Train/ or Val/ folder", "no split")
            continue
        label = canonical_label(class_name, label_set)
        if label is None:
            if outside_label_set(class_name, label_set):
                outside[str(class_name).lower()] += 1
                dropped.add(row_id, f"class {class_name!r} not in label_set {label_set!r}", "not in label_set")
            else:
                dropped.add(row_id, f"unknown label {class_name!r}", "unknown label")
            continue
        image = read_row_image(read, row_id, dropped, validate_images)
        if image is None:
            continue
        data, digest = image
        movie, clip = sfew_movie_and_clip(row_id)
        rows[split].append({"image": {"bytes": data, "path": row_id}, "label": label, "image_id": row_id,
                            "_pixel_hash": digest,
                            "movie": movie or Path(row_id).stem, "clip": clip or Path(row_id).stem})
    if n_files == 0:
        raise ValueError(f"No image files found in {source}")
    out = build_dataset_dict(rows, _features(label_set), dropped, source, splits=("train", "validation"))
    present = {names[r["label"]] for split_rows in rows.values() for r in split_rows}
    report_label_coverage(out, "SFEW 2.0", label_set, lacks=[n for n in names if n not in present],
                          outside=dict(outside))
    logger.info("SFEW from %s: %s rows, dropped %s", source, {s: len(out[s]) for s in out}, dropped.counts())
    return out


def _folder_items(path: Path, dropped: DroppedRows):
    for name, read in iter_image_files(path, dropped):
        parts = Path(name).parts
        split = next((_SPLITS[p.lower()] for p in parts[:-2] if p.lower() in _SPLITS), None)
        yield name, split, parts[-2] if len(parts) >= 2 else "", read


def _hub_items(dataset_id: str, **load_kwargs):
    from datasets import load_dataset

    raw = load_dataset(dataset_id, **load_kwargs)
    for source in raw:
        split = _SPLITS.get(source.lower())
        for index, record, name, image in hub_labelled_records(raw[source]):
            data = hub_image_bytes(image)
            file_name = Path(image.get("path") or "").name
            row_id = f"{source}/{name}/{file_name}" if file_name else f"{source}/{index}"
            yield row_id, split, name, (lambda d=data: d)
