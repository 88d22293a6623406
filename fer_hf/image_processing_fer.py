"""Image processor shared by every fer_hf model: any image -> normalized (batch, C, H, W) face tensor.

This file is copied into every released model folder (``trust_remote_code``), so it imports nothing from
fer_hf: it holds the processor and the few conversions the processor itself needs (`to_pil_image`, EXIF
orientation, `to_l_or_rgb`, `decode_lazy_image`). Reading files safely lives in `fer_hf.image_io`.
"""

from typing import Optional, Union

import numpy as np
from PIL import Image, ImageOps
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature

_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}
_ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")
_EXIF_ORIENTATION = 0x0112
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}

class CorruptImageError(OSError):
    """A file of an image format Pillow knows whose pixel data cannot be decoded (truncated or corrupt)."""


def apply_exif_orientation(image: Image.Image) -> Image.Image:
    """``image`` upright per its EXIF orientation (2-8), the orientation then removed; ``image`` itself
    for orientation 1, a missing tag, a value EXIF does not define (0, 9, 255, text, ...) or unreadable
    EXIF data (metadata never makes an image unreadable)."""
    try:
        orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - corrupt EXIF block: keep the pixels as stored
        return image
    try:
        method = _TRANSPOSE.get(orientation)
    except TypeError:  # an unhashable value
        return image
    if method is None:
        return image
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - EXIF that cannot be rewritten: transpose and drop the metadata
        upright = image.transpose(method)
        for key in ("exif", "Raw profile type exif", "XML:com.adobe.xmp", "xmp"):
            upright.info.pop(key, None)
        return upright


