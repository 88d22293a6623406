"""Expected calibration error (ECE) of the top-label confidence, with equal-width bins.

An `evaluate` metric module shipped with fer_hf; load it by path (works offline)::

    from fer_hf.evaluation.metrics import load_metric
    load_metric("expected_calibration_error").compute(predictions=probabilities, references=labels, n_bins=15)
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
ECE (Naeini et al., 2015; Guo et al., 2017, "On Calibration of Modern Neural Networks", ICML, eq. 3):

    ECE = sum_{m=1..M} (|B_m| / N) * | acc(B_m) - conf(B_m) |

The top-label confidence of sample i is p_i = max_k P(y = k | x_i) and its prediction the argmax.
B_m holds the samples with p_i in the equal-width bin ((m-1)/M, m/M] (a confidence of exactly 0 goes
to the first bin), acc(B_m) is the fraction of them predicted right and conf(B_m) their mean
confidence; empty bins add nothing. 0 is perfect calibration; ECE is in [0, 1].
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `float`): (N, K) predicted class probabilities (rows sum to 1).
    references (`list` of `int`): true class ids (column index of `predictions`).
    n_bins (`int`, default 15): the number of equal-width confidence bins M.
Returns:
    expected_calibration_error (`float`).
Examples:
    >>> metric = evaluate.load("fer_hf/evaluation/metric_modules/expected_calibration_error")
    >>> metric.compute(predictions=[[0.9, 0.1], [0.8, 0.2]], references=[0, 1], n_bins=10)
    {'expected_calibration_error': 0.45}
"""

_CITATION = """
@inproceedings{guo2017calibration,
  title={On Calibration of Modern Neural Networks},
  author={Guo, Chuan and Pleiss, Geoff and Sun, Yu and Weinberger, Kilian Q.},
  booktitle={Proceedings of the 34th International Conference on Machine Learning (ICML)},
  pages={1321--1330}, year={2017}
}
@inproceedings{naeini2015obtaining,
  title={Obtaining Well Calibrated Probabilities Using Bayesian Binning},
  author={Naeini, Mahdi Pakdaman and Cooper, Gregory F. and Hauskrecht, Milos},
  booktitle={AAAI}, year={2015}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ExpectedCalibrationError(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float64")), "references": datasets.Value("int64")}
            ),
            reference_urls=["https://arxiv.org/abs/1706.04599"],
        )

    def _compute(self, predictions, references, n_bins=15):
        probabilities = np.asarray([np.asarray(row, dtype=np.float64) for row in predictions])
        references = np.asarray(references)
        if probabilities.ndim != 2 or len(probabilities) != len(references):
            raise ValueError(f"predictions must be (N, K) probabilities for N references, got {probabilities.shape}")
        if len(references) == 0:
            return {"expected_calibration_error": 0.0}
        confidence = probabilities.max(axis=1)
        correct = (probabilities.argmax(axis=1) == references).astype(np.float64)
        edges = np.linspace(0.0, 1.0, n_bins + 1)
        # bin m (0-based) = (edges[m], edges[m+1]]: the number of inner edges strictly below the confidence
        bins = np.searchsorted(edges[1:-1], confidence, side="left")
        ece = 0.0
        for m in range(n_bins):
            in_bin = bins == m
            if in_bin.any():
                ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
        return {"expected_calibration_error": float(ece)}
