"""Batched augmentation for the gap between FER corpora and faces in real photos, on context crops (see
`fer_hf.training.framing`): random framing (scale, aspect, offset) with rotation and flip in one affine
resampling, colour jitter, random grayscale, blur, downscale-upscale, JPEG re-encoding and random erasing.

Every step works on a whole batch of uint8 tensors (batch, 3, S, S); the random draws come from one
``torch.Generator`` so that a seed reproduces a batch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from .framing import CONTEXT_SCALE


@dataclass
class RealPhotoAugmentation:
    """Settings of `augment_batch` (probabilities per face; ranges are uniform unless said otherwise).

    Args:
        scale: (min, max) side of the framing in units of the recognizer frame (1 = the recognizer's crop;
            0.8 about a raw detector box; 1.3 looser than FER2013), drawn log-uniformly.
        aspect: (min, max) width / height of the framing before it is resized to a square.
        offset: largest shift of the framing's centre, in units of its side, in x and in y.
        rotation: largest rotation in degrees (either way).
        flip: probability of a horizontal flip.
        brightness / contrast / saturation: largest relative change (0.3 = factor in [0.7, 1.3]).
        hue: largest hue shift as a fraction of the colour wheel (applied through a YIQ rotation).
        grayscale: probability of turning a colour face gray (gray faces stay gray).
        blur: probability of a Gaussian blur with sigma in ``blur_sigma`` (pixels of the output).
        downscale: probability of downscaling to a side in ``downscale_size`` pixels and back (small faces).
        jpeg: probability of JPEG re-encoding at a quality in ``jpeg_quality``.
        erasing: probability of erasing one rectangle of ``erasing_area`` of the face with noise (occlusion).
    """

    scale: tuple = (0.8, 1.3)
    aspect: tuple = (0.9, 1.1)
    offset: float = 0.08
    rotation: float = 15.0
    flip: float = 0.5
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3
    hue: float = 0.03
    grayscale: float = 0.2
    blur: float = 0.15
    blur_sigma: tuple = (0.3, 1.5)
    downscale: float = 0.25
    downscale_size: tuple = (24, 128)
    jpeg: float = 0.3
    jpeg_quality: tuple = (30, 95)
    erasing: float = 0.25
    erasing_area: tuple = (0.02, 0.15)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def _uniform(low, high, n, generator):
    return low + (high - low) * torch.rand(n, generator=generator)


def frame_batch(context: torch.Tensor, output_size: int, scale=None, aspect=None, offset_x=None, offset_y=None,
                angle=None, flip=None, context_scale: float = CONTEXT_SCALE) -> torch.Tensor:
    """Cut framings from a batch of context crops with one bilinear ``grid_sample``.

    Args:
        context: float tensor (batch, C, S, S), context crops (the recognizer frame is the centred square of
            side S / ``context_scale``).
        output_size: side of the output in pixels.
        scale, aspect, offset_x, offset_y, angle, flip: per-face tensors (batch,) or None for the identity:
            framing side in recognizer-frame units, width / height, centre shift in units of the framing's
            side, rotation in degrees, horizontal flip (bool).
    Returns:
        float tensor (batch, C, output_size, output_size); outside the context is the edge pixel's value.
    """
    n = context.shape[0]
    ones, zeros = torch.ones(n), torch.zeros(n)
    scale = ones if scale is None else scale
    aspect = ones if aspect is None else aspect
    offset_x = zeros if offset_x is None else offset_x
    offset_y = zeros if offset_y is None else offset_y
    theta = torch.deg2rad(zeros if angle is None else angle)
    sx = scale * aspect.sqrt() / context_scale
    sy = scale / aspect.sqrt() / context_scale
    mirror = torch.where(flip, -ones, ones) if flip is not None else ones
    cos, sin = torch.cos(theta), torch.sin(theta)
    matrix = torch.stack([
        torch.stack([sx * cos * mirror, -sy * sin, 2 * offset_x * scale / context_scale], 1),
        torch.stack([sx * sin * mirror, sy * cos, 2 * offset_y * scale / context_scale], 1),
    ], 1)
    grid = F.affine_grid(matrix.to(context.dtype), [n, context.shape[1], output_size, output_size], align_corners=False)
    # antialias: shrink the context first when the framing would skip pixels
    needed = int(math.ceil(output_size * context_scale / float(scale.min())))
    if context.shape[-1] > 1.5 * needed:
        context = F.interpolate(context, size=(needed, needed), mode="bilinear", antialias=True, align_corners=False)
    return F.grid_sample(context, grid, mode="bilinear", padding_mode="border", align_corners=False)


def centre_frame(context: torch.Tensor, output_size: int, context_scale: float = CONTEXT_SCALE) -> torch.Tensor:
    """The recognizer frame of each context crop (scale 1, centred, no rotation), resized to ``output_size``
    with an antialiased bilinear filter. float (batch, C, S, S) -> float (batch, C, output_size, output_size)."""
    side = context.shape[-1]
    inner = int(round(side / context_scale))
    start = (side - inner) // 2
    crop = context[..., start:start + inner, start:start + inner]
    return F.interpolate(crop, size=(output_size, output_size), mode="bilinear", antialias=True, align_corners=False)


def luma(x: torch.Tensor) -> torch.Tensor:
    """float RGB (batch, 3, H, W) -> (batch, 1, H, W) by the ITU-R 601-2 luma transform (PIL's ``convert("L")``,
    what `FerImageProcessor` uses for gray models)."""
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).view(1, 3, 1, 1)
    return (x * weights).sum(1, keepdim=True)


def augment_batch(context: torch.Tensor, output_size: int, settings: RealPhotoAugmentation,
                  generator: torch.Generator, is_gray: torch.Tensor | None = None) -> torch.Tensor:
    """Random framing + photometric augmentation of a batch of context crops.

    Args:
        context: uint8 tensor (batch, 3, S, S) of context crops (gray faces as 3 equal channels).
        output_size: side of the result in pixels (the model's ``image_size``).
        settings: the ranges and probabilities.
        generator: the source of every random draw.
        is_gray: optional bool (batch,): faces that are gray in the corpus (no colour jitter of hue or
            saturation, they stay gray).
    Returns:
        float32 tensor (batch, 3, output_size, output_size) in [0, 1], RGB (gray faces and faces turned
        gray have 3 equal channels).
    """
    n, g = context.shape[0], generator
    s = settings
    log_scale = _uniform(math.log(s.scale[0]), math.log(s.scale[1]), n, g)
    x = frame_batch(
        context.float() / 255.0, output_size, scale=log_scale.exp(), aspect=_uniform(*s.aspect, n, g),
        offset_x=_uniform(-s.offset, s.offset, n, g), offset_y=_uniform(-s.offset, s.offset, n, g),
        angle=_uniform(-s.rotation, s.rotation, n, g), flip=torch.rand(n, generator=g) < s.flip,
    )
    view = (n, 1, 1, 1)
    # colour: brightness, contrast around the face's mean grey, saturation around its grey, hue via YIQ
    x = x * _uniform(1 - s.brightness, 1 + s.brightness, n, g).view(view)
    mean = luma(x).mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * _uniform(1 - s.contrast, 1 + s.contrast, n, g).view(view) + mean
    gray = luma(x)
    x = (x - gray) * _uniform(1 - s.saturation, 1 + s.saturation, n, g).view(view) + gray
    if s.hue > 0:
        angle = _uniform(-s.hue, s.hue, n, g) * 2 * math.pi
        to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
        cos, sin = torch.cos(angle), torch.sin(angle)
        rotation = torch.zeros(n, 3, 3)
        rotation[:, 0, 0] = 1
        rotation[:, 1, 1], rotation[:, 1, 2], rotation[:, 2, 1], rotation[:, 2, 2] = cos, -sin, sin, cos
        transform = torch.linalg.inv(to_yiq) @ rotation @ to_yiq
        x = torch.einsum("nij,njhw->nihw", transform, x)
    turn_gray = torch.rand(n, generator=g) < s.grayscale
    if is_gray is not None:
        turn_gray = turn_gray | is_gray.bool()
    x = torch.where(turn_gray.view(view), luma(x).expand_as(x), x).clamp(0, 1)
    # small faces: down to a random side, back up (groups of equal size share one interpolate call)
    down = torch.rand(n, generator=g) < s.downscale
    if down.any():
        sizes = torch.randint(s.downscale_size[0], s.downscale_size[1] + 1, (n,), generator=g)
        for index in torch.nonzero(down).flatten().tolist():
            side = int(sizes[index])
            if side < output_size:
                small = F.interpolate(x[index:index + 1], size=(side, side), mode="bilinear", antialias=True,
                                      align_corners=False)
                x[index:index + 1] = F.interpolate(small, size=(output_size, output_size), mode="bilinear",
                                                   align_corners=False)
    blur = torch.rand(n, generator=g) < s.blur
    if blur.any():
        from torchvision.transforms.v2.functional import gaussian_blur

        sigmas = _uniform(*s.blur_sigma, n, g)
        for index in torch.nonzero(blur).flatten().tolist():
            sigma = float(sigmas[index])
            kernel = 2 * int(math.ceil(2 * sigma)) + 1
            x[index] = gaussian_blur(x[index], [kernel, kernel], [sigma, sigma])
    jpeg = torch.rand(n, generator=g) < s.jpeg
    if jpeg.any():
        from torchvision.io import decode_jpeg, encode_jpeg

        qualities = torch.randint(s.jpeg_quality[0], s.jpeg_quality[1] + 1, (n,), generator=g)
        for index in torch.nonzero(jpeg).flatten().tolist():
            pixels = (x[index] * 255).round().clamp(0, 255).to(torch.uint8)
            x[index] = decode_jpeg(encode_jpeg(pixels, quality=int(qualities[index]))).float() / 255.0
    erase = torch.rand(n, generator=g) < s.erasing
    if erase.any():
        areas = _uniform(*s.erasing_area, n, g)
        ratios = torch.exp(_uniform(math.log(0.3), math.log(3.3), n, g))
        for index in torch.nonzero(erase).flatten().tolist():
            area = float(areas[index]) * output_size * output_size
            h = min(output_size, max(1, int(round(math.sqrt(area * float(ratios[index]))))))
            w = min(output_size, max(1, int(round(math.sqrt(area / float(ratios[index]))))))
            top = int(torch.randint(0, output_size - h + 1, (1,), generator=g))
            left = int(torch.randint(0, output_size - w + 1, (1,), generator=g))
            x[index, :, top:top + h, left:left + w] = torch.rand(3, h, w, generator=g)
    return x
