"""Classification metrics for FER (accuracy, macro-F1, per-class precision/recall/F1, confusion matrix),
computed with scikit-learn."""

import numpy as np


def classification_metrics(labels, predictions, label_names) -> dict:
    """Metrics for integer ``labels`` and ``predictions`` (array-likes of shape (N,)).

    Returns a JSON-serialisable dict: ``accuracy`` and ``macro_f1`` (fractions in 0..1), ``num_samples``,
    ``per_class`` ({label: {precision, recall, f1, support}}) and ``confusion_matrix`` (rows = true
    label, columns = predicted, in ``label_names`` order).
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    labels = np.asarray(labels)
    predictions = np.asarray(predictions)
    ids = list(range(len(label_names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predictions, labels=ids, zero_division=0
    )
    return {
        "num_samples": int(labels.size),
        "accuracy": float(accuracy_score(labels, predictions)),
        "macro_f1": float(f1_score(labels, predictions, labels=ids, average="macro", zero_division=0)),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(label_names, precision, recall, f1, support)
        },
        "confusion_matrix": confusion_matrix(labels, predictions, labels=ids).tolist(),
    }
