"""The one face framing shared by training, evaluation and inference.

The recognizer crops a detected face as ``face_crop(image, box, margin, adjustment)``
(`fer_hf.inference.recognizer`): the detector's box moved by its `CropAdjustment`, then a square of side
``max(w, h) * (1 + margin)``. Call that square the *recognizer frame* R. Training caches, per face, a
larger square with the same centre, the *context*, of side ``CONTEXT_SCALE`` * R, so that random framings
(tighter than R, like a raw detector box; looser, like FER2013's web thumbnails) can be cut from it; the
framing at scale 1, centred, is R again. `recognizer_frame` and `context_crop` here compute both from the
same detector box with the recognizer's own functions.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..detection.geometry import IDENTITY, CropAdjustment, adjust_box, square_crop_box

#: Side of the cached context square, in units of the recognizer frame's side.
CONTEXT_SCALE = 1.6


def recognizer_frame(box, margin: float = 0.2, adjustment: CropAdjustment = IDENTITY) -> tuple:
    """The recognizer's square crop box (integers, xyxy, may pass the image border) for a detector ``box``
    [x1, y1, x2, y2] in pixels: ``square_crop_box(adjust_box(box, adjustment), margin)``, exactly what
    `fer_hf.detection.geometry.face_crop` cuts without eye alignment."""
    return square_crop_box(adjust_box(box, adjustment), margin)


def context_crop(image: Image.Image, frame, size: int, context_scale: float = CONTEXT_SCALE) -> np.ndarray:
    """The context square around a recognizer ``frame`` (xyxy), resized to ``size`` x ``size``.

    The square has the frame's centre and ``context_scale`` times its side; where it passes the image
    border the nearest edge pixels are repeated (a face at the edge of a photo continues into background,
    not into black), and it is resized with PIL's bilinear filter (antialiased when shrinking).

    Args:
        image: PIL image, mode ``L`` or ``RGB``.
        frame: the recognizer frame (x1, y1, x2, y2) in pixels of ``image``.
        size: output side in pixels.
    Returns:
        uint8 array (size, size, 3) for RGB, (size, size) for L.
    """
    x1, y1, x2, y2 = [float(v) for v in frame]
    side = max(x2 - x1, y2 - y1) * context_scale
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    right, bottom = left + max(1, int(round(side))), top + max(1, int(round(side)))
    pixels = np.asarray(image)
    pad = max(0, -left, -top, right - image.width, bottom - image.height)
    if pad:
        widths = ((pad, pad), (pad, pad)) + (((0, 0),) if pixels.ndim == 3 else ())
        pixels = np.pad(pixels, widths, mode="edge")
    square = pixels[top + pad:bottom + pad, left + pad:right + pad]
    return np.asarray(Image.fromarray(square).resize((size, size), Image.BILINEAR))


def whole_image_frame(width: int, height: int) -> tuple:
    """The recognizer frame assumed for a corpus image that is already a face crop framed like FER2013
    (FER2013, FER+, CK+48; and any crop where no face is detected): its largest centred square."""
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return (left, top, left + side, top + side)
