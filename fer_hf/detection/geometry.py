"""Crop geometry shared by inference, training and the corpus loaders: how a detector's box becomes the
square face crop the classifier sees (per-detector `CropAdjustment`, margin, eye-line alignment)."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from PIL import Image


class CropAdjustment(NamedTuple):
    """Box change applied before the square face crop (`adjust_box`), in units of the box's own size:
    the centre moves by (``shift_x`` * w, ``shift_y`` * h) and the box becomes ``scale`` times larger."""

    scale: float = 1.0
    shift_x: float = 0.0
    shift_y: float = 0.0


#: No change (``FaceExpressionRecognizer(adjust_crops=False)`` uses this for every detector).
IDENTITY = CropAdjustment()

#: Per detector: the change that makes ``square_crop_box(adjust_box(box), margin=0.2)`` frame the face like
#: FER2013's 48x48 training faces. Measured without labels in benchmarks/detector_framing.py (the median, over
#: FER2013 test faces, of where each detector puts its box inside the FER2013 frame; shift_x is 0 because faces
#: are left-right symmetric and the measured horizontal offsets were negligible) and checked with the released
#: model's accuracy on JAFFE full images (the numbers are in benchmarks/results/detector_framing.md): FER2013
#: faces are framed tighter than the MTCNN box plus the default margin (about MTCNN's box height, centred on it),
#: and BlazeFace's square boxes sit lower on the face than MTCNN's.
CROP_ADJUSTMENTS = {
    "mtcnn": CropAdjustment(0.80, 0.0, 0.0),
    "haar": CropAdjustment(0.87, 0.0, 0.0),
    "blazeface-short": CropAdjustment(0.97, 0.0, -0.10),
    "blazeface-full": CropAdjustment(0.96, 0.0, -0.04),
    "blazeface-back": CropAdjustment(0.96, 0.0, -0.09),
}
CROP_ADJUSTMENTS["blazeface"] = CROP_ADJUSTMENTS["blazeface-full"]  # "blazeface" is full-range BlazeFace


def adjust_box(box, adjustment: CropAdjustment = IDENTITY, roll: float = 0.0):
    """[x1, y1, x2, y2] -> float32 box scaled by ``adjustment.scale`` about its centre and moved by
    (shift_x * w, shift_y * h). ``roll``: the face's in-plane rotation in degrees, the angle of its eye
    line in image coordinates (y down: positive = tilted clockwise as displayed); the shift then follows
    the face's own axes (for aligned crops)."""
    x1, y1, x2, y2 = [float(v) for v in box]
    w, h = x2 - x1, y2 - y1
    dx, dy = adjustment.shift_x * w, adjustment.shift_y * h
    if roll:
        t = np.deg2rad(roll)
        dx, dy = dx * np.cos(t) - dy * np.sin(t), dx * np.sin(t) + dy * np.cos(t)
    cx, cy = (x1 + x2) / 2 + dx, (y1 + y2) / 2 + dy
    half_w, half_h = w * adjustment.scale / 2, h * adjustment.scale / 2
    return np.array([cx - half_w, cy - half_h, cx + half_w, cy + half_h], np.float32)


def square_crop_box(box, margin: float):
    """[x1, y1, x2, y2] -> a square box around the same centre, side = max(w, h) * (1 + margin), as
    integers; it may extend past the image (PIL pads with black)."""
    x1, y1, x2, y2 = [float(v) for v in box]
    side = max(x2 - x1, y2 - y1) * (1.0 + margin)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return (int(round(cx - side / 2)), int(round(cy - side / 2)), int(round(cx + side / 2)), int(round(cy + side / 2)))


def eye_roll(eyes) -> float:
    """Roll of a face in degrees from its eye centres ((x, y) of the eye on the image's left for an
    upright face, then the other): the eye line's angle in image coordinates (y down), so positive means
    tilted clockwise as displayed; 0 for level eyes."""
    (lx, ly), (rx, ry) = [(float(p[0]), float(p[1])) for p in eyes]
    return math.degrees(math.atan2(ry - ly, rx - lx))


def face_crop(image: Image.Image, box, margin: float, adjustment=IDENTITY, eyes=None) -> Image.Image:
    """The face crop the classifier sees: the detector's ``box`` moved/resized by ``adjustment`` (the
    detector's `CropAdjustment`, see `fer_hf.detection.geometry.adjust_box`), then the square of
    `square_crop_box` (side ``max(w, h) * scale * (1 + margin)``). With ``eyes`` (two (x, y) points,
    see `eye_roll`) the square is rotated with the face so that the eyes are level in the crop
    (bilinear). Outside the image is black, as with ``image.crop``."""
    if eyes is None:
        return image.crop(square_crop_box(adjust_box(box, adjustment), margin))
    roll = eye_roll(eyes)
    x1, y1, x2, y2 = adjust_box(box, adjustment, roll=roll)
    side = max(x2 - x1, y2 - y1) * (1.0 + margin)
    size = max(1, int(round(side)))
    cx, cy, t = (x1 + x2) / 2, (y1 + y2) / 2, math.radians(roll)
    cos, sin, k = math.cos(t), math.sin(t), side / size
    # output pixel (u, v) -> input point: centre + R(roll) @ ((u, v) - size / 2) * k (PIL wants this inverse map)
    half = size / 2
    data = (k * cos, -k * sin, cx - k * (cos * half - sin * half),
            k * sin, k * cos, cy - k * (sin * half + cos * half))
    return image.transform((size, size), Image.AFFINE, data, resample=Image.BILINEAR)
