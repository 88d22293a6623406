"""The work behind the Gradio app (`app.py`): importable, testable functions with plain inputs."""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Optional

import torch
from PIL import Image

from ..detection.detectors import DETECTORS
from ..image_io import load_image
from ..inference.drawing import EMOTION_COLORS
from ..inference.live import LiveFaceAnalyzer
from ..inference.recognizer import FaceExpressionRecognizer
from ..inference.results import face_rows, table_fields, write_rows
from ..models.hub import DEFAULT_MODEL_NAME, available_models
from .uploads import (MB, check_image_input, check_image_upload, check_video_upload, extract_zip_safely,
                      temporary_batch_folder, upload_limits, video_limits)

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
    """A cached recognizer for ``model`` (released name, local path or Hub id), shared by every request.
    ``detector`` / ``min_face_size`` are checked here but applied only by `using`, under the lock, so that
    concurrent requests never see each other's settings. Raises OSError if the model cannot be loaded,
    ValueError for an unknown detector or a minimum face size below 1 pixel."""
    if detector not in DETECTORS:
        raise ValueError(f"Unknown detector {detector!r}; choose one of {DETECTORS}")
    if int(min_face_size) < 1:
        raise ValueError(f"Minimum face size must be at least 1 pixel, got {min_face_size}")
    return _load(str(model or DEFAULT_MODEL_NAME).strip())


class using:
    """``with using(recognizer, detector, min_face_size):`` hold the app's lock (one recognition at a time:
    the recognizer and its detectors are shared) and set this request's detector and minimum face size
    (pixels) on entry, so that a concurrent request's settings can never apply to this one."""

    def __init__(self, recognizer, detector: str = "mtcnn", min_face_size: int = 20):
        self.recognizer, self.detector, self.min_face_size = recognizer, detector, int(min_face_size)

    def __enter__(self):
        _lock.acquire()
        try:
            self.recognizer.set_options(detector=self.detector, min_face_size=self.min_face_size)
        except BaseException:
            _lock.release()
            raise
        return self.recognizer

    def __exit__(self, *exc):
        _lock.release()
        return False


def faces_table(faces: list, labels: list):
    """DataFrame, one row per face: face index, box (x, y, w, h), detector score, top emotion, every
    probability (columns in ``labels`` order)."""
    import pandas as pd

    rows = [[i, *face["box"], face["score"], face["top_emotion"], *[face["emotions"][n] for n in labels]]
            for i, face in enumerate(faces)]
    return pd.DataFrame(rows, columns=table_headers(labels))


def table_headers(labels: list) -> list:
    return ["face", "x", "y", "w", "h", "detector_score", "top_emotion", *labels]


def chart_color_map(labels) -> dict:
    """{label: "#rrggbb"} for the probability chart: the colours of the boxes drawn on the image
    (`fer_hf.inference.drawing.EMOTION_COLORS`), grey for a label without one."""
    return {label: "#%02x%02x%02x" % EMOTION_COLORS.get(label, (110, 110, 110)) for label in labels}


def chart_rows_for_every_label(chart, labels):
    """The `probabilities_long` frame with a 0.0 row for each (face, label) that a model lacks (contempt for
    the FER2013 models), so that the chart's colour domain always holds every label: Gradio's BarPlot takes
    the domain from the first data it draws and keeps it, so a model switch would otherwise hide contempt."""
    import pandas as pd

    if chart is None or len(chart) == 0:
        return chart
    missing = [label for label in labels if label not in set(chart["emotion"])]
    if not missing:
        return chart
    extra = [{"face": face, "emotion": label, "probability": 0.0}
             for face in dict.fromkeys(chart["face"]) for label in missing]
    return pd.concat([chart, pd.DataFrame(extra, columns=chart.columns)], ignore_index=True)


def probabilities_long(faces: list):
    """Long-format DataFrame (face, emotion, probability) for a grouped bar chart."""
    import pandas as pd

    rows = [{"face": f"face {i}", "emotion": name, "probability": p}
            for i, face in enumerate(faces) for name, p in face["emotions"].items()]
    return pd.DataFrame(rows, columns=["face", "emotion", "probability"])


class _Fields:
    """Unpacks like a tuple of its fields, in declaration order (``annotated, table, ... = analyze_image(...)``)."""

    def __iter__(self):
        return iter([getattr(self, f.name) for f in fields(self)])


