"""Live video (webcam) analysis: detection every few frames, faces carried and tracked between detections,
every face classified on every processed frame, probabilities smoothed per track and drawn as bars.

Detection is the expensive part of the live path (MTCNN 45-90 ms per 640x480 frame on 2 CPU cores,
BlazeFace 2-12 ms), classification of one 48x48 face a few milliseconds. `LiveFaceAnalyzer` therefore runs
the detector on every ``detect_every``-th frame only; in between, each face keeps its last box and eye
landmarks (a face moves little in 1/10 s) and its crop from the new frame is classified again. Track ids
come from `fer_hf.tracking.FaceTracker` (IoU matching), so probabilities can be smoothed per face.
"""

from __future__ import annotations

import time
from typing import Optional

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .detection import IDENTITY
from .recognizer import EMOTION_COLORS, face_crop, load_image


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
        from .tracking import FaceTracker

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
        from .tracking import FaceTracker

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
        recognizer = self.recognizer
        boxes, scores, detector, points = recognizer._detect(image, landmarks=recognizer.align)
        adjustment = getattr(detector, "crop_adjustment", IDENTITY) if recognizer.adjust_crops else IDENTITY
        keep = [i for i in range(len(boxes)) if boxes[i][2] - boxes[i][0] >= 1 and boxes[i][3] - boxes[i][1] >= 1]
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)[keep]
        xywh = [[b[0], b[1], b[2] - b[0], b[3] - b[1]] for b in boxes]
        track_ids = self.tracker.update(xywh) if len(xywh) else self.tracker.update([])
        faces = []
        for j, i in enumerate(keep):
            eyes = None if points is None else points[i][list(detector.eye_indices)]
            faces.append((boxes[j], float(scores[i]), eyes, adjustment, int(track_ids[j])))
        faces.sort(key=lambda face: face[0][0])
        self._faces = faces
        live = {face[4] for face in faces}
        self._averages = {k: v for k, v in self._averages.items() if k in live}

    def process(self, frame):
        """Analyse one frame; see the class docstring for what is returned."""
        image = self.prepare(frame)
        detected = self.frames % self.detect_every == 0
        if detected:
            self._detect(image)
        self.frames += 1
        recognizer = self.recognizer
        crops = [face_crop(image, box, recognizer.margin, adjustment, eyes)
                 for box, _, eyes, adjustment, _ in self._faces]
        probabilities = recognizer.classify_faces(crops)
        faces = []
        for (box, score, _, _, track_id), probs in zip(self._faces, probabilities):
            if self.smoothing and track_id in self._averages:
                probs = self.smoothing * self._averages[track_id] + (1.0 - self.smoothing) * probs
            self._averages[track_id] = probs
            x1, y1, x2, y2 = box
            x, y = max(0, int(round(x1))), max(0, int(round(y1)))
            w = int(round(min(x2, image.width))) - x
            h = int(round(min(y2, image.height))) - y
            top = int(np.argmax(probs))
            faces.append({"box": [x, y, w, h], "score": round(score, 4),
                          "emotions": {recognizer.id2label[j]: round(float(p), 4) for j, p in enumerate(probs)},
                          "top_emotion": recognizer.id2label[top], "top_score": round(float(probs[top]), 4),
                          "track_id": track_id, "detected": detected})
        canvas = recognizer.annotate(image, faces)
        if self.bars:
            draw_probability_bars(canvas, faces)
        return np.asarray(canvas), faces


def draw_probability_bars(canvas: Image.Image, faces: list) -> Image.Image:
    """Draw each face's probabilities as horizontal bars (one per emotion, in the model's label order) in a
    panel beside its box (right of it, or left where there is no room), in place; returns ``canvas``."""
    if not faces:
        return canvas
    draw = ImageDraw.Draw(canvas, "RGBA")
    row = max(9, min(16, round(max(canvas.size) / 45)))
    try:
        font = ImageFont.load_default(size=row - 2)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    label_width = int(draw.textlength("surprise ", font=font))
    bar_width = 4 * row
    panel_w = label_width + bar_width + 4
    for face in faces:
        x, y, w, h = face["box"]
        names = list(face["emotions"])
        panel_h = row * len(names) + 4
        left = x + w + 4 if x + w + 4 + panel_w <= canvas.width else max(0, x - panel_w - 4)
        top = min(max(0, y), max(0, canvas.height - panel_h))
        draw.rectangle([left, top, left + panel_w, top + panel_h], fill=(0, 0, 0, 140))
        for k, name in enumerate(names):
            p = float(face["emotions"][name])
            y0 = top + 2 + k * row
            draw.text((left + 2, y0), name, fill=(255, 255, 255, 255), font=font)
            x0 = left + 2 + label_width
            draw.rectangle([x0, y0 + 2, x0 + max(1, round(p * bar_width)), y0 + row - 2],
                           fill=(*EMOTION_COLORS.get(name, (0, 200, 0)), 255))
    return canvas


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
