"""Confusion matrix for multi-class classification (rows = true class, columns = predicted class).

An `evaluate` metric module shipped with fer_hf; load it by path (works offline)::

    from fer_hf.evaluation.metrics import load_metric
    load_metric("confusion_matrix").compute(predictions=[0, 2, 1], references=[0, 1, 1], labels=[0, 1, 2])
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
C[i][j] = number of samples whose reference is labels[i] and whose prediction is labels[j]. Samples
whose reference or prediction is not in `labels` are not counted. `normalize` divides by the row sums
("true"), the column sums ("pred") or the total ("all"); an empty row / column stays 0.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted class ids.
    references (`list` of `int`): true class ids.
    labels (`list` of `int`, optional): row / column order (default: every id seen, sorted).
    normalize (`str`, optional): None (counts), "true", "pred" or "all".
Returns:
    confusion_matrix (`list` of `list`): K x K counts (int) or fractions (float).
Examples:
    >>> metric = evaluate.load("fer_hf/evaluation/metric_modules/confusion_matrix")
    >>> metric.compute(predictions=[0, 1, 1], references=[0, 0, 1])
    {'confusion_matrix': [[1, 1], [0, 1]]}
"""

_CITATION = """
@article{scikit-learn,
  title={Scikit-learn: Machine Learning in {P}ython},
  author={Pedregosa, F. and others},
  journal={Journal of Machine Learning Research}, volume={12}, pages={2825--2830}, year={2011}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ConfusionMatrix(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
            reference_urls=["https://scikit-learn.org/stable/modules/model_evaluation.html#confusion-matrix"],
        )

    def _compute(self, predictions, references, labels=None, normalize=None):
        predictions = np.asarray(predictions)
        references = np.asarray(references)
        if labels is None:
            labels = np.unique(np.concatenate([predictions, references]))
        index = {int(c): i for i, c in enumerate(labels)}
        matrix = np.zeros((len(index), len(index)), dtype=np.int64)
        for true, predicted in zip(references.tolist(), predictions.tolist()):
            if true in index and predicted in index:
                matrix[index[true], index[predicted]] += 1
        if normalize is None:
            return {"confusion_matrix": matrix.tolist()}
        if normalize not in ("true", "pred", "all"):
            raise ValueError(f"normalize must be None, 'true', 'pred' or 'all', got {normalize!r}")
        if normalize == "all":
            denominator = np.full(matrix.shape, matrix.sum(), dtype=np.float64)
        else:
            denominator = np.broadcast_to(matrix.sum(axis=1 if normalize == "true" else 0,
                                                     keepdims=True), matrix.shape).astype(np.float64)
        out = np.zeros(matrix.shape)
        np.divide(matrix, denominator, out=out, where=denominator > 0)
        return {"confusion_matrix": out.tolist()}
