"""Image processor shared by every fer_hf model: any image -> normalized (batch, C, H, W) face tensor."""

from typing import Optional, Union

import numpy as np
from PIL import Image, ImageOps
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature

_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


def to_pil_image(image) -> Image.Image:
    """Return a PIL image for a PIL image, numpy array or torch tensor.

    Arrays/tensors may be (H, W), (H, W, C) or (C, H, W) with C in {1, 3, 4}; dtype uint8 (0..255),
    uint16 (0..65535) or float (0..1 if the maximum is <= 1, else 0..255).

    Raises:
        TypeError: for any other input type.
        ValueError: for an array of an unsupported shape.
    """
    if isinstance(image, Image.Image):
        return image
    if hasattr(image, "detach") and hasattr(image, "cpu"):  # torch.Tensor without importing torch
        image = image.detach().cpu().numpy()
    if not isinstance(image, np.ndarray):
        raise TypeError(f"Expected a PIL image, numpy array or torch tensor; got {type(image).__name__}")
    array = image
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = np.transpose(array, (1, 2, 0))  # CHW -> HWC
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ValueError(f"Unsupported image array shape {image.shape}; expected (H, W), (H, W, 3|4) or (3|4, H, W)")
    if array.dtype == np.uint16:
        array = (array.astype(np.float32) / 257.0).round()
    elif np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float32) * (255.0 if array.size and np.nanmax(array) <= 1.0 else 1.0)
    elif array.dtype == np.bool_:
        array = array.astype(np.float32) * 255.0
    array = np.clip(np.nan_to_num(array), 0, 255).astype(np.uint8)
    return Image.fromarray(array)


