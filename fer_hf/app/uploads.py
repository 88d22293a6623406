"""Limits on what visitors upload to the app (images, batches, zip files) and safe zip extraction.

Every limit is read from the environment at each call, so a deployment sets them without code changes
(defaults in brackets; 1 MB = 1,000,000 bytes, as in `fer_hf.app.uploads.video_limits`):

==============================  =================================================================  =========
variable                        meaning                                                            default
==============================  =================================================================  =========
FER_HF_MAX_IMAGE_MB             size of one image file (MB)                                        25
FER_HF_MAX_IMAGE_PIXELS         width x height of one image (pixels)                               50,000,000
FER_HF_MAX_BATCH_FILES          images in one Batch run (uploaded + extracted from zips)           500
FER_HF_MAX_ZIP_MB               size of one uploaded zip file (MB)                                 200
FER_HF_MAX_ZIP_UNCOMPRESSED_MB  images extracted from the zips of one batch, in total (MB)         1000
FER_HF_MAX_ZIP_ENTRIES          entries (files and folders) listed in one zip                      1000
FER_HF_MAX_UPLOAD_MB            Gradio's own per-file upload limit (MB); default: the largest of   500
                                the image, zip and video (FER_HF_MAX_VIDEO_MB) limits
==============================  =================================================================  =========

`extract_zip_safely` writes only regular image files, only inside its destination folder: absolute
names, ``..`` components, symbolic links, devices, encrypted entries and non-image files are skipped (and
reported); the number of entries and the declared uncompressed sizes are checked from the zip's central
directory before anything is written, and the bytes actually written are counted while streaming, so an
entry whose header lies about its size cannot fill the disk. `temporary_batch_folder` gives a folder
that is removed on exit, exceptions included.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Iterator, Optional

from PIL import Image

from ..data.common import unsafe_zip_entry
from ..image_io import IMAGE_EXTENSIONS, read_image_size

logger = logging.getLogger(__name__)

MB = 1_000_000  # bytes; the unit of every *_MB limit
#: File name endings the Batch tab takes from a zip (lower case).
_CHUNK = 1 << 20  # bytes read from a zip entry at a time

_LIMITS = (("max_image_mb", "FER_HF_MAX_IMAGE_MB", 25),
           ("max_image_pixels", "FER_HF_MAX_IMAGE_PIXELS", 50_000_000),
           ("max_batch_files", "FER_HF_MAX_BATCH_FILES", 500),
           ("max_zip_mb", "FER_HF_MAX_ZIP_MB", 200),
           ("max_zip_uncompressed_mb", "FER_HF_MAX_ZIP_UNCOMPRESSED_MB", 1000),
           ("max_zip_entries", "FER_HF_MAX_ZIP_ENTRIES", 1000))


def positive_from_env(variable: str, default: float) -> float:
    """The positive number in environment variable ``variable`` (``default`` when unset or blank).
    Raises ValueError (naming the variable and its text) for anything else."""
    text = os.environ.get(variable, "")
    try:
        value = float(text) if text.strip() else float(default)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise ValueError(f"{variable}={text!r}: expected a positive number")
    return value


def upload_limits() -> dict:
    """The app's upload limits, read from the environment at each call (see the module docstring):
    ``max_image_mb`` (MB), ``max_image_pixels`` (pixels), ``max_batch_files`` (files), ``max_zip_mb`` (MB),
    ``max_zip_uncompressed_mb`` (MB), ``max_zip_entries`` (entries), all floats.

    Raises:
        ValueError: for a variable that is set but is not a positive number.
    """
    return {key: positive_from_env(variable, default) for key, variable, default in _LIMITS}


def gradio_max_file_size() -> int:
    """Gradio's per-file upload limit in bytes (``demo.launch(max_file_size=...)``): FER_HF_MAX_UPLOAD_MB,
    or by default the largest of the image, zip and video file limits, so that Gradio refuses anything
    larger than every tab accepts before it is written to disk (HTTP 413).

    Raises:
        ValueError: for a variable that is set but is not a positive number.
    """
    if os.environ.get("FER_HF_MAX_UPLOAD_MB", "").strip():
        return int(positive_from_env("FER_HF_MAX_UPLOAD_MB", 0) * MB)
    limits = upload_limits()
    return int(max(limits["max_image_mb"], limits["max_zip_mb"], video_limits()["max_mb"]) * MB)


def check_image_pixels(width: int, height: int, name: str = "The image") -> None:
    """Raise ValueError (a message for the visitor naming ``name``, the size and the limit) if
    ``width`` x ``height`` pixels exceeds FER_HF_MAX_IMAGE_PIXELS."""
    limit = upload_limits()["max_image_pixels"]
    pixels = int(width) * int(height)
    if pixels > limit:
        raise ValueError(f"{name} is {width}x{height} pixels ({pixels / 1e6:.1f} megapixels); images up to "
                         f"{limit / 1e6:.1f} megapixels are accepted. Downscale it first.")


def check_image_upload(path) -> tuple:
    """Check an image file against `upload_limits` without decoding it: the file size (bytes on disk) and
    the pixel count, read from the header only (``PIL.Image.open`` without ``load``).

    Returns:
        (width, height) in pixels.
    Raises:
        ValueError: for a file over FER_HF_MAX_IMAGE_MB or FER_HF_MAX_IMAGE_PIXELS (also when PIL's own
            decompression-bomb guard refuses it); the message names the file and the limit.
        FileNotFoundError: for a missing file. PIL.UnidentifiedImageError: for a file that is not an image
            (the message says what it is: an empty file, an HTML page, ...).
            `fer_hf.image_processing_fer.CorruptImageError` (OSError): for a truncated or corrupt header.
    """
    limits = upload_limits()
    name = os.path.basename(str(path))
    size_mb = os.path.getsize(path) / MB
    if size_mb > limits["max_image_mb"]:
        raise ValueError(f"{name} is {size_mb:.1f} MB; images up to {limits['max_image_mb']:g} MB are accepted.")
    try:
        with Image.open(path) as image:  # reads the header only
            width, height = image.size
    except Image.DecompressionBombError as error:  # PIL's own guard (over 2 x Image.MAX_IMAGE_PIXELS)
        raise ValueError(f"{name}: {error}; images up to {limits['max_image_pixels'] / 1e6:.1f} megapixels "
                         "are accepted.") from None
    except (Image.UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        if isinstance(error, (FileNotFoundError, IsADirectoryError, PermissionError)):
            raise
        # not an image, or a truncated / corrupt header: fer_hf's error naming the problem (empty file, an
        # HTML page, ...; CorruptImageError) instead of PIL's bare one
        read_image_size(path, max_pixels=2 ** 62)  # the pixel limit is checked below
        raise
    check_image_pixels(width, height, name)
    return width, height


def check_image_input(image, name: str = "The image") -> None:
    """`check_image_upload` for a path; `check_image_pixels` for a PIL image (``.width`` x ``.height``) or a
    numpy array (H, W[, C]). Other objects are not checked.

    Raises:
        ValueError: for an image over the limits (see `check_image_upload`).
    """
    if isinstance(image, (str, os.PathLike)):
        check_image_upload(image)
    elif isinstance(image, Image.Image):
        check_image_pixels(image.width, image.height, name)
    elif getattr(image, "ndim", 0) in (2, 3) and hasattr(image, "shape"):
        check_image_pixels(image.shape[1], image.shape[0], name)


class ExtractedFiles(list):
    """The image paths `extract_zip_safely` wrote (a list of `Path`), plus ``skipped``: one
    ``(entry name, reason)`` per entry that was not extracted (folders are not listed), and ``bytes_written``."""

    def __init__(self, paths=(), skipped=(), bytes_written: int = 0):
        super().__init__(paths)
        self.skipped = list(skipped)
        self.bytes_written = bytes_written


def _unsafe_reason(info: zipfile.ZipInfo) -> Optional[str]:
    """Why this entry must not be written (None: a regular image file with a safe relative name):
    `fer_hf.data.common.unsafe_zip_entry`'s reasons, then macOS metadata and non-image names."""
    reason = unsafe_zip_entry(info)
    if reason is not None:
        return reason
    name = info.filename.replace("\\", "/")
    parts = PurePosixPath(name).parts
    if parts[0] == "__MACOSX" or parts[-1].startswith("._"):
        return "macOS metadata"
    if not name.lower().endswith(IMAGE_EXTENSIONS):
        return f"not an image ({'/'.join(IMAGE_EXTENSIONS)})"
    return None