@dataclass
class ImageAnalysis(_Fields):
    """What the Image tab shows for one photo."""

    annotated: Image.Image  # the photo with every face's box and top emotion drawn
    table: object  # pandas DataFrame, one row per face (`faces_table`)
    chart: object  # pandas DataFrame (face, emotion, probability) for the bar chart (`probabilities_long`)
    png_path: str  # the annotated photo, saved for download
    json_path: str  # the faces (`fer_hf.inference.results.Face` list) as JSON
    summary: str  # one line (plus the ensemble members' table for an ensemble)
    gallery: list  # Grad-CAM overlays [(PIL image, caption)], [] unless asked for


@dataclass
class BatchAnalysis(_Fields):
    """What the Batch tab shows for many files."""

    gallery: list  # [(annotated image path, caption)]
    csv_path: str  # the results table (`fer_hf.inference.results.table_fields` columns)
    table: object  # pandas DataFrame of the CSV's rows
    summary: str


@dataclass
class VideoUploadAnalysis(_Fields):
    """What the Video tab shows for one video."""

    video_path: str  # the annotated H.264 MP4
    table: object  # pandas DataFrame: the timeline's first ``VIDEO_TABLE_ROWS`` rows
    csv_path: str
    json_path: str
    plot_path: str  # emotion-over-time PNG
    summary: str  # Markdown


def analyze_image(image, model=DEFAULT_MODEL_NAME, detector="mtcnn", min_face_size=20, output_dir=None,
                  explain=False):
    """Image tab: one photo -> `ImageAnalysis` (annotated PIL image, faces DataFrame, bar-chart DataFrame, annotated
    PNG path, JSON path, a one-line summary, Grad-CAM gallery). The photo is detected once; the ensemble members'
    table and Grad-CAM classify those same faces. ``image``: path, PIL image or RGB numpy array; None
    raises ValueError. The gallery is ``[]`` unless ``explain``; with it, one (PIL RGB overlay of the face
    crop's size, caption ``"face i: <emotion> p"``) per face in the table's order: Grad-CAM (Selvaraju et
    al., 2017) of the top emotion, `fer_hf.inference.explain.explain_faces`. An image
    over FER_HF_MAX_IMAGE_PIXELS (or a file over FER_HF_MAX_IMAGE_MB) raises ValueError
    (`fer_hf.app.uploads.check_image_input`)."""
    if image is None:
        raise ValueError("Upload or paste an image first.")
    check_image_input(image)
    recognizer = get_recognizer(model, detector, min_face_size)
    image = load_image(image)
    with using(recognizer, detector, min_face_size):
        detected = recognizer.detect_faces(image)
        faces = recognizer.predict(image, faces=detected)
    annotated = recognizer.annotate(image, faces)
    output_dir = Path(output_dir or tempfile.mkdtemp(prefix="fer_hf_"))
    output_dir.mkdir(parents=True, exist_ok=True)
    png_path = output_dir / "annotated.png"
    json_path = output_dir / "faces.json"
    # compress_level 1: the visitor waits for this file, and the fastest zlib level costs only somewhat larger files
    annotated.save(png_path, compress_level=1)
    json_path.write_text(json.dumps(faces, indent=1))
    labels = list(recognizer.id2label.values())
    summary = (f"{len(faces)} face(s) found with {detector}: " + ", ".join(f["top_emotion"] for f in faces)
               if faces else f"No face found (detector {detector}, minimum face size {min_face_size} px).")
    if faces and getattr(recognizer.model.config, "model_type", None) == "fer_ensemble":
        with using(recognizer, detector, min_face_size):
            summary += "\n\n" + ensemble_members_markdown(recognizer, image, detected)
    gallery = []
    if explain and faces:
        from ..inference.explain import explain_faces  # Grad-CAM (OpenCV, pytorch-grad-cam) only when asked for

        with using(recognizer, detector, min_face_size):
            explained = explain_faces(recognizer, image, faces=detected)
        gallery = [(face["overlay"], f"face {face['face_index']}: {face['emotion']} {face['probability']:.2f}")
                   for face in explained]
    return ImageAnalysis(annotated, faces_table(faces, labels), probabilities_long(faces), str(png_path), str(json_path),
                         summary, gallery)


#: Live analyzers of the open webcam streams, by the session id kept in each stream's state (newest last).
_live_sessions: "OrderedDict[str, tuple]" = OrderedDict()
MAX_LIVE_SESSIONS = 8


