"""Top-k accuracy: the fraction of samples whose true class is among the k highest-scored classes.

An `evaluate` metric module shipped with fer_hf; load it by path (works offline)::

    from fer_hf.evaluation.metrics import load_metric
    load_metric("top_k_accuracy").compute(predictions=probabilities, references=labels, k=2)
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Top-k accuracy = (1/N) * #{i : y_i is one of the k classes with the highest score s_i}.
`predictions` are per-class scores (probabilities, logits or log-probabilities: only their order
matters), one row of K scores per sample. Exact ties are ordered as scikit-learn's
`top_k_accuracy_score` orders them (among equal scores, the higher class index ranks first), so the two
agree everywhere. k = 1 is the accuracy of the argmax.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `float`): (N, K) scores, column j = class `labels[j]`.
    references (`list` of `int`): true class ids.
    k (`int`, default 2): how many top-scored classes count as a hit.
    labels (`list` of `int`, optional): the class id of each score column (default 0..K-1).
    normalize (`bool`, default True): the fraction (True) or the number (False) of hits.
Returns:
    top_k_accuracy (`float`).
Examples:
    >>> metric = evaluate.load("fer_hf/evaluation/metric_modules/top_k_accuracy")
    >>> metric.compute(predictions=[[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]], references=[1, 0], k=2)
    {'top_k_accuracy': 0.5}
"""

_CITATION = """
@article{scikit-learn,
  title={Scikit-learn: Machine Learning in {P}ython},
  author={Pedregosa, F. and others},
  journal={Journal of Machine Learning Research}, volume={12}, pages={2825--2830}, year={2011}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TopKAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float64")), "references": datasets.Value("int64")}
            ),
            reference_urls=["https://scikit-learn.org/stable/modules/model_evaluation.html#top-k-accuracy-score"],
        )

    def _compute(self, predictions, references, k=2, labels=None, normalize=True):
        scores = np.asarray([np.asarray(row, dtype=np.float64) for row in predictions])
        references = np.asarray(references)
        if scores.ndim != 2:
            raise ValueError(f"predictions must be (N, K) scores, got shape {scores.shape}")
        labels = np.arange(scores.shape[1]) if labels is None else np.asarray(labels)
        if labels.size != scores.shape[1]:
            raise ValueError(f"{labels.size} labels for {scores.shape[1]} score columns")
        column = {int(c): j for j, c in enumerate(labels)}
        if any(int(r) not in column for r in references):
            raise ValueError("a reference is not one of `labels`")
        true_column = np.array([column[int(r)] for r in references])
        # Descending order; a reversed stable ascending sort puts the higher index first among ties.
        order = np.argsort(scores, axis=1, kind="stable")[:, ::-1][:, :k]
        hits = (order == true_column[:, None]).any(axis=1)
        total = float(hits.sum())
        return {"top_k_accuracy": total / len(hits) if normalize and len(hits) else total}
