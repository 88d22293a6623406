"""JAFFE (Japanese Female Facial Expression database; Lyons, Akamatsu, Kamachi and Gyoba, FG 1998):
213 grayscale 256x256 frames of 10 subjects, named ``KA.AN1.39.tiff`` (subject KA, expression AN, take 1,
image 39). The frames show head, hair and background, so faces are detected and cropped with the project's
own detector, exactly as `fer_hf.inference.recognizer.FaceExpressionRecognizer` crops at inference, and the crops are
cached on disk."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from .. import caching
from ..detection import detectors as _detection
from ..detection.geometry import CROP_ADJUSTMENTS, adjust_box, square_crop_box
from ..image_io import open_image
from ..image_processing_fer import to_l_or_rgb
from ..labels import canonical_label, label_names
from .common import (DroppedRows, build_dataset_dict, check_image_bytes, corpus_features, hub_image_bytes,
                     hub_labelled_records, iter_image_files, logger, local_path_or_hub_id, problem_category,
                     read_row_image, report_label_coverage)

#: JAFFE expression code -> class name.
JAFFE_CODES = {"AN": "angry", "DI": "disgust", "FE": "fear", "HA": "happy", "SA": "sad", "SU": "surprise",
               "NE": "neutral"}
_NAME = re.compile(r"^([A-Z]{2})\.([A-Z]{2})\d*\.(\d+)\.[A-Za-z]+$")
NO_FACE_MODES = ("center", "drop")
_CACHE_VERSION = 1


class NoFaceWarning(UserWarning):
    """Emitted when the detector finds no face in some JAFFE images (centre-cropped or dropped)."""


def default_cache_dir() -> Path:
    """``$FER_HF_CACHE/jaffe``, else ``$XDG_CACHE_HOME/fer_hf/jaffe``, default ``~/.cache/fer_hf/jaffe``
    (`fer_hf.caching.cache_dir`)."""
    return caching.cache_dir("jaffe")


def _features(label_set: str):
    from datasets import List, Value

    return corpus_features(label_set, {"subject": Value("string"), "face_detected": Value("bool"),
                                       "face_box": List(Value("int32"))})


def _folder_items(path: Path, dropped: DroppedRows):
    for name, read in iter_image_files(path, dropped):
        match = _NAME.match(Path(name).name)
        if match is None or match.group(2) not in JAFFE_CODES:
            dropped.add(name, "file name is not <subject>.<AN|DI|FE|HA|NE|SA|SU><n>.<number>.tiff",
                        "file name without subject / expression code")
            continue
        image = read_row_image(read, name, dropped, validate_images=False)  # decoded when cropped
        if image is not None:
            yield name, JAFFE_CODES[match.group(2)], match.group(1), image[0]


def _hub_items(dataset_id: str, dropped: DroppedRows, **load_kwargs):
    from datasets import load_dataset

    raw = load_dataset(dataset_id, **load_kwargs)
    for split in raw:
        for index, record, name, image in hub_labelled_records(raw[split]):
            file_name = Path(image.get("path") or "").name
            row_id = f"{split}/{file_name}" if file_name else f"{split}/{index}"
            match = _NAME.match(file_name)
            subject = str(record["subject"]) if "subject" in record else (match.group(1) if match else None)
            if subject is None:
                dropped.add(row_id, "no subject column and no subject in the file name", "no subject")
                continue
            yield row_id, JAFFE_CODES.get(str(name).upper(), name), subject, hub_image_bytes(image)


def _gray(data: bytes) -> Image.Image:
    """The validated image bytes as an 8-bit grey PIL image (16-bit and float TIFFs scaled, palette expanded,
    transparency over white: `fer_hf.image_processing_fer.to_l_or_rgb`; a plain ``convert("L")`` would clip
    16-bit grey levels to white)."""
    with open_image(io.BytesIO(data)) as im:
        return to_l_or_rgb(im).convert("L")


def _crop_adjustment_key(detector):
    """The detector's crop adjustment (see `fer_hf.detection.geometry.adjust_box`) as a list, for the cache key:
    looked up by name for a detector not built yet; None when there is none."""
    if isinstance(detector, str):
        adjustment = CROP_ADJUSTMENTS.get(detector, CROP_ADJUSTMENTS.get(f"{detector}-short")
                                          if detector == "blazeface" else None)
    else:
        adjustment = getattr(detector, "crop_adjustment", None)
    return None if adjustment is None else [float(v) for v in adjustment]


def _detector_key(detector) -> str:
    if isinstance(detector, str) or detector is None:
        return str(detector)
    return str(getattr(detector, "cache_key", None) or f"{type(detector).__module__}.{type(detector).__qualname__}")


def _crop_with_detector(items, detector, margin, min_face_size, detection_threshold, no_face, device):
    """Detect, pick the most confident face, crop square (as the recognizer does) -> {row_id: entry}."""
    if isinstance(detector, str):
        kwargs = {} if detection_threshold is None else {"threshold": detection_threshold}
        detector = _detection.build_detector(detector, min_face_size=min_face_size, device=device, **kwargs)
    # the recognizer moves/resizes a detector's boxes by its crop_adjustment (when the detector has one)
    # before the square crop, so that every detector frames faces like MTCNN
    adjustment = getattr(detector, "crop_adjustment", None)
    found = {}
    for row_id, _, _, data in items:
        gray = _gray(data)
        boxes, scores = detector.detect(gray)
        boxes, scores = np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32).reshape(-1)
        valid = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
        if valid.any():
            best = int(np.flatnonzero(valid)[np.argmax(scores[valid])])
            box = boxes[best] if adjustment is None else adjust_box(boxes[best], adjustment)
            found[row_id] = (gray, [int(v) for v in square_crop_box(box, margin)], float(scores[best]))
        else:
            found[row_id] = (gray, None, None)
    sides = [box[2] - box[0] for _, box, _ in found.values() if box is not None]
    entries = {}
    for row_id, (gray, box, score) in found.items():
        if box is None:
            if no_face == "drop":
                entries[row_id] = {"dropped": "no face detected"}
                continue
            side = int(np.median(sides)) if sides else int(round(0.75 * min(gray.size)))
            cx, cy = gray.width / 2, gray.height / 2
            box = [int(round(cx - side / 2)), int(round(cy - side / 2)), int(round(cx + side / 2)),
                   int(round(cy + side / 2))]
        buffer = io.BytesIO()
        gray.crop(tuple(box)).save(buffer, format="PNG")
        entries[row_id] = {"png": buffer.getvalue(), "box": box, "score": score, "face_detected": score is not None}
    return entries


def load_jaffe(path, label_set: str = "fer2013", cache_dir=None, detector="mtcnn", margin: float = 0.2,
               min_face_size: int = 80, detection_threshold: Optional[float] = None, no_face: str = "center",
               device: str = "cpu", **hub_kwargs):
    """JAFFE as a `datasets.DatasetDict` with a single ``train`` split of face crops (JAFFE has no official
    split: use `fer_hf.data.leave_one_subject_out` or `subject_kfold`).

    Args:
        path: the folder of ``<subject>.<code><n>.<number>.tiff`` files (code AN angry, DI disgust, FE fear,
            HA happy, NE neutral, SA sad, SU surprise), a zip of them, or a Hub dataset id (``hub_kwargs`` go
            to `datasets.load_dataset`; labels mapped by name; subject from a ``subject`` column or the file
            name).
        label_set: ``"fer2013"`` (default; JAFFE has exactly these 7 classes) or ``"ferplus"`` (``contempt``
            stays empty, reported with a `LabelSetWarning`).
        cache_dir: where crops are cached; default `default_cache_dir` (``~/.cache/fer_hf/jaffe``). Each
            configuration gets ``<cache_dir>/<hash>/``, the hash covering the source files' names and bytes
            and the detector settings; it holds one PNG per image and ``manifest.json`` (box, score, whether a
            face was found). A later call with the same source and settings reads the cache and never builds
            the detector (the detector's code and weights are not hashed: delete the folder after changing
            them).
        detector: ``"mtcnn"`` (default) or ``"haar"`` (`fer_hf.detection.detectors.build_detector`), an object with
            ``detect(PIL.Image) -> (boxes (N, 4) xyxy, scores (N,))`` (cached under its ``cache_key``
            attribute or class name: clear the cache if it changes), or None for the uncropped 256x256 frames.
        margin: each crop is the square of side ``max(w, h) * (1 + margin)`` around the most confident
            detection, after the detector's ``crop_adjustment`` if it has one (`fer_hf.detection.geometry.square_crop_box`,
            the recognizer's crop without alignment; 0.2 = the recognizer's default), cut from the grayscale
            frame (black where it passes the border).
        min_face_size: smallest face searched for, in pixels (MTCNN finds JAFFE faces of 150-210 px; a
            larger minimum means fewer image-pyramid levels, so faster detection).
        detection_threshold: minimum face score; None (default) = the detector's own default (MTCNN 0.9).
        no_face: what to do with an image where no face is detected: ``"center"`` (default: keep it, cropped
            to a centred square of the median detected crop size, ``face_detected`` False; JAFFE faces are
            centred and every image counts in 10-subject folds) or ``"drop"`` (drop and report it). Either
            way a `NoFaceWarning` lists them.
        device: torch device for MTCNN.

    Returns:
        `datasets.DatasetDict` ``{"train"}``: ``image`` (grayscale PNG crop), ``label``, ``image_id`` (the
        source file path), ``subject`` (``KA``), ``face_detected`` and ``face_box`` ([x1, y1, x2, y2] crop
        box in pixels of the source frame). ``result.face_report`` gives the cache folder, whether it was
        read from the cache, and the images without a detected face.

    Raises:
        FileNotFoundError: if ``path`` does not exist (and is not an ``owner/name`` Hub id).
        ValueError: for a bad ``no_face`` / ``label_set``, or if no image is found.
    """
    names = label_names(label_set)
    if no_face not in NO_FACE_MODES:
        raise ValueError(f"no_face must be one of {NO_FACE_MODES}, not {no_face!r}")
    text = str(path)
    dropped = DroppedRows()
    path = local_path_or_hub_id(text, "JAFFE", "expected a folder or zip of <subject>.<code><n>.<number>.tiff "
                                               "files, or a Hub id owner/name")
    if path is None:
        raw_items, source = list(_hub_items(text, dropped, **hub_kwargs)), text
    else:
        if path.is_dir() and not any(path.glob("*.tif*")) and (path / "jaffe").is_dir():
            path = path / "jaffe"
        raw_items, source = list(_folder_items(path, dropped)), str(path)
    if not raw_items and not dropped:
        raise ValueError(f"No image files found in {source}")
    items = []
    for row_id, class_name, subject, data in raw_items:
        label = canonical_label(class_name, label_set)
        if label is None:
            dropped.add(row_id, f"unknown label {class_name!r}", "unknown label")
            continue
        problem = check_image_bytes(data)
        if problem:
            dropped.add(row_id, problem, problem_category(problem))
            continue
        items.append((row_id, label, subject, data))

    face_report = {"detector": _detector_key(detector), "cache_dir": None, "from_cache": False,
                   "no_face": [], "no_face_mode": no_face}
    if detector is None:
        entries = {}
        for row_id, _, _, data in items:
            gray = _gray(data)
            buffer = io.BytesIO()
            gray.save(buffer, format="PNG")
            entries[row_id] = {"png": buffer.getvalue(), "box": [0, 0, gray.width, gray.height], "score": None,
                               "face_detected": False}
    else:
        settings = {"version": _CACHE_VERSION, "detector": _detector_key(detector), "margin": float(margin),
                    "min_face_size": int(min_face_size),
                    "detection_threshold": None if detection_threshold is None else float(detection_threshold),
                    "no_face": no_face, "crop_adjustment": _crop_adjustment_key(detector)}
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
        for row_id, _, _, data in sorted(items):
            digest.update(row_id.encode() + b"\0" + hashlib.sha256(data).digest())
        folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        folder = folder / digest.hexdigest()[:16]
        face_report["cache_dir"] = str(folder)
        entries = _read_cache(folder, [i[0] for i in items])
        if entries is None:
            entries = _crop_with_detector(items, detector, margin, min_face_size, detection_threshold, no_face,
                                          device)
            _write_cache(folder, entries, settings, source)
        else:
            face_report["from_cache"] = True
            logger.info("JAFFE crops read from the cache %s", folder)
    rows = []
    for row_id, label, subject, _ in items:
        entry = entries[row_id]
        if "dropped" in entry:
            face_report["no_face"].append(row_id)
            dropped.add(row_id, entry["dropped"], entry["dropped"])
            continue
        if detector is not None and not entry["face_detected"]:
            face_report["no_face"].append(row_id)
        rows.append({"image": {"bytes": entry["png"], "path": None}, "label": label, "image_id": row_id,
                     "subject": subject, "face_detected": bool(entry["face_detected"]),
                     "face_box": [int(v) for v in entry["box"]]})
    if face_report["no_face"]:
        action = "centre-cropped" if no_face == "center" else "dropped"
        message = (f"No face detected in {len(face_report['no_face'])} JAFFE image(s), {action}: "
                   f"{', '.join(face_report['no_face'][:10])}")
        logger.warning(message)
        warnings.warn(message, NoFaceWarning, stacklevel=2)
    out = build_dataset_dict({"train": rows}, _features(label_set), dropped, source, splits=("train",))
    present = {names[r["label"]] for r in rows}
    report_label_coverage(out, "JAFFE", label_set, lacks=[n for n in names if n not in present])
    out.face_report = face_report  # type: ignore[attr-defined]
    return out


def _read_cache(folder: Path, row_ids: list) -> Optional[dict]:
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
        entries = {}
        for row_id in row_ids:
            entry = dict(manifest["images"][row_id])
            if "dropped" not in entry:
                entry["png"] = (folder / entry.pop("file")).read_bytes()
            entries[row_id] = entry
        return entries
    except (OSError, KeyError, ValueError, TypeError) as error:
        logger.warning("Ignoring the incomplete JAFFE crop cache %s (%s): detecting again", folder, error)
        return None


def _write_cache(folder: Path, entries: dict, settings: dict, source: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    images = {}
    for index, (row_id, entry) in enumerate(sorted(entries.items())):
        if "dropped" in entry:
            images[row_id] = {"dropped": entry["dropped"]}
            continue
        file_name = f"{index:04d}_{re.sub(r'[^A-Za-z0-9._-]+', '_', Path(row_id).stem)}.png"
        (folder / file_name).write_bytes(entry["png"])
        images[row_id] = {"file": file_name, "box": entry["box"], "score": entry["score"],
                          "face_detected": entry["face_detected"]}
    manifest = {"settings": settings, "source": source, "images": images}
    tmp = folder / f"manifest.json.tmp{os.getpid()}"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    os.replace(tmp, folder / "manifest.json")
