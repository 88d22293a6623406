"""Batched, on-tensor data augmentation for small face crops (no per-image PIL work).

Every function takes a float batch ``(batch, C, H, W)`` (any range; uint8 faces cast to float) and
draws its randomness per image from the global torch RNG (which Accelerate checkpoints) or from an
optional ``torch.Generator``. Presets (`AUGMENTATION_PRESETS`, the ``--augmentation`` flag of
``train_accelerate.py``):

- ``none``: the faces as they are.
- ``crp``: random crop with 4-pixel zero padding, rotation of +/-10 degrees, horizontal flip
  (the CIFAR / FER2013 recipe of the systems fer_hf grew from).
- ``crp+color``: ``crp`` + brightness and contrast jitter of +/-0.2 per image.
- ``crp+cutout``: ``crp`` + random erasing (Zhong et al., 2020, "Random Erasing Data Augmentation";
  cutout, DeVries & Taylor, 2017) with p=0.5 and an erased area of 1-11% of the face.
- ``mixup+cutmix``: ``crp`` + per batch either mixup (Zhang et al., 2018; Beta(0.2, 0.2)) or CutMix
  (Yun et al., 2019; Beta(1, 1)), via torchvision's ``transforms.v2.MixUp`` / ``CutMix``; the labels
  become soft targets (batch, num_labels) that sum to 1.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

AUGMENTATION_PRESETS = ("none", "crp", "crp+color", "crp+cutout", "mixup+cutmix")


def _uniform(batch: int, low: float, high: float, device, generator) -> torch.Tensor:
    return torch.rand(batch, device=device, generator=generator) * (high - low) + low


def random_crop(images: torch.Tensor, padding: int = 4, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Pad every side by ``padding`` zero pixels, then crop back to (H, W) at a random offset per image."""
    if padding <= 0:
        return images
    batch, channels, height, width = images.shape
    device = images.device
    padded = F.pad(images, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (batch,), device=device, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (batch,), device=device, generator=generator)
    rows = dy[:, None] + torch.arange(height, device=device)[None, :]
    cols = dx[:, None] + torch.arange(width, device=device)[None, :]
    images = torch.gather(padded, 2, rows[:, None, :, None].expand(-1, channels, -1, padded.shape[-1]))
    return torch.gather(images, 3, cols[:, None, None, :].expand(-1, channels, height, -1))


