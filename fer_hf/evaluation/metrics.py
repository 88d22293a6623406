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


def classification_metrics(labels, predictions, label_names) -> dict:
    """Metrics for integer ``labels`` and ``predictions`` (array-likes of shape (N,)).

    Returns a JSON-serialisable dict: ``accuracy`` and ``macro_f1`` (fractions in 0..1), ``num_samples``,
    ``per_class`` ({label: {precision, recall, f1, support}}) and ``confusion_matrix`` (rows = true
    label, columns = predicted, in ``label_names`` order). A 0/0 precision / recall / F1 counts as 0;
    macro-F1 averages over every name in ``label_names``, also classes absent from ``labels``.
    """
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    predictions = np.asarray(predictions).astype(np.int64).reshape(-1)
    ids = list(range(len(label_names)))
    if labels.size == 0 or not ids:
        return {"num_samples": int(labels.size), "accuracy": 0.0, "macro_f1": 0.0,
                "per_class": {name: {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0} for name in label_names},
                "confusion_matrix": [[0] * len(ids) for _ in ids]}
    inputs = {"predictions": predictions, "references": labels}
    per_class = load_metric("precision_recall_f1").compute(**inputs, labels=ids, average=None, zero_division=0.0)
    matrix = load_metric("confusion_matrix").compute(**inputs, labels=ids)["confusion_matrix"]
    return {
        "num_samples": int(labels.size),
        "accuracy": float(load_metric("accuracy").compute(**inputs)["accuracy"]),
        "macro_f1": float(np.mean(per_class["f1"])),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(label_names, per_class["precision"], per_class["recall"],
                                        per_class["f1"], per_class["support"])
        },
        "confusion_matrix": matrix,
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
