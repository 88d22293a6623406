"""Faces of a labelled photo corpus cropped exactly as `fer_hf.inference.recognizer.FaceExpressionRecognizer`
crops a detected face (detector, per-detector crop adjustment, margin, eye alignment), so that ``fer-hf
evaluate`` scores a model on real photos the way a user's photo reaches it.

Used for the real-photo corpora whose images show more than the face (muxspace, tfeid): the detector runs once
per split and configuration, and the crops are cached with `datasets.Dataset.save_to_disk`.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from pathlib import Path
from typing import Optional

import numpy as np

from .. import caching

logger = logging.getLogger(__name__)

_CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """``$FER_HF_CACHE/face_crops``, default ``~/.cache/fer_hf/face_crops`` (`fer_hf.caching.cache_dir`)."""
    return caching.cache_dir("face_crops")


def _image_bytes(value) -> bytes:
    """The encoded bytes of an undecoded `datasets.Image` value ({"bytes", "path"})."""
    if value.get("bytes") is not None:
        return value["bytes"]
    return Path(value["path"]).read_bytes()


def recognizer_face_crops(ds, detector: str = "mtcnn", min_face_size: int = 20, margin: float = 0.2,
                          align: bool = True, cache_dir=None, progress: bool = True):
    """Replace every image of a labelled split by the recognizer's crop of its most confident face.

    Args:
        ds: `datasets.Dataset` with an ``image`` column (any mode) and a ``label`` column; other columns are kept.
        detector, min_face_size, margin, align: the `FaceExpressionRecognizer` settings (defaults: the
            recognizer's own, so the crops are those ``fer-hf predict`` classifies).
        cache_dir: where the cropped split is kept (default `default_cache_dir`); one folder per hash of the
            settings and of every image's bytes. Delete it after changing the detector code or weights.
        progress: show a progress bar while detecting.
    Returns:
        `datasets.Dataset`: ``image`` = the face crop (RGB or L as the source, PNG), the other columns, and
        ``face_detected`` (bool: False where no face was found and the largest centred square was kept, as
        for a corpus image that is already a face crop) and ``face_box`` ([x1, y1, x2, y2] of the detector's box
        in source pixels, int32; the centred square where none was found). ``result.face_report`` =
        {"detector", "faces_found", "no_face" (image ids), "cache_dir", "from_cache"}.
    Raises:
        ValueError: if ``ds`` has no ``image`` column.
    """
    from datasets import Dataset, Image as ImageFeature, List, Value, load_from_disk
    from PIL import Image
    from tqdm.auto import tqdm

    from ..image_processing_fer import to_l_or_rgb
    from ..inference.recognizer import FaceExpressionRecognizer
    from ..training.framing import whole_image_frame

    if "image" not in ds.column_names:
        raise ValueError(f"the dataset has no 'image' column (columns: {ds.column_names})")
    raw = ds.cast_column("image", ImageFeature(decode=False))
    settings = {"version": _CACHE_VERSION, "detector": detector, "min_face_size": int(min_face_size),
                "margin": float(margin), "align": bool(align)}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for value in raw["image"]:
        digest.update(hashlib.sha256(_image_bytes(value)).digest())
    digest.update(json.dumps(ds.column_names).encode())
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    folder = folder / digest.hexdigest()[:16]
    if (folder / "face_report.json").is_file():
        out = load_from_disk(str(folder))
        out.face_report = dict(json.loads((folder / "face_report.json").read_text()), from_cache=True)
        return out

    # the recognizer's own detection and cropping; the classifier it loads is not used
    recognizer = FaceExpressionRecognizer.from_pretrained(None, detector=detector, min_face_size=min_face_size,
                                                          margin=margin, align=align)
    columns = {name: [] for name in ds.column_names}
    columns["face_detected"], columns["face_box"] = [], []
    no_face = []
    for index, row in enumerate(tqdm(raw, desc=f"detect faces ({detector})", disable=not progress,
                                     mininterval=10)):
        image = to_l_or_rgb(Image.open(io.BytesIO(_image_bytes(row["image"]))))
        faces = recognizer.detect_faces(image)
        if faces:
            face = max(faces, key=lambda f: f.score)
            crop = recognizer.face_crops(image, [face])[0]
            box = [int(round(v)) for v in face.box]
        else:
            box = list(whole_image_frame(image.width, image.height))
            crop = image.crop(tuple(box))
            no_face.append(str(row.get("image_id", index)))
        if image.mode == "L":
            crop = crop.convert("L")
        buffer = io.BytesIO()
        crop.save(buffer, format="PNG")
        for name in ds.column_names:
            columns[name].append({"bytes": buffer.getvalue(), "path": None} if name == "image" else row[name])
        columns["face_detected"].append(bool(faces))
        columns["face_box"].append(box)
    features = ds.features.copy()
    features["image"] = ImageFeature()
    features["face_detected"] = Value("bool")
    features["face_box"] = List(Value("int32"))
    out = Dataset.from_dict(columns, features=features)
    report = {"detector": detector, "settings": settings, "faces_found": int(np.sum(columns["face_detected"])),
              "images": len(ds), "no_face": no_face, "cache_dir": str(folder)}
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    out.save_to_disk(str(tmp))
    (tmp / "face_report.json").write_text(json.dumps(report, indent=1))
    if folder.exists():  # written meanwhile by another process: keep theirs
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.rename(folder)
    if no_face:
        logger.warning("no face found in %d of %d images (largest centred square kept): %s", len(no_face), len(ds),
                       ", ".join(no_face[:10]))
    out = load_from_disk(str(folder))
    out.face_report = dict(report, from_cache=False)
    return out
