"""The bad-input corpus of tests/test_bad_input.py, generated into a temporary folder (never committed).

`generate_corpus(root, samples)` writes about 1,000 files and returns one `Case` per file: a named tuple
``(name, path, expected, faces, problem, kind)`` whose first three fields are the case name, the file and
``"error"`` or ``"result"``:

* ``"error"``: every interface must fail with a *clear error* (`is_clear_error` / `is_clear_status`):
  a ValueError / OSError (or a fer_hf subclass) whose message matches ``problem``, a regular expression
  naming what is wrong ("truncated", "not an image", "too large", ...), never a bare internal error of
  numpy, torch, PIL or FFmpeg;
* ``"result"``: every interface must return a result (a list of faces, rows with status ok / no face),
  with at least ``faces`` faces (the cases made from real photos, and the real sample photos themselves).

Groups (the text before the first ``/`` of a name): ``truncated`` (JPEG, PNG, TIFF raw and LZW, WebP
lossy and lossless, GIF, BMP cut at 13 points), ``corrupt`` (the same 8 encodings with 60 seeded byte
corruptions each; the expected outcome is what Pillow itself can decode within the pixel limit:
`pillow_decodes`), ``signature`` (magic bytes destroyed), ``empty`` (0-byte files), ``not-image``
(text, HTML, JSON, a Git LFS pointer, SVG, PDF, zip, video and other bytes under image names), ``sizes``
(1x1 to 1x100000 in 6 formats), ``large`` (20,000 x 20,000 and other sizes over the 50-megapixel limit:
a valid 1-bit PNG built row by row with zlib, never allocated, and header-only files), ``modes`` (L, LA,
RGBA, P, PA, CMYK, YCbCr, LAB, 1, I;16, I;16B, I, F, RGBX, and compressions, of a real face), ``nan``
(float TIFFs holding NaN / infinity), ``animated`` (GIF, APNG, WebP: the first frame counts), ``exif``
(orientations 1-8 with the pixels stored accordingly, the undefined values 0, 9, 255, 65535, odd EXIF
types and corrupt EXIF blocks), ``real`` (the sample photos as they are), ``misc`` (wrong extensions,
trailing junk, odd file names, links) and ``video`` (no video stream, broken codec, truncated, not a
video, and valid clips).

Also: `array_cases` (in-memory arrays, tensors and PIL images: NaN / inf, dtypes, shapes, modes),
`write_fer2013_csv` / `csv_cases` (FER2013 CSVs with invalid rows and wrong columns) and zip helpers.
"""

from __future__ import annotations

import io
import re
import struct
import warnings
import zlib
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np
from PIL import Image

#: Message patterns of clear errors, per problem.
TRUNCATED = r"truncated|corrupt|cannot identify image|not an image"
NOT_IMAGE = r"not an image|cannot identify image"
EMPTY = r"empty|cannot identify image"
TOO_LARGE = r"too large|megapixels|exceeds limit"
NON_FINITE = r"NaN or infinite"
ANY_IMAGE_PROBLEM = r"truncated|corrupt|cannot identify image|not an image|too large|megapixels|NaN|empty"
NO_VIDEO = r"no video stream|not a video|no video frame|codec is not supported|cannot|could not"


class Case(NamedTuple):
    """One corpus file. ``expected``: ``"error"`` or ``"result"``; ``faces``: the least number of faces a
    result must hold; ``problem``: regex an error message must match; ``kind``: ``"image"`` or ``"video"``."""

    name: str
    path: Path
    expected: str
    faces: int = 0
    problem: str = ""
    kind: str = "image"


#: The 8 encodings of the truncation and corruption groups: name -> (Pillow format, save options, extension).
ENCODINGS = {
    "jpeg": ("JPEG", {"quality": 90}, ".jpg"),
    "png": ("PNG", {}, ".png"),
    "tiff": ("TIFF", {}, ".tif"),
    "tiff-lzw": ("TIFF", {"compression": "tiff_lzw"}, ".tiff"),
    "webp": ("WEBP", {"quality": 80}, ".webp"),
    "webp-lossless": ("WEBP", {"lossless": True}, ".webp"),
    "gif": ("GIF", {}, ".gif"),
    "bmp": ("BMP", {}, ".bmp"),
}
CORRUPT_SEEDS = 72
#: A corrupt file whose header claims more pixels than this is re-drawn (keeps decodable cases cheap).
CORRUPT_MAX_PIXELS = 2_000_000


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def pillow_decodes(data: bytes, max_pixels: int = 50_000_000) -> bool:
    """The oracle of the ``corrupt`` group: True when Pillow opens and fully decodes ``data`` (first frame)
    into an image of at most ``max_pixels`` pixels with finite values. fer_hf must then give a result, and
    a clear error otherwise."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                if image.width < 1 or image.height < 1 or image.width * image.height > max_pixels:
                    return False
                image.load()
                if image.mode == "F" and not np.isfinite(np.asarray(image)).all():
                    return False
                return True
    except Exception:  # noqa: BLE001 - anything Pillow raises means "not decodable"
        return False


def _header_size(data: bytes) -> Optional[tuple]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                return image.size
    except Exception:  # noqa: BLE001
        return None


def base_image(seed: int = 0, size=(64, 48)) -> Image.Image:
    """A colour gradient with noise: the pixel data fills the whole file in every format."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    gradient = np.stack([xx * 255 // max(1, w - 1), yy * 255 // max(1, h - 1), (xx + yy) * 127 // max(1, w + h)], -1)
    noise = rng.integers(0, 96, (h, w, 3))
    return Image.fromarray(np.clip(gradient * 0.7 + noise, 0, 255).astype(np.uint8), "RGB")