def to_l_or_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> an ``L`` or ``RGB`` image (``L`` and ``RGB`` returned as they are): 16-bit / 32-bit
    integer (I;16*, I) and float (F) images scaled to 8-bit grey like `FerImageProcessor` (a float image
    whose maximum is <= 1 is taken as 0..1), mode 1 to L, palette expanded, transparent pixels composited
    over white, every other mode (CMYK, YCbCr, LAB, HSV, RGBX, ...) converted to RGB.

    Raises:
        ValueError: for a float image with NaN / infinite pixels, or a mode Pillow cannot convert.
    """
    if image.mode in ("L", "RGB"):
        return image
    if image.mode in _SIXTEEN_BIT_MODES or image.mode == "F":
        array = np.asarray(image).astype(np.float32)
        if not np.isfinite(array).all():
            raise ValueError("The image holds NaN or infinite pixel values (a float image)")
        if image.mode != "F" or (array.size and array.max() > 1.0):
            array = array / (257.0 if array.size and array.max() > 255 else 1.0)
        else:
            array = array * 255.0
        return Image.fromarray(np.clip(array.round(), 0, 255).astype(np.uint8), mode="L")
    if image.mode == "1":
        return image.convert("L")
    try:
        if image.mode == "P":
            image = image.convert("RGBA")
        elif image.mode == "La":  # premultiplied alpha Pillow cannot convert: read as straight alpha
            image = Image.merge("LA", image.split())
        if image.mode in _ALPHA_MODES:
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(background, rgba).convert("RGB")
        return image.convert("RGB")
    except ValueError as error:
        raise ValueError(f"Images of mode {image.mode!r} are not supported ({error})") from None


def decode_lazy_image(image: Image.Image) -> None:
    """Decode a PIL image opened lazily by the caller (``Image.open`` without ``load``) now, so that a
    truncated or corrupt file raises `CorruptImageError` (an OSError naming the problem) instead of a raw
    decoder error later; a no-op for images in memory."""
    if getattr(image, "_im", True) is None or getattr(image, "fp", None) is not None:
        try:
            image.load()
        except MemoryError:
            raise
        except Exception as error:  # noqa: BLE001 - any decoder failure means an unusable file
            raise CorruptImageError(f"The image data cannot be decoded, the file is truncated or corrupt "
                                    f"({type(error).__name__}: {' '.join(str(error).split())})") from None


def to_pil_image(image) -> Image.Image:
    """Return a PIL image for a PIL image, numpy array or torch tensor.

    Arrays/tensors may be (H, W), (H, W, C) or (C, H, W) with C in {1, 3, 4}; dtype uint8 (0..255),
    uint16 (0..65535) or float (0..1 if the maximum is <= 1, else 0..255).

    Raises:
        TypeError: for any other input type.
        ValueError: for an array of an unsupported shape or dtype, an empty array, or one holding NaN or
            infinite values.
    """
    if isinstance(image, Image.Image):
        return image
    if hasattr(image, "detach") and hasattr(image, "cpu"):  # torch.Tensor without importing torch
        image = image.detach().cpu()
        if str(getattr(image, "dtype", "")) == "torch.bfloat16":  # numpy has no bfloat16
            image = image.float()
        image = image.numpy()
    if not isinstance(image, np.ndarray):
        raise TypeError(f"Expected a PIL image, numpy array or torch tensor; got {type(image).__name__}")
    if not (image.dtype == np.bool_ or np.issubdtype(image.dtype, np.integer)
            or np.issubdtype(image.dtype, np.floating)):
        raise ValueError(f"Unsupported image array dtype {image.dtype}; expected uint8, uint16, another integer "
                         "type, bool or float")
    if image.size == 0:
        raise ValueError(f"Empty image array of shape {image.shape}")
    if np.issubdtype(image.dtype, np.floating) and not np.isfinite(image).all():
        raise ValueError(f"The image array holds NaN or infinite values (shape {image.shape}, dtype {image.dtype})")
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
        array = array.astype(np.float32) * (255.0 if array.max() <= 1.0 else 1.0)
    elif array.dtype == np.bool_:
        array = array.astype(np.float32) * 255.0
    array = np.clip(array, 0, 255).astype(np.uint8)
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
    def decode_settings(self) -> tuple:
        """The settings `convert_and_resize` reads, with their defaults filled in: two processors with equal
        ``decode_settings()`` turn every image into the same uint8 array (a saved config that predates
        ``do_grayscale`` decodes like one with ``do_grayscale=True``), so decoded faces can be shared between
        them (`fer_hf.training.ensembling.build_ensemble`). Keep in step with `convert_and_resize`."""
        grayscale = bool(getattr(self, "do_grayscale", True)) if self.num_channels == 3 else None
        size = (self.size["height"], self.size["width"]) if self.do_resize else None
        return (self.num_channels, grayscale, bool(self.do_resize), size,
                int(self.resample) if self.do_resize else None)

    def convert_and_resize(self, image) -> np.ndarray:
        """Any supported image -> uint8 array (height, width, num_channels) in 0..255 (steps 1-3).

        Raises:
            TypeError / ValueError: see `to_pil_image` and `to_l_or_rgb` (NaN / infinite values, empty images).
            `CorruptImageError` (OSError): a lazily opened PIL image whose data cannot be decoded.
        """
        pil = to_pil_image(image)
        if pil.width < 1 or pil.height < 1:
            raise ValueError(f"Empty image ({pil.width}x{pil.height} pixels)")
        decode_lazy_image(pil)  # CorruptImageError (OSError) for a lazily opened broken file
        pil = apply_exif_orientation(pil)
        pil = to_l_or_rgb(pil)  # ValueError for NaN / infinite float pixels
        if self.num_channels == 3 and getattr(self, "do_grayscale", True) and pil.mode != "L":
            pil = pil.convert("L")
        target = "L" if self.num_channels == 1 else "RGB"
        if pil.mode != target:
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
        """One image, or a list, tuple or other iterable of images (e.g. a `datasets` image column) ->
        `BatchFeature(pixel_values=(batch, C, H, W) float32)`.

        Raises:
            TypeError / ValueError: for unsupported inputs (see `to_pil_image`): NaN / infinite values,
                empty images, unsupported shapes or dtypes.
            `CorruptImageError` (OSError): a lazily opened PIL image whose data cannot be decoded.
        """
        if not isinstance(images, (list, tuple)):
            # datasets >= 4 gives ds["image"] as a lazy Column: an iterable of images, not a list
            one = isinstance(images, (Image.Image, np.ndarray, str, bytes)) or hasattr(images, "detach")
            images = [images] if one or not hasattr(images, "__iter__") else list(images)
        if len(images) == 0:
            raise ValueError("preprocess() needs at least one image")
        batch = np.stack([self.convert_and_resize(image) for image in images]).transpose(0, 3, 1, 2)
        pixel_values = self.rescale_and_normalize(batch)
        return BatchFeature(data={"pixel_values": pixel_values}, tensor_type=return_tensors)