def _live_analyzer(state: dict, recognizer, settings: tuple):
    """The `LiveFaceAnalyzer` of this stream (made anew when its settings change); at most
    ``MAX_LIVE_SESSIONS`` are kept, the least recently used one goes first."""
    session = state.setdefault("session", uuid.uuid4().hex)
    kept = _live_sessions.get(session)
    if kept is None or kept[0] != settings:
        _, _, _, mirror, detect_every = settings
        kept = (settings, LiveFaceAnalyzer(recognizer, detect_every=detect_every, max_side=WEBCAM_MAX_SIDE,
                                           mirror=mirror))
        _live_sessions[session] = kept
    _live_sessions.move_to_end(session)
    while len(_live_sessions) > MAX_LIVE_SESSIONS:
        _live_sessions.popitem(last=False)
    return kept[1]


@torch.no_grad()
def ensemble_member_predictions(recognizer, image, faces: Optional[list] = None) -> list:
    """For a recognizer whose model is a ``fer_ensemble``: per face (`predict`'s order), ``{"ensemble": (top
    emotion, probability), <member name>: (its own top emotion, probability), ...}``. ``faces``: the image's
    ``recognizer.detect_faces`` output (detected here when None). Raises ValueError for another model type."""
    model = recognizer.model
    if getattr(model.config, "model_type", None) != "fer_ensemble":
        raise ValueError("ensemble_member_predictions needs a fer_ensemble model")
    faces = recognizer.detect_faces(image) if faces is None else faces
    crops = recognizer.face_crops(image, faces)
    if not crops:
        return []
    pixel_values = recognizer.image_processor(crops, return_tensors="pt")["pixel_values"].to(recognizer.device)
    output = model(pixel_values=pixel_values, output_member_logits=True)
    names = [member["name"] for member in model.config.members]
    rows = []
    for i in range(len(crops)):
        probabilities = [output.logits[i].float().softmax(-1)] + [m.softmax(-1) for m in output.member_logits[i]]
        row = {}
        for name, p in zip(["ensemble", *names], probabilities):
            top = int(p.argmax())
            row[name] = (recognizer.id2label[top], float(p[top]))
        rows.append(row)
    return rows


def ensemble_members_markdown(recognizer, image, faces: Optional[list] = None) -> str:
    """A Markdown table: one row per face, the ensemble's top emotion beside each member's (with weights); the
    ensemble's column says so when its answer includes a logit adjustment that the members' own do not."""
    rows = ensemble_member_predictions(recognizer, image, faces)
    config = recognizer.model.config
    names = [member["name"] for member in config.members]
    ensemble = "ensemble (prior-adjusted)" if getattr(config, "logit_adjustment", None) else "ensemble"
    header = f"| face | {ensemble} | " + " | ".join(f"{n} (weight {w:.2f})" for n, w in zip(names, config.member_weights))
    lines = [header + " |", "| --- " * (len(names) + 2) + "|"]
    for i, row in enumerate(rows):
        lines.append(f"| {i} | " + " | ".join(f"{row[k][0]} {row[k][1]:.0%}" for k in ["ensemble", *names]) + " |")
    return "\n".join(lines)


def analyze_frame(frame, model=DEFAULT_MODEL_NAME, detector="mtcnn", min_face_size=20, state=None, mirror=False,
                  detect_every=1):
    """Webcam tab: one RGB frame (H, W, 3) uint8 -> (annotated frame (H', W', 3) uint8 array, status text, state).

    The frame is mirrored if ``mirror`` and downscaled to ``WEBCAM_MAX_SIDE`` pixels; faces are detected on
    every ``detect_every``-th frame and carried (with their track ids) in between, each face classified on
    every frame and drawn with its probability bars (`fer_hf.inference.live.LiveFaceAnalyzer`, one per stream).
    ``state`` carries the stream's session id, the number of frames processed (``"frames"``) and the
    timestamps of the last 10 (``"stamps"``), from which the status reports the achieved processing rate:
    frames processed per second, not frames sent by the browser (those that arrive while a frame is being
    processed are dropped by Gradio's stream, not queued)."""
    state = dict(state or {})
    if frame is None:
        return None, "Waiting for the webcam…", state
    recognizer = get_recognizer(model, detector, min_face_size)
    settings = (str(model), detector, int(min_face_size), bool(mirror), max(1, int(detect_every)))
    started = time.time()
    with using(recognizer, detector, min_face_size):
        annotated, faces = _live_analyzer(state, recognizer, settings).process(frame)
    stamps = (state.get("stamps", []) + [time.time()])[-10:]
    state["stamps"] = stamps
    state["frames"] = state.get("frames", 0) + 1
    fps = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 and stamps[-1] > stamps[0] else 0.0
    text = (f"{fps:.1f} frames/s achieved · frames processed: {state['frames']} · "
            f"{1000 * (time.time() - started):.0f} ms per frame · "
            f"{len(faces)} face(s): " + (", ".join(f"#{f['track_id']} {f['top_emotion']} {f['top_score']:.0%}"
                                                  for f in faces) or "—"))
    return annotated, text, state