def face_image(samples: Path, width: int = 176) -> Image.Image:
    """A real face photo (``happy-baby.jpeg``) downscaled to ``width`` pixels: one face MTCNN finds."""
    with Image.open(samples / "happy-baby.jpeg") as photo:
        face = photo.convert("RGB")
    face.thumbnail((width, width))
    return face


# ------------------------------------------------------------------------------------------- crafted files

def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def png_bilevel(width: int, height: int) -> bytes:
    """A valid 1-bit black PNG of ``width`` x ``height``, compressed row by row (never held in memory: a
    20,000 x 20,000 image is a ~50 KB file)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + (width + 7) // 8)
    parts, block = [], 256
    for start in range(0, height, block):
        parts.append(compressor.compress(row * min(block, height - start)))
    parts.append(compressor.flush())
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", b"".join(parts))
            + _png_chunk(b"IEND", b""))


def png_header_only(width: int, height: int, color_type: int = 2) -> bytes:
    """A PNG whose header says ``width`` x ``height`` (RGB) followed by a few bytes of pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + _png_chunk(b"IEND", b""))


def jpeg_with_size(width: int, height: int) -> bytes:
    """A small baseline JPEG whose SOF0 marker is patched to ``width`` x ``height``."""
    data = bytearray(_encode(base_image(1, (32, 24)), "JPEG", quality=80))
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def gif_with_size(width: int, height: int) -> bytes:
    data = bytearray(_encode(base_image(2, (32, 24)).convert("P"), "GIF"))
    data[6:10] = struct.pack("<HH", width, height)
    table = 3 * 2 ** ((data[10] & 7) + 1) if data[10] & 0x80 else 0
    descriptor = data.find(b"\x2c\x00\x00\x00\x00", 13 + table)
    data[descriptor + 5:descriptor + 9] = struct.pack("<HH", width, height)
    return bytes(data)


def bmp_with_size(width: int, height: int) -> bytes:
    data = bytearray(_encode(base_image(3, (32, 24)), "BMP"))
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


def tiff_with_size(width: int, height: int) -> bytes:
    """An uncompressed little-endian TIFF whose ImageWidth / ImageLength tags are patched."""
    data = bytearray(_encode(base_image(4, (32, 24)), "TIFF"))
    assert data[:4] == b"II*\x00"
    offset = struct.unpack_from("<I", data, 4)[0]
    count = struct.unpack_from("<H", data, offset)[0]
    for i in range(count):
        entry = offset + 2 + 12 * i
        tag, kind = struct.unpack_from("<HH", data, entry)
        if tag in (256, 257):
            value = width if tag == 256 else height
            if kind == 3:
                struct.pack_into("<HH", data, entry + 8, value, 0)
            else:
                struct.pack_into("<I", data, entry + 8, value)
    return bytes(data)


def webp_vp8x_canvas(width: int, height: int) -> bytes:
    """A WebP (extended format) whose VP8X canvas says ``width`` x ``height`` around a small lossless image."""
    small = _encode(base_image(5, (32, 24)), "WEBP", lossless=True)
    vp8l = small[12:]  # the VP8L chunk of the simple file
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + (width - 1).to_bytes(3, "little") \
        + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + vp8x + vp8l
    return b"RIFF" + struct.pack("<I", len(body)) + body


def exif_block(orientation_entry: bytes, extra: bytes = b"", big_endian: bool = False) -> bytes:
    """Raw EXIF (``Exif\\0\\0`` + a TIFF header + one IFD holding ``orientation_entry``, 12 bytes)."""
    order = ">" if big_endian else "<"
    header = (b"MM\x00\x2a" if big_endian else b"II\x2a\x00") + struct.pack(order + "I", 8)
    ifd = struct.pack(order + "H", 1) + orientation_entry + struct.pack(order + "I", 0)
    return b"Exif\x00\x00" + header + ifd + extra


def _orientation_entry(kind: int, count: int, value: bytes, big_endian: bool = False) -> bytes:
    order = ">" if big_endian else "<"
    return struct.pack(order + "HHI", 0x0112, kind, count) + value.ljust(4, b"\x00")[:4]


# ---------------------------------------------------------------------------------------------- the corpus

class _Writer:
    def __init__(self, root: Path):
        self.root = root
        self.cases: list[Case] = []
        self.names: set = set()

    def add(self, name: str, data: Optional[bytes], suffix: str, expected: str, faces: int = 0, problem: str = "",
            kind: str = "image", file_name: Optional[str] = None) -> Path:
        assert name not in self.names, name
        self.names.add(name)
        folder = self.root / name.split("/", 1)[0]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / (file_name or f"{len(self.cases):04d}_{_slug(name.split('/', 1)[-1])}{suffix}")
        if data is not None:
            path.write_bytes(data)
        self.cases.append(Case(name, path, expected, faces, problem, kind))
        return path

    def image(self, name: str, image: Image.Image, fmt: str, suffix: str, faces: int = 0, **options) -> Path:
        return self.add(name, _encode(image, fmt, **options), suffix, "result", faces)


