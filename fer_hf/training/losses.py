"""Training losses for FER: (class-weighted) cross-entropy with label smoothing on hard or soft targets,
and knowledge distillation (Hinton, Vinyals & Dean, 2015, "Distilling the Knowledge in a Neural Network")."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

CLASS_WEIGHTINGS = ("none", "inverse", "sqrt_inverse")


def class_weights(labels: torch.Tensor, num_labels: int, scheme: str = "inverse") -> Optional[torch.Tensor]:
    """Per-class loss weights from the training labels, normalised to a mean of 1 over the classes.

    Args:
        labels: (N,) int64 training label ids.
        num_labels: number of classes K.
        scheme: ``none`` (returns None), ``inverse`` (w_c proportional to 1 / n_c: every class weighs
            the same in total; FER2013 disgust, 436 images, then weighs 16.5x happy, 7,215) or
            ``sqrt_inverse`` (w_c proportional to 1 / sqrt(n_c), a milder correction).
    Returns:
        (K,) float32 tensor, or None for ``none``.
    Raises:
        ValueError: for an unknown scheme or a class without any training image.
    """
    if scheme not in CLASS_WEIGHTINGS:
        raise ValueError(f"Unknown class weighting {scheme!r}; choose one of {CLASS_WEIGHTINGS}")
    if scheme == "none":
        return None
    counts = torch.bincount(labels.long(), minlength=num_labels).float()
    if (counts == 0).any():
        raise ValueError(f"class weights need every class in the training labels; counts {counts.tolist()}")
    weights = 1.0 / counts if scheme == "inverse" else 1.0 / counts.sqrt()
    return weights * num_labels / weights.sum()


def classification_loss(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0,
                        weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Mean cross-entropy for hard targets (N,) int64 or soft targets (N, K) float summing to 1
    (mixup / CutMix, vote distributions), with label smoothing and optional class weights (K,)."""
    targets = targets if targets.is_floating_point() else targets.long()
    return F.cross_entropy(logits.float(), targets, weight=weight, label_smoothing=label_smoothing)


def distillation_loss(student_logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton et al.'s soft-target term: ``T^2 * KL(teacher_T || student_T)``, batch mean.

    Args:
        student_logits: (N, K) logits of the student.
        teacher_probs: (N, K) teacher probabilities at the same temperature (softmax(teacher_logits / T)).
        temperature: T > 0; the T^2 factor keeps gradient magnitudes comparable across temperatures.
    """
    log_student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    return F.kl_div(log_student, teacher_probs.float(), reduction="batchmean") * temperature ** 2