def analyze_batch(files, model=DEFAULT_MODEL_NAME, detector="mtcnn", min_face_size=20, output_dir=None,
                  progress=None):
    """Batch tab: many image files and/or zip files of images -> `BatchAnalysis` (gallery [(annotated image path,
    caption)], CSV path, results DataFrame (the CSV's rows), summary). One CSV row per face: file, face_index, box,
    detector score, top emotion, every emotion's probability, and ``status`` ("ok", "no face", "error: …" or
    "skipped: …"). A file that cannot be read, or is over FER_HF_MAX_IMAGE_MB / FER_HF_MAX_IMAGE_PIXELS
    (`fer_hf.app.uploads.check_image_upload`, header only), becomes one error row; the others are processed.

    A ``.zip`` file is extracted with `fer_hf.app.uploads.extract_zip_safely` into a temporary folder that is
    removed before this returns (also on errors); its images are named ``<zip name>/<path in the zip>``,
    every entry it skips becomes a "skipped: <reason>" row, and a zip over its own limits (size, entries,
    uncompressed megabytes) becomes one error row. Annotated images and the CSV go to ``output_dir``
    (default: a new temporary folder), never to the extraction folder. ``progress``: optional callable
    ``progress(fraction, desc=...)`` (e.g. `gradio.Progress`), called once per image and with 1.0 at the end.

    Raises:
        ValueError: for no files, or more images (uploaded + extracted) than FER_HF_MAX_BATCH_FILES.
        OSError: for a model that cannot be loaded.
    """
    paths = [getattr(f, "name", f) for f in (files or [])]
    if not paths:
        raise ValueError("Choose one or more image or zip files first.")
    max_files = int(upload_limits()["max_batch_files"])
    if len(paths) > max_files:
        raise ValueError(f"{len(paths)} files were uploaded; a batch takes up to {max_files} files "
                         "(FER_HF_MAX_BATCH_FILES).")
    recognizer = get_recognizer(model, detector, min_face_size)
    labels = list(recognizer.id2label.values())
    fields = table_fields(labels)
    gallery = []
    with temporary_batch_folder(prefix="fer_hf_zip_") as unpacked:
        items, rows, n_zips = _batch_items(paths, unpacked)
        if len(items) > max_files:
            raise ValueError(f"{len(items)} images ({len(items) - (len(paths) - n_zips)} of them from zip files); "
                             f"a batch takes up to {max_files} files (FER_HF_MAX_BATCH_FILES).")
        output_dir = Path(output_dir or tempfile.mkdtemp(prefix="fer_hf_batch_"))
        output_dir.mkdir(parents=True, exist_ok=True)
        n_errors = sum(row["status"].startswith("error") for row in rows)
        n_skipped = len(rows) - n_errors
        n_faces = 0
        for index, (name, path) in enumerate(items):
            if progress is not None:
                progress(index / len(items), desc=f"{index + 1}/{len(items)}: {name}")
            try:
                check_image_upload(path)  # size and pixels from the header, before decoding
                image = load_image(path)
                with using(recognizer, detector, min_face_size):
                    faces = recognizer.predict(image)
            except Exception as error:  # noqa: BLE001 - one bad file must not stop the batch
                n_errors += 1
                rows.extend(face_rows(name, error))
                continue
            annotated_path = output_dir / f"{index:04d}_{Path(name).stem}.png"
            recognizer.annotate(image, faces).save(annotated_path)
            gallery.append((str(annotated_path),
                            f"{name}: " + (", ".join(f["top_emotion"] for f in faces) or "no face")))
            n_faces += len(faces)
            rows.extend(face_rows(name, faces, decimals=None))
    if progress is not None:
        progress(1.0, desc="done")
    csv_path = output_dir / "fer_hf_results.csv"
    write_rows(rows, fields, csv_path)
    import pandas as pd

    table = pd.DataFrame([[row.get(f, "") for f in fields] for row in rows], columns=fields)
    summary = f"{len(items)} file(s): {n_faces} face(s), {n_errors} unreadable or refused file(s)."
    if n_zips:
        summary += f" {n_zips} zip file(s) extracted, {n_skipped} entr{'y' if n_skipped == 1 else 'ies'} skipped."
    return BatchAnalysis(gallery, str(csv_path), table, summary)