def _truncated(w: _Writer) -> None:
    for key, (fmt, options, suffix) in ENCODINGS.items():
        image = base_image(zlib.crc32(key.encode()) % 1000)
        if fmt == "GIF":
            image = image.quantize(256)
        data = _encode(image, fmt, **options)
        cuts = [1, 4, 16, 64] + [len(data) * k // 100 for k in range(10, 100, 10)]
        for cut in cuts:
            w.add(f"truncated/{key}-{cut}-of-{len(data)}-bytes", data[:cut], suffix, "error", problem=TRUNCATED)


def _corrupt(w: _Writer) -> None:
    for key, (fmt, options, suffix) in ENCODINGS.items():
        image = base_image(7 + len(key))
        if fmt == "GIF":
            image = image.quantize(256)
        data = _encode(image, fmt, **options)
        rng = np.random.default_rng(zlib.crc32(b"corrupt-" + key.encode()))
        made = 0
        while made < CORRUPT_SEEDS:
            damaged = bytearray(data)
            method = made % 5
            if method == 0:  # a few random bytes anywhere
                for _ in range(int(rng.integers(1, 8))):
                    damaged[int(rng.integers(0, len(damaged)))] = int(rng.integers(0, 256))
            elif method == 1:  # a few random bytes in the header
                for _ in range(int(rng.integers(1, 4))):
                    damaged[int(rng.integers(0, min(len(damaged), 96)))] = int(rng.integers(0, 256))
            elif method == 2:  # a block overwritten with 0xFF
                start = int(rng.integers(0, len(damaged) - 16))
                damaged[start:start + 16] = b"\xff" * 16
            elif method == 3:  # a block zeroed
                start = int(rng.integers(0, len(damaged) - 32))
                damaged[start:start + 32] = b"\x00" * 32
            else:  # junk inserted
                start = int(rng.integers(0, len(damaged)))
                damaged[start:start] = rng.integers(0, 256, int(rng.integers(1, 40)), dtype=np.uint8).tobytes()
            damaged = bytes(damaged)
            size = _header_size(damaged)
            if size is not None and size[0] * size[1] > CORRUPT_MAX_PIXELS and size[0] * size[1] <= 50_000_000:
                continue  # decodable but costly: draw another corruption (sizes over the limit are kept)
            expected = "result" if pillow_decodes(damaged) else "error"
            w.add(f"corrupt/{key}-{made:02d}-method{method}", damaged, suffix, expected, problem=ANY_IMAGE_PROBLEM)
            made += 1


def _signatures(w: _Writer) -> None:
    for key, (fmt, options, suffix) in ENCODINGS.items():
        data = bytearray(_encode(base_image(11), fmt, **options))
        data[:4] = b"\x00\x01\x02\x03"
        w.add(f"signature/{key}", bytes(data), suffix, "error", problem=NOT_IMAGE)


def _empty(w: _Writer) -> None:
    for suffix in (".jpg", ".jpeg", ".png", ".gif", ".tif", ".tiff", ".webp", ".bmp", ".pgm", ".JPG"):
        w.add(f"empty/{suffix.lstrip('.')}", b"", suffix, "error", problem=EMPTY)


def _not_images(w: _Writer, video_bytes: bytes) -> None:
    rng = np.random.default_rng(5)
    contents = {
        "text": b"This is a plain text note, not a photo.\n",
        "html-page": b"<!DOCTYPE html>\n<html><head><title>Photo</title></head><body><img src='x.jpg'></body></html>\n",
        "html-404": b"<html><body><h1>404 Not Found</h1></body></html>",
        "json": b'{"image": "face.jpg", "label": "happy"}',
        "git-lfs-pointer": b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"a" * 64 + b"\nsize 12345\n",
        "csv": b"emotion,pixels,Usage\n3,0 0 0,Training\n",
        "svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>',
        "xml": b'<?xml version="1.0"?><root/>',
        "pdf": b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n",
        "zip": b"PK\x03\x04" + b"\x00" * 60,
        "python": b"import os\nprint('hello')\n",
        "nul-bytes": b"\x00" * 512,
        "whitespace": b" \n\t\r\n" * 20,
        "random-bytes": rng.integers(0, 256, 2048, dtype=np.uint8).tobytes(),
        "utf16-text": "not an image".encode("utf-16"),
        "video-mp4": video_bytes,
    }
    for what, data in contents.items():
        for suffix in (".jpg", ".png", ".jpeg", ".gif", ".webp", ".tiff"):
            w.add(f"not-image/{what}{suffix}", data, suffix, "error", problem=NOT_IMAGE)


SIZES = [(1, 1), (1, 2), (2, 1), (2, 2), (3, 3), (1, 500), (500, 1), (7, 5), (11, 11), (12, 12), (13, 13),
         (19, 21), (20, 20), (47, 48), (48, 48), (49, 47)]


def _sizes(w: _Writer) -> None:
    rng = np.random.default_rng(9)
    for fmt, suffix, options in (("PNG", ".png", {}), ("JPEG", ".jpg", {"quality": 90}), ("GIF", ".gif", {}),
                                 ("BMP", ".bmp", {}), ("TIFF", ".tif", {}), ("WEBP", ".webp", {"quality": 80})):
        for width, height in SIZES:
            image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")
            w.image(f"sizes/{fmt.lower()}-{width}x{height}", image, fmt, suffix, **options)
    for fmt, suffix in (("PNG", ".png"), ("TIFF", ".tif"), ("BMP", ".bmp")):
        for width, height in ((1, 100_000), (100_000, 1)):
            image = Image.new("L", (width, height), 128)
            w.image(f"sizes/{fmt.lower()}-{width}x{height}", image, fmt, suffix)
    w.image("sizes/jpeg-1x65000", Image.new("L", (1, 65000), 90), "JPEG", ".jpg")
    w.image("sizes/gif-65000x1", Image.new("P", (65000, 1), 3), "GIF", ".gif")


def _large(w: _Writer) -> None:
    w.add("large/png-valid-1bit-20000x20000", png_bilevel(20000, 20000), ".png", "error", problem=TOO_LARGE)
    w.add("large/png-valid-1bit-7072x7072-just-over-50MP", png_bilevel(7072, 7072), ".png", "error",
          problem=TOO_LARGE)
    w.add("large/png-valid-1bit-1x60000000", png_bilevel(1, 60_000_000), ".png", "error", problem=TOO_LARGE)
    for width, height in ((20000, 20000), (65535, 65535), (100000, 100000), (10000, 10000), (60_000_000, 1)):
        w.add(f"large/png-header-{width}x{height}", png_header_only(width, height), ".png", "error", problem=TOO_LARGE)
    for width, height in ((20000, 20000), (65500, 65500), (7072, 7072)):
        w.add(f"large/jpeg-header-{width}x{height}", jpeg_with_size(width, height), ".jpg", "error",
              problem=TOO_LARGE)
    w.add("large/gif-header-20000x20000", gif_with_size(20000, 20000), ".gif", "error", problem=TOO_LARGE)
    w.add("large/bmp-header-20000x20000", bmp_with_size(20000, 20000), ".bmp", "error", problem=TOO_LARGE)
    w.add("large/bmp-header-20000x-20000-top-down", bmp_with_size(20000, -20000), ".bmp", "error",
          problem=TOO_LARGE)
    w.add("large/tiff-header-20000x20000", tiff_with_size(20000, 20000), ".tif", "error", problem=TOO_LARGE)
    w.add("large/webp-vp8x-canvas-16383x16383", webp_vp8x_canvas(16383, 16383), ".webp", "error",
          problem=TOO_LARGE + "|" + TRUNCATED)
    w.add("large/pgm-header-20000x20000", b"P5\n20000 20000\n255\n" + b"\x00" * 100, ".pgm", "error",
          problem=TOO_LARGE)


def _modes(w: _Writer, face: Image.Image) -> None:
    gray = face.convert("L")
    g16 = np.asarray(gray).astype(np.uint16) * 257
    add = w.image
    add("modes/L-png", gray, "PNG", ".png", faces=1)
    add("modes/L-jpeg", gray, "JPEG", ".jpg", faces=1, quality=92)
    add("modes/LA-png", gray.convert("LA"), "PNG", ".png", faces=1)
    add("modes/RGBA-png", face.convert("RGBA"), "PNG", ".png", faces=1)
    rgba = face.convert("RGBA")
    alpha = np.full((face.height, face.width), 255, np.uint8)
    alpha[:, : face.width // 8] = 0  # a transparent stripe: composited over white
    rgba.putalpha(Image.fromarray(alpha))
    add("modes/RGBA-transparent-stripe-png", rgba, "PNG", ".png", faces=1)
    add("modes/RGBA-webp", face.convert("RGBA"), "WEBP", ".webp", faces=1, lossless=True)
    add("modes/RGBA-tiff", face.convert("RGBA"), "TIFF", ".tif", faces=1)
    add("modes/P-png", face.convert("P", palette=Image.Palette.ADAPTIVE), "PNG", ".png", faces=1)
    add("modes/P-gif", face.convert("P", palette=Image.Palette.ADAPTIVE), "GIF", ".gif", faces=1)
    add("modes/P-bmp", face.convert("P", palette=Image.Palette.ADAPTIVE), "BMP", ".bmp", faces=1)
    add("modes/P-transparency-png", face.convert("P", palette=Image.Palette.ADAPTIVE), "PNG", ".png", faces=1,
        transparency=0)
    add("modes/PA-tiff", face.convert("P", palette=Image.Palette.ADAPTIVE).convert("PA"), "TIFF", ".tif", faces=1)
    add("modes/CMYK-jpeg", face.convert("CMYK"), "JPEG", ".jpg", faces=1, quality=92)
    add("modes/CMYK-tiff", face.convert("CMYK"), "TIFF", ".tif", faces=1)
    ycbcr = _encode(face.convert("YCbCr"), "TIFF")  # Pillow cannot read back its own raw YCbCr TIFF
    decodes = pillow_decodes(ycbcr)
    w.add("modes/YCbCr-tiff", ycbcr, ".tif", "result" if decodes else "error", faces=int(decodes), problem=TRUNCATED)
    add("modes/LAB-tiff", face.convert("LAB"), "TIFF", ".tif", faces=1)
    add("modes/RGBX-tiff", face.convert("RGBX"), "TIFF", ".tif", faces=1)
    add("modes/1-bilevel-png", face.convert("1"), "PNG", ".png")  # dithered: a result, faces not required
    add("modes/I16-png", Image.fromarray(g16), "PNG", ".png", faces=1)
    add("modes/I16-tiff", Image.fromarray(g16), "TIFF", ".tif", faces=1)
    add("modes/I16-low-values-png", Image.fromarray(np.asarray(gray).astype(np.uint16)), "PNG", ".png", faces=1)
    add("modes/I16B-tiff", Image.frombytes("I;16B", face.size, g16.astype(">u2").tobytes()), "TIFF", ".tif", faces=1)
    add("modes/I32-tiff", Image.fromarray(g16.astype(np.int32)), "TIFF", ".tif", faces=1)
    add("modes/F-0-1-tiff", Image.fromarray(np.asarray(gray).astype(np.float32) / 255), "TIFF", ".tif", faces=1)
    add("modes/F-0-255-tiff", Image.fromarray(np.asarray(gray).astype(np.float32)), "TIFF", ".tif", faces=1)
    add("modes/jpeg-progressive", face, "JPEG", ".jpg", faces=1, quality=90, progressive=True)
    add("modes/jpeg-444", face, "JPEG", ".jpg", faces=1, quality=90, subsampling=0)
    add("modes/webp-lossless", face, "WEBP", ".webp", faces=1, lossless=True)
    for compression in ("tiff_lzw", "tiff_adobe_deflate", "jpeg", "packbits"):
        add(f"modes/tiff-{compression}", face, "TIFF", ".tif", faces=1, compression=compression)
    rgb16 = np.stack([g16] * 3, -1)
    # 16-bit RGB PNG (Pillow reads it as RGB, 8 bits): written by hand
    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in rgb16)
    ihdr = struct.pack(">IIBBBBB", face.width, face.height, 16, 2, 0, 0, 0)
    w.add("modes/RGB48-png", b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(raw))
          + _png_chunk(b"IEND", b""), ".png", "result", faces=1)


