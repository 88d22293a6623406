"""Precision, recall, F1 and support for multi-class classification, per class or averaged (macro /
micro / weighted), like scikit-learn's `precision_recall_fscore_support`.

An `evaluate` metric module shipped with fer_hf; load it by path (works offline)::

    from fer_hf.evaluation.metrics import load_metric
    load_metric("precision_recall_f1").compute(predictions=[0, 2, 1], references=[0, 1, 1], average="macro")
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2 * precision * recall / (precision + recall)
= 2 TP / (2 TP + FP + FN), support = number of references of the class.
For class c, TP = predictions c that are right, FP = predictions c whose reference is another class,
FN = references c predicted as another class (counted over all samples, also those whose class is not
in `labels`). Averages over the classes in `labels`: "macro" = unweighted mean of the per-class values,
"weighted" = mean weighted by support (the plain mean where no class of `labels` has support),
"micro" = the formulas on the summed TP / FP / FN (the macro and weighted F1 average the per-class F1,
as scikit-learn does). A 0/0 ratio is `zero_division` (default 0).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted class ids.
    references (`list` of `int`): true class ids.
    labels (`list` of `int`, optional): the classes to report / average over, in this order
        (default: every id seen in predictions or references, sorted).
    average (`str` or None, default "macro"): "macro", "micro", "weighted", or None for per-class values.
    zero_division (`float`, default 0.0): the value of a 0/0 ratio.
Returns:
    precision, recall, f1 (`float`, or `list` of `float` in `labels` order when average is None).
    support (`list` of `int` in `labels` order when average is None, else None, as in scikit-learn).
Examples:
    >>> metric = evaluate.load("fer_hf/evaluation/metric_modules/precision_recall_f1")
    >>> metric.compute(predictions=[0, 1, 1, 2], references=[0, 1, 2, 2], average=None)
    {'precision': [1.0, 0.5, 1.0], 'recall': [1.0, 1.0, 0.5], 'f1': [1.0, 0.6666666666666666, 0.6666666666666666], 'support': [1, 1, 2]}
"""

_CITATION = """
@article{scikit-learn,
  title={Scikit-learn: Machine Learning in {P}ython},
  author={Pedregosa, F. and others},
  journal={Journal of Machine Learning Research}, volume={12}, pages={2825--2830}, year={2011}
}
"""


def _ratio(numerator, denominator, zero_division):
    out = np.full(numerator.shape, float(zero_division))
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class PrecisionRecallF1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
            reference_urls=["https://scikit-learn.org/stable/modules/model_evaluation.html#precision-recall-f-measure-metrics"],
        )

    def _compute(self, predictions, references, labels=None, average="macro", zero_division=0.0):
        predictions = np.asarray(predictions)
        references = np.asarray(references)
        if labels is None:
            labels = np.unique(np.concatenate([predictions, references]))
        labels = np.asarray(labels)
        if average not in ("macro", "micro", "weighted", None):
            raise ValueError(f"average must be 'macro', 'micro', 'weighted' or None, got {average!r}")
        tp = np.array([np.sum((predictions == c) & (references == c)) for c in labels], dtype=np.float64)
        predicted = np.array([np.sum(predictions == c) for c in labels], dtype=np.float64)
        support = np.array([np.sum(references == c) for c in labels], dtype=np.int64)
        if average == "micro":
            tp, predicted, true = tp.sum(keepdims=True), predicted.sum(keepdims=True), support.sum(keepdims=True)
        else:
            true = support
        values = {
            "precision": _ratio(tp, predicted, zero_division),
            "recall": _ratio(tp, true, zero_division),
            "f1": _ratio(2 * tp, predicted + true, zero_division),  # 2 TP + FP + FN = predicted + true
        }
        if average is None:
            return {**{key: value.tolist() for key, value in values.items()}, "support": support.tolist()}
        # weighted without any reference of the `labels` classes: the plain mean, as scikit-learn
        weights = support if average == "weighted" and support.sum() > 0 else None
        return {**{key: float(np.average(value, weights=weights)) if value.size else float(zero_division)
                   for key, value in values.items()}, "support": None}
