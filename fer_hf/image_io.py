"""Safe image reading for every fer_hf entry point (`read_image`, `open_image`, `load_image`)
and the one list of image and video file extensions (`IMAGE_EXTENSIONS`, `VIDEO_EXTENSIONS`). Files are checked from their header before any pixel is decoded (`max_image_pixels`, ``FER_HF_MAX_IMAGE_PIXELS``), and every
way an input can be unusable becomes one of a few documented errors whose message says what is wrong:

=============================  ============================================================================
error                          when
=============================  ============================================================================
`FileNotFoundError`            a path that does not exist
`IsADirectoryError`            a folder given as an image
`PIL.UnidentifiedImageError`   an empty file (0 bytes), or a file that is not an image in a format Pillow
                               reads (text, HTML, a Git LFS pointer, a PDF, a zip, ...): the message says
                               which
`CorruptImageError` (OSError)  an image file whose pixel data cannot be decoded (truncated or corrupt)
`ImageTooLargeError`           more pixels than `max_image_pixels` (refused from the header, before decoding)
(ValueError)
`ValueError`                   an array with NaN / infinite values, an empty or unsupported array, a float
                               image with NaN / infinite pixels, a mode that cannot be converted, a file
                               that is not a regular file (FIFO, device)
`TypeError`                    an object that is not an image, a path, a file object, an array or a tensor
=============================  ============================================================================
"""

import os
import re
import stat
import warnings
from typing import Optional

import numpy as np
from PIL import Image

from .image_processing_fer import (CorruptImageError, apply_exif_orientation, decode_lazy_image, to_l_or_rgb,
                                   to_pil_image)

#: Extensions (lower case) fer_hf treats as images wherever it searches folders, zips or uploads. Files
#: named explicitly are read whatever their extension.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".dib", ".gif", ".tif", ".tiff", ".webp",
                    ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".avif")
#: Extensions (lower case) the app and the CLI treat as videos (anything FFmpeg reads works with
#: `fer_hf.inference.video`).
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp",
                    ".ogv", ".ts", ".y4m")

#: Default of `max_image_pixels`: 50 megapixels (e.g. 8660x5773, four times a 12-megapixel phone photo).
#: Pillow's own guard (``PIL.Image.MAX_IMAGE_PIXELS``, about 89 megapixels: a warning; twice that: an
#: error) is left as it is.
DEFAULT_MAX_IMAGE_PIXELS = 50_000_000
#: Environment variable that sets `max_image_pixels` (the app's upload limit uses the same one).
MAX_IMAGE_PIXELS_ENV = "FER_HF_MAX_IMAGE_PIXELS"


class ImageTooLargeError(ValueError):
    """An image with more pixels than `max_image_pixels`, refused from its header before decoding."""


def max_image_pixels() -> int:
    """The largest image (width x height, pixels) fer_hf reads: ``FER_HF_MAX_IMAGE_PIXELS`` if set, else
    `DEFAULT_MAX_IMAGE_PIXELS` (50 megapixels); read at each call.

    Raises:
        ValueError: if the variable is set to something that is not a positive number.
    """
    text = os.environ.get(MAX_IMAGE_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_IMAGE_PIXELS
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value >= 1 and np.isfinite(value)):
        raise ValueError(f"{MAX_IMAGE_PIXELS_ENV}={text!r}: expected a positive number of pixels")
    return int(value)


def check_image_size(width: int, height: int, max_pixels: Optional[int] = None, name: str = "The image") -> None:
    """Raise `ImageTooLargeError` if ``width`` x ``height`` exceeds ``max_pixels`` (default
    `max_image_pixels`), ValueError for an empty (0-pixel) image."""
    width, height = int(width), int(height)
    if width < 1 or height < 1:
        raise ValueError(f"{name} is empty ({width}x{height} pixels)")
    limit = max_image_pixels() if max_pixels is None else int(max_pixels)
    if width * height > limit:
        raise ImageTooLargeError(
            f"{name} is too large: {width}x{height} pixels ({width * height / 1e6:.1f} megapixels); the limit is "
            f"{limit / 1e6:g} megapixels ({MAX_IMAGE_PIXELS_ENV}). Downscale it first.")


