"""The work behind the Gradio app (`app.py`): importable, testable functions with plain inputs."""

from __future__ import annotations

import csv
import json
import os
import tempfile
import threading
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from .recognizer import DEFAULT_MODEL_NAME, FaceExpressionRecognizer, available_models, load_image

WEBCAM_MAX_SIDE = 480  # webcam frames are downscaled to this longer side (pixels) to keep up on 2 CPU cores
_lock = threading.Lock()


def model_choices() -> list:
    """Released model names under ``model_cards/`` (the default one first)."""
    names = available_models()
    return sorted(names, key=lambda n: n != DEFAULT_MODEL_NAME)


@lru_cache(maxsize=4)
def _load(model: str) -> FaceExpressionRecognizer:
    return FaceExpressionRecognizer.from_pretrained(model or None)


def get_recognizer(model: str = DEFAULT_MODEL_NAME, detector: str = "mtcnn", min_face_size: int = 20):
    """A cached recognizer for ``model`` (released name, local path or Hub id) set to ``detector`` and
    ``min_face_size`` (pixels). Raises OSError if the model cannot be loaded."""
    recognizer = _load(str(model or DEFAULT_MODEL_NAME).strip())
    recognizer.set_options(detector=detector, min_face_size=int(min_face_size))
    return recognizer


def faces_table(faces: list, labels: list):
    """DataFrame, one row per face: face index, box (x, y, w, h), detector score, top emotion, every
    probability (columns in ``labels`` order)."""
    import pandas as pd

    rows = [[i, *face["box"], face["score"], face["top_emotion"], *[face["emotions"][n] for n in labels]]
            for i, face in enumerate(faces)]
    return pd.DataFrame(rows, columns=table_headers(labels))


def table_headers(labels: list) -> list:
    return ["face", "x", "y", "w", "h", "detector_score", "top_emotion", *labels]


def probabilities_long(faces: list):
    """Long-format DataFrame (face, emotion, probability) for a grouped bar chart."""
    import pandas as pd

    rows = [{"face": f"face {i}", "emotion": name, "probability": p}
            for i, face in enumerate(faces) for name, p in face["emotions"].items()]
    return pd.DataFrame(rows, columns=["face", "emotion", "probability"])


def analyze_image(image, model=DEFAULT_MODEL_NAME, detector="mtcnn", min_face_size=20, output_dir=None):
    """Image tab: one photo -> (annotated PIL image, faces DataFrame, bar-chart DataFrame, annotated PNG path,
    JSON path, a one-line summary). ``image``: path, PIL image or RGB numpy array; None raises ValueError."""
    if image is None:
        raise ValueError("Upload or paste an image first.")
    recognizer = get_recognizer(model, detector, min_face_size)
    image = load_image(image)
    with _lock:
        faces = recognizer.predict(image)
    annotated = recognizer.annotate(image, faces)
    output_dir = Path(output_dir or tempfile.mkdtemp(prefix="fer_hf_"))
    output_dir.mkdir(parents=True, exist_ok=True)
    png_path = output_dir / "annotated.png"
    json_path = output_dir / "faces.json"
    annotated.save(png_path)
    json_path.write_text(json.dumps(faces, indent=1))
    labels = list(recognizer.id2label.values())
    summary = (f"{len(faces)} face(s) found with {detector}: " + ", ".join(f["top_emotion"] for f in faces)
               if faces else f"No face found (detector {detector}, minimum face size {min_face_size} px).")
    return annotated, faces_table(faces, labels), probabilities_long(faces), str(png_path), str(json_path), summary


