"""Batched, on-tensor data augmentation for small face crops (no per-image PIL work)."""

import math

import torch
import torch.nn.functional as F


def augment_batch(
    images: torch.Tensor,
    crop_padding: int = 4,
    max_rotation_degrees: float = 10.0,
    max_translation: float = 0.05,
    scale_range: tuple = (0.95, 1.05),
    flip_probability: float = 0.5,
    generator: torch.Generator = None,
) -> torch.Tensor:
    """Random crop with padding, horizontal flip, rotation, scaling and small translation, per image.

    Args:
        images: (batch, C, H, W) float tensor (any range).
        crop_padding: pixels of zero padding for the random crop (as in the CIFAR/FER2013 recipes:
            pad by ``crop_padding`` then crop back to H x W at a random offset).
        max_rotation_degrees: rotation angle drawn uniformly from +/- this many degrees.
        max_translation: extra translation, as a fraction of the image size, drawn uniformly per axis.
        scale_range: isotropic zoom factor drawn uniformly in this range.
        flip_probability: probability of a horizontal flip.
        generator: optional `torch.Generator` (defaults to the global RNG, which Accelerate checkpoints).
    Returns:
        (batch, C, H, W) float tensor, augmented; borders filled by replicating edge pixels for the
        affine warp and with zeros for the crop padding.
    """
    batch, _, height, width = images.shape
    device = images.device
    kw = {"device": device, "generator": generator}
    if crop_padding > 0:
        padded = F.pad(images, (crop_padding,) * 4)
        dy = torch.randint(0, 2 * crop_padding + 1, (batch,), **kw)
        dx = torch.randint(0, 2 * crop_padding + 1, (batch,), **kw)
        rows = (dy[:, None] + torch.arange(height, device=device)[None, :])  # (B, H)
        cols = (dx[:, None] + torch.arange(width, device=device)[None, :])  # (B, W)
        index_rows = rows[:, None, :, None].expand(-1, images.shape[1], -1, padded.shape[-1])
        images = torch.gather(padded, 2, index_rows)
        index_cols = cols[:, None, None, :].expand(-1, images.shape[1], height, -1)
        images = torch.gather(images, 3, index_cols)
    angle = (torch.rand(batch, **kw) * 2 - 1) * math.radians(max_rotation_degrees)
    scale = torch.rand(batch, **kw) * (scale_range[1] - scale_range[0]) + scale_range[0]
    flip = torch.where(torch.rand(batch, **kw) < flip_probability, -1.0, 1.0)
    shift = (torch.rand(batch, 2, **kw) * 2 - 1) * max_translation * 2  # normalized coords span 2
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, shift[:, 0]], 1), torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
