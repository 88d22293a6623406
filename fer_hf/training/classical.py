"""The classical (pre-deep-learning) FER baseline as a fer_hf model: Haar face detection, grayscale, resize,
bilateral denoising, LBP + Gabor features, standardisation, optional PCA, an RBF SVM with calibrated
probabilities. Saved as ``config.json`` + ``model.safetensors`` like every fer_hf model (no pickle).

Pipeline (`ClassicalFERPipeline`), per image:

1. Grayscale, any input mode (`fer_hf.image_processing_fer.FerImageProcessor.convert_and_resize`: the CNNs'
   own conversion, ITU-R 601-2 luma).
2. Optional face detection (``detect_faces=True``): OpenCV's Viola-Jones Haar cascade (`fer_hf.detection.detectors.
   HaarDetector`), the largest face, cropped like the recognizer crops faces (`fer_hf.detection.geometry.face_crop`:
   the Haar crop adjustment, square, ``face_margin``); without a detection the centred square of the whole
   image is used (``face_found`` False). Leave it off for corpora of face crops (FER2013, CK+48).
3. Resize to ``image_size`` x ``image_size`` (PIL bilinear with antialiasing, as the CNNs).
4. Denoising: OpenCV's bilateral filter (Tomasi & Manduchi, 1998), by default. Why: the expression cues are
   edges and fine texture (brows, eyelids, lip contours, nasolabial folds) and LBP codes are made of local
   grey-level comparisons; an edge-preserving filter removes the sensor / JPEG block noise in flat regions
   (FER2013 is JPEG-recompressed 48x48) without blurring those edges, and OpenCV's is ~40x faster than
   ``skimage.restoration.denoise_bilateral`` on a face. ``denoise="nlmeans"`` (OpenCV
   ``fastNlMeansDenoising``, Buades et al., 2005) is offered too: slower, and at 48x48 its patch averaging
   smooths the fine wrinkles LBP needs; ``"none"`` skips the step.
5. Features (concatenated, float32, fixed layout `ClassicalFERPipeline.feature_layout`):

   - LBP (Ojala et al., 2002; face description of Ahonen, Hadid & Pietikainen, TPAMI 2006; for expressions
     Shan, Gong & McOwan, IVC 2009): ``skimage.feature.local_binary_pattern`` with ``lbp_points`` neighbours
     at ``lbp_radius`` and ``lbp_method="nri_uniform"`` (Ahonen's LBP^{u2}: the 58 uniform patterns kept
     apart, one bin for the rest: 59 bins for 8 points), one normalised histogram per cell of an
     ``lbp_grid`` x ``lbp_grid`` grid (8x8-pixel cells at 48 px). Dimension ``lbp_grid**2 * n_bins``.
   - Gabor: a bank of ``skimage.filters.gabor_kernel`` complex kernels, ``gabor_frequencies`` (cycles per
     pixel of the resized face) x ``gabor_orientations`` angles in [0, pi), bandwidth ``gabor_bandwidth``;
     the response magnitude of the face (standardised to zero mean and unit variance first, so the
     features ignore global contrast) summarised by its mean and standard deviation in each cell of a
     ``gabor_grid`` x ``gabor_grid`` grid. Dimension ``2 * len(frequencies) * orientations * gabor_grid**2``.
     The convolution is done for the whole batch at once in the Fourier domain with the border mirrored,
     which equals ``skimage.filters.gabor`` (``mode="reflect"``) to float32 precision (tested) and is far
     faster than its per-image spatial convolution with 35x35+ kernels.

6. ``sklearn.preprocessing.StandardScaler``; optional ``sklearn.decomposition.PCA`` (``pca_components``:
   a count, a variance fraction in (0, 1), or None for none).
7. ``sklearn.svm.SVC`` (RBF kernel by default, one-vs-one, ``C``, ``gamma``).
8. Probabilities: a multinomial ``sklearn.linear_model.LogisticRegression`` (``calibration_C``) on the SVM's
   K (K - 1) / 2 one-vs-one decision values, fitted on out-of-fold decision values (``calibration_folds``-fold
   cross-validation of the training set, by subject when ``groups`` are given). This is Platt scaling (Platt,
   1999) with one multinomial map over all pairwise margins instead of a sigmoid per pair plus pairwise
   coupling; ``SVC(probability=True)`` (libsvm's version of the latter) is deprecated since scikit-learn 1.9.
   On a FER2013 subset it gave a lower log-loss and a higher accuracy than the same map on the one-vs-rest
   scores and than ``CalibratedClassifierCV(SVC(), ensemble=False, method="sigmoid")``, and was slightly behind
   the deprecated ``SVC(probability=True)``, which it replaces. ``predict`` is the argmax of
   ``predict_proba`` (so it always agrees with the probabilities shown).

Serialization (`ClassicalFERPipeline.save_pretrained` / `from_pretrained`): JSON + safetensors, chosen over
skops because (a) the rest of fer_hf ships ``config.json`` + ``model.safetensors`` and loads safetensors only
(GUIDE.md section 2), (b) loading can then never construct an object of a type named in the file: the four
fitted steps are objects of exactly four scikit-learn classes fixed in this module (`TRUSTED_ESTIMATORS`),
and their state is restored from plain data only (JSON scalars / strings / lists, numeric tensors), (c) it
adds no dependency and every parameter (support vectors, dual coefficients, scaler mean / scale, PCA
components, calibration weights) is an inspectable tensor. ``model.safetensors`` holds the arrays; its
header metadata holds, per step, the class name and the non-array attributes as JSON. Loading refuses any
other class, any value that is not plain data, a missing or extra tensor, and a model whose stored
self-check (probabilities of saved feature rows) is not reproduced: a tampered or incompatible file fails
with `UnsafeModelError` / ``ValueError`` instead of loading. The state layout is scikit-learn's (the same
attributes skops and pickle restore), so a model is tied to the scikit-learn version recorded in
``config.json`` (another version warns, and the self-check catches incompatibilities).

`train_classical` runs the evaluation protocols of GUIDE.md section 4 (FER2013: train on Training, choose C
and gamma on PublicTest, report PrivateTest and PublicTest; CK+ / JAFFE: subject-independent k-fold,
leave-one-subject-out, or random stratified k-fold labelled NOT subject-independent) and writes
``eval_results.json`` / ``cv_results.json`` (and a model card for FER2013). CLI: ``fer-hf train-classical``.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..data import leave_one_subject_out, stratified_kfold, subject_kfold
from ..data.registry import CORPORA, load_corpus
from ..detection.detectors import HaarDetector
from ..detection.geometry import face_crop
from ..evaluation.metrics import classification_metrics
from ..image_processing_fer import FerImageProcessor
from .modelcard import _COMMON_SECTIONS, _front_matter, _per_class_table, _results_table

MODEL_TYPE = "fer_classical"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
DENOISERS = ("bilateral", "nlmeans", "none")
CV_MODES = ("none", "subject", "loso", "stratified")
CLASSICAL_DATASETS = ("fer2013", "ckplus", "jaffe")
#: Hyperparameter grid searched by `train_classical`: SVM ``C`` values and ``gamma`` as multiples of
#: scikit-learn's ``"scale"`` value 1 / (n_features * variance) of the (standardised, PCA-projected) features.
DEFAULT_GRID = {"C": (1.0, 10.0, 100.0), "gamma_factor": (0.3, 1.0, 2.0)}
#: Steps of a fitted model, in order, and the only classes `from_pretrained` will construct.
STEPS = ("scaler", "pca", "svm", "calibrator")


def _trusted_estimators() -> dict:
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    return {f"{cls.__module__.split('._')[0]}.{cls.__name__}": cls
            for cls in (StandardScaler, PCA, SVC, LogisticRegression)}


#: "module.Class" -> class: the only types `ClassicalFERPipeline.from_pretrained` instantiates.
TRUSTED_ESTIMATORS = ("sklearn.preprocessing.StandardScaler", "sklearn.decomposition.PCA", "sklearn.svm.SVC",
                      "sklearn.linear_model.LogisticRegression")


class UnsafeModelError(ValueError):
    """A saved classical model holds something other than the trusted classes and plain data, or fails its
    self-check (tampered or incompatible file); it is refused, nothing from it is used."""


# ----------------------------------------------------------------------------------------------------------
# state <-> JSON + tensors (plain data only)
# ----------------------------------------------------------------------------------------------------------
_NUMERIC_KINDS = "biuf"  # bool, signed int, unsigned int, float


def _encode(value, key: str, tensors: dict):
    """JSON-able encoding of an estimator attribute; numeric arrays go to ``tensors[key]``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, np.generic):
        return value
    if isinstance(value, np.generic):
        if value.dtype.kind not in _NUMERIC_KINDS:
            raise TypeError(f"{key}: numpy scalar of dtype {value.dtype} cannot be saved as plain data")
        return {"__scalar__": value.dtype.str, "value": value.item()}
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in _NUMERIC_KINDS or value.dtype.hasobject:
            raise TypeError(f"{key}: array of dtype {value.dtype} cannot be saved as plain data")
        tensors[key] = np.ascontiguousarray(value)
        return {"__tensor__": key}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, f"{key}.{i}", tensors) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{key}.{i}", tensors) for i, v in enumerate(value)]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f"{key}: dict keys must be strings")
        return {"__dict__": {k: _encode(v, f"{key}.{k}", tensors) for k, v in value.items()}}
    raise TypeError(f"{key}: {type(value).__module__}.{type(value).__name__} cannot be saved as plain data "
                    "(fer_classical saves JSON + safetensors only, never pickle)")


