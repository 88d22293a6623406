"""Face caches for multi-corpus training: every face of every corpus decoded once, framed with the
recognizer's framing (`fer_hf.training.framing`) and stored as a uint8 context crop, with its label, FER+
vote distribution (FER2013), identity and corpus, in one ``.npz`` per corpus split.

Corpora whose images hold more than a tight face (muxspace, tfeid, SFEW, JAFFE) go through the face
detector, exactly as a photo does in `FaceExpressionRecognizer`; corpora that are already 48x48 face crops
framed like the recognizer's crop (FER2013, CK+48) use the whole image.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from PIL import Image

from ..data import load_ckplus, load_fer2013, load_jaffe, load_sfew
from ..data.ferplus import ferplus_soft_label, read_fer2013new, read_link_table
from ..data.muxspace import load_muxspace
from ..data.tfeid import load_tfeid
from ..detection.detectors import build_detector
from ..detection.geometry import IDENTITY
from ..image_processing_fer import to_l_or_rgb
from ..labels import FER2013_LABELS
from .framing import CONTEXT_SCALE, context_crop, recognizer_frame, whole_image_frame

logger = logging.getLogger(__name__)

CACHE_VERSION = 1


@dataclass(frozen=True)
class CorpusSpec:
    """How one corpus enters the mix: its loader, which of its splits play train / validation / test, the
    column that names a person (for identity-disjoint splits), and whether faces are found with the detector."""

    name: str
    load: Callable  # loader(path) -> DatasetDict in FER2013 label ids
    splits: dict  # our split name -> the loader's split name
    identity_column: Optional[str]
    detect: bool
    default_path: str  # relative to the shared data folder


#: The corpora `build_face_cache` knows. CK+ and JAFFE have no held-out split here: a model trained on the
#: mix must not be scored on them (their subject-independent folds are for single-corpus models).
CORPORA = {
    "fer2013": CorpusSpec("fer2013", load_fer2013, {"train": "train", "validation": "validation", "test": "test"},
                          None, False, "fer2013/fer2013_images.zip"),
    "muxspace": CorpusSpec("muxspace", load_muxspace, {"train": "train", "validation": "validation", "test": "test"},
                           "identity", True, "muxspace"),
    "tfeid": CorpusSpec("tfeid", load_tfeid, {"train": "train", "validation": "validation", "test": "test"},
                        "performer", True, "tfeid"),
    "sfew": CorpusSpec("sfew", load_sfew, {"train": "train", "validation": "validation"}, "movie", True, "sfew"),
    "ckplus": CorpusSpec("ckplus", partial(load_ckplus, label_set="fer2013"), {"train": "train"}, "subject", False,
                         "ckplus/CK+48"),
    "jaffe": CorpusSpec("jaffe", partial(load_jaffe, detector=None), {"train": "train"}, "subject", True, "jaffe"),
}


def ferplus_distributions(data_root: Path) -> dict:
    """{FER2013 image path in the zip: 7-class FER+ vote distribution (float32, FER2013 label order)} for every
    FER2013 image linked to a FER+ row with at least one emotion vote (contempt, unknown and not-a-face votes
    left out, see `fer_hf.data.ferplus_soft_label`)."""
    rows = read_fer2013new(data_root / "ferplus" / "fer2013new.csv")
    links = read_link_table(data_root / "ferplus" / "fer2013_images_to_ferplus.csv")
    out = {}
    for image, (_, row, _) in links.items():
        if row is None or row >= len(rows) or rows[row][2] is None:
            continue
        soft = ferplus_soft_label(rows[row][2], label_set="fer2013")
        if soft is not None:
            out[image] = np.asarray(soft, np.float32)
    return out


def cache_file(cache_dir: Path, corpus: str, split: str, size: int, detector_name: str = "mtcnn") -> Path:
    """``<cache_dir>/<corpus>-<split>-<size>px[-<detector>]-v<version>.npz`` (no detector tag for MTCNN, the
    recognizer's default)."""
    tag = "" if detector_name == "mtcnn" else f"-{detector_name}"
    return Path(cache_dir) / f"{corpus}-{split}-{size}px{tag}-v{CACHE_VERSION}.npz"


def build_corpus_cache(spec: CorpusSpec, path, cache_dir, size: int = 128, detector=None, margin: float = 0.2,
                       data_root: Optional[Path] = None, progress: bool = True, detector_name: str = "mtcnn") -> dict:
    """Decode, frame and store every face of one corpus (all its splits); skip splits already cached.

    Args:
        spec: the corpus (`CORPORA`).
        path: where the corpus is (what its loader takes).
        cache_dir: folder of the ``.npz`` files.
        size: side of the stored context crops in pixels.
        detector: a detector object (``detect(image) -> boxes, scores`` with a ``crop_adjustment``) for corpora
            with ``spec.detect``; the recognizer frame is ``recognizer_frame(best box, margin, adjustment)``.
            An image where nothing is found keeps the whole-image frame and ``detected`` False.
        margin: the recognizer's margin (`FaceExpressionRecognizer(margin=...)`, default 0.2).
        data_root: the shared data folder (for FER2013's FER+ votes).
        detector_name: the detector's name in the cache file name (`cache_file`).
    Returns:
        {split: path of its ``.npz``}. Each file holds ``images`` uint8 (N, size, size, 3), ``labels`` int64
        (N,), ``soft_labels`` float32 (N, 7) (one-hot where no FER+ votes), ``has_votes`` bool, ``is_gray``
        bool, ``detected`` bool, ``image_ids`` and ``identities`` (str), and ``meta`` (JSON).
    """
    from tqdm.auto import tqdm

    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    wanted = {ours: cache_file(cache_dir, spec.name, ours, size, detector_name) for ours in spec.splits}
    if all(f.is_file() for f in wanted.values()):
        return wanted
    dataset = spec.load(path)
    votes = ferplus_distributions(Path(data_root)) if spec.name == "fer2013" and data_root else {}
    adjustment = getattr(detector, "crop_adjustment", None)
    for ours, theirs in spec.splits.items():
        if wanted[ours].is_file():
            continue
        split = dataset[theirs]
        n = len(split)
        images = np.zeros((n, size, size, 3), np.uint8)
        labels, soft = np.zeros(n, np.int64), np.zeros((n, len(FER2013_LABELS)), np.float32)
        has_votes, is_gray, detected = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool)
        ids, identities = [], []
        for i, row in enumerate(tqdm(split, desc=f"{spec.name} {ours}", disable=not progress, mininterval=10)):
            image = to_l_or_rgb(row["image"])
            frame = whole_image_frame(image.width, image.height)
            if spec.detect and detector is not None:
                boxes, scores = detector.detect(image.convert("RGB"))
                boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
                if len(boxes):
                    best = int(np.argmax(np.asarray(scores).reshape(-1)))
                    frame = recognizer_frame(boxes[best], margin, adjustment or IDENTITY)
                    detected[i] = True
            crop = context_crop(image, frame, size)
            is_gray[i] = crop.ndim == 2 or bool(np.all(crop[..., 0] == crop[..., 1]) and np.all(crop[..., 1] == crop[..., 2]))
            images[i] = crop[..., None] if crop.ndim == 2 else crop
            labels[i] = row["label"]
            image_id = row["image_id"]
            if image_id in votes:
                soft[i], has_votes[i] = votes[image_id], True
            else:
                soft[i, row["label"]] = 1.0
            ids.append(image_id)
            identities.append(str(row.get(spec.identity_column) or image_id) if spec.identity_column else image_id)
        meta = {"corpus": spec.name, "split": ours, "source_split": theirs, "path": str(path), "size": size,
                "context_scale": CONTEXT_SCALE, "margin": margin, "version": CACHE_VERSION,
                "detector": type(detector).__name__ if (spec.detect and detector is not None) else None,
                "crop_adjustment": list(adjustment) if (spec.detect and adjustment is not None) else None,
                "labels": list(FER2013_LABELS)}
        tmp = wanted[ours].with_suffix(".tmp.npz")
        np.savez(tmp, images=images, labels=labels, soft_labels=soft, has_votes=has_votes, is_gray=is_gray,
                 detected=detected, image_ids=np.asarray(ids), identities=np.asarray(identities),
                 meta=np.asarray(json.dumps(meta)))
        tmp.replace(wanted[ours])
        logger.info("%s %s: %d faces cached (%d detected)", spec.name, ours, n, int(detected.sum()))
    return wanted


