"""Face expression recognition on whole images: detect every face, classify all of them in one batch."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .detection import DETECTORS, IDENTITY, adjust_box, build_detector
from .image_processing_fer import read_image, to_pil_image  # noqa: F401 (to_pil_image re-exported)
from .tta import TTA_MODES, black_pixel_value, tta_log_probs

MODEL_CARDS_DIR = Path(__file__).resolve().parent.parent / "model_cards"
#: The model fer_hf loads when none is named: trained by this project on FER2013, shipped in the repo. The
#: distilled VGG-style student (44-352 channels, 0.447 GFLOPs): the most accurate released single model, and it
#: keeps the webcam path above 30 frames/s on a 2-core CPU (44-62 at the tab's defaults with 1 or 2 threads,
#: benchmarks/LIVE_PATH_FER_VGG_44_DISTILLED_FT.md and LIVE_PATH_DEFAULT_BESIDE_ENSEMBLE.md; the ensemble runs it
#: at 29.1 with one thread, LIVE_PATH_FER_ENSEMBLE.md).
DEFAULT_MODEL_NAME = "fer-vgg-44-distilled-ft"
DEFAULT_MODEL_DIR = MODEL_CARDS_DIR / DEFAULT_MODEL_NAME
#: Classifier backends of `FaceExpressionRecognizer.from_pretrained`.
BACKENDS = ("torch", "onnx")

#: RGB colour (0-255) of each expression in every drawing fer_hf makes: boxes, probability bars, video overlays and
#: the app's charts, so one expression has one colour everywhere.
EMOTION_COLORS = {"angry": (220, 40, 40), "disgust": (120, 160, 30), "fear": (150, 60, 200), "happy": (250, 190, 0),
                  "sad": (40, 110, 220), "surprise": (250, 120, 20), "neutral": (160, 160, 160),
                  "contempt": (120, 80, 40)}


def resolve_model(name_or_path: Optional[Union[str, os.PathLike]] = None) -> str:
    """Model location: None -> the default released model; a folder name under ``model_cards/``; a
    local path; otherwise the string is returned as a Hub model id."""
    if name_or_path is None or str(name_or_path) == "":
        return str(DEFAULT_MODEL_DIR)
    candidate = MODEL_CARDS_DIR / str(name_or_path)
    if (candidate / "config.json").is_file():
        return str(candidate)
    return str(name_or_path)


def available_models() -> list:
    """Names of the released model folders under ``model_cards/`` (each with a config.json)."""
    if not MODEL_CARDS_DIR.is_dir():
        return []
    return sorted(p.name for p in MODEL_CARDS_DIR.iterdir() if (p / "config.json").is_file())


_EXIF_ORIENTATION = 0x0112


def load_image(image) -> Image.Image:
    """A path (str / Path), file object, PIL image, numpy array (RGB order) or tensor -> upright ``L`` or
    ``RGB`` PIL image (EXIF orientation applied; 16-bit, float, palette, CMYK, transparent, ... converted;
    first frame of an animation): `fer_hf.image_processing_fer.read_image`. An ``L`` / ``RGB`` image that
    is already upright is returned as is (no copy: predict, detect and annotate each call this).

    Files are checked from their header before decoding: an image over ``FER_HF_MAX_IMAGE_PIXELS``
    (default 50 megapixels, `fer_hf.image_processing_fer.max_image_pixels`) is refused.

    Raises:
        FileNotFoundError: for a missing path. PIL.UnidentifiedImageError: for an empty file or one that is
        not an image (the message says what it is). `fer_hf.image_processing_fer.CorruptImageError`
        (OSError): truncated or corrupt image data. `fer_hf.image_processing_fer.ImageTooLargeError`
        (ValueError): over the pixel limit. ValueError: NaN / infinite values, empty or unsupported arrays.
        TypeError: unsupported objects.
    """
    return read_image(image)


def square_crop_box(box, margin: float):
    """[x1, y1, x2, y2] -> a square box around the same centre, side = max(w, h) * (1 + margin), as
    integers; it may extend past the image (PIL pads with black)."""
    x1, y1, x2, y2 = [float(v) for v in box]
    side = max(x2 - x1, y2 - y1) * (1.0 + margin)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return (int(round(cx - side / 2)), int(round(cy - side / 2)), int(round(cx + side / 2)), int(round(cy + side / 2)))


def eye_roll(eyes) -> float:
    """Roll of a face in degrees from its eye centres ((x, y) of the eye on the image's left for an
    upright face, then the other): the eye line's angle in image coordinates (y down), so positive means
    tilted clockwise as displayed; 0 for level eyes."""
    (lx, ly), (rx, ry) = [(float(p[0]), float(p[1])) for p in eyes]
    return math.degrees(math.atan2(ry - ly, rx - lx))


def face_crop(image: Image.Image, box, margin: float, adjustment=IDENTITY, eyes=None) -> Image.Image:
    """The face crop the classifier sees: the detector's ``box`` moved/resized by ``adjustment`` (the
    detector's `CropAdjustment`, see `fer_hf.detection.adjust_box`), then the square of
    `square_crop_box` (side ``max(w, h) * scale * (1 + margin)``). With ``eyes`` (two (x, y) points,
    see `eye_roll`) the square is rotated with the face so that the eyes are level in the crop
    (bilinear). Outside the image is black, as with ``image.crop``."""
    if eyes is None:
        return image.crop(square_crop_box(adjust_box(box, adjustment), margin))
    roll = eye_roll(eyes)
    x1, y1, x2, y2 = adjust_box(box, adjustment, roll=roll)
    side = max(x2 - x1, y2 - y1) * (1.0 + margin)
    size = max(1, int(round(side)))
    cx, cy, t = (x1 + x2) / 2, (y1 + y2) / 2, math.radians(roll)
    cos, sin, k = math.cos(t), math.sin(t), side / size
    # output pixel (u, v) -> input point: centre + R(roll) @ ((u, v) - size / 2) * k (PIL wants this inverse map)
    half = size / 2
    data = (k * cos, -k * sin, cx - k * (cos * half - sin * half),
            k * sin, k * cos, cy - k * (sin * half + cos * half))
    return image.transform((size, size), Image.AFFINE, data, resample=Image.BILINEAR)


class FaceExpressionRecognizer:
    """Detect every face in an image and classify its expression with a fer_hf model.

    Build it with `FaceExpressionRecognizer.from_pretrained`. ``predict(image)`` returns one dict per
    face, a superset of the `fer` package's output (GUIDE.md §5)::

        {"box": [x, y, w, h],            # ints, pixels of the original (EXIF-rotated) image
         "score": 0.998,                 # detector confidence (MTCNN probability, BlazeFace score; Haar: see HaarDetector)
         "emotions": {"angry": 0.01, ...},  # softmax probabilities over the model's labels, sum 1
         "top_emotion": "happy", "top_score": 0.91}

    faces sorted left to right; an image without faces gives ``[]`` (never an exception).

    Args:
        model: a `PreTrainedModel` for image classification (logits (batch, num_labels)).
        image_processor: its image processor (e.g. `FerImageProcessor`).
        detector: ``"mtcnn"`` (facenet-pytorch, default), ``"haar"`` (OpenCV), ``"blazeface"`` (MediaPipe
            BlazeFace full-range via OpenCV; also ``"blazeface-short"``, ``"blazeface-full"``,
            ``"blazeface-back"``; models vendored in fer_hf), or an object with a
            ``detect(PIL.Image) -> (boxes (N, 4) xyxy, scores (N,))`` method (optionally
            ``detect_with_landmarks``, ``eye_indices`` and ``crop_adjustment`` like `fer_hf.detection`'s).
        min_face_size: smallest face searched for, in pixels of the original image.
        margin: each crop is a square of side ``max(w, h) * (1 + margin)`` around the detected box (after
            the detector's crop adjustment).
        detection_threshold: minimum face score (0..1); None (default): the detector's own default
            (MTCNN 0.9, BlazeFace 0.5; Haar has none).
        adjust_crops: move/resize each detector's boxes by its ``crop_adjustment`` (`fer_hf.detection.
            CROP_ADJUSTMENTS`) before cropping, so that every detector's crops frame the face like the FER2013
            training faces (measured in benchmarks/DETECTOR_FRAMING.md; for MTCNN the crop is 0.8x the
            unadjusted one). False: the plain ``square_crop_box(box, margin)`` for every detector (the
            crops before per-detector adjustments existed). The ``box`` returned is always the
            detector's own box.
        align: rotate each crop so that the eyes are level, using the detector's eye landmarks (MTCNN,
            BlazeFace); default True: same accuracy on upright faces, better on tilted heads
            (benchmarks/DETECTOR_FRAMING.md). Detectors without landmarks (Haar, custom detectors without
            ``detect_with_landmarks`` / ``eye_indices``) give unrotated crops.
        max_detection_side: images whose longer side exceeds this many pixels are downscaled for
            detection only (boxes are mapped back, crops come from the full-resolution image).
        device: torch device for the classifier and MTCNN.
        tta: test-time augmentation of each face crop (`fer_hf.tta`): ``"none"`` (default), ``"flip"``
            (face + mirror image, 2x the classifier cost) or ``"ten_crop"`` (10x).
    """

    def __init__(self, model, image_processor, detector="mtcnn", min_face_size: int = 20, margin: float = 0.2,
                 detection_threshold: Optional[float] = None, max_detection_side: int = 1280,
                 device: str = "cpu", tta: str = "none", adjust_crops: bool = True, align: bool = True):
        if tta not in TTA_MODES:
            raise ValueError(f"Unknown TTA mode {tta!r}; choose one of {TTA_MODES}")
        self.tta = tta
        self.model = model.to(device).eval()
        self.backend = getattr(model, "backend", "torch")  # "onnx" for fer_hf.onnx_export.OnnxImageClassifier
        self.image_processor = image_processor
        self.device = device
        self.min_face_size = int(min_face_size)
        self.margin = margin
        self.max_detection_side = max_detection_side
        self.detection_threshold = detection_threshold
        self.adjust_crops = bool(adjust_crops)
        self.align = bool(align)
        self.id2label = {int(k): v for k, v in model.config.id2label.items()}
        self._detectors = {}
        self._custom_detector = None if isinstance(detector, str) else detector
        if self._custom_detector is not None:
            self.detector_name = getattr(detector, "name", type(detector).__name__)
        else:
            self.set_options(detector=detector)

    def _get_detector(self, name, min_face_size):
        key = (name, min_face_size)
        if key not in self._detectors:
            self._detectors[key] = build_detector(name, min_face_size=min_face_size, device=self.device,
                                                  threshold=self.detection_threshold)
        return self._detectors[key]

    @classmethod
    def from_pretrained(cls, name_or_path: Optional[Union[str, os.PathLike]] = None, detector: str = "mtcnn",
                        min_face_size: int = 20, device: str = "cpu", trust_remote_code: bool = False,
                        backend: str = "torch", onnx_cache_dir: Optional[Union[str, os.PathLike]] = None,
                        onnx_threads: Optional[int] = None, **kwargs):
        """Load a classifier and its image processor.

        ``name_or_path``: None (the default model shipped in ``model_cards/``), a released model name
        (a folder under ``model_cards/``), a local folder, or a Hub model id. Other keyword arguments
        go to the constructor (e.g. ``tta="flip"``).

        ``backend``: ``"torch"`` (default) or ``"onnx"``: the classifier runs in onnxruntime on the CPU
        (`fer_hf.onnx_export.OnnxImageClassifier`, float32; probabilities within 1e-4 of the torch backend).
        The model is exported once to ``onnx_cache_dir`` (default ``$FER_HF_CACHE/onnx`` or
        ``~/.cache/fer_hf/onnx``; `fer_hf.onnx_export.cached_onnx_export`), or ``name_or_path`` may be an
        ``.onnx`` file written by ``fer-hf export-onnx`` (float32 or int8). ``onnx_threads``: onnxruntime
        intra-op threads (None: one per core). TTA works with both backends.

        Loading is safe by default: only fer_hf model types (every family and the ensemble, whose code is
        part of fer_hf), weights from safetensors only, and never the folder's own code. Pass
        ``trust_remote_code=True`` yourself to load another image-classification model with the code its
        repository ships (never do this for a name that someone else typed).

        Raises:
            ValueError: for a model that is not a fer_hf model type (without ``trust_remote_code=True``).
            OSError: if the model cannot be found (for a Hub id while offline, too) or has no safetensors.
            ValueError: for an unknown ``backend``, or ``backend="onnx"`` with ``trust_remote_code=True`` or a
                device other than the CPU.
        """
        from transformers import AutoImageProcessor, AutoModelForImageClassification

        from .models import load_fer_model

        if backend not in BACKENDS:
            raise ValueError(f"Unknown backend {backend!r}; choose one of {BACKENDS}")
        location = resolve_model(name_or_path)
        if backend == "onnx":
            from .onnx_export import OnnxImageClassifier, cached_onnx_export

            if trust_remote_code:
                raise ValueError("backend='onnx' exports fer_hf models only; trust_remote_code=True is not supported")
            model = OnnxImageClassifier(cached_onnx_export(name_or_path, cache_dir=onnx_cache_dir),
                                        intra_op_num_threads=onnx_threads)
            processor = model.image_processor
        elif trust_remote_code:
            model = AutoModelForImageClassification.from_pretrained(location, trust_remote_code=True,
                                                                    use_safetensors=True)
            processor = AutoImageProcessor.from_pretrained(location, trust_remote_code=True)
        else:
            model = load_fer_model(location)
            processor = AutoImageProcessor.from_pretrained(location, trust_remote_code=False)
        recognizer = cls(model, processor, detector=detector, min_face_size=min_face_size, device=device, **kwargs)
        recognizer.model_name = str(name_or_path or DEFAULT_MODEL_NAME)
        return recognizer

    def set_options(self, detector: Optional[str] = None, min_face_size: Optional[int] = None,
                    align: Optional[bool] = None) -> None:
        """Switch detector, minimum face size and/or eye alignment (detectors are built once and cached)."""
        if detector is not None:
            if detector not in DETECTORS:
                raise ValueError(f"Unknown detector {detector!r}; choose one of {DETECTORS}")
            self.detector_name = detector
            self._custom_detector = None
        if min_face_size is not None:
            self.min_face_size = int(min_face_size)
        if align is not None:
            self.align = bool(align)

    def detect(self, image):
        """Faces in ``image``: (boxes (N, 4) float32 [x1, y1, x2, y2] in original pixels, scores (N,))."""
        boxes, scores, _, _ = self._detect(load_image(image))
        return boxes, scores

    def _detector(self, scale: float = 1.0):
        return self._custom_detector or self._get_detector(self.detector_name,
                                                           max(8, int(round(self.min_face_size * scale))))

    def _detect(self, image: Image.Image, landmarks: bool = False):
        """(boxes, scores, detector, landmarks) with boxes and landmarks (N, K, 2) in original pixels;
        landmarks only with ``landmarks=True`` and a detector that has them, else None."""
        scale = 1.0
        longest = max(image.size)
        work = image
        if self.max_detection_side and longest > self.max_detection_side:
            scale = self.max_detection_side / longest
            work = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                                Image.BILINEAR)
        detector = self._detector(scale)
        if landmarks and hasattr(detector, "detect_with_landmarks") and hasattr(detector, "eye_indices"):
            boxes, scores, points = detector.detect_with_landmarks(work)
            return boxes / scale, scores, detector, points / scale
        boxes, scores = detector.detect(work)
        return boxes / scale, scores, detector, None

    @torch.no_grad()
    def classify_faces(self, face_images) -> np.ndarray:
        """Face crops (list of PIL images / arrays) -> probabilities (N, num_labels) float32, one batch."""
        if len(face_images) == 0:
            return np.zeros((0, len(self.id2label)), np.float32)
        inputs = self.image_processor(face_images, return_tensors="pt")
        pixel_values = inputs["pixel_values"].to(self.device)
        if self.tta == "none":
            return self.model(pixel_values=pixel_values).logits.float().softmax(-1).cpu().numpy()
        log_probs = tta_log_probs(self.model, pixel_values, self.tta, pad_value=black_pixel_value(self.image_processor))
        return log_probs.exp().cpu().numpy()

    def crop_faces(self, image):
        """The faces of ``image`` as the classifier sees them: (boxes (K, 4) float32 [x1, y1, x2, y2] in
        original pixels (the detector's own boxes), sorted left to right, scores (K,), list of K PIL face
        crops) — the detection, crop adjustment and alignment of `predict`."""
        return self._crop_faces(load_image(image))

    def _crop_faces(self, image: Image.Image):
        boxes, scores, detector, points = self._detect(image, landmarks=self.align)
        adjustment = getattr(detector, "crop_adjustment", IDENTITY) if self.adjust_crops else IDENTITY
        order = np.argsort(boxes[:, 0], kind="stable") if len(boxes) else []
        rgb = image.convert("RGB") if image.mode not in ("L", "RGB") else image
        crops, kept = [], []
        for i in order:
            x1, y1, x2, y2 = boxes[i]
            if x2 - x1 < 1 or y2 - y1 < 1:
                continue
            eyes = None if points is None else points[i][list(detector.eye_indices)]
            crops.append(face_crop(rgb, boxes[i], self.margin, adjustment, eyes))
            kept.append(i)
        kept = np.asarray(kept, dtype=np.int64)
        return (np.asarray(boxes, np.float32).reshape(-1, 4)[kept], np.asarray(scores, np.float32).reshape(-1)[kept],
                crops)

    def predict(self, image) -> list:
        """All faces in ``image`` (path, PIL image, RGB numpy array or tensor; any mode; EXIF orientation
        respected) with their expressions; ``[]`` when there is no face. See the class docstring."""
        image = load_image(image)
        boxes, scores, crops = self._crop_faces(image)
        probabilities = self.classify_faces(crops)
        faces = []
        for i, probs in enumerate(probabilities):
            x1, y1, x2, y2 = boxes[i]
            x, y = max(0, int(round(x1))), max(0, int(round(y1)))
            w = int(round(min(x2, image.width))) - x
            h = int(round(min(y2, image.height))) - y
            emotions = {self.id2label[j]: round(float(p), 4) for j, p in enumerate(probs)}
            top = int(np.argmax(probs))
            faces.append({"box": [x, y, w, h], "score": round(float(scores[i]), 4), "emotions": emotions,
                          "top_emotion": self.id2label[top], "top_score": round(float(probs[top]), 4)})
        return faces

    def annotate(self, image, faces: list) -> Image.Image:
        """RGB PIL image: ``image`` with each face's box, top emotion and probability drawn on it."""
        canvas = load_image(image).convert("RGB")
        draw = ImageDraw.Draw(canvas)
        longest = max(canvas.size)
        thickness = max(2, round(longest / 300))
        for face in faces:
            x, y, w, h = face["box"]
            color = EMOTION_COLORS.get(face["top_emotion"], (0, 200, 0))
            draw.rectangle([x, y, x + w, y + h], outline=color, width=thickness)
            # readable on small faces in big photos, not overwhelming on big faces
            font_size = int(min(max(w / 6, longest / 60, 12), max(longest / 25, 12)))
            try:
                font = ImageFont.load_default(size=font_size)
            except TypeError:  # Pillow < 10.1
                font = ImageFont.load_default()
            text = f"{face['top_emotion']} {face['top_score']:.0%}"
            left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
            label_w, label_h = right - left + 2 * thickness, bottom - top + 2 * thickness
            # above the box; below it if there is no room; inside its top edge if there is room for neither
            if y - label_h >= 0:
                label_y = y - label_h
            elif y + h + label_h <= canvas.height:
                label_y = y + h
            else:
                label_y = y
            label_x = min(x, max(0, canvas.width - label_w))
            draw.rectangle([label_x, label_y, label_x + label_w, label_y + label_h], fill=color)
            draw.text((label_x + thickness - left, label_y + thickness - top), text, fill=(0, 0, 0), font=font)
        return canvas