def _decode(value, key: str, tensors: dict, used: set):
    """Inverse of `_encode`; anything but the encodings it writes raises `UnsafeModelError`."""
    if value is None or isinstance(value, (bool, str, int, float)):
        return value
    if isinstance(value, list):
        return [_decode(v, f"{key}.{i}", tensors, used) for i, v in enumerate(value)]
    if not isinstance(value, dict) or len(value) not in (1, 2):
        raise UnsafeModelError(f"{key}: unexpected value {str(value)[:80]!r}")
    if set(value) == {"__tensor__"}:
        name = value["__tensor__"]
        if name not in tensors:
            raise UnsafeModelError(f"{key}: tensor {name!r} missing from {WEIGHTS_NAME}")
        used.add(name)
        return tensors[name]
    if set(value) == {"__scalar__", "value"}:
        dtype = np.dtype(str(value["__scalar__"]))
        if dtype.kind not in _NUMERIC_KINDS or not isinstance(value["value"], (bool, int, float)):
            raise UnsafeModelError(f"{key}: scalar of dtype {dtype} is not plain numeric data")
        return dtype.type(value["value"])
    if set(value) == {"__tuple__"} and isinstance(value["__tuple__"], list):
        return tuple(_decode(v, f"{key}.{i}", tensors, used) for i, v in enumerate(value["__tuple__"]))
    if set(value) == {"__dict__"} and isinstance(value["__dict__"], dict):
        return {str(k): _decode(v, f"{key}.{k}", tensors, used) for k, v in value["__dict__"].items()}
    raise UnsafeModelError(f"{key}: unknown encoding {sorted(value)!r} (only plain data and tensors are allowed)")


def _identifier(name) -> bool:
    return isinstance(name, str) and name.isidentifier() and not name.startswith("__")