def _nan(w: _Writer, face: Image.Image) -> None:
    values = np.asarray(face.convert("L")).astype(np.float32) / 255
    for what, value in (("nan", np.nan), ("inf", np.inf), ("neg-inf", -np.inf)):
        damaged = values.copy()
        damaged[10:12, 10:12] = value
        w.add(f"nan/F-tiff-{what}", _encode(Image.fromarray(damaged), "TIFF"), ".tif", "error", problem=NON_FINITE)
    w.add("nan/F-tiff-all-nan", _encode(Image.fromarray(np.full((20, 30), np.nan, np.float32)), "TIFF"), ".tif",
          "error", problem=NON_FINITE)


def _animated(w: _Writer, face: Image.Image) -> None:
    noise = base_image(13, face.size)
    frames = [face, noise, noise.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    gif = _encode(frames[0].convert("P", palette=Image.Palette.ADAPTIVE), "GIF", save_all=True,
                  append_images=[f.convert("P", palette=Image.Palette.ADAPTIVE) for f in frames[1:]], duration=100,
                  loop=0)
    w.add("animated/gif-face-first", gif, ".gif", "result", faces=1)
    w.add("animated/gif-second-frame-truncated", gif[: len(gif) - len(gif) // 5], ".gif", "result", faces=1)
    w.add("animated/gif-noise-first", _encode(noise.convert("P"), "GIF", save_all=True,
                                              append_images=[face.convert("P")], duration=100), ".gif", "result")
    w.image("animated/apng-face-first", frames[0], "PNG", ".png", faces=1, save_all=True, append_images=frames[1:],
            duration=100)
    w.image("animated/webp-face-first", frames[0], "WEBP", ".webp", faces=1, save_all=True, append_images=frames[1:],
            duration=100, lossless=True)


#: EXIF orientation -> how to store an upright image so that applying the orientation shows it upright.
_STORE_FOR = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90,
              7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}


def _exif(w: _Writer, face: Image.Image) -> None:
    for orientation, store in _STORE_FOR.items():
        stored = face if store is None else face.transpose(store)
        exif = Image.Exif()
        exif[0x0112] = orientation
        w.image(f"exif/jpeg-orientation-{orientation}", stored, "JPEG", ".jpg", faces=1, quality=92, exif=exif)
    for orientation in (6, 8):
        exif = Image.Exif()
        exif[0x0112] = orientation
        stored = face.transpose(_STORE_FOR[orientation])
        w.image(f"exif/png-orientation-{orientation}", stored, "PNG", ".png", faces=1, exif=exif)
        w.image(f"exif/webp-orientation-{orientation}", stored, "WEBP", ".webp", faces=1, exif=exif, quality=90)
    for orientation in (0, 9, 255, 65535):  # undefined values: the pixels are shown as stored
        exif = Image.Exif()
        exif[0x0112] = orientation
        w.image(f"exif/jpeg-undefined-orientation-{orientation}", face, "JPEG", ".jpg", faces=1, quality=92, exif=exif)
        w.image(f"exif/png-undefined-orientation-{orientation}", face, "PNG", ".png", faces=1, exif=exif)
    exif = Image.Exif()
    exif[0x0112] = 3
    w.image("exif/jpeg-wrong-orientation-3-on-upright-pixels", face, "JPEG", ".jpg", quality=92, exif=exif)
    odd = {
        "ascii-value": exif_block(_orientation_entry(2, 4, b"abc\x00")),
        "rational-value": exif_block(_orientation_entry(5, 1, struct.pack("<I", 26)), struct.pack("<II", 6, 1)),
        "rational-value-6.5": exif_block(_orientation_entry(5, 1, struct.pack("<I", 26)), struct.pack("<II", 13, 2)),
        "negative-srational": exif_block(_orientation_entry(10, 1, struct.pack("<I", 26)), struct.pack("<ii", -6, 1)),
        "float-value": exif_block(_orientation_entry(11, 1, struct.pack("<f", 6.0))),
        "two-shorts": exif_block(_orientation_entry(3, 2, struct.pack("<HH", 6, 8))),
        "long-value-6": exif_block(_orientation_entry(4, 1, struct.pack("<I", 6))),
        "big-endian-short-6": exif_block(_orientation_entry(3, 1, struct.pack(">H", 6), True), big_endian=True),
        "huge-count": exif_block(_orientation_entry(3, 0x7FFFFFFF, struct.pack("<H", 6))),
        "offset-out-of-range": exif_block(_orientation_entry(5, 1, struct.pack("<I", 0x7FFFFFF0))),
        "garbage": b"Exif\x00\x00" + bytes(range(256)) * 2,
        "truncated-ifd": exif_block(_orientation_entry(3, 1, struct.pack("<H", 6)))[:14],
        "bad-byte-order": b"Exif\x00\x00XX\x2a\x00\x08\x00\x00\x00",
    }
    for what, raw in odd.items():
        # Pillow reads a numeric value (the first of several, a rational 6/1) as that orientation
        rotated = ("long-value-6", "big-endian-short-6", "rational-value", "two-shorts", "float-value")
        store = face.transpose(_STORE_FOR[6]) if what in rotated else face
        w.image(f"exif/jpeg-{what}", store, "JPEG", ".jpg", faces=1, quality=92, exif=raw)
    w.image("exif/tiff-orientation-tag-6", face.transpose(_STORE_FOR[6]), "TIFF", ".tif", faces=1,
            tiffinfo={0x0112: 6})


def _real(w: _Writer, samples: Path) -> None:
    for path in sorted(samples.glob("*")):
        if path.suffix.lower() in (".jpg", ".jpeg"):
            w.cases.append(Case(f"real/{path.name}", path, "result", 1))
            w.names.add(f"real/{path.name}")


def _misc(w: _Writer, face: Image.Image, samples: Path) -> None:
    jpeg = _encode(face, "JPEG", quality=90)
    png = _encode(face, "PNG")
    w.add("misc/jpeg-named-png", jpeg, ".png", "result", faces=1)
    w.add("misc/png-named-jpg", png, ".jpg", "result", faces=1)
    w.add("misc/jpeg-uppercase-extension", jpeg, ".JPEG", "result", faces=1)
    w.add("misc/jpeg-trailing-junk", jpeg + b"\x00garbage after EOI" * 50, ".jpg", "result", faces=1)
    w.add("misc/png-trailing-junk", png + b"junk" * 100, ".png", "result", faces=1)
    w.add("misc/unicode-name", jpeg, ".jpg", "result", faces=1, file_name="ünïcødé façe 😀.jpg")
    w.add("misc/leading-dash-name", jpeg, ".jpg", "result", faces=1, file_name="-rf --output.jpg")
    w.add("misc/comma-and-quote-name", jpeg, ".jpg", "result", faces=1, file_name='a,b "c".jpg')
    link = w.add("misc/symlink-to-image", None, ".jpg", "result", faces=1)
    link.symlink_to(samples / "happy-baby.jpeg")
    broken = w.add("misc/broken-symlink", None, ".jpg", "error", problem=r"No such file|not found")
    broken.symlink_to(w.root / "misc" / "does-not-exist.jpg")
    loop = w.add("misc/symlink-loop", None, ".jpg", "error", problem=r"symbolic links|loop")
    loop.symlink_to(loop)
    missing = w.root / "misc" / "missing-file.jpg"
    w.cases.append(Case("misc/missing-file", missing, "error", 0, r"No such file|not found"))
    w.names.add("misc/missing-file")
    # a PNG with a damaged CRC in its pixel data chunk
    data = bytearray(png)
    idat = data.find(b"IDAT")
    length = struct.unpack(">I", data[idat - 4:idat])[0]
    data[idat + 4 + length] ^= 0xFF
    w.add("misc/png-bad-idat-crc", bytes(data), ".png", "result" if pillow_decodes(bytes(data)) else "error",
          faces=1 if pillow_decodes(bytes(data)) else 0, problem=ANY_IMAGE_PROBLEM)


# -------------------------------------------------------------------------------------------------- videos

def _video_bytes(path: Path, frames, codec="libx264", size=(160, 106), pix="yuv420p", fmt=None, rate=5) -> bytes:
    import av

    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = size
        stream.pix_fmt = pix
        for image in frames:
            frame = av.VideoFrame.from_image(image.convert("RGB").resize(size)).reformat(format=pix)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path.read_bytes()


def _audio_only(path: Path, fmt=None) -> None:
    import av

    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream("aac", rate=16000)
        for i in range(8):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def _videos(w: _Writer, face: Image.Image, samples: Path) -> bytes:
    folder = w.root / "video"
    folder.mkdir(parents=True, exist_ok=True)
    noise = base_image(21, face.size)
    clip = [face, face, noise, face]
    ok = _video_bytes(folder / "ok.mp4", clip)
    w.cases.append(Case("video/h264-mp4-face", folder / "ok.mp4", "result", 1, kind="video"))
    _video_bytes(folder / "ok-mpeg4.avi", clip, codec="mpeg4")
    w.cases.append(Case("video/mpeg4-avi-face", folder / "ok-mpeg4.avi", "result", 1, kind="video"))
    _video_bytes(folder / "ok-mpeg4.mkv", clip, codec="mpeg4", fmt="matroska")
    w.cases.append(Case("video/mpeg4-mkv-face", folder / "ok-mpeg4.mkv", "result", 1, kind="video"))
    _video_bytes(folder / "tiny-2x2.mp4", [noise] * 3, size=(2, 2))
    w.cases.append(Case("video/h264-2x2-frames", folder / "tiny-2x2.mp4", "result", 0, kind="video"))
    _audio_only(folder / "audio-only.mp4")
    w.cases.append(Case("video/audio-only-mp4", folder / "audio-only.mp4", "error", 0, r"no video stream", "video"))
    _audio_only(folder / "audio-only.mkv", fmt="matroska")
    w.cases.append(Case("video/audio-only-mkv", folder / "audio-only.mkv", "error", 0, r"no video stream", "video"))
    for cut in (10, 50, 90):
        w.add(f"video/h264-truncated-{cut}pct", ok[: len(ok) * cut // 100], ".mp4", "error", problem=NO_VIDEO,
              kind="video")
    mdat, moov = ok.find(b"mdat"), ok.find(b"moov")
    rng = np.random.default_rng(3)
    garbage = bytearray(ok)
    end = moov if moov > mdat else len(ok)
    garbage[mdat + 8:end] = rng.integers(0, 256, end - mdat - 8, dtype=np.uint8).tobytes()
    w.add("video/h264-garbage-frames", bytes(garbage), ".mp4", "error", problem=NO_VIDEO, kind="video")
    avcc = bytearray(ok)
    at = ok.find(b"avcC")
    avcc[at + 4:at + 20] = b"\xff" * 16
    w.add("video/h264-broken-codec-config", bytes(avcc), ".mp4", "error", problem=NO_VIDEO, kind="video")
    avi = (folder / "ok-mpeg4.avi").read_bytes()
    w.add("video/avi-unknown-codec-fourcc", avi.replace(b"FMP4", b"ZZZZ"), ".avi", "error", problem=NO_VIDEO,
          kind="video")
    w.add("video/empty-mp4", b"", ".mp4", "error", problem=NO_VIDEO, kind="video")
    w.add("video/text-named-mp4", b"not a video\n" * 20, ".mp4", "error", problem=NO_VIDEO, kind="video")
    w.add("video/html-named-webm", b"<!DOCTYPE html><html><body>Video</body></html>", ".webm", "error",
          problem=NO_VIDEO, kind="video")
    # FFmpeg reads a JPEG as a one-frame video: a correct result (the photo's face)
    w.add("video/jpeg-named-mp4", (samples / "happy-baby.jpeg").read_bytes(), ".mp4", "result", faces=1,
          kind="video")
    return ok


def generate_corpus(root: Path, samples: Path) -> list[Case]:
    """Write the corpus under ``root`` (a new folder; ``samples``: the real sample photos, read only)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    w = _Writer(root)
    face = face_image(samples)
    video = _videos(w, face, samples)
    _truncated(w)
    _corrupt(w)
    _signatures(w)
    _empty(w)
    _not_images(w, video)
    _sizes(w)
    _large(w)
    _modes(w, face)
    _nan(w, face)
    _animated(w, face)
    _exif(w, face)
    _real(w, samples)
    _misc(w, face, samples)
    names = [c.name for c in w.cases]
    assert len(names) == len(set(names))
    return w.cases


# -------------------------------------------------------------------------------------- in-memory inputs

def array_cases(samples: Path) -> list[tuple]:
    """(name, object, expected, faces, problem) for inputs that are not files: numpy arrays, torch tensors
    and PIL images (NaN / inf, every dtype, odd shapes, modes, lazily opened broken files)."""
    import torch

    face = face_image(samples)
    rgb = np.asarray(face)
    gray = np.asarray(face.convert("L"))
    nan = rgb.astype(np.float32) / 255
    nan[5, 5, 0] = np.nan
    inf = rgb.astype(np.float32)
    inf[0, 0] = np.inf
    truncated = io.BytesIO(_encode(face, "JPEG", quality=90)[:2000])
    cases = [
        ("uint8-rgb-face", rgb, "result", 1, ""),
        ("uint8-gray-face", gray, "result", 1, ""),
        ("uint8-hw1-face", gray[..., None], "result", 1, ""),
        ("uint8-rgba-face", np.dstack([rgb, np.full(gray.shape, 255, np.uint8)]), "result", 1, ""),
        ("uint8-chw-face", np.ascontiguousarray(rgb.transpose(2, 0, 1)), "result", 1, ""),
        ("uint16-face", rgb.astype(np.uint16) * 257, "result", 1, ""),
        ("int64-face", rgb.astype(np.int64), "result", 1, ""),
        ("float16-0-1-face", (rgb / 255).astype(np.float16), "result", 1, ""),
        ("float32-0-255-face", rgb.astype(np.float32), "result", 1, ""),
        ("float64-0-1-face", rgb / 255.0, "result", 1, ""),
        ("bool-mask", gray > 128, "result", 0, ""),
        ("uint8-1x1", np.zeros((1, 1, 3), np.uint8), "result", 0, ""),
        ("uint8-1x300", np.zeros((1, 300, 3), np.uint8), "result", 0, ""),
        ("uint8-300x1", np.zeros((300, 1), np.uint8), "result", 0, ""),
        ("float-nan", nan, "error", 0, NON_FINITE),
        ("float-inf", inf, "error", 0, NON_FINITE),
        ("float-neg-inf", -inf, "error", 0, NON_FINITE),
        ("float-all-nan", np.full((30, 30), np.nan, np.float32), "error", 0, NON_FINITE),
        ("shape-hw2", np.zeros((10, 10, 2), np.uint8), "error", 0, r"shape"),
        ("shape-hw5", np.zeros((10, 10, 5), np.uint8), "error", 0, r"shape"),
        ("shape-4d", np.zeros((1, 10, 10, 3), np.uint8), "error", 0, r"shape"),
        ("shape-1d", np.zeros((30,), np.uint8), "error", 0, r"shape"),
        ("empty-0x5", np.zeros((0, 5, 3), np.uint8), "error", 0, r"[Ee]mpty"),
        ("empty-5x0", np.zeros((5, 0), np.float32), "error", 0, r"[Ee]mpty"),
        ("object-dtype", np.array([[object(), object()]], dtype=object), "error", 0, r"dtype"),
        ("complex-dtype", np.zeros((4, 4), np.complex64), "error", 0, r"dtype"),
        ("string-dtype", np.array([["a", "b"]]), "error", 0, r"dtype"),
        ("torch-uint8-chw-face", torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))), "result", 1, ""),
        ("torch-float-nan", torch.from_numpy(nan), "error", 0, NON_FINITE),
        ("torch-bfloat16-face", torch.from_numpy(rgb / 255.0).to(torch.bfloat16), "result", 1, ""),
        ("pil-I16-face", Image.fromarray(gray.astype(np.uint16) * 257), "result", 1, ""),
        ("pil-F-0-1-face", Image.fromarray(gray.astype(np.float32) / 255), "result", 1, ""),
        ("pil-F-nan", Image.fromarray(np.full((20, 20), np.nan, np.float32)), "error", 0, NON_FINITE),
        ("pil-empty-0x0", Image.new("L", (0, 0)), "error", 0, r"[Ee]mpty"),
        ("pil-CMYK-face", face.convert("CMYK"), "result", 1, ""),
        ("pil-La-premultiplied", Image.new("La", (30, 30)), "result", 0, ""),
        ("pil-lazy-truncated-jpeg", lambda: Image.open(io.BytesIO(truncated.getvalue())), "error", 0, TRUNCATED),
        ("bytesio-truncated-jpeg", lambda: io.BytesIO(truncated.getvalue()), "error", 0, TRUNCATED),
        ("bytesio-face-png", lambda: io.BytesIO(_encode(face, "PNG")), "result", 1, ""),
        ("bytesio-empty", lambda: io.BytesIO(b""), "error", 0, EMPTY),
    ]
    return cases


# ------------------------------------------------------------------------------------------------- CSVs

def fer2013_row(rng, kind: str) -> tuple:
    """One ``fer2013.csv`` line (a list of fields, or a raw line string) of the given kind and whether it is
    valid. Kinds: valid, wrong-count, non-numeric, nan, inf, negative, over-255, fractional, bad-emotion,
    contempt-emotion, empty-emotion, bad-usage, short-row, huge-field, invalid-utf8 (raw bytes)."""
    pixels = rng.integers(0, 256, 48 * 48)
    text = " ".join(map(str, pixels))
    emotion, usage = str(int(rng.integers(0, 7))), ["Training", "PublicTest", "PrivateTest"][int(rng.integers(0, 3))]
    if kind == "valid":
        return [emotion, text, usage], True
    if kind == "valid-extra-field":
        return [emotion, text, usage, "extra"], True
    if kind == "valid-emotion-name":
        return [["angry", "Happy", " sad "][int(rng.integers(0, 3))], text, usage], True
    if kind == "wrong-count":
        return [emotion, " ".join(map(str, pixels[: int(rng.integers(0, 2304))])), usage], False
    if kind == "too-many":
        return [emotion, text + " 1", usage], False
    if kind == "non-numeric":
        return [emotion, text.replace(" ", " x", 1), usage], False
    if kind in ("nan", "inf", "negative", "over-255", "fractional"):
        value = {"nan": "nan", "inf": "inf", "negative": "-3", "over-255": "256", "fractional": "12.5"}[kind]
        values = text.split(" ")
        values[int(rng.integers(0, 2304))] = value
        return [emotion, " ".join(values), usage], False
    if kind == "bad-emotion":
        return [["7", "-1", "abc", "3.5", "99"][int(rng.integers(0, 5))], text, usage], False
    if kind == "empty-emotion":
        return ["", text, usage], False
    if kind == "bad-usage":
        return [emotion, text, ["Train", "", "test", "PublicTests"][int(rng.integers(0, 4))]], False
    if kind == "short-row":
        return [emotion], False
    if kind == "huge-field":
        return [emotion, "1 " * 80_000, usage], False
    raise ValueError(kind)


FER2013_ROW_KINDS = ("valid", "valid-extra-field", "valid-emotion-name", "wrong-count", "too-many", "non-numeric",
                     "nan", "inf", "negative", "over-255", "fractional", "bad-emotion", "empty-emotion", "bad-usage",
                     "short-row", "huge-field", "invalid-utf8", "nul-byte")


def write_fer2013_csv(path: Path, kinds, seed: int = 0, header: str = "emotion,pixels,Usage", bom: bool = False,
                      newline: str = "\n") -> list:
    """Write a FER2013 CSV with one row per kind (see `fer2013_row`; ``invalid-utf8`` and ``nul-byte``
    damage a valid row's bytes) and return the validity of each data row, in order."""
    import csv as _csv

    rng = np.random.default_rng(seed)
    buffer = io.StringIO()
    writer = _csv.writer(buffer, lineterminator=newline)
    lines, valid = [], []
    for kind in kinds:
        base = "valid" if kind in ("invalid-utf8", "nul-byte") else kind
        fields, ok = fer2013_row(rng, base)
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(fields)
        line = buffer.getvalue().encode()
        if kind == "invalid-utf8":
            line = line.replace(b" ", b" \xff\xfe", 1)
            ok = False
        elif kind == "nul-byte":
            line = line.replace(b" ", b" \x00", 1)
            ok = False
        lines.append(line)
        valid.append(ok)
    data = (b"\xef\xbb\xbf" if bom else b"") + (header + newline).encode() + b"".join(lines)
    path.write_bytes(data)
    return valid