class FerImageProcessor(BaseImageProcessor):
    r"""
    Turns face images into `pixel_values` for fer_hf models. The same code path is used in training,
    evaluation, the app and `pipeline("image-classification")`.

    Steps, all deterministic: (1) apply the EXIF orientation of PIL images; (2) convert any PIL mode
    (L, LA, RGB, RGBA, P, PA, CMYK, YCbCr, I;16, I, F, 1) or numpy/torch array to ``num_channels``
    channels: transparent pixels are composited over white, 16-bit images are scaled to 8 bits, and
    grayscale uses the ITU-R 601-2 luma transform of PIL's ``convert("L")``; (3) resize to ``size`` with
    ``resample`` (PIL, antialiased); (4) rescale by ``rescale_factor``; (5) normalize with
    ``image_mean`` / ``image_std``.

    Args:
        num_channels (`int`, *optional*, defaults to 1): 1 for grayscale models, 3 for 3-channel models.
        do_grayscale (`bool`, *optional*, defaults to `True`): with ``num_channels=3``, first convert to
            grayscale and replicate it to 3 channels (how a 3-channel model trained on grayscale FER faces,
            e.g. an ImageNet backbone, must see every face); `False` keeps colour.
        do_resize (`bool`, *optional*, defaults to `True`): whether to resize to `size`.
        size (`dict[str, int]`, *optional*, defaults to `{"height": 48, "width": 48}`): output size in pixels.
        resample (`int`, *optional*, defaults to `PIL.Image.BILINEAR`): PIL resampling filter.
        do_rescale (`bool`, *optional*, defaults to `True`): whether to multiply by `rescale_factor`.
        rescale_factor (`float`, *optional*, defaults to 1/255): maps 0..255 to 0..1.
        do_normalize (`bool`, *optional*, defaults to `True`): whether to apply (x - mean) / std.
        image_mean (`list[float]`, *optional*, defaults to `[0.5]`): per-channel mean (after rescale).
        image_std (`list[float]`, *optional*, defaults to `[0.25]`): per-channel std (after rescale).

    Output: `BatchFeature` with ``pixel_values`` of shape (batch, num_channels, height, width), float32.
    """

    model_input_names = ["pixel_values"]

    def __init__(
        self,
        num_channels: int = 1,
        do_grayscale: bool = True,
        do_resize: bool = True,
        size: Optional[dict] = None,
        resample: int = Image.BILINEAR,
        do_rescale: bool = True,
        rescale_factor: float = 1 / 255,
        do_normalize: bool = True,
        image_mean: Optional[list] = None,
        image_std: Optional[list] = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_channels not in (1, 3):
            raise ValueError(f"num_channels must be 1 or 3, got {num_channels}")
        self.num_channels = num_channels
        self.do_grayscale = do_grayscale
        self.do_resize = do_resize
        self.size = dict(size) if size is not None else {"height": 48, "width": 48}
        self.resample = int(resample)
        self.do_rescale = do_rescale
        self.rescale_factor = rescale_factor
        self.do_normalize = do_normalize
        self.image_mean = list(image_mean) if image_mean is not None else [0.5] * num_channels
        self.image_std = list(image_std) if image_std is not None else [0.25] * num_channels

    # -- step 1-3: any image -> uint8 (H, W, C) ------------------------------------------------------
    def convert_and_resize(self, image) -> np.ndarray:
        """Any supported image -> uint8 array (height, width, num_channels) in 0..255 (steps 1-3)."""
        pil = to_pil_image(image)
        pil = ImageOps.exif_transpose(pil) or pil
        if pil.mode in _SIXTEEN_BIT_MODES or pil.mode == "F":
            array = np.asarray(pil).astype(np.float32)
            if pil.mode != "F" or (array.size and np.nanmax(array) > 1.0):
                scale = 257.0 if array.size and array.max() > 255 else 1.0
                array = array / scale
            else:
                array = array * 255.0
            pil = Image.fromarray(np.clip(array.round(), 0, 255).astype(np.uint8), mode="L")
        if pil.mode == "P":
            pil = pil.convert("RGBA")
        if pil.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
            rgba = pil.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            pil = Image.alpha_composite(background, rgba).convert("RGB")
        if self.num_channels == 3 and getattr(self, "do_grayscale", True) and pil.mode != "L":
            pil = pil.convert("RGB").convert("L")
        target = "L" if self.num_channels == 1 else "RGB"
        if pil.mode != target:
            if pil.mode not in ("L", "RGB"):
                pil = pil.convert("RGB")
            pil = pil.convert(target)
        if self.do_resize:
            size = (self.size["width"], self.size["height"])
            if pil.size != size:
                pil = pil.resize(size, resample=self.resample)
        array = np.asarray(pil, dtype=np.uint8)
        return array[..., None] if array.ndim == 2 else array

    # -- step 4-5: uint8 -> normalized float ---------------------------------------------------------
    def rescale_and_normalize(self, images):
        """uint8 batch (batch, C, H, W) as numpy array or torch tensor -> float32 `pixel_values` (steps 4-5).

        Used both here and by the training loop (after batched augmentation), so that training and
        inference share one normalization.
        """
        is_numpy = isinstance(images, np.ndarray)
        x = images.astype(np.float32) if is_numpy else images.float()
        if self.do_rescale:
            x = x * self.rescale_factor
        if self.do_normalize:
            shape = (1, -1, 1, 1)
            mean = np.asarray(self.image_mean, dtype=np.float32).reshape(shape)
            std = np.asarray(self.image_std, dtype=np.float32).reshape(shape)
            if not is_numpy:
                import torch

                mean, std = torch.from_numpy(mean).to(x.device), torch.from_numpy(std).to(x.device)
            x = (x - mean) / std
        return x

    def preprocess(self, images, return_tensors: Optional[Union[str, object]] = None, **kwargs) -> BatchFeature:
        """One image or a list of images -> `BatchFeature(pixel_values=(batch, C, H, W) float32)`.

        Raises:
            TypeError / ValueError: for unsupported inputs (see `to_pil_image`).
            PIL.UnidentifiedImageError: propagated if a lazily opened PIL image cannot be decoded.
        """
        if not isinstance(images, (list, tuple)):
            images = [images]
        if len(images) == 0:
            raise ValueError("preprocess() needs at least one image")
        batch = np.stack([self.convert_and_resize(image) for image in images]).transpose(0, 3, 1, 2)
        pixel_values = self.rescale_and_normalize(batch)
        return BatchFeature(data={"pixel_values": pixel_values}, tensor_type=return_tensors)
