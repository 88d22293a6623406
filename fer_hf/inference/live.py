"""Live video (webcam) analysis: detection every few frames, faces carried and tracked between detections,
every face classified on every processed frame, probabilities smoothed per track and drawn as bars.

Detection is the expensive part of the live path: a whole-frame detector pass costs far more than classifying
the few face crops it finds (timings per detector and CPU: benchmarks/results/live_path.md). `LiveFaceAnalyzer` therefore runs
the detector on every ``detect_every``-th frame only; in between, each face keeps its last box and eye
landmarks (a face moves little in 1/10 s) and its crop from the new frame is classified again. Track ids
come from `fer_hf.detection.tracking.FaceTracker` (IoU matching), so probabilities can be smoothed per face.
"""

from __future__ import annotations

import time
from typing import Optional

import numpy as np
from PIL import Image

from ..detection.tracking import FaceTracker
from ..image_io import load_image
from .drawing import draw_probability_bars
from .results import build_faces


class LiveFaceAnalyzer:
    """Per-stream state of a live analysis (one per webcam session; not thread-safe).

    Args:
        recognizer: a `fer_hf.FaceExpressionRecognizer` (its detector, minimum face size, margin, crop
            adjustment, alignment and TTA are used as they are set).
        detect_every: run the face detector on every N-th processed frame (1 = every frame); in between,
            the faces found last are carried over (same boxes and eye landmarks) and re-classified.
        max_side: frames are downscaled so that their longer side is at most this many pixels before
            anything else (None: full size).
        mirror: flip frames horizontally first (a webcam preview that behaves like a mirror).
        smoothing: exponential moving average of each track's probabilities, 0 (off, default) to <1
            (weight of the previous average): ``p = smoothing * p_prev + (1 - smoothing) * p_new``.
        bars: draw each face's probability bars beside its box.
        iou_threshold, max_missed: `FaceTracker` settings (a face not matched by ``max_missed``
            consecutive detections is dropped).

    ``process(frame)`` returns ``(annotated (H', W', 3) uint8 RGB array, faces)``; each face is the
    recognizer's dict (``box`` [x, y, w, h] in the processed frame's pixels, ``score``, ``emotions``,
    ``top_emotion``, ``top_score``) plus ``track_id`` (int) and ``detected`` (True on a detection frame,
    False when the box was carried over).
    """

    def __init__(self, recognizer, detect_every: int = 3, max_side: Optional[int] = 480, mirror: bool = False,
                 smoothing: float = 0.0, bars: bool = True, iou_threshold: float = 0.3, max_missed: int = 2):
        if int(detect_every) < 1:
            raise ValueError(f"detect_every must be >= 1, got {detect_every}")
        if not 0.0 <= float(smoothing) < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        self.recognizer = recognizer
        self.detect_every = int(detect_every)
        self.max_side = max_side
        self.mirror = bool(mirror)
        self.smoothing = float(smoothing)
        self.bars = bool(bars)
        self.tracker = FaceTracker(iou_threshold=iou_threshold, max_missed=max_missed)
        self.frames = 0
        self._faces = []  # carried faces: (box xyxy, score, eyes or None, adjustment, track_id)
        self._averages = {}

    def reset(self) -> None:
        """Forget carried faces, tracks and averages (e.g. after the detector or model changed)."""
        self.tracker = FaceTracker(iou_threshold=self.tracker.iou_threshold, max_missed=self.tracker.max_missed)
        self.frames = 0
        self._faces = []
        self._averages = {}

    def prepare(self, frame) -> Image.Image:
        """``frame`` (RGB array (H, W, 3) uint8, PIL image or path) -> the RGB PIL image that is analysed
        (mirrored and downscaled as configured)."""
        image = load_image(frame).convert("RGB")
        if self.mirror:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        if self.max_side:
            scale = self.max_side / max(image.size)
            if scale < 1:
                image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                                     Image.BILINEAR)
        return image

    def _detect(self, image: Image.Image) -> None:
        faces = self.recognizer.detect_faces(image)
        xywh = [[f.box[0], f.box[1], f.box[2] - f.box[0], f.box[3] - f.box[1]] for f in faces]
        track_ids = self.tracker.update(xywh)
        self._faces = list(zip(faces, (int(t) for t in track_ids)))
        live = {track_id for _, track_id in self._faces}
        self._averages = {k: v for k, v in self._averages.items() if k in live}

    def process(self, frame):
        """Analyse one frame; see the class docstring for what is returned."""
        image = self.prepare(frame)
        detected = self.frames % self.detect_every == 0
        if detected:
            self._detect(image)
        self.frames += 1
        recognizer = self.recognizer
        detected_faces = [face for face, _ in self._faces]
        probabilities = recognizer.classify_faces(recognizer.face_crops(image, detected_faces))
        smoothed = []
        for (_, track_id), probs in zip(self._faces, probabilities):
            if self.smoothing and track_id in self._averages:
                probs = self.smoothing * self._averages[track_id] + (1.0 - self.smoothing) * probs
            self._averages[track_id] = probs
            smoothed.append(probs)
        faces = build_faces([face.box for face in detected_faces], [face.score for face in detected_faces], smoothed,
                            image.size, recognizer.labels, decimals=4)
        for face, (_, track_id) in zip(faces, self._faces):
            face.update(track_id=track_id, detected=detected)
        canvas = recognizer.annotate(image, faces)
        if self.bars:
            draw_probability_bars(canvas, faces)
        return np.asarray(canvas), faces


def measure_live_path(recognizer, frame, frames: int = 100, detect_every: int = 1, warmup: int = 5) -> dict:
    """Time `LiveFaceAnalyzer.process` (detect on every ``detect_every``-th frame, crop, classify,
    annotate) on the same ``frame`` repeated: dict with ``ms_per_frame`` (mean), ``ms_p95``,
    ``frames_per_second`` and ``faces`` (found on the last frame)."""
    analyzer = LiveFaceAnalyzer(recognizer, detect_every=detect_every, max_side=None)
    image = load_image(frame).convert("RGB")
    faces = []
    for _ in range(warmup):
        analyzer.process(image)
    times = []
    for _ in range(frames):
        started = time.perf_counter()
        _, faces = analyzer.process(image)
        times.append(time.perf_counter() - started)
    times = np.asarray(times) * 1000
    return {"ms_per_frame": float(times.mean()), "ms_p95": float(np.percentile(times, 95)),
            "frames_per_second": float(1000 / times.mean()), "faces": len(faces)}