def extract_zip_safely(zip_path, dest_dir, max_files: Optional[int] = None,
                       max_bytes: Optional[int] = None) -> ExtractedFiles:
    """Extract the image files of a zip into ``dest_dir``, safely.

    Only regular files whose names end in `fer_hf.image_io.IMAGE_EXTENSIONS` are written, under their relative path inside
    ``dest_dir``. Skipped (listed in the result's ``skipped`` with a reason, never written): absolute paths,
    ``..`` components, symbolic links and other non-regular entries (Unix mode in ``external_attr``),
    encrypted entries, macOS metadata, non-image files, duplicates, entries declared larger than
    FER_HF_MAX_IMAGE_MB, and entries that turn out to be corrupt (a bad CRC, or more bytes than their header
    declares). Folders are skipped silently.

    Before anything is written, the central directory is checked: the zip file size (FER_HF_MAX_ZIP_MB),
    the number of entries (FER_HF_MAX_ZIP_ENTRIES), the number of images (``max_files``, default
    FER_HF_MAX_BATCH_FILES) and their total declared uncompressed size (``max_bytes`` bytes, default
    FER_HF_MAX_ZIP_UNCOMPRESSED_MB). While streaming, every entry is cut off at its declared size and the
    total at ``max_bytes``, so a header that lies cannot make it write more.

    Args:
        zip_path: the zip file.
        dest_dir: an existing folder (use a fresh one, e.g. from `temporary_batch_folder`).
        max_files: most images to extract (None: FER_HF_MAX_BATCH_FILES).
        max_bytes: most bytes to write in total (None: FER_HF_MAX_ZIP_UNCOMPRESSED_MB).
    Returns:
        `ExtractedFiles`: the written image paths (in the zip's order), ``.skipped``, ``.bytes_written``.
    Raises:
        ValueError: for a file that is not a zip, or one over a limit above (nothing is written then); the
            message names the zip and the limit.
        FileNotFoundError: for a missing zip or destination folder.
    """
    limits = upload_limits()
    zip_path, dest = Path(zip_path), Path(dest_dir)
    if not dest.is_dir():
        raise FileNotFoundError(f"destination folder {dest} does not exist")
    dest = dest.resolve()
    name = zip_path.name
    max_files = int(limits["max_batch_files"] if max_files is None else max_files)
    max_bytes = int(limits["max_zip_uncompressed_mb"] * MB if max_bytes is None else max_bytes)
    max_entry = int(limits["max_image_mb"] * MB)
    size_mb = os.path.getsize(zip_path) / MB
    if size_mb > limits["max_zip_mb"]:
        raise ValueError(f"{name} is {size_mb:.1f} MB; zip files up to {limits['max_zip_mb']:g} MB are accepted.")
    try:
        archive = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as error:
        raise ValueError(f"{name} is not a readable zip file ({error}).") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > limits["max_zip_entries"]:
            raise ValueError(f"{name} lists {len(infos)} entries; zip files with up to "
                             f"{limits['max_zip_entries']:.0f} entries are accepted.")
        skipped, todo, seen = [], [], set()
        for info in infos:
            if info.is_dir():
                continue
            reason = _unsafe_reason(info)
            key = info.filename.replace("\\", "/")
            if reason is None and key in seen:
                reason = "duplicate name"
            if reason is None and info.file_size > max_entry:
                reason = (f"{info.file_size / MB:.1f} MB uncompressed; images up to "
                          f"{limits['max_image_mb']:g} MB are accepted")
            if reason is not None:
                skipped.append((info.filename, reason))
                continue
            seen.add(key)
            todo.append(info)
        if len(todo) > max_files:
            raise ValueError(f"{name} holds {len(todo)} images; a batch takes up to {max_files} files "
                             f"(FER_HF_MAX_BATCH_FILES).")
        declared = sum(info.file_size for info in todo)
        if declared > max_bytes:
            raise ValueError(f"{name} would extract to {declared / MB:.1f} MB of images; {max_bytes / MB:g} MB are "
                             f"allowed (FER_HF_MAX_ZIP_UNCOMPRESSED_MB = {limits['max_zip_uncompressed_mb']:g} MB per "
                             "batch).")
        written, paths = 0, []
        for info in todo:
            target = dest.joinpath(*PurePosixPath(info.filename.replace("\\", "/")).parts)
            if os.path.commonpath([dest, target.resolve()]) != str(dest):  # defence in depth
                skipped.append((info.filename, "outside the destination folder"))
                continue
            cap = min(info.file_size, max_bytes - written)
            entry_bytes = 0
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                # "xb": never overwrite or follow an existing file or link
                with archive.open(info) as source, open(target, "xb") as out:
                    while True:
                        chunk = source.read(_CHUNK)
                        if not chunk:
                            break
                        if entry_bytes + len(chunk) > cap:
                            raise zipfile.BadZipFile(f"more data than its header declares ({info.file_size} bytes)")
                        out.write(chunk)
                        entry_bytes += len(chunk)
            except (FileExistsError, NotADirectoryError, IsADirectoryError):
                skipped.append((info.filename, "name collides with another entry"))
                continue
            except (zipfile.BadZipFile, EOFError, zlib.error, RuntimeError, NotImplementedError) as error:
                # zlib.error: corrupt compressed data; RuntimeError: encryption; NotImplementedError: an
                # unsupported compression method
                target.unlink(missing_ok=True)
                written += entry_bytes
                skipped.append((info.filename, f"corrupt entry ({error})"))
                continue
            written += entry_bytes
            paths.append(target)
    for entry, reason in skipped:
        logger.info("%s: skipped %s (%s)", name, entry, reason)
    return ExtractedFiles(paths, skipped, written)