def _batch_items(paths, unpacked: Path):
    """(items [(shown name, image path)], rows for zip errors and skipped entries, number of zip files):
    images as given, ``.zip`` files extracted safely into sub-folders of ``unpacked`` (one per zip), within
    the batch's total of FER_HF_MAX_ZIP_UNCOMPRESSED_MB."""
    budget = int(upload_limits()["max_zip_uncompressed_mb"] * MB)
    items, rows, n_zips = [], [], 0
    for path in paths:
        name = os.path.basename(str(path))
        if not name.lower().endswith(".zip"):
            items.append((name, path))
            continue
        n_zips += 1
        folder = unpacked / f"{n_zips:03d}"
        folder.mkdir()
        try:
            extracted = extract_zip_safely(path, folder, max_bytes=budget)
        except (ValueError, OSError) as error:
            rows.append({"file": name, "status": f"error: {type(error).__name__}: {error}"})
            continue
        budget -= extracted.bytes_written
        items += [(f"{name}/{p.relative_to(folder).as_posix()}", p) for p in extracted]
        rows += [{"file": f"{name}/{entry}", "status": f"skipped: {reason}"} for entry, reason in extracted.skipped]
    return items, rows, n_zips


# ------------------------------------------------------------------------------------------------ Video tab

VIDEO_MAX_SIDE = 1280  # video frames are downscaled to this longer side (pixels) for detection and the output
VIDEO_TABLE_ROWS = 2000  # timeline rows shown in the app's table (the CSV / JSON have all of them)


def analyze_video_upload(video_path, model=DEFAULT_MODEL_NAME, detector="mtcnn", min_face_size=20, sample_fps=2.0,
                         progress=None, output_dir=None):
    """Video tab: one uploaded video -> `VideoUploadAnalysis` (annotated H.264 MP4 path, timeline DataFrame (at most
    ``VIDEO_TABLE_ROWS`` rows, empty cells for frames without a face), timeline CSV path, timeline JSON path,
    emotion-over-time PNG path, Markdown summary).

    ``sample_fps``: frames analysed per second of video (None or 0: every frame). Frames are downscaled to
    ``VIDEO_MAX_SIDE`` pixels; the recognizer is shared, so each frame's prediction holds the lock (`using`).
    ``progress``: optional ``progress(fraction, desc=...)`` (e.g. `gradio.Progress`). Raises ValueError for
    a missing, unreadable or too large video (`check_video_upload`), OSError for a model that cannot be loaded."""
    from ..inference.video import analyze_video  # PyAV only when a video is analysed

    sample_fps = float(sample_fps) if sample_fps else None
    info = check_video_upload(video_path, sample_fps)
    recognizer = get_recognizer(model, detector, min_face_size)
    output_dir = Path(output_dir or tempfile.mkdtemp(prefix="fer_hf_video_"))
    output_dir.mkdir(parents=True, exist_ok=True)
    stem = Path(str(video_path)).stem
    result = analyze_video(video_path, recognizer, sample_fps=sample_fps,
                           output_video=output_dir / f"{stem}_annotated.mp4",
                           max_duration_s=video_limits()["max_seconds"], progress=progress or False,
                           max_side=VIDEO_MAX_SIDE, lock=using(recognizer, detector, min_face_size))
    csv_path = result.to_csv(output_dir / f"{stem}_timeline.csv")
    json_path = result.to_json(output_dir / f"{stem}_timeline.json")
    plot_path = result.plot(output_dir / f"{stem}_emotions.png")
    table = result.to_dataframe().head(VIDEO_TABLE_ROWS)
    table = table.astype(object).where(table.notna(), "")
    summary = result.summary()
    if len(result.rows) > VIDEO_TABLE_ROWS:
        summary += f" The table shows the first {VIDEO_TABLE_ROWS} of {len(result.rows)} rows; the CSV has all."
    if info["rotation"]:
        summary += f" Rotation metadata applied ({info['rotation']}°)."
    return VideoUploadAnalysis(result.output_video, table, str(csv_path), str(json_path), str(plot_path), summary)