def augment_batch(
    images: torch.Tensor,
    crop_padding: int = 4,
    max_rotation_degrees: float = 10.0,
    max_translation: float = 0.0,
    scale_range: tuple = (1.0, 1.0),
    flip_probability: float = 0.5,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """The ``crp`` geometry: random crop with padding, horizontal flip, rotation (and optionally zoom
    and translation), drawn per image.

    Args:
        images: (batch, C, H, W) float tensor (any range).
        crop_padding: pixels of zero padding for the random crop (pad by ``crop_padding`` then crop back
            to H x W at a random offset).
        max_rotation_degrees: rotation angle drawn uniformly from +/- this many degrees.
        max_translation: extra translation, as a fraction of the image size, drawn uniformly per axis.
        scale_range: isotropic zoom factor drawn uniformly in this range.
        flip_probability: probability of a horizontal flip.
        generator: optional `torch.Generator` (defaults to the global RNG, which Accelerate checkpoints).
    Returns:
        (batch, C, H, W) float tensor; borders filled by replicating edge pixels for the affine warp and
        with zeros for the crop padding.
    """
    batch = images.shape[0]
    device = images.device
    images = random_crop(images, crop_padding, generator)
    angle = _uniform(batch, -1, 1, device, generator) * math.radians(max_rotation_degrees)
    scale = _uniform(batch, scale_range[0], scale_range[1], device, generator)
    flip = torch.where(torch.rand(batch, device=device, generator=generator) < flip_probability, -1.0, 1.0)
    shift = (torch.rand(batch, 2, device=device, generator=generator) * 2 - 1) * max_translation * 2
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, shift[:, 0]], 1), torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def color_jitter(images: torch.Tensor, brightness: float = 0.2, contrast: float = 0.2, max_value: float = 255.0,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Per-image brightness (multiply by U(1-b, 1+b)) and contrast (blend with the image's mean grey
    level by U(1-c, 1+c)), as torchvision's ``ColorJitter``; clamped to [0, ``max_value``]."""
    batch = images.shape[0]
    shape = (batch, 1, 1, 1)
    b = _uniform(batch, 1 - brightness, 1 + brightness, images.device, generator).view(shape)
    c = _uniform(batch, 1 - contrast, 1 + contrast, images.device, generator).view(shape)
    images = (images * b).clamp(0, max_value)
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return ((images - mean) * c + mean).clamp(0, max_value)


def random_erasing(images: torch.Tensor, probability: float = 0.5, scale: tuple = (0.01, 0.11),
                   ratio: tuple = (0.3, 3.3), value: float = 0.0,
                   generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Random erasing per image (Zhong et al., 2020): with ``probability``, a rectangle of
    ``scale`` x the image area and aspect ratio in ``ratio`` (log-uniform) is set to ``value``.
    Unlike ``torchvision.transforms.v2.RandomErasing`` on a batch, each image gets its own draw."""
    batch, _, height, width = images.shape
    device = images.device
    area = _uniform(batch, scale[0], scale[1], device, generator) * height * width
    log_ratio = _uniform(batch, math.log(ratio[0]), math.log(ratio[1]), device, generator)
    aspect = torch.exp(log_ratio)
    h = torch.sqrt(area * aspect).round().clamp(1, height)
    w = torch.sqrt(area / aspect).round().clamp(1, width)
    top = (torch.rand(batch, device=device, generator=generator) * (height - h + 1)).floor()
    left = (torch.rand(batch, device=device, generator=generator) * (width - w + 1)).floor()
    apply = torch.rand(batch, device=device, generator=generator) < probability
    ys = torch.arange(height, device=device)[None, :]
    xs = torch.arange(width, device=device)[None, :]
    in_rows = (ys >= top[:, None]) & (ys < (top + h)[:, None])
    in_cols = (xs >= left[:, None]) & (xs < (left + w)[:, None])
    mask = (in_rows[:, :, None] & in_cols[:, None, :] & apply[:, None, None])[:, None]
    return images.masked_fill(mask, value)


def mixup_or_cutmix(images: torch.Tensor, labels: torch.Tensor, num_labels: int, mixup_alpha: float = 0.2,
                    cutmix_alpha: float = 1.0):
    """Either mixup or CutMix (chosen with p=0.5 per batch) with torchvision's ``transforms.v2``.

    Args:
        images: (batch, C, H, W) float tensor.
        labels: (batch,) int64 label ids, or (batch, num_labels) float soft targets.
    Returns:
        (images, soft_targets) with soft_targets (batch, num_labels) float, each row summing to 1.
    """
    from torchvision.transforms import v2

    if labels.ndim == 2:  # soft targets: mix them with the same permutation and weight as the images
        return _mix_soft(images, labels, mixup_alpha, cutmix_alpha)
    transform = v2.RandomChoice([v2.MixUp(alpha=mixup_alpha, num_classes=num_labels),
                                 v2.CutMix(alpha=cutmix_alpha, num_classes=num_labels)])
    return transform(images, labels)


def _mix_soft(images, targets, mixup_alpha, cutmix_alpha):
    batch, _, height, width = images.shape
    use_cutmix = bool(torch.rand(()) < 0.5)
    alpha = cutmix_alpha if use_cutmix else mixup_alpha
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    rolled_images, rolled_targets = images.roll(1, 0), targets.roll(1, 0)
    if not use_cutmix:
        return lam * images + (1 - lam) * rolled_images, lam * targets + (1 - lam) * rolled_targets
    cut_h, cut_w = int(height * math.sqrt(1 - lam)), int(width * math.sqrt(1 - lam))
    cy, cx = int(torch.randint(height, ())), int(torch.randint(width, ()))
    y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
    x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
    images = images.clone()
    images[:, :, y0:y1, x0:x1] = rolled_images[:, :, y0:y1, x0:x1]
    lam = 1 - (y1 - y0) * (x1 - x0) / (height * width)
    return images, lam * targets + (1 - lam) * rolled_targets


def apply_preset(preset: str, images: torch.Tensor, labels: torch.Tensor, num_labels: int,
                 crop_padding: int = 4, max_rotation_degrees: float = 10.0, max_translation: float = 0.0,
                 scale_range: tuple = (1.0, 1.0), max_value: float = 255.0):
    """Apply an augmentation preset (see the module docstring) to a batch.

    Args:
        preset: one of `AUGMENTATION_PRESETS`.
        images: (batch, C, H, W) float tensor in [0, ``max_value``] (uint8 faces cast to float).
        labels: (batch,) int64 ids or (batch, num_labels) float soft targets.
        num_labels: number of classes (for mixup / CutMix soft targets).
    Returns:
        (images (batch, C, H, W) float, targets): ``targets`` is ``labels`` unchanged, except for
        ``mixup+cutmix``, which returns (batch, num_labels) float soft targets summing to 1.
    Raises:
        ValueError: for an unknown preset.
    """
    if preset not in AUGMENTATION_PRESETS:
        raise ValueError(f"Unknown augmentation preset {preset!r}; choose one of {AUGMENTATION_PRESETS}")
    if preset == "none":
        return images, labels
    images = augment_batch(images, crop_padding=crop_padding, max_rotation_degrees=max_rotation_degrees,
                           max_translation=max_translation, scale_range=scale_range)
    if preset == "crp+color":
        images = color_jitter(images, 0.2, 0.2, max_value=max_value)
    elif preset == "crp+cutout":
        images = random_erasing(images, probability=0.5, scale=(0.01, 0.11), value=max_value / 2)
    elif preset == "mixup+cutmix":
        images, labels = mixup_or_cutmix(images, labels, num_labels)
    return images, labels
