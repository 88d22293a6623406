"""Prior correction for a domain whose class balance the model misjudges (e.g. answering ``angry`` for half of
the faces in real photos): per-class additive logit biases, fitted on labelled development faces only.

The biases minimise the class-balanced cross-entropy (the mean over classes of each class's mean
cross-entropy) of ``logits + bias`` on the development faces; with only 7 free numbers the problem is convex
and cannot memorise faces. This is post-hoc logit adjustment (Menon et al., "Long-tail learning via logit
adjustment", ICLR 2021) with the adjustment learned from development data instead of set from training
priors. The biases travel in the model's config (``logit_adjustment``) and are added in ``forward``.
"""

from __future__ import annotations

import numpy as np
import torch

from .multicorpus import balanced_accuracy


def fit_logit_adjustment(logits: np.ndarray, labels: np.ndarray, num_labels: int, min_class_faces: int = 1,
                         weight_decay: float = 1e-3) -> np.ndarray:
    """Per-class biases (float32 (num_labels,), mean 0) that minimise the class-balanced cross-entropy of
    ``logits + bias`` over the classes with at least ``min_class_faces`` faces (other classes keep bias 0
    relative to the mean).

    Args:
        logits: float (N, num_labels), the model's logits on development faces.
        labels: int (N,), their labels.
        weight_decay: L2 penalty on the biases (keeps classes absent from the data near 0).
    Raises:
        ValueError: for mismatched shapes or no class with enough faces.
    """
    logits = torch.as_tensor(np.asarray(logits, np.float32))
    labels = torch.as_tensor(np.asarray(labels, np.int64))
    if logits.ndim != 2 or logits.shape[1] != num_labels or len(labels) != len(logits):
        raise ValueError(f"logits must be (N, {num_labels}) and labels (N,); got {tuple(logits.shape)}, "
                         f"{tuple(labels.shape)}")
    classes = [k for k in range(num_labels) if int((labels == k).sum()) >= min_class_faces]
    if not classes:
        raise ValueError(f"no class has {min_class_faces} or more faces")
    bias = torch.zeros(num_labels, requires_grad=True)
    optimizer = torch.optim.LBFGS([bias], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        losses = torch.nn.functional.cross_entropy(logits + bias, labels, reduction="none")
        loss = torch.stack([losses[labels == k].mean() for k in classes]).mean() + weight_decay * (bias ** 2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    out = bias.detach().numpy()
    return (out - out.mean()).astype(np.float32)


def cross_fitted_gain(dev: dict, num_labels: int, min_class_faces: dict | None = None) -> dict:
    """The adoption test of docs/real_photos_rules.md: for two development splits A and B, biases fitted on A
    are scored on B and the other way round; the mean balanced accuracy of the corrected scores is compared
    with the uncorrected one on the same splits.

    Args:
        dev: {split name: (logits (N, num_labels), labels (N,))}, exactly two splits.
        min_class_faces: {split name: minimum faces per class for fitting and balanced accuracy} (default 1).
    Returns:
        {"uncorrected": {split: balanced accuracy}, "cross_fitted": {split: balanced accuracy},
        "uncorrected_mean", "cross_fitted_mean", "adopt" (bool), "bias" (fitted on both splits pooled, list)}.
    Raises:
        ValueError: unless ``dev`` has exactly two splits.
    """
    if len(dev) != 2:
        raise ValueError(f"cross-fitting needs exactly two development splits; got {sorted(dev)}")
    minimum = {name: (min_class_faces or {}).get(name, 1) for name in dev}
    (a, (la, ya)), (b, (lb, yb)) = dev.items()
    plain = {name: balanced_accuracy(y, l.argmax(1), num_labels, minimum[name])[0] for name, (l, y) in dev.items()}
    bias_a = fit_logit_adjustment(la, ya, num_labels, minimum[a])
    bias_b = fit_logit_adjustment(lb, yb, num_labels, minimum[b])
    crossed = {b: balanced_accuracy(yb, (lb + bias_a).argmax(1), num_labels, minimum[b])[0],
               a: balanced_accuracy(ya, (la + bias_b).argmax(1), num_labels, minimum[a])[0]}
    pooled = fit_logit_adjustment(np.concatenate([la, lb]), np.concatenate([ya, yb]), num_labels,
                                  min(minimum.values()))
    result = {"uncorrected": plain, "cross_fitted": crossed,
              "uncorrected_mean": float(np.mean(list(plain.values()))),
              "cross_fitted_mean": float(np.mean(list(crossed.values()))), "bias": pooled.tolist()}
    result["adopt"] = bool(result["cross_fitted_mean"] > result["uncorrected_mean"])
    return result