# ----------------------------------------------------------------------------------------------------------
# the pipeline
# ----------------------------------------------------------------------------------------------------------
class ClassicalFERPipeline:
    """Classical facial expression classifier: (Haar detection) -> grayscale -> resize -> denoise ->
    LBP + Gabor features -> StandardScaler -> (PCA) -> RBF SVM -> calibrated probabilities. See the module
    docstring for the method, its sources and the reasons for each choice.

    Args:
        label_names: class names in id order; ``labels`` given to `fit` are ids into this list, and
            `predict_proba` has one column per name (0 for a class without training images). Default:
            ``"0"`` .. ``"K-1"`` for the ids seen by `fit`.
        image_size: side of the square face the features are computed on, in pixels (48 = FER2013 / CK+48).
        detect_faces: run the Haar cascade and crop the largest face first (for whole images such as JAFFE's
            256x256 frames); False for images that are already face crops.
        face_margin: extra border of the square face crop, as a fraction of the (adjusted) box side.
        min_face_size: smallest face the cascade looks for, in pixels of the input image.
        denoise: ``"bilateral"`` (default; ``cv2.bilateralFilter``), ``"nlmeans"``
            (``cv2.fastNlMeansDenoising``) or ``"none"``.
        bilateral_diameter: bilateral filter neighbourhood diameter, in pixels.
        bilateral_sigma_color: bilateral filter range sigma, in grey levels (0..255).
        bilateral_sigma_space: bilateral filter spatial sigma, in pixels.
        nlmeans_h: filter strength of non-local means (grey levels).
        lbp_points, lbp_radius: LBP neighbours and circle radius (pixels).
        lbp_method: ``skimage.feature.local_binary_pattern`` method: ``"nri_uniform"`` (default, Ahonen's
            u2: ``P * (P - 1) + 3`` bins) or ``"uniform"`` (rotation-invariant uniform: ``P + 2`` bins).
        lbp_grid: the face is split into ``lbp_grid`` x ``lbp_grid`` cells, one LBP histogram each.
        gabor_frequencies: Gabor frequencies in cycles per pixel of the resized face.
        gabor_orientations: number of orientations, evenly spaced in [0, pi).
        gabor_bandwidth: bandwidth of the Gabor kernels in octaves (``skimage.filters.gabor_kernel``).
        gabor_grid: cells per side over which Gabor magnitude mean / std are pooled.
        pca_components: None (no PCA), an int (number of components) or a float in (0, 1) (fraction of
            variance kept).
        kernel: SVM kernel (``"rbf"`` or ``"linear"``).
        C: SVM regularisation parameter.
        gamma: RBF kernel coefficient: a float, or ``"scale"`` (1 / (n_features * variance)).
        class_weight: None or ``"balanced"`` (SVM class weights inversely proportional to frequency).
        calibration_folds: folds of the cross-validation that produces the out-of-fold decision values the
            probability map is fitted on.
        calibration_C: inverse L2 regularisation of the probability map (``LogisticRegression(C=...)``).
        cache_size: libsvm kernel cache in MB (more = faster fits on large training sets).
        seed: seed of the calibration folds and PCA's randomised solver.
    """

    def __init__(self, label_names: Optional[Sequence[str]] = None, image_size: int = 48, detect_faces: bool = False,
                 face_margin: float = 0.2, min_face_size: int = 20, denoise: str = "bilateral",
                 bilateral_diameter: int = 5, bilateral_sigma_color: float = 25.0, bilateral_sigma_space: float = 3.0,
                 nlmeans_h: float = 7.0, lbp_points: int = 8, lbp_radius: float = 1, lbp_method: str = "nri_uniform",
                 lbp_grid: int = 6, gabor_frequencies: Sequence[float] = (0.08, 0.16, 0.32),
                 gabor_orientations: int = 4, gabor_bandwidth: float = 1.0, gabor_grid: int = 4,
                 pca_components=None, kernel: str = "rbf", C: float = 10.0, gamma="scale",
                 class_weight: Optional[str] = None, calibration_folds: int = 3, calibration_C: float = 0.1,
                 cache_size: float = 500.0,
                 seed: int = 0):
        if denoise not in DENOISERS:
            raise ValueError(f"denoise must be one of {DENOISERS}, not {denoise!r}")
        if lbp_method not in ("nri_uniform", "uniform"):
            raise ValueError(f"lbp_method must be 'nri_uniform' or 'uniform', not {lbp_method!r}")
        if image_size % lbp_grid or image_size % gabor_grid:
            raise ValueError(f"image_size {image_size} must be a multiple of lbp_grid {lbp_grid} and gabor_grid "
                             f"{gabor_grid}")
        self.label_names = list(label_names) if label_names is not None else None
        self.image_size = int(image_size)
        self.detect_faces = bool(detect_faces)
        self.face_margin = float(face_margin)
        self.min_face_size = int(min_face_size)
        self.denoise = denoise
        self.bilateral_diameter = int(bilateral_diameter)
        self.bilateral_sigma_color = float(bilateral_sigma_color)
        self.bilateral_sigma_space = float(bilateral_sigma_space)
        self.nlmeans_h = float(nlmeans_h)
        self.lbp_points = int(lbp_points)
        self.lbp_radius = float(lbp_radius)
        self.lbp_method = lbp_method
        self.lbp_grid = int(lbp_grid)
        self.gabor_frequencies = [float(f) for f in gabor_frequencies]
        self.gabor_orientations = int(gabor_orientations)
        self.gabor_bandwidth = float(gabor_bandwidth)
        self.gabor_grid = int(gabor_grid)
        self.pca_components = pca_components
        self.kernel = kernel
        self.C = float(C)
        self.gamma = gamma
        self.class_weight = class_weight
        self.calibration_folds = int(calibration_folds)
        self.calibration_C = float(calibration_C)
        self.cache_size = float(cache_size)
        self.seed = int(seed)
        self.steps_ = None  # dict of the fitted sklearn steps, see STEPS
        self._detector = None
        self._gabor_bank = None

    # -------------------------------------------------------------------------------- settings / layout
    FEATURE_SETTINGS = ("image_size", "detect_faces", "face_margin", "min_face_size", "denoise", "bilateral_diameter",
                        "bilateral_sigma_color", "bilateral_sigma_space", "nlmeans_h", "lbp_points", "lbp_radius",
                        "lbp_method", "lbp_grid", "gabor_frequencies", "gabor_orientations", "gabor_bandwidth",
                        "gabor_grid")
    CLASSIFIER_SETTINGS = ("pca_components", "kernel", "C", "gamma", "class_weight", "calibration_folds",
                           "calibration_C", "cache_size", "seed")

    def get_settings(self) -> dict:
        """Every constructor argument but ``label_names``, as plain JSON data."""
        return {name: getattr(self, name) for name in self.FEATURE_SETTINGS + self.CLASSIFIER_SETTINGS}

    @property
    def lbp_bins(self) -> int:
        p = self.lbp_points
        return p * (p - 1) + 3 if self.lbp_method == "nri_uniform" else p + 2

    @property
    def feature_layout(self) -> dict:
        """{block: (start, stop)} column ranges of the feature vector: ``lbp`` (cell-major: cell
        ``row * lbp_grid + col``, then bin) and ``gabor`` (statistic (mean, std), then frequency, orientation,
        cell)."""
        n_lbp = self.lbp_grid ** 2 * self.lbp_bins
        n_gabor = 2 * len(self.gabor_frequencies) * self.gabor_orientations * self.gabor_grid ** 2
        return {"lbp": (0, n_lbp), "gabor": (n_lbp, n_lbp + n_gabor)}

    @property
    def feature_dim(self) -> int:
        return self.feature_layout["gabor"][1]

    @property
    def num_labels(self) -> int:
        return len(self.label_names) if self.label_names is not None else 0

    # -------------------------------------------------------------------------------- preprocessing
    def _detector_instance(self):
        if self._detector is None:
            self._detector = HaarDetector(min_face_size=self.min_face_size)
        return self._detector

    def preprocess(self, images):
        """Images -> (faces uint8 (N, image_size, image_size), face_found bool (N,)), steps 1-4.

        ``images``: a sequence of PIL images / numpy arrays / torch tensors (any mode, see
        `fer_hf.image_processing_fer.to_pil_image`) or a uint8 array (N, H, W). ``face_found`` is True when
        detection is off, or when the cascade found a face (else the centred square of the image was used).
        """
        import cv2
        from PIL import Image

        if isinstance(images, np.ndarray) and images.ndim == 2:
            images = images[None]
        to_gray = FerImageProcessor(num_channels=1, do_resize=False)
        resize = FerImageProcessor(num_channels=1, size={"height": self.image_size, "width": self.image_size})
        faces = np.empty((len(images), self.image_size, self.image_size), np.uint8)
        found = np.ones(len(images), bool)
        for i, image in enumerate(images):
            gray = to_gray.convert_and_resize(image)[..., 0]
            if self.detect_faces:
                pil = Image.fromarray(gray)
                detector = self._detector_instance()
                boxes, _ = detector.detect(pil)
                if len(boxes):
                    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
                    pil = face_crop(pil, boxes[int(np.argmax(areas))], self.face_margin, detector.crop_adjustment)
                else:
                    found[i] = False
                    h, w = gray.shape
                    side = min(h, w)
                    left, top = (w - side) // 2, (h - side) // 2
                    pil = pil.crop((left, top, left + side, top + side))
                gray = np.asarray(pil)
            face = resize.convert_and_resize(gray)[..., 0]
            if self.denoise == "bilateral":
                face = cv2.bilateralFilter(face, self.bilateral_diameter, self.bilateral_sigma_color,
                                           self.bilateral_sigma_space)
            elif self.denoise == "nlmeans":
                face = cv2.fastNlMeansDenoising(face, None, h=self.nlmeans_h, templateWindowSize=7,
                                                searchWindowSize=21)
            faces[i] = face
        return faces, found

    # -------------------------------------------------------------------------------- features
    def lbp_features(self, faces: np.ndarray) -> np.ndarray:
        """uint8 faces (N, S, S) -> float32 (N, lbp_grid**2 * lbp_bins): per cell, the fraction of its pixels
        with each LBP code (``skimage.feature.local_binary_pattern``)."""
        from skimage.feature import local_binary_pattern

        n, size = len(faces), self.image_size
        codes = np.empty((n, size, size), np.int64)
        for i, face in enumerate(faces):
            codes[i] = local_binary_pattern(face, self.lbp_points, self.lbp_radius, method=self.lbp_method)
        g, cell, bins = self.lbp_grid, size // self.lbp_grid, self.lbp_bins
        cell_id = (np.arange(size) // cell)[:, None] * g + (np.arange(size) // cell)[None, :]  # (S, S)
        flat = (np.arange(n)[:, None, None] * (g * g) + cell_id[None]) * bins + codes
        counts = np.bincount(flat.ravel(), minlength=n * g * g * bins).reshape(n, g * g * bins)
        return (counts / float(cell * cell)).astype(np.float32)

    def gabor_bank(self):
        """list of complex64 kernels (``skimage.filters.gabor_kernel``), frequency-major then orientation."""
        if self._gabor_bank is None:
            from skimage.filters import gabor_kernel

            thetas = np.arange(self.gabor_orientations) * np.pi / self.gabor_orientations
            self._gabor_bank = [gabor_kernel(f, theta=t, bandwidth=self.gabor_bandwidth).astype(np.complex64)
                                for f in self.gabor_frequencies for t in thetas]
        return self._gabor_bank

    def gabor_magnitudes(self, faces: np.ndarray) -> np.ndarray:
        """uint8 faces (N, S, S) -> float32 magnitudes (N, n_filters, S, S) of the Gabor bank's responses to
        each face standardised to zero mean / unit variance; equal to ``skimage.filters.gabor(face, f,
        theta, bandwidth=..., mode="reflect")`` magnitudes (batched FFT convolution, mirrored border)."""
        from scipy import fft

        size = self.image_size
        x = faces.astype(np.float32)
        x -= x.mean(axis=(1, 2), keepdims=True)
        x /= x.std(axis=(1, 2), keepdims=True) + 1e-6
        out = np.empty((len(faces), len(self.gabor_bank()), size, size), np.float32)
        spectra = {}  # one FFT of the batch per padding width (kernels of one frequency share a size)
        for j, kernel in enumerate(self.gabor_bank()):
            kh, kw = kernel.shape
            half = max(kh, kw) // 2
            if half not in spectra:
                # ndimage's "reflect" border (d c b a | a b c d) is numpy's "symmetric"; the FFT is at least
                # as large as the full linear convolution, so its circular wrap-around never lands in the
                # kept window
                padded = np.pad(x, ((0, 0), (half, half), (half, half)), mode="symmetric")
                shape = [fft.next_fast_len(size + 4 * half + 1)] * 2
                spectra[half] = (fft.fft2(padded, s=shape, axes=(1, 2), workers=1), shape)
            spectrum, shape = spectra[half]
            response = fft.ifft2(spectrum * fft.fft2(kernel, s=shape), axes=(1, 2), workers=1)
            r0, c0 = half + kh // 2, half + kw // 2
            out[:, j] = np.abs(response[:, r0:r0 + size, c0:c0 + size])
        return out

    def gabor_features(self, faces: np.ndarray) -> np.ndarray:
        """uint8 faces (N, S, S) -> float32 (N, 2 * n_filters * gabor_grid**2): mean, then std, of each
        filter's magnitude in each cell."""
        mags = self.gabor_magnitudes(faces)
        n, f, size, g = mags.shape[0], mags.shape[1], self.image_size, self.gabor_grid
        cells = mags.reshape(n, f, g, size // g, g, size // g)
        mean = cells.mean(axis=(3, 5)).reshape(n, -1)
        std = cells.std(axis=(3, 5)).reshape(n, -1)
        return np.concatenate([mean, std], axis=1).astype(np.float32)

    def features_from_faces(self, faces: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """uint8 preprocessed faces (N, S, S) -> float32 features (N, feature_dim) (see `feature_layout`)."""
        faces = np.asarray(faces, np.uint8)
        if faces.ndim != 3 or faces.shape[1:] != (self.image_size, self.image_size):
            raise ValueError(f"faces must be (N, {self.image_size}, {self.image_size}) uint8, got {faces.shape}")
        out = np.empty((len(faces), self.feature_dim), np.float32)
        split = self.feature_layout["lbp"][1]
        for start in range(0, len(faces), batch_size):
            chunk = faces[start:start + batch_size]
            out[start:start + len(chunk), :split] = self.lbp_features(chunk)
            out[start:start + len(chunk), split:] = self.gabor_features(chunk)
        return out

    def extract_features(self, images, batch_size: int = 256, return_face_found: bool = False,
                         desc: Optional[str] = None):
        """Images (see `preprocess`) -> float32 features (N, feature_dim); deterministic (no randomness).
        With ``return_face_found``: (features, face_found (N,) bool). ``desc``: show a progress bar."""
        features = np.empty((len(images), self.feature_dim), np.float32)
        found = np.ones(len(images), bool)
        for start in tqdm(range(0, len(images), batch_size), desc=desc, disable=desc is None, unit="batch",
                          mininterval=5):
            chunk = images[start:start + batch_size]
            faces, found[start:start + len(chunk)] = self.preprocess(chunk)
            features[start:start + len(chunk)] = self.features_from_faces(faces, batch_size)
        return (features, found) if return_face_found else features

    # -------------------------------------------------------------------------------- classifier
    def _make_svm(self, C=None, gamma=None):
        from sklearn.svm import SVC

        return SVC(kernel=self.kernel, C=self.C if C is None else C, gamma=self.gamma if gamma is None else gamma,
                   class_weight=self.class_weight, cache_size=self.cache_size, decision_function_shape="ovo")

    def make_transform(self):
        """The unfitted StandardScaler (+ PCA) steps, as a list of (name, estimator)."""
        from sklearn.decomposition import PCA
        from sklearn.preprocessing import StandardScaler

        steps = [("scaler", StandardScaler())]
        if self.pca_components is not None:
            steps.append(("pca", PCA(n_components=self.pca_components, random_state=self.seed)))
        return steps

    @staticmethod
    def _decision(svm, X, classes) -> np.ndarray:
        """(N, P) one-vs-one decision values of ``svm`` (``decision_function_shape="ovo"``), one column per
        pair (a, b), a < b, of ``classes`` (P = K (K - 1) / 2, pairs in scikit-learn's order); a pair the SVM
        was not trained on (a class missing from a calibration fold) gets 0."""
        values = svm.decision_function(X)
        values = values.reshape(len(X), -1)
        classes = [int(c) for c in classes]
        pairs = {(a, b): j for j, (a, b) in enumerate((a, b) for i, a in enumerate(classes) for b in classes[i + 1:])}
        seen = [int(c) for c in svm.classes_]
        out = np.zeros((len(X), len(pairs)), np.float64)
        for j, pair in enumerate((a, b) for i, a in enumerate(seen) for b in seen[i + 1:]):
            out[:, pairs[pair]] = values[:, j]
        return out

    def _transform(self, X):
        X = np.asarray(X, np.float32)
        for name in ("scaler", "pca"):
            if self.steps_.get(name) is not None:
                X = self.steps_[name].transform(X)
        return X

    def fit_features(self, X, labels, groups=None):
        """Fit the scaler (+ PCA), the SVM and the probability map on features ``X`` (N, feature_dim) and
        integer ``labels`` (N,) (ids into ``label_names``). ``groups`` (N,) (e.g. subjects) keep each group in
        one calibration fold. Returns self. Raises ValueError with fewer than 2 classes."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

        X = np.asarray(X, np.float32)
        y = np.asarray(labels).astype(np.int64).reshape(-1)
        if X.shape != (len(y), self.feature_dim):
            raise ValueError(f"features must be ({len(y)}, {self.feature_dim}), got {X.shape}")
        classes = np.unique(y)
        if len(classes) < 2:
            raise ValueError(f"need at least 2 classes to fit, got {classes.tolist()}")
        if self.label_names is None:
            self.label_names = [str(i) for i in range(int(y.max()) + 1)]
        if y.min() < 0 or y.max() >= self.num_labels:
            raise ValueError(f"labels must be ids in 0..{self.num_labels - 1} (label_names {self.label_names})")
        steps = {name: est for name, est in self.make_transform()}
        Z = X
        for name in ("scaler", "pca"):
            if name in steps:
                Z = steps[name].fit_transform(Z)
        # out-of-fold decision values for the probability map
        k = max(2, self.calibration_folds)
        oof = np.zeros((len(y), len(classes) * (len(classes) - 1) // 2))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The least populated class")
            if groups is not None and len(np.unique(groups)) >= k:
                splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=self.seed)
                splits = list(splitter.split(Z, y, np.asarray(groups)))
            else:
                splits = list(StratifiedKFold(n_splits=k, shuffle=True, random_state=self.seed).split(Z, y))
        for train, held in splits:
            if len(np.unique(y[train])) < 2:
                raise ValueError("a calibration fold has a single class; use fewer calibration_folds")
            oof[held] = self._decision(self._make_svm().fit(Z[train], y[train]), Z[held], classes)
        calibrator = LogisticRegression(C=self.calibration_C, max_iter=2000)
        calibrator.fit(oof, y)
        steps["svm"] = self._make_svm().fit(Z, y)
        steps["calibrator"] = calibrator
        self.steps_ = steps
        return self

    def fit(self, images, labels, groups=None):
        """Extract features of ``images`` and `fit_features` on them. Returns self."""
        return self.fit_features(self.extract_features(images), labels, groups)

    def _check_fitted(self):
        if self.steps_ is None:
            raise RuntimeError("ClassicalFERPipeline is not fitted: call fit() or from_pretrained()")

    def predict_proba_features(self, X) -> np.ndarray:
        """Features (N, feature_dim) -> float64 probabilities (N, num_labels), columns in ``label_names``
        order, rows summing to 1 (0 for classes without training images)."""
        self._check_fitted()
        X = np.asarray(X, np.float32)
        if X.ndim != 2 or X.shape[1] != self.feature_dim:
            raise ValueError(f"features must be (N, {self.feature_dim}), got {X.shape}")
        if len(X) == 0:
            return np.zeros((0, self.num_labels), np.float64)
        calibrator, svm = self.steps_["calibrator"], self.steps_["svm"]
        probs = calibrator.predict_proba(self._decision(svm, self._transform(X), calibrator.classes_))
        out = np.zeros((len(X), self.num_labels), np.float64)
        out[:, calibrator.classes_.astype(np.int64)] = probs
        return out

    def predict_proba(self, images) -> np.ndarray:
        """Images (see `preprocess`) -> float64 probabilities (N, num_labels) in ``label_names`` order."""
        return self.predict_proba_features(self.extract_features(images))

    def predict(self, images) -> np.ndarray:
        """Images -> int64 label ids (N,): the argmax of `predict_proba`."""
        return self.predict_proba(images).argmax(axis=1)

    def decision_accuracy_features(self, X, labels) -> float:
        """Accuracy of the SVM's own (one-vs-one vote) predictions on features; used for model selection."""
        self._check_fitted()
        return float(np.mean(self.steps_["svm"].predict(self._transform(X)) == np.asarray(labels)))

    # -------------------------------------------------------------------------------- save / load
    def to_config(self) -> dict:
        import cv2
        import skimage
        import sklearn

        self._check_fitted()
        config = {"model_type": MODEL_TYPE, "format_version": FORMAT_VERSION,
                  "architectures": ["ClassicalFERPipeline"],
                  "id2label": {str(i): n for i, n in enumerate(self.label_names)},
                  "label2id": {n: i for i, n in enumerate(self.label_names)},
                  "num_labels": self.num_labels, "feature_dim": self.feature_dim,
                  "feature_layout": {k: list(v) for k, v in self.feature_layout.items()},
                  "steps": [s for s in STEPS if self.steps_.get(s) is not None]}
        config.update(self.get_settings())
        svm = self.steps_["svm"]
        config["fitted"] = {"svm_gamma": float(svm._gamma), "n_support_vectors": int(len(svm.support_)),
                            "pca_components": int(self.steps_["pca"].n_components_) if "pca" in self.steps_ else None}
        config["versions"] = {"scikit-learn": sklearn.__version__, "scikit-image": skimage.__version__,
                              "opencv": cv2.__version__, "numpy": np.__version__}
        return config

    def save_pretrained(self, save_directory, self_check_features=None) -> Path:
        """Write ``config.json`` (settings, labels, versions) and ``model.safetensors`` (every fitted array;
        header metadata: the steps' class names and non-array attributes as JSON, plus a self-check: up to 16
        feature rows and their probabilities, recomputed by `from_pretrained`). No pickle anywhere.
        ``self_check_features``: (M, feature_dim) rows to use (default: 16 deterministic pseudo-random rows
        around the scaler's mean). Returns the folder."""
        from safetensors.numpy import save_file

        self._check_fitted()
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        tensors, state = {}, {}
        for name in STEPS:
            est = self.steps_.get(name)
            if est is None:
                continue
            cls = f"{type(est).__module__.split('._')[0]}.{type(est).__name__}"
            if cls not in TRUSTED_ESTIMATORS:
                raise TypeError(f"step {name}: {cls} is not one of {TRUSTED_ESTIMATORS}")
            state[name] = {"class": cls, "state": {k: _encode(v, f"{name}.{k}", tensors)
                                                   for k, v in est.__getstate__().items()}}
        if self_check_features is None:
            scaler = self.steps_["scaler"]
            noise = np.random.default_rng(12345).standard_normal((16, self.feature_dim))
            self_check_features = scaler.mean_ + noise * scaler.scale_ * 0.5
        check = np.asarray(self_check_features, np.float32)[:16]
        tensors["self_check.features"] = np.ascontiguousarray(check)
        tensors["self_check.probabilities"] = self.predict_proba_features(check)
        metadata = {"format": f"{MODEL_TYPE}/{FORMAT_VERSION}", "estimators": json.dumps(state)}
        save_file(tensors, str(folder / WEIGHTS_NAME), metadata=metadata)
        (folder / CONFIG_NAME).write_text(json.dumps(self.to_config(), indent=2) + "\n")
        return folder

    @classmethod
    def from_pretrained(cls, folder, self_check_tolerance: float = 1e-6) -> "ClassicalFERPipeline":
        """Load a folder written by `save_pretrained` (local path, or a Hub model id downloaded with
        ``huggingface_hub.snapshot_download``). Reads only ``config.json`` (JSON) and ``model.safetensors``.

        Raises:
            FileNotFoundError: if either file is missing.
            UnsafeModelError: for a class outside `TRUSTED_ESTIMATORS`, a value that is not plain data, a
                missing / unused tensor, inconsistent shapes, or probabilities that differ from the stored
                self-check by more than ``self_check_tolerance`` (tampered or incompatible file).
            ValueError: if ``config.json`` is not a ``fer_classical`` model.
        """
        from safetensors import safe_open
        from safetensors.numpy import load_file

        path = Path(folder)
        if not path.is_dir():
            from huggingface_hub import snapshot_download

            path = Path(snapshot_download(str(folder), allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, "README.md"]))
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            if not (path / name).is_file():
                raise FileNotFoundError(f"{path / name} not found: not a saved ClassicalFERPipeline")
        config = json.loads((path / CONFIG_NAME).read_text())
        if config.get("model_type") != MODEL_TYPE:
            raise ValueError(f"{path / CONFIG_NAME}: model_type {config.get('model_type')!r}, expected {MODEL_TYPE!r}")
        if config.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path}: format_version {config.get('format_version')!r} is not {FORMAT_VERSION}")
        settings = {k: config[k] for k in cls.FEATURE_SETTINGS + cls.CLASSIFIER_SETTINGS if k in config}
        labels = [config["id2label"][str(i)] for i in range(int(config["num_labels"]))]
        model = cls(label_names=labels, **settings)
        with safe_open(str(path / WEIGHTS_NAME), framework="numpy") as f:
            metadata = f.metadata() or {}
        if metadata.get("format") != f"{MODEL_TYPE}/{FORMAT_VERSION}" or "estimators" not in metadata:
            raise UnsafeModelError(f"{path / WEIGHTS_NAME}: not a {MODEL_TYPE} weights file (metadata format "
                                   f"{metadata.get('format')!r})")
        tensors = load_file(str(path / WEIGHTS_NAME))
        try:
            state = json.loads(metadata["estimators"])
        except json.JSONDecodeError as error:
            raise UnsafeModelError(f"{path / WEIGHTS_NAME}: estimator metadata is not valid JSON ({error})") from None
        trusted = _trusted_estimators()
        if not isinstance(state, dict) or not set(state) <= set(STEPS) or not {"scaler", "svm", "calibrator"} <= set(state):
            raise UnsafeModelError(f"{path / WEIGHTS_NAME}: steps {list(state) if isinstance(state, dict) else state!r}"
                                   f" are not the expected {STEPS}")
        used = {"self_check.features", "self_check.probabilities"}
        steps = {}
        for name in STEPS:
            if name not in state:
                continue
            entry = state[name]
            if not isinstance(entry, dict) or set(entry) != {"class", "state"} or not isinstance(entry["state"], dict):
                raise UnsafeModelError(f"step {name}: malformed entry")
            if entry["class"] not in TRUSTED_ESTIMATORS or entry["class"] not in trusted:
                raise UnsafeModelError(f"step {name}: untrusted type {entry['class']!r}; only {TRUSTED_ESTIMATORS} "
                                       "are loaded")
            attributes = {}
            for key, value in entry["state"].items():
                if not _identifier(key):
                    raise UnsafeModelError(f"step {name}: attribute name {key!r} refused")
                attributes[key] = _decode(value, f"{name}.{key}", tensors, used)
            estimator_cls = trusted[entry["class"]]
            estimator = estimator_cls.__new__(estimator_cls)
            estimator.__setstate__(attributes)  # sklearn warns (InconsistentVersionWarning) on another version
            steps[name] = estimator
        extra = set(tensors) - used
        if extra:
            raise UnsafeModelError(f"{path / WEIGHTS_NAME}: unexpected tensors {sorted(extra)[:5]}")
        calibrator_classes = np.asarray(getattr(steps["calibrator"], "classes_", []))
        if (("pca" in steps) != (model.pca_components is not None)
                or getattr(steps["scaler"], "n_features_in_", None) != model.feature_dim
                or not set(calibrator_classes.tolist()) <= set(range(model.num_labels))):
            raise UnsafeModelError(f"{path}: fitted steps do not match config.json (feature_dim {model.feature_dim}, "
                                   f"{model.num_labels} labels)")
        model.steps_ = steps
        try:
            reproduced = model.predict_proba_features(tensors["self_check.features"])
        except Exception as error:  # noqa: BLE001 - any failure here means an unusable file
            raise UnsafeModelError(f"{path}: the loaded model cannot run ({type(error).__name__}: {error})") from None
        expected = tensors["self_check.probabilities"]
        if reproduced.shape != expected.shape or not np.allclose(reproduced, expected, atol=self_check_tolerance,
                                                                 rtol=0):
            raise UnsafeModelError(f"{path}: self-check failed (max probability difference "
                                   f"{np.abs(reproduced - expected).max() if reproduced.shape == expected.shape else 'shape'}"
                                   "): the file was modified or the installed scikit-learn is incompatible "
                                   f"(saved with {config.get('versions', {}).get('scikit-learn')})")
        return model


# ----------------------------------------------------------------------------------------------------------
# training and evaluation protocols
# ----------------------------------------------------------------------------------------------------------
def _corpus(dataset: str, data_dir, label_set: Optional[str]):
    """(DatasetDict, label_names present in the corpus, detect_faces) for a corpus name."""
    if dataset not in CLASSICAL_DATASETS:
        raise ValueError(f"dataset must be one of {CLASSICAL_DATASETS}, not {dataset!r}")
    label_set = label_set or CORPORA[dataset].label_set
    if dataset == "jaffe":  # the uncropped 256x256 frames: the pipeline's own Haar detection crops them
        corpus, detect = load_corpus("jaffe", data_dir, label_set, detector=None), True
    else:
        corpus, detect = load_corpus(dataset, data_dir, label_set), False
    names = corpus["train"].features["label"].names
    counts = np.zeros(len(names), np.int64)
    for split in corpus.values():
        counts += np.bincount(np.asarray(split["label"][:], np.int64), minlength=len(names))
    return corpus, [n for n, c in zip(names, counts) if c > 0], detect


def _labels(split, label_names) -> np.ndarray:
    names = split.features["label"].names
    mapping = np.array([label_names.index(n) if n in label_names else -1 for n in names])
    return mapping[np.asarray(split["label"][:], np.int64)]


def _random_subset(n: int, size: Optional[int], seed: int) -> np.ndarray:
    if size is None or size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def _timed_features(model: ClassicalFERPipeline, split, timings: dict, name: str):
    started = time.perf_counter()
    features, found = model.extract_features(split["image"], return_face_found=True, desc=f"features: {name}")
    seconds = time.perf_counter() - started
    timings[f"features_{name}_seconds"] = round(seconds, 3)
    timings[f"features_{name}_images_per_second"] = round(len(features) / max(seconds, 1e-9), 1)
    return features, found


def _gamma_reference(model: ClassicalFERPipeline, X) -> float:
    """scikit-learn's gamma="scale" value 1 / (n_features * variance) of X after the scaler (+ PCA)."""
    Z = np.asarray(X, np.float32)
    for _, step in model.make_transform():
        Z = step.fit_transform(Z)
    return 1.0 / (Z.shape[1] * max(float(Z.var()), 1e-12))


def _grid_points(grid: dict, gamma_ref: float):
    return [{"C": float(c), "gamma_factor": float(g), "gamma": float(g * gamma_ref)}
            for c in grid["C"] for g in grid["gamma_factor"]]


def _select_on_validation(model, X_train, y_train, X_val, y_val, grid):
    """Fit scaler (+ PCA) + SVM per grid point on train, score accuracy on validation (SVM votes, no
    calibration). Returns (best point, table of every point with its validation accuracy and fit time)."""
    from sklearn.base import clone

    transform = model.make_transform()
    Z_train, Z_val = np.asarray(X_train, np.float32), np.asarray(X_val, np.float32)
    for _, step in transform:
        Z_train = step.fit_transform(Z_train)
        Z_val = step.transform(Z_val)
    gamma_ref = 1.0 / (Z_train.shape[1] * max(float(Z_train.var()), 1e-12))
    table = []
    points = tqdm(_grid_points(grid, gamma_ref), desc="SVM grid (C, gamma) on PublicTest", unit="fit")
    for point in points:
        points.set_postfix(C=point["C"], gamma_factor=point["gamma_factor"])
        started = time.perf_counter()
        svm = clone(model._make_svm(C=point["C"], gamma=point["gamma"])).fit(Z_train, y_train)
        fit_seconds = time.perf_counter() - started
        accuracy = float(np.mean(svm.predict(Z_val) == y_val))
        table.append({**point, "validation_accuracy": accuracy, "fit_seconds": round(fit_seconds, 3),
                      "n_support_vectors": int(len(svm.support_))})
    best = max(table, key=lambda r: (r["validation_accuracy"], -r["C"]))  # ties: the smaller C
    return best, table


def _select_inner_cv(model, X, y, groups, grid, inner_folds: int, seed: int):
    """Grid search by an inner cross-validation of a training part only (by subject when ``groups``):
    `sklearn.model_selection.GridSearchCV` over a Pipeline(scaler, (PCA), SVM); returns (best point, table)."""
    from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold, StratifiedKFold
    from sklearn.pipeline import Pipeline

    gamma_ref = _gamma_reference(model, X)
    points = _grid_points(grid, gamma_ref)
    pipeline = Pipeline(model.make_transform() + [("svm", model._make_svm())])
    param_grid = {"svm__C": sorted({p["C"] for p in points}), "svm__gamma": sorted({p["gamma"] for p in points})}
    if groups is not None:
        cv = list(StratifiedGroupKFold(n_splits=inner_folds, shuffle=True, random_state=seed).split(X, y, groups))
    else:
        cv = list(StratifiedKFold(n_splits=inner_folds, shuffle=True, random_state=seed).split(X, y))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class")
        search = GridSearchCV(pipeline, param_grid, scoring="accuracy", cv=cv, refit=False, n_jobs=1)
        search.fit(np.asarray(X, np.float32), y)
    table = []
    for params, score in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"]):
        table.append({"C": params["svm__C"], "gamma": params["svm__gamma"],
                      "gamma_factor": round(params["svm__gamma"] / gamma_ref, 6), "inner_cv_accuracy": float(score)})
    best = max(table, key=lambda r: (r["inner_cv_accuracy"], -r["C"]))
    return best, table


def _metrics(model, X, y):
    probs = model.predict_proba_features(X)
    return classification_metrics(y, probs.argmax(1), model.label_names), probs


def train_classical(dataset: str = "fer2013", data_dir=None, output_dir=None, cv: str = "none", folds: int = 10,
                    max_train_samples: Optional[int] = None, seed: int = 42, max_eval_samples: Optional[int] = None,
                    grid: Optional[dict] = None, inner_folds: int = 3, label_set: Optional[str] = None,
                    model_name: Optional[str] = None, command: Optional[str] = None, **pipeline_kwargs) -> dict:
    """Train and evaluate the classical pipeline with the protocols of GUIDE.md section 4.

    Args:
        dataset: ``"fer2013"`` (train on Training, choose C / gamma on PublicTest only, report PrivateTest and
            PublicTest; ``cv`` must be ``"none"``), ``"ckplus"`` or ``"jaffe"`` (cross-validation required).
        data_dir: the corpus (see the `fer_hf.data` loaders; JAFFE is loaded uncropped and the pipeline's Haar
            detector crops the faces).
        output_dir: where the results (and for FER2013 the model folder with its card) go.
        cv: ``"subject"`` (subject-independent ``folds``-fold, `fer_hf.data.subject_kfold`), ``"loso"``
            (leave one subject out), ``"stratified"`` (random stratified ``folds``-fold, NOT subject-independent,
            labelled so) or ``"none"`` (FER2013).
        folds: number of folds for ``subject`` / ``stratified``.
        max_train_samples: FER2013: a random subset (seed ``seed``, uniform without replacement) of Training;
            CK+ / JAFFE: a random subset of the corpus before folding (tests only).
        seed: seed of subsets, folds, calibration folds and PCA.
        max_eval_samples: random subsets of PublicTest and PrivateTest (tests only; then not a FER2013 result).
        grid: ``{"C": [...], "gamma_factor": [...]}`` (gamma = factor x scikit-learn's "scale" value), default
            `DEFAULT_GRID`. CV: chosen per fold by an inner ``inner_folds``-fold CV of that fold's training part
            (by subject for subject-independent protocols): test folds are never looked at.
        label_set: loader label set (default: fer2013 for FER2013 / JAFFE, ferplus for CK+ (contempt kept));
            classes without images (CK+: neutral) are left out of the model.
        model_name: name in the model card (default: the output folder's name).
        command: the command line recorded with the results.
        pipeline_kwargs: `ClassicalFERPipeline` settings (image_size, denoise, pca_components, lbp_grid, ...).

    Returns:
        the results dict written to ``eval_results.json`` (FER2013) or ``cv_results.json`` (CV).
    Raises:
        ValueError: for a bad dataset / cv combination.
    """
    if dataset not in CLASSICAL_DATASETS:
        raise ValueError(f"dataset must be one of {CLASSICAL_DATASETS}, not {dataset!r}")
    if cv not in CV_MODES:
        raise ValueError(f"cv must be one of {CV_MODES}, not {cv!r}")
    if dataset == "fer2013" and cv != "none":
        raise ValueError("FER2013 has official splits: use cv='none' (select on PublicTest, report PrivateTest)")
    if dataset != "fer2013" and cv == "none":
        raise ValueError(f"{dataset} has a single split: use cv='subject', 'loso' or 'stratified'")
    grid = {k: tuple(v) for k, v in (grid or DEFAULT_GRID).items()}
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    corpus, label_names, detect = _corpus(dataset, data_dir, label_set)
    pipeline_kwargs.setdefault("detect_faces", detect)
    if dataset == "jaffe":  # JAFFE faces are 150-210 px in 256x256 frames (fewer pyramid levels: faster)
        pipeline_kwargs.setdefault("min_face_size", 80)
    pipeline_kwargs.setdefault("seed", seed)
    if dataset == "fer2013":
        return _train_fer2013(corpus, label_names, output_dir, max_train_samples, max_eval_samples, seed, grid,
                              model_name, command, data_dir, pipeline_kwargs)
    return _cross_validate(dataset, corpus, label_names, output_dir, cv, folds, max_train_samples, seed, grid,
                           inner_folds, command, data_dir, pipeline_kwargs)


def _train_fer2013(corpus, label_names, output_dir, max_train_samples, max_eval_samples, seed, grid, model_name,
                   command, data_dir, pipeline_kwargs) -> dict:
    started_all = time.perf_counter()
    train_index = _random_subset(len(corpus["train"]), max_train_samples, seed)
    train = corpus["train"].select(train_index.tolist())
    val = corpus["validation"].select(_random_subset(len(corpus["validation"]), max_eval_samples, seed + 1).tolist())
    test = corpus["test"].select(_random_subset(len(corpus["test"]), max_eval_samples, seed + 2).tolist())
    model = ClassicalFERPipeline(label_names=label_names, **pipeline_kwargs)
    timings = {}
    X_train, _ = _timed_features(model, train, timings, "train")
    X_val, _ = _timed_features(model, val, timings, "validation")
    X_test, _ = _timed_features(model, test, timings, "test")
    y_train, y_val, y_test = _labels(train, label_names), _labels(val, label_names), _labels(test, label_names)
    best, table = _select_on_validation(model, X_train, y_train, X_val, y_val, grid)
    model.C, model.gamma = best["C"], best["gamma"]
    print(f"chosen on PublicTest: C={best['C']}, gamma_factor={best['gamma_factor']} "
          f"(accuracy {best['validation_accuracy']:.4f}); final fit with probability calibration", flush=True)
    started = time.perf_counter()
    model.fit_features(X_train, y_train)
    timings["final_fit_with_calibration_seconds"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    validation, _ = _metrics(model, X_val, y_val)
    test_metrics, _ = _metrics(model, X_test, y_test)
    timings["predict_images_per_second_after_features"] = round(
        (len(X_val) + len(X_test)) / max(time.perf_counter() - started, 1e-9), 1)
    timings["total_seconds"] = round(time.perf_counter() - started_all, 3)
    full = max_train_samples is None and max_eval_samples is None
    results = {
        "model_type": MODEL_TYPE, "dataset": "fer2013", "data_dir": str(data_dir), "command": command,
        "protocol": "trained on FER2013 Training" + ("" if max_train_samples is None else
                                                    f" (random subset of {len(train)} images, seed {seed})")
                    + "; C and gamma chosen on PublicTest (validation) accuracy only; PrivateTest (test) "
                      "reported; no test-time augmentation",
        "is_fer2013_result": full,
        "split_sizes": {"train": len(train), "validation": len(val), "test": len(test)},
        "label_names": label_names, "settings": model.get_settings(), "feature_dim": model.feature_dim,
        "grid": table, "chosen": {"C": best["C"], "gamma": best["gamma"], "gamma_factor": best["gamma_factor"]},
        "validation": validation, "test": test_metrics, "timings": timings,
        "n_support_vectors": int(len(model.steps_["svm"].support_)),
    }
    folder = output_dir
    model.save_pretrained(folder, self_check_features=X_val[:16])
    (output_dir / "eval_results.json").write_text(json.dumps(results, indent=2) + "\n")
    write_classical_card(folder, results, model_name or output_dir.resolve().name)
    return results


def _cross_validate(dataset, corpus, label_names, output_dir, cv, folds, max_train_samples, seed, grid, inner_folds,
                    command, data_dir, pipeline_kwargs) -> dict:
    started_all = time.perf_counter()
    data = corpus["train"]
    data = data.select(_random_subset(len(data), max_train_samples, seed).tolist())
    if cv == "subject":
        fold_list = subject_kfold(data, n_folds=folds, group_column="subject", seed=seed)
    elif cv == "loso":
        fold_list = leave_one_subject_out(data, group_column="subject")
    else:
        fold_list = stratified_kfold(data, n_folds=folds, seed=seed)
    model = ClassicalFERPipeline(label_names=label_names, **pipeline_kwargs)
    timings = {}
    X, found = _timed_features(model, data, timings, "all")
    y = _labels(data, label_names)
    subjects = np.asarray(data["subject"][:]).astype(str)
    per_fold, all_true, all_pred = [], [], []
    for i, (train_index, test_index) in enumerate(tqdm(fold_list, desc=f"{cv} folds", unit="fold")):
        shared = set(subjects[train_index]) & set(subjects[test_index])
        if fold_list.subject_independent and shared:
            raise RuntimeError(f"fold {i}: subjects on both sides {sorted(shared)[:5]}")
        groups = subjects[train_index] if fold_list.subject_independent else None
        best, table = _select_inner_cv(model, X[train_index], y[train_index], groups, grid, inner_folds, seed)
        fold_model = ClassicalFERPipeline(label_names=label_names, **{**pipeline_kwargs, "C": best["C"],
                                                                      "gamma": best["gamma"]})
        started = time.perf_counter()
        fold_model.fit_features(X[train_index], y[train_index], groups)
        fit_seconds = time.perf_counter() - started
        metrics, probs = _metrics(fold_model, X[test_index], y[test_index])
        all_true.append(y[test_index])
        all_pred.append(probs.argmax(1))
        per_fold.append({"fold": i, "train_images": int(len(train_index)), "test_images": int(len(test_index)),
                         "test_subjects": sorted(set(subjects[test_index])) if fold_list.subject_independent else None,
                         "subjects_on_both_sides": len(shared), "accuracy": metrics["accuracy"],
                         "macro_f1": metrics["macro_f1"], "chosen": {k: best[k] for k in ("C", "gamma", "gamma_factor")},
                         "inner_cv_accuracy": best["inner_cv_accuracy"], "inner_grid": table,
                         "fit_seconds": round(fit_seconds, 3),
                         "metrics": metrics})
    accuracies = np.array([f["accuracy"] for f in per_fold])
    f1s = np.array([f["macro_f1"] for f in per_fold])
    pooled = classification_metrics(np.concatenate(all_true), np.concatenate(all_pred), label_names)
    timings["total_seconds"] = round(time.perf_counter() - started_all, 3)
    results = {
        "model_type": MODEL_TYPE, "dataset": dataset, "data_dir": str(data_dir), "command": command,
        "protocol": fold_list.protocol, "subject_independent": fold_list.subject_independent, "folds": len(per_fold),
        "hyperparameter_selection": f"per fold, {inner_folds}-fold inner CV of the fold's training part"
                                    + (" by subject" if fold_list.subject_independent else "")
                                    + "; the test fold is used only for its own evaluation",
        "images": int(len(y)), "subset": None if max_train_samples is None else
        f"random {len(y)} images (seed {seed}); not a {dataset} result",
        "faces_not_detected": int((~found).sum()) if model.detect_faces else None,
        "label_names": label_names, "settings": model.get_settings(), "grid": {k: list(v) for k, v in grid.items()},
        "feature_dim": model.feature_dim,
        "accuracy_mean": float(accuracies.mean()), "accuracy_std": float(accuracies.std(ddof=1)) if len(accuracies) > 1 else 0.0,
        "macro_f1_mean": float(f1s.mean()), "macro_f1_std": float(f1s.std(ddof=1)) if len(f1s) > 1 else 0.0,
        "pooled_accuracy": pooled["accuracy"], "pooled": pooled, "per_fold": per_fold, "timings": timings,
    }
    (output_dir / "cv_results.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


# ----------------------------------------------------------------------------------------------------------
# model card
# ----------------------------------------------------------------------------------------------------------
def write_classical_card(output_dir, results: dict, model_name: str) -> Path:
    """Write ``README.md`` (Hub model card, YAML ``model-index`` from `fer_hf.training.modelcard._front_matter`, with
    ``library_name: sklearn``) for a FER2013 run of `train_classical`; every number comes from ``results``."""
    output_dir = Path(output_dir)
    front = _front_matter(model_name, results).replace("library_name: transformers", "library_name: sklearn")
    front = front.replace("- custom_code\n", "- classical\n- svm\n- lbp\n")
    settings, sizes, timings, chosen = results["settings"], results["split_sizes"], results["timings"], results["chosen"]
    note = "" if results.get("is_fer2013_result") else (
        f"\n> **Note:** this run used a subset (train {sizes['train']}, PublicTest {sizes['validation']}, "
        f"PrivateTest {sizes['test']} images)" + ("" if sizes["validation"] == 3589 else
                                                   "; its numbers are not FER2013 results") + ".\n")
    grid_rows = ["| C | gamma (x scale) | PublicTest accuracy | support vectors | fit seconds |",
                 "| --- | --- | --- | --- | --- |"]
    for row in results["grid"]:
        grid_rows.append(f"| {row['C']:g} | {row['gamma']:.3g} ({row['gamma_factor']:g}) | "
                         f"{row['validation_accuracy'] * 100:.2f}% | {row['n_support_vectors']} | {row['fit_seconds']:.1f} |")
    pca = settings["pca_components"]
    body = f"""
# {model_name}: a classical facial expression baseline (LBP + Gabor + SVM)

The pre-deep-learning pipeline as a fer_hf model (`model_type="{MODEL_TYPE}"`, `fer_hf.training.classical.ClassicalFERPipeline`):
grayscale {settings['image_size']}x{settings['image_size']} face, {settings['denoise']} denoising, uniform LBP
histograms ({settings['lbp_method']}, P={settings['lbp_points']}, R={settings['lbp_radius']:g}, {settings['lbp_grid']}x{settings['lbp_grid']} cells; Ahonen et al., 2006)
and Gabor magnitude statistics ({len(settings['gabor_frequencies'])} frequencies x {settings['gabor_orientations']} orientations,
{settings['gabor_grid']}x{settings['gabor_grid']} cells): {results['feature_dim']} features, standardised,
{'no PCA' if pca is None else f'PCA ({pca})'}, an {settings['kernel'].upper()} SVM (C={chosen['C']:g}, gamma={chosen['gamma']:.4g};
{results['n_support_vectors']} support vectors) and a multinomial logistic map of its decision values to
probabilities (fitted on out-of-fold decision values of the training set). It classifies a **cropped,
roughly frontal face** into {len(results['label_names'])} expressions: {', '.join(results['label_names'])}.
{note}
## Results

Protocol: {results['protocol']}.

{_results_table(results)}

Per-class metrics on PrivateTest:

{_per_class_table(results['test'])}

Hyperparameter search (SVM votes, before calibration; PublicTest only):

{chr(10).join(grid_rows)}

Cost on the machine that ran it: features {timings['features_train_images_per_second']:.0f} images/s
(training set), final fit with calibration {timings['final_fit_with_calibration_seconds']:.1f} s, whole run
{timings['total_seconds'] / 60:.1f} min.

Produced by this command (from the root of the fer_hf repository; `eval_results.json` next to this card
holds the raw numbers):

```bash
{results['command']}
```

## Usage

```python
from fer_hf.training.classical import ClassicalFERPipeline

model = ClassicalFERPipeline.from_pretrained("path/to/{model_name}")  # JSON + safetensors only, no pickle
probabilities = model.predict_proba([face_image])  # (N, {len(results['label_names'])}), columns = model.label_names
```

Loading constructs only the scikit-learn classes StandardScaler, PCA, SVC and LogisticRegression from plain
data and checks stored probabilities; it needs the scikit-learn version in `config.json`.
{_COMMON_SECTIONS}"""
    path = output_dir / "README.md"
    path.write_text(front + body)
    return path
