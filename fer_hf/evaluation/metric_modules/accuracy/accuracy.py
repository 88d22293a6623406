"""Accuracy: the fraction of predictions equal to their references.

An `evaluate` metric module shipped with fer_hf; load it by path (works offline)::

    from fer_hf.evaluation.metrics import load_metric
    load_metric("accuracy").compute(predictions=[0, 2, 1], references=[0, 1, 1])  # {'accuracy': 0.666...}
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Accuracy = (number of predictions equal to their reference) / (number of predictions),
optionally weighted by `sample_weight`.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted class ids.
    references (`list` of `int`): true class ids.
    normalize (`bool`, default True): return the fraction; False returns the (weighted) count of hits.
    sample_weight (`list` of `float`, optional): one weight per sample.
Returns:
    accuracy (`float`): in [0, 1] (normalize=True), or the number of correct predictions.
Examples:
    >>> accuracy = evaluate.load("fer_hf/evaluation/metric_modules/accuracy")
    >>> accuracy.compute(predictions=[0, 1, 2, 0], references=[0, 1, 1, 2])
    {'accuracy': 0.5}
"""

_CITATION = """
@article{scikit-learn,
  title={Scikit-learn: Machine Learning in {P}ython},
  author={Pedregosa, F. and others},
  journal={Journal of Machine Learning Research}, volume={12}, pages={2825--2830}, year={2011}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
            reference_urls=["https://scikit-learn.org/stable/modules/model_evaluation.html#accuracy-score"],
        )

    def _compute(self, predictions, references, normalize=True, sample_weight=None):
        predictions = np.asarray(predictions)
        references = np.asarray(references)
        hits = (predictions == references).astype(np.float64)
        weights = np.ones_like(hits) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        total = float((hits * weights).sum())
        if not normalize:
            return {"accuracy": total}
        return {"accuracy": total / float(weights.sum()) if weights.sum() > 0 else 0.0}
