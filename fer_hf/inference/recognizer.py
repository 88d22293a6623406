"""Face expression recognition on whole images: detect every face, classify all of them in one batch."""

from __future__ import annotations

import os
from typing import Iterable, Iterator, NamedTuple, Optional, Union

import numpy as np
import torch
from PIL import Image

from ..detection.detectors import DETECTORS, build_detector
from ..detection.geometry import IDENTITY, face_crop
from ..image_io import load_image
from ..models import load_fer_model
from ..models.hub import DEFAULT_MODEL_NAME, resolve_model
from .drawing import draw_faces
from .results import build_faces
from .onnx import OnnxImageClassifier, cached_onnx_export
from .tta import TTA_MODES, black_pixel_value, tta_log_probs

#: Classifier backends of `FaceExpressionRecognizer.from_pretrained`.
BACKENDS = ("torch", "onnx")


class DetectedFace(NamedTuple):
    """A face found by `FaceExpressionRecognizer.detect_faces`: what is needed to crop it as the classifier sees it."""

    box: np.ndarray  # [x1, y1, x2, y2] float32, the detector's box in original pixels
    score: float  # the detector's confidence
    eyes: Optional[np.ndarray]  # (2, 2) eye centres for alignment, or None
    adjustment: object  # the detector's `fer_hf.detection.geometry.CropAdjustment`


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
            ``detect_with_landmarks``, ``eye_indices`` and ``crop_adjustment`` like `fer_hf.detection.detectors`'s).
        min_face_size: smallest face searched for, in pixels of the original image.
        margin: each crop is a square of side ``max(w, h) * (1 + margin)`` around the detected box (after
            the detector's crop adjustment).
        detection_threshold: minimum face score (0..1); None (default): the detector's own default
            (MTCNN 0.9, BlazeFace 0.5; Haar has none).
        adjust_crops: move/resize each detector's boxes by its ``crop_adjustment`` (`fer_hf.detection.detectors.
            CROP_ADJUSTMENTS`) before cropping, so that every detector's crops frame the face like the FER2013
            training faces (measured in benchmarks/results/detector_framing.md; for MTCNN the crop is 0.8x the
            unadjusted one). False: the plain ``square_crop_box(box, margin)`` for every detector (the
            crops before per-detector adjustments existed). The ``box`` returned is always the
            detector's own box.
        align: rotate each crop so that the eyes are level, using the detector's eye landmarks (MTCNN,
            BlazeFace); default True: same accuracy on upright faces, better on tilted heads
            (benchmarks/results/detector_framing.md). Detectors without landmarks (Haar, custom detectors without
            ``detect_with_landmarks`` / ``eye_indices``) give unrotated crops.
        max_detection_side: images whose longer side exceeds this many pixels are downscaled for
            detection only (boxes are mapped back, crops come from the full-resolution image).
        device: torch device for the classifier and MTCNN.
        tta: test-time augmentation of each face crop (`fer_hf.inference.tta`): ``"none"`` (default), ``"flip"``
            (face + mirror image, 2x the classifier cost) or ``"ten_crop"`` (10x).
    """

    def __init__(self, model, image_processor, detector="mtcnn", min_face_size: int = 20, margin: float = 0.2,
                 detection_threshold: Optional[float] = None, max_detection_side: int = 1280,
                 device: str = "cpu", tta: str = "none", adjust_crops: bool = True, align: bool = True):
        if tta not in TTA_MODES:
            raise ValueError(f"Unknown TTA mode {tta!r}; choose one of {TTA_MODES}")
        self.tta = tta
        self.model = model.to(device).eval()
        self.backend = getattr(model, "backend", "torch")  # "onnx" for fer_hf.inference.onnx.OnnxImageClassifier
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
        (`fer_hf.inference.onnx.OnnxImageClassifier`, float32; probabilities within 1e-4 of the torch backend).
        The model is exported once to ``onnx_cache_dir`` (default ``$FER_HF_CACHE/onnx`` or
        ``~/.cache/fer_hf/onnx``; `fer_hf.inference.onnx.cached_onnx_export`), or ``name_or_path`` may be an
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

        if backend not in BACKENDS:
            raise ValueError(f"Unknown backend {backend!r}; choose one of {BACKENDS}")
        location = resolve_model(name_or_path)
        if backend == "onnx":
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

    def detect_faces(self, image) -> list:
        """The faces of ``image`` the classifier will see, left to right: one `DetectedFace` (the detector's
        box [x1, y1, x2, y2] in original pixels, its score, the eye points used for alignment or None, and
        the detector's crop adjustment) per face; boxes under one pixel wide or high are left out. Detect
        once and pass the result to `face_crops` / `predict` to classify the same faces several times."""
        image = load_image(image)
        boxes, scores, detector, points = self._detect(image, landmarks=self.align)
        adjustment = getattr(detector, "crop_adjustment", IDENTITY) if self.adjust_crops else IDENTITY
        faces = []
        for i in (np.argsort(boxes[:, 0], kind="stable") if len(boxes) else []):
            x1, y1, x2, y2 = boxes[i]
            if x2 - x1 < 1 or y2 - y1 < 1:
                continue
            eyes = None if points is None else points[i][list(detector.eye_indices)]
            faces.append(DetectedFace(np.asarray(boxes[i], np.float32), float(scores[i]), eyes, adjustment))
        return faces

    def face_crops(self, image, faces: list) -> list:
        """PIL face crops of ``faces`` (`detect_faces` output) from ``image``, as the classifier sees them:
        crop adjustment, margin and (with eye points) alignment."""
        image = load_image(image)
        rgb = image.convert("RGB") if image.mode not in ("L", "RGB") else image
        return [face_crop(rgb, face.box, self.margin, face.adjustment, face.eyes) for face in faces]

    def crop_faces(self, image):
        """The faces of ``image`` as the classifier sees them: (boxes (K, 4) float32 [x1, y1, x2, y2] in
        original pixels (the detector's own boxes), sorted left to right, scores (K,), list of K PIL face
        crops) — the detection, crop adjustment and alignment of `predict`."""
        image = load_image(image)
        faces = self.detect_faces(image)
        boxes = np.asarray([face.box for face in faces], np.float32).reshape(-1, 4)
        return boxes, np.asarray([face.score for face in faces], np.float32), self.face_crops(image, faces)

    @property
    def labels(self) -> list:
        """The model's class names in id order."""
        return [self.id2label[i] for i in range(len(self.id2label))]

    def predict(self, image, faces: Optional[list] = None) -> list:
        """All faces in ``image`` (path, PIL image, RGB numpy array or tensor; any mode; EXIF orientation
        respected) with their expressions, as `fer_hf.inference.results.Face` dicts; ``[]`` when there is no
        face. ``faces``: `detect_faces` output for this image, to classify without detecting again."""
        image = load_image(image)
        faces = self.detect_faces(image) if faces is None else faces
        probabilities = self.classify_faces(self.face_crops(image, faces))
        return build_faces([face.box for face in faces], [face.score for face in faces], probabilities, image.size,
                           self.labels, decimals=4)

    def predict_batch(self, images: Iterable, batch_size: int = 32, return_images: bool = False) -> Iterator:
        """Faces and expressions of many images, the crops of several images classified in one forward pass.

        Each image is loaded and its faces detected and cropped one at a time; the crops are classified
        ``batch_size`` at a time, across image boundaries. The results equal `predict`'s (same boxes,
        probabilities within float rounding, ~1e-7) but are not rounded.

        Args:
            images: paths, file objects, PIL images or RGB arrays.
            batch_size: face crops per forward pass (>= 1). At most ``batch_size`` images wait for their
                crops to be classified.
            return_images: also yield each loaded image (RGB or L PIL image, EXIF-rotated), e.g. to annotate it.

        Yields:
            ``(index, result, image)`` in input order: ``index`` the position in ``images``; ``result`` a list
            of `fer_hf.inference.results.Face` dicts plus ``probabilities`` (float32 array (num_labels,)),
            sorted left to right, ``[]`` without a face; or, for an image that could not be read or
            processed, the exception (never raised). ``image``: the PIL image, or None (without
            ``return_images``, or after an error).

        Raises:
            ValueError: if ``batch_size`` < 1.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        labels = self.labels
        pending, crops = [], []  # pending: [index, image or exception, size, boxes, scores, first crop, n crops]

        def flush():
            try:
                probabilities = np.concatenate([self.classify_faces(crops[i:i + batch_size])
                                                for i in range(0, len(crops), batch_size)] or
                                               [np.zeros((0, len(labels)), np.float32)])
            except Exception:  # noqa: BLE001 - isolate the image whose crops fail, keep the others
                probabilities = None
            for index, image, size, boxes, scores, start, count in pending:
                if isinstance(image, BaseException):
                    yield index, image, None
                    continue
                try:
                    probs = (probabilities[start:start + count] if probabilities is not None
                             else self.classify_faces(crops[start:start + count]))
                    faces = build_faces(boxes, scores, probs, size, labels)
                    for face, p in zip(faces, probs):
                        face["probabilities"] = np.asarray(p, np.float32)
                except Exception as error:  # noqa: BLE001
                    yield index, error, None
                    continue
                yield index, faces, image if return_images else None
            pending.clear()
            crops.clear()

        for index, item in enumerate(images):
            try:
                image = load_image(item)
                boxes, scores, face_crops = self.crop_faces(image)
            except Exception as error:  # noqa: BLE001 - one bad file must not stop the batch
                pending.append([index, error, None, None, None, 0, 0])
            else:
                pending.append([index, image if return_images else None, image.size, boxes, scores, len(crops),
                                len(face_crops)])
                crops.extend(face_crops)
            if len(crops) >= batch_size or len(pending) >= batch_size:
                yield from flush()
        if pending:
            yield from flush()

    def as_map_function(self, image_column: str = "image", output_column: str = "faces", batch_size: int = 32,
                        threads: Optional[int] = 1) -> "DatasetMapFunction":
        """A function for Hugging Face ``datasets.Dataset.map(..., batched=True)`` that adds each image's faces
        as a list column::

            dataset = load_dataset("imagefolder", data_dir="photos", split="train")
            dataset = dataset.map(recognizer.as_map_function(), batched=True, batch_size=32, num_proc=2)
            dataset[0]["faces"]  # [{"box": [x, y, w, h], "score": ..., "emotions": {...}, "top_emotion": ...}]

        Args:
            image_column: column of images (``Image`` feature: PIL images; also paths, bytes or
                ``{"bytes", "path"}`` dicts).
            output_column: name of the added list column; ``<output_column>_status`` is added too (``"ok"``,
                ``"no face"`` or ``"error: <exception>"``: an unreadable image gets an empty list, the others
                go on).
            batch_size: face crops per forward pass (`predict_batch`).
            threads: torch threads in each process that runs the function (1 suits ``num_proc`` > 1; None:
                leave torch's setting).

        Returns:
            a picklable callable ``batch (dict of lists) -> dict of lists`` (the batch with the two columns added).
        """
        return DatasetMapFunction(self, image_column, output_column, batch_size, threads)

    def annotate(self, image, faces: list) -> Image.Image:
        """RGB PIL image: ``image`` with each face's box, top emotion and probability drawn on it
        (`fer_hf.inference.drawing.draw_faces`)."""
        return draw_faces(load_image(image).convert("RGB"), faces)


class DatasetMapFunction:
    """The batched ``datasets.Dataset.map`` function of `FaceExpressionRecognizer.as_map_function`."""

    def __init__(self, recognizer: FaceExpressionRecognizer, image_column: str, output_column: str, batch_size: int,
                 threads: Optional[int]):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.recognizer, self.image_column, self.output_column = recognizer, image_column, output_column
        self.batch_size, self.threads = int(batch_size), threads

    def __call__(self, batch: dict) -> dict:
        import io

        from .results import error_status

        if self.image_column not in batch:
            raise KeyError(f"no column {self.image_column!r} in the dataset (columns: {sorted(batch)})")
        if self.threads:  # in a datasets worker process (num_proc > 1), one thread each avoids oversubscription
            torch.set_num_threads(int(self.threads))

        def source(value):
            if isinstance(value, (bytes, bytearray)):
                return io.BytesIO(bytes(value))
            if isinstance(value, dict):
                return io.BytesIO(value["bytes"]) if value.get("bytes") is not None else value.get("path")
            return value

        images = batch[self.image_column]
        faces_column, status_column = [None] * len(images), [None] * len(images)
        for index, result, _ in self.recognizer.predict_batch([source(v) for v in images], self.batch_size):
            if isinstance(result, BaseException):
                faces_column[index], status_column[index] = [], error_status(result)
                continue
            faces_column[index] = [{"box": [int(v) for v in face["box"]], "score": float(face["score"]),
                                    "emotions": {k: float(v) for k, v in face["emotions"].items()},
                                    "top_emotion": face["top_emotion"], "top_score": float(face["top_score"])}
                                   for face in result]
            status_column[index] = "ok" if result else "no face"
        return {**batch, self.output_column: faces_column, f"{self.output_column}_status": status_column}