@contextlib.contextmanager
def temporary_batch_folder(prefix: str = "fer_hf_upload_", dir=None) -> Iterator[Path]:
    """``with temporary_batch_folder() as folder:`` a new empty folder (under ``dir``, default the system
    temporary folder) that is removed with everything in it when the block ends, also when it raises."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=dir))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if folder.exists():
            logger.warning("could not remove the temporary folder %s", folder)


__all__ = ["MB", "ExtractedFiles", "check_image_input", "check_image_pixels", "check_image_upload", "extract_zip_safely",
           "gradio_max_file_size", "temporary_batch_folder", "upload_limits"]


def video_limits() -> dict:
    """The Video tab's upload limits, read from the environment at each call (defaults in brackets):
    ``max_mb`` file size in MB (FER_HF_MAX_VIDEO_MB, 500), ``max_seconds`` duration
    (FER_HF_MAX_VIDEO_SECONDS, 600), ``max_pixels`` width x height of a frame (FER_HF_MAX_VIDEO_PIXELS,
    1920x1080 = 2073600), ``max_frames`` frames to analyse = duration x sampling rate
    (FER_HF_MAX_VIDEO_FRAMES, 3600). Raises ValueError for a value that is not a positive number."""
    return {key: positive_from_env(variable, default) for key, variable, default in (
        ("max_mb", "FER_HF_MAX_VIDEO_MB", 500), ("max_seconds", "FER_HF_MAX_VIDEO_SECONDS", 600),
        ("max_pixels", "FER_HF_MAX_VIDEO_PIXELS", 1920 * 1080), ("max_frames", "FER_HF_MAX_VIDEO_FRAMES", 3600))}


def check_video_upload(video_path, sample_fps=None) -> dict:
    """Check an uploaded video against `video_limits` before any frame is analysed.

    Returns `fer_hf.inference.video.probe_video`'s dict. Raises ValueError with a message for the visitor: no file,
    not a video, no video stream, file too large (MB), too long (seconds), frames too large (pixels), or
    more frames to analyse than allowed at ``sample_fps`` (frames per second; None or 0: every frame)."""
    from ..inference.video import probe_video  # PyAV is loaded only when a video is uploaded

    if not video_path:
        raise ValueError("Upload a video first.")
    limits = video_limits()
    name = os.path.basename(str(video_path))
    size_mb = os.path.getsize(video_path) / 1e6
    if size_mb > limits["max_mb"]:
        raise ValueError(f"{name} is {size_mb:.1f} MB; videos up to {limits['max_mb']:g} MB are accepted.")
    info = probe_video(video_path)
    duration = info["duration_s"]
    if duration is not None and duration > limits["max_seconds"]:
        raise ValueError(f"{name} lasts {duration:.0f} s; videos up to {limits['max_seconds']:g} s "
                         f"({round(limits['max_seconds'] / 60, 1):g} min) are accepted. Trim it first.")
    pixels = info["width"] * info["height"]
    if pixels > limits["max_pixels"]:
        raise ValueError(f"{name} has {info['width']}x{info['height']} frames ({pixels / 1e6:.1f} megapixels); "
                         f"the limit is {limits['max_pixels'] / 1e6:.1f} megapixels per frame (e.g. 1920x1080).")
    rate = info["fps"] if not sample_fps else min(float(sample_fps), info["fps"] or float(sample_fps))
    frames = (duration or 0.0) * rate
    if frames > limits["max_frames"]:
        raise ValueError(f"Analysing {name} at {rate:g} frames per second means about {frames:.0f} frames; the "
                         f"limit is {limits['max_frames']:.0f}. Lower the sampling rate.")
    return info