def load_cache(file) -> dict:
    """The arrays of one cache file (`build_corpus_cache`), ``meta`` parsed."""
    with np.load(file, allow_pickle=False) as data:
        out = {k: data[k] for k in data.files}
    out["meta"] = json.loads(str(out["meta"]))
    return out


def build_face_caches(corpora, data_root, cache_dir, size: int = 128, detector_name: str = "mtcnn",
                      margin: float = 0.2, paths: Optional[dict] = None, progress: bool = True) -> dict:
    """`build_corpus_cache` for each name in ``corpora`` (keys of `CORPORA`), paths defaulting to
    ``data_root / spec.default_path``; the detector (a `fer_hf.detection.build_detector` name, or ``"none"``
    for whole-image frames everywhere: fast, for tests) is built once, only if a corpus needs it and is not
    cached yet. Returns {corpus: {split: cache file}}.

    Raises:
        ValueError: for a corpus name that is not in `CORPORA`.
    """
    unknown = [c for c in corpora if c not in CORPORA]
    if unknown:
        raise ValueError(f"unknown corpora {unknown}; known: {sorted(CORPORA)}")
    data_root = Path(data_root)
    detector, out = None, {}
    for name in corpora:
        spec = CORPORA[name]
        files = {s: cache_file(Path(cache_dir), name, s, size, detector_name) for s in spec.splits}
        if (spec.detect and detector is None and detector_name != "none"
                and not all(f.is_file() for f in files.values())):
            detector = build_detector(detector_name, min_face_size=20)
        path = (paths or {}).get(name) or data_root / spec.default_path
        out[name] = build_corpus_cache(spec, path, cache_dir, size, detector if spec.detect else None, margin,
                                       data_root, progress, detector_name)
    return out


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Decode and frame every face of the given corpora once.")
    parser.add_argument("--data-dir", "--data_dir", default="../shared/data")
    parser.add_argument("--cache-dir", "--cache_dir", default="runs/face_cache")
    parser.add_argument("--corpora", nargs="+", default=list(CORPORA))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--detector", default="mtcnn", help="mtcnn (default), another detector name, or none")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    print(json.dumps({k: {s: str(f) for s, f in v.items()} for k, v in
                      build_face_caches(args.corpora, args.data_dir, args.cache_dir, args.size,
                                                        args.detector).items()}, indent=1))
