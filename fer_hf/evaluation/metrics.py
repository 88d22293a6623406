"""Classification metrics for FER (accuracy, macro-F1, per-class precision/recall/F1, confusion matrix,
top-k accuracy, expected calibration error), computed by the `evaluate` metric modules shipped in
``fer_hf/evaluation/metric_modules/<name>/<name>.py``.

The modules are loaded by local path (``evaluate.load("/.../metric_modules/accuracy")``), so nothing is
fetched from the Hugging Face Hub and everything works offline; each is loaded once per process
(`load_metric` caches it). Training (``train_accelerate.py``), the ensemble builder and ``fer-hf evaluate``
all go through `classification_metrics`, so every reported number comes from the same code.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

#: Folder holding one ``<name>/<name>.py`` `evaluate.Metric` script per metric. Each script is
#: self-contained: `evaluate.load` copies a local helper only from the script's own folder (``from .x import``,
#: ``x.py`` beside it), not from a parent folder, so one helper cannot serve every module folder.
METRIC_MODULES_DIR = Path(__file__).resolve().parent / "metric_modules"
#: The metric modules shipped with fer_hf.
METRIC_NAMES = ("accuracy", "precision_recall_f1", "top_k_accuracy", "expected_calibration_error",
                "confusion_matrix")


@functools.lru_cache(maxsize=None)
def load_metric(name: str):
    """The `evaluate.EvaluationModule` of a fer_hf metric module, loaded from its local path (offline).

    Args:
        name: one of `METRIC_NAMES` (``"accuracy"``, ``"precision_recall_f1"`` (precision, recall, F1
            and support at once, like scikit-learn's ``precision_recall_fscore_support``),
            ``"top_k_accuracy"``, ``"expected_calibration_error"``, ``"confusion_matrix"``).
    Returns:
        the loaded module (cached: one instance per name and process; ``compute`` resets its state, so
        reuse is safe). Its results are kept in memory (no cache files, no locks).
    Raises:
        ValueError: for an unknown name.
    """
    import evaluate

    if name not in METRIC_NAMES:
        raise ValueError(f"Unknown fer_hf metric {name!r}; choose one of {METRIC_NAMES}")
    path = METRIC_MODULES_DIR / name
    return evaluate.load(str(path), keep_in_memory=True)


def classification_metrics(labels, predictions, label_names, min_class_faces: int = 1) -> dict:
    """Metrics for integer ``labels`` and ``predictions`` (array-likes of shape (N,)).

    Returns a JSON-serialisable dict: ``accuracy``, ``balanced_accuracy`` (mean per-class recall over the
    classes with at least ``min_class_faces`` images, listed in ``balanced_accuracy_over``; NaN when none)
    and ``macro_f1`` (fractions in 0..1), ``num_samples``, ``per_class`` ({label: {precision, recall, f1,
    support}}), ``answer_share`` ({label: share of the predictions}) and ``confusion_matrix`` (rows = true
    label, columns = predicted, in ``label_names`` order). A 0/0 precision / recall / F1 counts as 0;
    macro-F1 averages over every name in ``label_names``, also classes absent from ``labels``.
    """
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    predictions = np.asarray(predictions).astype(np.int64).reshape(-1)
    ids = list(range(len(label_names)))
    if labels.size == 0 or not ids:
        return {"num_samples": int(labels.size), "accuracy": 0.0, "balanced_accuracy": float("nan"),
                "balanced_accuracy_over": [], "min_class_faces": int(min_class_faces), "macro_f1": 0.0,
                "answer_share": {name: 0.0 for name in label_names},
                "per_class": {name: {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0} for name in label_names},
                "confusion_matrix": [[0] * len(ids) for _ in ids]}
    inputs = {"predictions": predictions, "references": labels}
    per_class = load_metric("precision_recall_f1").compute(**inputs, labels=ids, average=None, zero_division=0.0)
    matrix = load_metric("confusion_matrix").compute(**inputs, labels=ids)["confusion_matrix"]
    balanced, over = balanced_accuracy(labels, predictions, len(ids), min_class_faces)
    shares = answer_share(predictions, len(ids))
    return {
        "num_samples": int(labels.size),
        "accuracy": float(load_metric("accuracy").compute(**inputs)["accuracy"]),
        "balanced_accuracy": balanced,
        "balanced_accuracy_over": [label_names[k] for k in over],
        "min_class_faces": int(min_class_faces),
        "macro_f1": float(np.mean(per_class["f1"])),
        "answer_share": {name: float(share) for name, share in zip(label_names, shares)},
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(label_names, per_class["precision"], per_class["recall"],
                                        per_class["f1"], per_class["support"])
        },
        "confusion_matrix": matrix,
    }


#: ``"corpus/split"`` -> the fewest images a class needs in that split to count in its balanced accuracy (1 where
#: not listed): muxspace's rare classes have a handful of faces per split, so its test split counts the classes
#: with >= 50 faces and its validation split (development) those with >= 25 (docs/real_photos_rules.md). Used by
#: `fer-hf evaluate`, multi-corpus checkpoint selection and the prior-correction test alike.
MIN_CLASS_FACES = {"muxspace/test": 50, "muxspace/validation": 25}


def min_class_faces(split: str) -> int:
    """`MIN_CLASS_FACES` of a ``"corpus/split"`` name (1 where it has no entry)."""
    return MIN_CLASS_FACES.get(split, 1)


def balanced_accuracy(labels, predictions, num_labels: int, min_class_faces: int = 1) -> tuple:
    """Balanced accuracy: the mean recall over the classes with at least ``min_class_faces`` faces.

    Args:
        labels, predictions: int array-likes (N,) of label ids in ``0 .. num_labels - 1``.
        min_class_faces: classes with fewer faces in ``labels`` are left out of the mean (their recall is too
            noisy on a small split); 1 = every class that has a face.
    Returns:
        (balanced accuracy as a fraction in 0..1, or NaN when no class qualifies; [the class ids averaged]).
    """
    from sklearn.metrics import recall_score

    labels, predictions = np.asarray(labels).reshape(-1), np.asarray(predictions).reshape(-1)
    classes = [k for k in range(num_labels) if (labels == k).sum() >= min_class_faces]
    if not classes:
        return float("nan"), []
    # sklearn's balanced_accuracy_score averages over every class present; this keeps only ``classes``
    return float(recall_score(labels, predictions, labels=classes, average="macro", zero_division=0)), classes


def answer_share(predictions, num_labels: int) -> np.ndarray:
    """The share of answers per class, float64 (num_labels,) summing to 1 (zeros for no prediction): a model
    that answers one class for nearly every face shows here whatever the class balance of the split."""
    predictions = np.asarray(predictions, np.int64).reshape(-1)
    if not predictions.size:
        return np.zeros(num_labels)
    return np.bincount(predictions, minlength=num_labels)[:num_labels] / predictions.size


def split_report(labels: np.ndarray, logits: np.ndarray, num_labels: int, min_class_faces: int = 1,
                 label_names=None) -> dict:
    """The short report of a development split used while training (`fer_hf.training.multicorpus`): accuracy,
    balanced accuracy (over classes with >= ``min_class_faces`` faces, named in ``balanced_over``), macro-F1
    over those classes, per-class recall (None for a class without faces) and `answer_share`.

    Args:
        labels: int (N,); logits: float (N, num_labels); label_names: names of the ids (default FER2013's).
    """
    from sklearn.metrics import f1_score

    from ..labels import FER2013_LABELS

    names = list(label_names or FER2013_LABELS[:num_labels])
    labels = np.asarray(labels)
    predictions = np.asarray(logits).argmax(1)
    balanced, classes = balanced_accuracy(labels, predictions, num_labels, min_class_faces)
    shares = answer_share(predictions, num_labels)
    return {
        "faces": int(len(labels)),
        "accuracy": float((predictions == labels).mean()),
        "balanced_accuracy": balanced,
        "balanced_over": [names[k] for k in classes],
        "macro_f1": float(f1_score(labels, predictions, labels=classes, average="macro", zero_division=0)),
        "recall": {names[k]: (float((predictions[labels == k] == k).mean()) if (labels == k).any() else None)
                   for k in range(num_labels)},
        "answer_share": {names[k]: float(shares[k]) for k in range(num_labels)},
    }


def top_k_accuracy(labels, scores, k: int = 2) -> float:
    """Fraction of samples whose true label is among the ``k`` highest of its ``scores`` row ((N, K)
    probabilities or logits, column j = label id j), by the ``top_k_accuracy`` metric module."""
    scores = np.asarray(scores, dtype=np.float64)
    return float(load_metric("top_k_accuracy").compute(predictions=scores, references=np.asarray(labels),
                                                       k=k)["top_k_accuracy"])


def expected_calibration_error(labels, probabilities, n_bins: int = 15) -> float:
    """Top-label ECE with ``n_bins`` equal-width bins (see `fer_hf.evaluation.calibration`), by the
    ``expected_calibration_error`` metric module."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    return float(load_metric("expected_calibration_error").compute(
        predictions=probabilities, references=np.asarray(labels), n_bins=n_bins)["expected_calibration_error"])