def _source_name(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.path.basename(os.fspath(source)) or os.fspath(source)
    name = getattr(source, "name", None)
    return os.path.basename(str(name)) if isinstance(name, (str, os.PathLike)) else "the file"


def _head(source, size: int = 512) -> Optional[bytes]:
    """The first ``size`` bytes of a path or seekable file object (its position restored); None if unreadable."""
    try:
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as handle:
                return handle.read(size)
        position = source.tell()
        try:
            source.seek(0)
            data = source.read(size)
        finally:
            source.seek(position)
        return data if isinstance(data, bytes) else None
    except (OSError, ValueError, AttributeError):
        return None


def describe_non_image(head: Optional[bytes]) -> str:
    """What bytes that are not an image look like, for an error message ("an empty file (0 bytes)", "an
    HTML page", "a text file", ...)."""
    if head is None:
        return "unreadable"
    if not head:
        return "an empty file (0 bytes)"
    lowered = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    for prefix, what in ((b"<!doctype html", "an HTML page"), (b"<html", "an HTML page"),
                         (b"version https://git-lfs", "a Git LFS pointer (the image itself was never downloaded)"),
                         (b"%pdf", "a PDF document"), (b"pk\x03\x04", "a zip archive"), (b"<svg", "an SVG drawing"),
                         (b"<?xml", "an XML document"), (b"{", "a JSON / text file"), (b"[", "a JSON / text file")):
        if lowered.startswith(prefix):
            return what
    if not head.strip(b"\x00"):
        return "only zero bytes"
    try:
        head.decode("utf-8")
        return "a text file"
    except UnicodeDecodeError:
        return "unknown binary data"


def check_decoded(image: Image.Image, name: str = "The image") -> None:
    """Raise ValueError for a decoded image fer_hf cannot use: no pixels, or a float (``F``) image holding
    NaN or infinite values."""
    if image.width < 1 or image.height < 1:
        raise ValueError(f"{name} is empty ({image.width}x{image.height} pixels)")
    if image.mode == "F" and not np.isfinite(np.asarray(image)).all():
        raise ValueError(f"{name} holds NaN or infinite pixel values (a float image)")


def _open_header(source, max_pixels: Optional[int], name: str, owned: bool) -> Image.Image:
    """``Image.open`` with clear errors and the size checked (header only, nothing decoded)."""
    if owned:
        mode = os.stat(source).st_mode  # FileNotFoundError / PermissionError as they are
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(f"{os.fspath(source)} is a folder, not an image file")
        if not stat.S_ISREG(mode):
            raise ValueError(f"{name} is not a regular file (a FIFO, socket or device), not an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(source)
    except Image.UnidentifiedImageError:
        what = describe_non_image(_head(source))
        raise Image.UnidentifiedImageError(
            f"{name} is not an image: {what} (cannot identify image file)" if what != "unknown binary data" else
            f"{name} is not an image in a format Pillow reads (cannot identify image file)") from None
    except Image.DecompressionBombError as error:
        limit = max_image_pixels() if max_pixels is None else int(max_pixels)
        match = re.search(r"\((\d+) pixels\)", str(error))
        size = f"{int(match.group(1)) / 1e6:.1f} megapixels" if match else "over Pillow's decompression-bomb limit"
        raise ImageTooLargeError(f"{name} is too large: {size} (Pillow refuses it as a decompression bomb); the "
                                 f"limit is {limit / 1e6:g} megapixels ({MAX_IMAGE_PIXELS_ENV}).") from None
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except MemoryError:
        raise
    except Exception as error:  # noqa: BLE001 - a plugin failing on a corrupt header
        detail = " ".join(str(error).split()) or type(error).__name__
        raise CorruptImageError(f"{name}: the image header cannot be read, the file is truncated or corrupt "
                                f"({type(error).__name__}: {detail})") from None
    try:
        check_image_size(image.width, image.height, max_pixels, name)
    except BaseException:
        if owned:
            image.close()
        raise
    return image


def read_image_size(source, max_pixels: Optional[int] = None) -> tuple:
    """(width, height) of an image file from its header only (no pixel is decoded), with the checks and
    clear errors of `open_image` up to the pixel limit (``max_pixels``, default `max_image_pixels`).

    Raises:
        as `open_image`, except `CorruptImageError` for broken pixel data (not read here).
    """
    name = _source_name(source)
    owned = isinstance(source, (str, os.PathLike))
    image = _open_header(source, max_pixels, name, owned)
    size = image.size
    if owned:
        image.close()
    return size


def open_image(source, max_pixels: Optional[int] = None) -> Image.Image:
    """Decode an image file safely: a loaded PIL image in the file's own mode (the first frame of an
    animation), EXIF orientation not applied (see `read_image`).

    The size is checked from the header before any pixel is decoded (`check_image_size`, ``max_pixels``
    default `max_image_pixels`), so a decompression bomb costs nothing.

    Args:
        source: a path (str / os.PathLike) or a binary file object.

    Raises:
        FileNotFoundError / IsADirectoryError / PermissionError: as ``open`` does. ValueError: for a path
        that is not a regular file (a FIFO or a device). PIL.UnidentifiedImageError: for an empty file or
        one that is not an image (the message says what it looks like). `ImageTooLargeError`: over the pixel
        limit (also for images Pillow's own guard refuses). `CorruptImageError`: a truncated or corrupt
        header or pixel data. ValueError: a float image with NaN / infinite pixels.
    """
    name = _source_name(source)
    owned = isinstance(source, (str, os.PathLike))  # a caller's file object is never closed here
    image = _open_header(source, max_pixels, name, owned)
    try:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image.load()
        except MemoryError:
            raise
        except Exception as error:  # noqa: BLE001 - any decoder failure means an unusable file
            detail = " ".join(str(error).split()) or type(error).__name__
            raise CorruptImageError(f"{name}: the image data cannot be decoded, the file is truncated or corrupt "
                                    f"({image.format or 'image'} {image.width}x{image.height}: "
                                    f"{type(error).__name__}: {detail})") from None
        check_decoded(image, name)
        if getattr(image, "fp", None) is not None:  # an animation keeps its file open: keep the first frame only
            frame = image.copy()
            if owned:
                image.close()
            image = frame
    except BaseException:
        if owned:
            image.close()
        raise
    return image


def read_image(image, max_pixels: Optional[int] = None) -> Image.Image:
    """Any supported input -> an upright ``L`` or ``RGB`` PIL image: what the recognizer, the app and
    ``fer-hf predict`` read.

    ``image``: a path (str / os.PathLike) or binary file object (decoded with `open_image`: checked against
    ``max_pixels`` from its header, first frame of an animation), a PIL image, a numpy array (RGB order) or
    a torch tensor (`to_pil_image`). The EXIF orientation is applied (`apply_exif_orientation`) and the mode
    converted with `to_l_or_rgb`. An ``L`` / ``RGB`` PIL image without a rotating orientation is returned
    as is (no copy).

    Raises:
        the errors of `open_image` and `to_pil_image` (see the module docstring): every unusable input is a
        ValueError (`ImageTooLargeError` included), an OSError (`CorruptImageError`,
        PIL.UnidentifiedImageError, FileNotFoundError, ...) or a TypeError, with a message naming the problem.
    """
    if isinstance(image, (str, os.PathLike)) or hasattr(image, "read"):
        pil = open_image(image, max_pixels)
    else:
        pil = to_pil_image(image)
        check_image_size(pil.width, pil.height, max_pixels)
        decode_lazy_image(pil)
        check_decoded(pil)
    pil = apply_exif_orientation(pil)
    return to_l_or_rgb(pil)


def load_image(image) -> Image.Image:
    """A path (str / Path), file object, PIL image, numpy array (RGB order) or tensor -> upright ``L`` or
    ``RGB`` PIL image (EXIF orientation applied; 16-bit, float, palette, CMYK, transparent, ... converted;
    first frame of an animation): `read_image` with the default pixel limit. An ``L`` / ``RGB`` image that
    is already upright is returned as is (no copy: predict, detect and annotate each call this).

    Raises:
        the errors of `read_image` (see the module docstring).
    """
    return read_image(image)
