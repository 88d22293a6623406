"""Face detectors returning plain arrays: ``boxes`` (N, 4) float32 [x1, y1, x2, y2] in pixels of the
input image and ``scores`` (N,) float32."""

from __future__ import annotations

import numpy as np
from PIL import Image

DETECTORS = ("mtcnn", "haar")


class MTCNNDetector:
    """facenet-pytorch MTCNN (Zhang et al., 2016, "Joint Face Detection and Alignment using Multi-task
    Cascaded Convolutional Networks"); weights ship inside the facenet-pytorch wheel (no download).

    Args:
        min_face_size: smallest face searched for, in pixels of the image given to `detect`.
        threshold: minimum face probability (0..1) for a detection to be kept.
        device: torch device string.
    ``scores`` are MTCNN's face probabilities.
    """

    name = "mtcnn"

    def __init__(self, min_face_size: int = 20, threshold: float = 0.9, device: str = "cpu"):
        from facenet_pytorch import MTCNN

        self.threshold = threshold
        self.mtcnn = MTCNN(keep_all=True, min_face_size=min_face_size, device=device, post_process=False)

    def detect(self, image: Image.Image):
        boxes, probs = self.mtcnn.detect(image.convert("RGB"))
        if boxes is None:
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
        keep = np.asarray(probs, dtype=np.float32) >= self.threshold
        return np.asarray(boxes, np.float32)[keep], np.asarray(probs, np.float32)[keep]


class HaarDetector:
    """OpenCV Viola-Jones Haar cascade (Viola & Jones, 2001; ``haarcascade_frontalface_default.xml``
    from ``cv2.data.haarcascades``, shipped with opencv-python(-headless) 4.x).

    Args:
        min_face_size: smallest face searched for, in pixels.
        scale_factor, min_neighbors: `cv2.CascadeClassifier.detectMultiScale` parameters.
    ``scores`` are the cascade's final-stage level weights mapped through a logistic function to
    0..1; they rank detections but are not calibrated probabilities.

    Raises:
        RuntimeError: if the cascade file is missing (opencv 5.x wheels ship none).
    """

    name = "haar"

    def __init__(self, min_face_size: int = 20, scale_factor: float = 1.1, min_neighbors: int = 5):
        import os

        import cv2

        path = os.path.join(getattr(cv2.data, "haarcascades", ""), "haarcascade_frontalface_default.xml")
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise RuntimeError(f"OpenCV Haar cascade not found at {path!r}; install opencv-python-headless 4.x")
        self.min_face_size = int(min_face_size)
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors

    def detect(self, image: Image.Image):

        gray = np.asarray(image.convert("L"))
        rects, _, weights = self.cascade.detectMultiScale3(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(self.min_face_size, self.min_face_size), outputRejectLevels=True,
        )
        if len(rects) == 0:
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
        rects = np.asarray(rects, np.float32)
        boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1)
        scores = 1.0 / (1.0 + np.exp(-np.asarray(weights, np.float32).reshape(-1)))
        return boxes, scores.astype(np.float32)


def build_detector(name: str = "mtcnn", min_face_size: int = 20, device: str = "cpu", threshold: float = 0.9):
    """Detector by name: ``"mtcnn"`` (default) or ``"haar"``. Raises ValueError for other names."""
    if name == "mtcnn":
        return MTCNNDetector(min_face_size=min_face_size, threshold=threshold, device=device)
    if name == "haar":
        return HaarDetector(min_face_size=min_face_size)
    raise ValueError(f"Unknown detector {name!r}; choose one of {DETECTORS}")
