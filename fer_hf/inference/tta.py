"""Test-time augmentation (TTA) on `pixel_values`: average the softmax of several views of each face.

Modes (`TTA_MODES`):

- ``none``: the face as it is.
- ``flip``: the face and its mirror image (2 views).
- ``ten_crop``: the classic ten-crop evaluation (Krizhevsky et al., 2012) adapted to training with
  random crops from a padded face: the face is padded by ``padding`` pixels on every side (with the
  value that a black pixel has after normalization, as the training crops are), then the centre crop
  and the four corner crops of the original size are taken, each with its mirror image (10 views).

Every function returns ``log`` of the averaged probabilities, so ``argmax`` gives the prediction and
``softmax`` gives back the averaged probabilities (the convention of the fer_hf ensemble too).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

TTA_MODES = ("none", "flip", "ten_crop")


def tta_views(pixel_values: torch.Tensor, mode: str = "flip", padding: int = 4, pad_value=None) -> list:
    """The views of a batch for a TTA mode.

    Args:
        pixel_values: (batch, C, H, W) float tensor, normalized as the model expects.
        mode: one of `TTA_MODES`.
        padding: pixels of padding for ``ten_crop`` (the training ``--crop_padding``).
        pad_value: per-channel value (sequence of C floats or a scalar) of a black pixel after
            normalization, i.e. ``-image_mean / image_std``; defaults to 0.
    Returns:
        list of (batch, C, H, W) tensors (1, 2 or 10 of them).
    Raises:
        ValueError: for an unknown mode.
    """
    if mode not in TTA_MODES:
        raise ValueError(f"Unknown TTA mode {mode!r}; choose one of {TTA_MODES}")
    if mode == "none":
        return [pixel_values]
    if mode == "flip":
        return [pixel_values, torch.flip(pixel_values, dims=[3])]
    batch, channels, height, width = pixel_values.shape
    padded = F.pad(pixel_values, (padding,) * 4)
    if pad_value is not None:
        value = torch.as_tensor(pad_value, dtype=pixel_values.dtype, device=pixel_values.device).reshape(-1)
        value = value.expand(channels).reshape(1, channels, 1, 1)
        border = torch.ones_like(padded, dtype=torch.bool)
        border[:, :, padding:padding + height, padding:padding + width] = False
        padded = torch.where(border, value.expand_as(padded), padded)
    offsets = [(padding, padding), (0, 0), (0, 2 * padding), (2 * padding, 0), (2 * padding, 2 * padding)]
    crops = [padded[:, :, y:y + height, x:x + width] for y, x in offsets]
    return crops + [torch.flip(crop, dims=[3]) for crop in crops]


def tta_log_probs(model, pixel_values: torch.Tensor, mode: str = "flip", padding: int = 4, pad_value=None,
                  batch_views: bool = True) -> torch.Tensor:
    """Log of the softmax averaged over the TTA views of each face.

    Args:
        model: any fer_hf image-classification model (returns ``.logits`` (batch, num_labels)).
        pixel_values, mode, padding, pad_value: see `tta_views`.
        batch_views: run all views as one batch (faster) instead of one forward per view.
    Returns:
        (batch, num_labels) float tensor of log-probabilities. With ``mode="none"`` these are
        ``log_softmax(logits)``, so the argmax is the model's own prediction.
    """
    views = tta_views(pixel_values, mode, padding, pad_value)
    if batch_views and len(views) > 1:
        logits = model(pixel_values=torch.cat(views)).logits.float()
        probs = logits.softmax(-1).reshape(len(views), pixel_values.shape[0], -1).mean(0)
    else:
        probs = torch.stack([model(pixel_values=v).logits.float().softmax(-1) for v in views]).mean(0)
    return torch.log(probs.clamp_min(1e-12))


def black_pixel_value(image_processor) -> list:
    """``-image_mean / image_std`` per channel: the normalized value of a black pixel (the training
    crop padding), for `tta_views`' ``pad_value``."""
    if not getattr(image_processor, "do_normalize", True):
        return [0.0] * len(image_processor.image_mean)
    return [-m / s for m, s in zip(image_processor.image_mean, image_processor.image_std)]
