"""Calibration of a classifier's probabilities: expected calibration error, reliability-diagram data and
temperature scaling.

**Expected calibration error** (Naeini et al., 2015; Guo et al., 2017, "On Calibration of Modern Neural
Networks", ICML, eq. 3), top-label, with M equal-width bins (default 15, as in Guo et al.)::

    ECE = sum_{m=1..M} (|B_m| / N) * | acc(B_m) - conf(B_m) |

where the top-label confidence of sample i is ``p_i = max_k softmax(z_i)_k`` and its prediction the
argmax, ``B_m`` is the set of samples with ``p_i`` in ``((m-1)/M, m/M]``, ``acc(B_m)`` the fraction of
them predicted right and ``conf(B_m)`` their mean confidence (empty bins add nothing).

**Temperature scaling** (Guo et al., 2017, section 4.2): one scalar ``T > 0`` divides the logits,
``q_i = softmax(z_i / T)``; ``T`` minimises the negative log-likelihood on a held-out (validation) split,
never on the split that is reported. ``T > 1`` softens over-confident probabilities. Dividing by a
positive scalar does not change the argmax, so accuracy is unchanged.

The ECE here and the ``expected_calibration_error`` `evaluate` module (`fer_hf.evaluation.metrics.load_metric`)
implement the same definition (the tests check both against a hand computation).
"""

from __future__ import annotations

import math

import numpy as np

DEFAULT_N_BINS = 15


def softmax(logits, temperature: float = 1.0) -> np.ndarray:
    """Row-wise ``softmax(logits / temperature)`` in float64 ((N, K) -> (N, K))."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def log_softmax(logits, temperature: float = 1.0) -> np.ndarray:
    """Row-wise ``log_softmax(logits / temperature)`` in float64."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def negative_log_likelihood(logits, labels, temperature: float = 1.0) -> float:
    """Mean ``-log softmax(logits / T)[label]`` (natural log) over the samples."""
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size == 0:
        return float("nan")
    return float(-log_softmax(logits, temperature)[np.arange(labels.size), labels].mean())


def reliability_diagram_data(probabilities, labels, n_bins: int = DEFAULT_N_BINS) -> dict:
    """Per-bin numbers of a reliability diagram, and the ECE they add up to.

    Args:
        probabilities: (N, K) class probabilities (rows sum to 1).
        labels: (N,) true class ids.
        n_bins: number M of equal-width confidence bins on [0, 1]; bin m is ``((m-1)/M, m/M]``.
    Returns:
        dict with ``bin_edges`` (M + 1 floats), ``bin_counts`` (M ints), ``bin_accuracy`` and
        ``bin_confidence`` (M floats, None for an empty bin), ``expected_calibration_error``,
        ``maximum_calibration_error`` (the largest |acc - conf| of a non-empty bin), ``accuracy`` and
        ``mean_confidence``.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    confidence = probabilities.max(axis=1) if len(labels) else np.zeros(0)
    correct = (probabilities.argmax(axis=1) == labels).astype(np.float64) if len(labels) else np.zeros(0)
    bins = np.searchsorted(edges[1:-1], confidence, side="left")  # bin m = (edges[m], edges[m+1]]
    counts, accuracy, mean_confidence = [], [], []
    ece, mce = 0.0, 0.0
    for m in range(n_bins):
        in_bin = bins == m
        count = int(in_bin.sum())
        counts.append(count)
        if count == 0:
            accuracy.append(None)
            mean_confidence.append(None)
            continue
        acc, conf = float(correct[in_bin].mean()), float(confidence[in_bin].mean())
        accuracy.append(acc)
        mean_confidence.append(conf)
        ece += count / len(labels) * abs(acc - conf)
        mce = max(mce, abs(acc - conf))
    return {"n_bins": n_bins, "bin_edges": edges.tolist(), "bin_counts": counts, "bin_accuracy": accuracy,
            "bin_confidence": mean_confidence, "expected_calibration_error": float(ece),
            "maximum_calibration_error": float(mce),
            "accuracy": float(correct.mean()) if len(labels) else float("nan"),
            "mean_confidence": float(confidence.mean()) if len(labels) else float("nan")}


def expected_calibration_error(probabilities, labels, n_bins: int = DEFAULT_N_BINS) -> float:
    """Top-label expected calibration error with ``n_bins`` equal-width bins (formula in the module
    docstring; Guo et al., 2017). ``probabilities``: (N, K); ``labels``: (N,)."""
    return reliability_diagram_data(probabilities, labels, n_bins)["expected_calibration_error"]


def fit_temperature(logits, labels, bounds: tuple = (0.05, 20.0)) -> float:
    """The temperature ``T`` that minimises the NLL of ``softmax(logits / T)`` on (validation) ``labels``.

    The NLL of ``softmax(beta * z)`` is convex in ``beta = 1 / T``, so it has one minimum: it is found by a
    bounded scalar search (Brent's method, `scipy.optimize.minimize_scalar`) over ``log T`` in
    ``log(bounds)``. Deterministic; float64 throughout.

    Args:
        logits: (N, K) logits, or log-probabilities (e.g. the log of test-time-augmentation averaged
            probabilities: softmax is shift-invariant, so these are logits of the same probabilities).
        labels: (N,) true class ids of the split the temperature is fitted on (validation, never test).
        bounds: the range of ``T`` searched.
    Returns:
        the fitted temperature (float > 0).
    Raises:
        ValueError: for empty inputs.
    """
    from scipy.optimize import minimize_scalar

    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size == 0:
        raise ValueError("fit_temperature needs at least one sample")
    low, high = math.log(bounds[0]), math.log(bounds[1])
    result = minimize_scalar(lambda log_t: negative_log_likelihood(logits, labels, math.exp(log_t)),
                             bounds=(low, high), method="bounded", options={"xatol": 1e-6})
    temperature = math.exp(result.x)
    # Never return something worse than no scaling (a guard for degenerate inputs).
    if negative_log_likelihood(logits, labels, temperature) > negative_log_likelihood(logits, labels, 1.0):
        return 1.0
    return float(temperature)


__all__ = ["DEFAULT_N_BINS", "expected_calibration_error", "fit_temperature", "log_softmax",
           "negative_log_likelihood", "reliability_diagram_data", "softmax"]