def analyze_frame(frame, model=DEFAULT_MODEL_NAME, detector="mtcnn", min_face_size=20, state=None):
    """Webcam tab: one RGB frame (H, W, 3) uint8 -> (annotated frame as numpy array, status text, state).

    The frame is downscaled to ``WEBCAM_MAX_SIDE`` pixels before detection; ``state`` carries the
    number of frames processed (``"frames"``) and the timestamps of the last 10 (``"stamps"``), from which
    the status reports the achieved processing rate: frames processed per second, not frames sent by the
    browser (those that arrive while a frame is being processed are dropped by Gradio's stream, not queued)."""
    state = dict(state or {})
    if frame is None:
        return None, "Waiting for the webcam…", state
    recognizer = get_recognizer(model, detector, min_face_size)
    image = load_image(frame).convert("RGB")
    scale = WEBCAM_MAX_SIDE / max(image.size)
    if scale < 1:
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
    started = time.time()
    with _lock:
        faces = recognizer.predict(image)
    annotated = np.asarray(recognizer.annotate(image, faces))
    stamps = (state.get("stamps", []) + [time.time()])[-10:]
    state["stamps"] = stamps
    state["frames"] = state.get("frames", 0) + 1
    fps = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 and stamps[-1] > stamps[0] else 0.0
    text = (f"{fps:.1f} frames/s achieved · frames processed: {state['frames']} · "
            f"{1000 * (time.time() - started):.0f} ms per frame · "
            f"{len(faces)} face(s): " + (", ".join(f"{f['top_emotion']} {f['top_score']:.0%}" for f in faces) or "—"))
    return annotated, text, state


BATCH_FIELDS_FIXED = ["file", "face_index", "box_x", "box_y", "box_w", "box_h", "detector_score", "top_emotion",
                      "top_score"]


def analyze_batch(files, model=DEFAULT_MODEL_NAME, detector="mtcnn", min_face_size=20, output_dir=None,
                  progress=None):
    """Batch tab: many image files -> (gallery [(annotated image path, caption)], CSV path, results
    DataFrame (the CSV's rows), summary). One CSV row per face: file, face_index, box, detector score, top emotion, every
    emotion's probability, and ``status`` ("ok", "no face", or "error: …"). A file that cannot be
    read becomes one error row; the others are processed. ``progress``: optional callable
    ``progress(fraction, desc=...)`` (e.g. `gradio.Progress`)."""
    paths = [getattr(f, "name", f) for f in (files or [])]
    if not paths:
        raise ValueError("Choose one or more image files first.")
    recognizer = get_recognizer(model, detector, min_face_size)
    labels = list(recognizer.id2label.values())
    output_dir = Path(output_dir or tempfile.mkdtemp(prefix="fer_hf_batch_"))
    output_dir.mkdir(parents=True, exist_ok=True)
    fields = batch_headers(labels)
    rows, gallery = [], []
    n_faces = n_errors = 0
    for index, path in enumerate(paths):
        name = os.path.basename(str(path))
        if progress is not None:
            progress(index / len(paths), desc=f"{index + 1}/{len(paths)}: {name}")
        try:
            image = load_image(path)
            with _lock:
                faces = recognizer.predict(image)
        except Exception as error:  # noqa: BLE001 - one bad file must not stop the batch
            n_errors += 1
            rows.append({"file": name, "status": f"error: {type(error).__name__}: {error}"})
            continue
        annotated_path = output_dir / f"{index:04d}_{Path(name).stem}.png"
        recognizer.annotate(image, faces).save(annotated_path)
        gallery.append((str(annotated_path), f"{name}: " + (", ".join(f["top_emotion"] for f in faces) or "no face")))
        if not faces:
            rows.append({"file": name, "status": "no face"})
        for i, face in enumerate(faces):
            n_faces += 1
            x, y, w, h = face["box"]
            rows.append({"file": name, "face_index": i, "box_x": x, "box_y": y, "box_w": w, "box_h": h,
                         "detector_score": face["score"], "top_emotion": face["top_emotion"],
                         "top_score": face["top_score"], **face["emotions"], "status": "ok"})
    if progress is not None:
        progress(1.0, desc="done")
    csv_path = output_dir / "fer_hf_results.csv"
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    import pandas as pd

    table = pd.DataFrame([[row.get(f, "") for f in fields] for row in rows], columns=fields)
    summary = f"{len(paths)} file(s): {n_faces} face(s), {n_errors} unreadable file(s)."
    return gallery, str(csv_path), table, summary


def batch_headers(labels: list) -> list:
    """CSV / table columns of `analyze_batch` for a model with these labels."""
    return BATCH_FIELDS_FIXED + list(labels) + ["status"]
