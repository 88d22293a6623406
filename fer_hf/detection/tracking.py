"""Stable ids for faces across video frames: an IoU tracker (Hungarian matching of boxes between frames).

Used by `fer_hf.inference.video` (each sampled frame's detections get a track id) and usable by any stream that
detects every few frames: call `FaceTracker.update` with each detection's boxes, read `FaceTracker.tracks`
for the boxes to carry over the frames in between.
"""

from __future__ import annotations

from typing import Dict, List

import numpy as np
from scipy.optimize import linear_sum_assignment


def iou_matrix(boxes_a, boxes_b) -> np.ndarray:
    """Intersection over union of every pair of boxes.

    Args:
        boxes_a: (N, 4) array-like of [x, y, w, h] boxes (pixels; w, h >= 0).
        boxes_b: (M, 4) array-like of [x, y, w, h] boxes.

    Returns:
        (N, M) float64 array in [0, 1]; 0 for pairs that do not overlap or have zero area.

    Raises:
        ValueError: if either input is not of shape (K, 4).
    """
    a = _as_boxes(boxes_a)
    b = _as_boxes(boxes_b)
    ax1, ay1, ax2, ay2 = a[:, 0:1], a[:, 1:2], a[:, 0:1] + a[:, 2:3], a[:, 1:2] + a[:, 3:4]
    bx1, by1, bx2, by2 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    inter_w = np.clip(np.minimum(ax2, bx2) - np.maximum(ax1, bx1), 0, None)
    inter_h = np.clip(np.minimum(ay2, by2) - np.maximum(ay1, by1), 0, None)
    inter = inter_w * inter_h
    union = a[:, 2:3] * a[:, 3:4] + b[:, 2] * b[:, 3] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _as_boxes(boxes) -> np.ndarray:
    array = np.asarray(boxes, dtype=np.float64)
    if array.size == 0:
        return array.reshape(0, 4)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"Boxes must have shape (N, 4) as [x, y, w, h]; got shape {array.shape}")
    return array


class FaceTracker:
    """Assign stable integer ids to face boxes from one frame to the next.

    Each `update` matches the new boxes to the live tracks' last boxes by maximum total IoU (Hungarian
    assignment, `scipy.optimize.linear_sum_assignment`); a pair is matched only if its IoU is at least
    ``iou_threshold``. Matched tracks take the new box; unmatched boxes start new tracks (ids 1, 2, 3, …
    in the order of the boxes given, never reused); a track that goes unmatched in more than
    ``max_missed`` consecutive updates is dropped, so a face that comes back later gets a new id.

    IoU matching suits frames close in time: at a low sampling rate a fast-moving face may no longer
    overlap its previous box and then gets a new id.

    Args:
        iou_threshold: minimum IoU (0..1) for a box to continue a track.
        max_missed: number of consecutive updates a track survives without a matching box (0: it
            ends at the first frame without it).

    Raises:
        ValueError: for ``iou_threshold`` outside (0, 1] or a negative ``max_missed``.
    """

    def __init__(self, iou_threshold: float = 0.3, max_missed: int = 5):
        if not 0.0 < float(iou_threshold) <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1]; got {iou_threshold}")
        if int(max_missed) < 0:
            raise ValueError(f"max_missed must be >= 0; got {max_missed}")
        self.iou_threshold = float(iou_threshold)
        self.max_missed = int(max_missed)
        self.reset()

    def reset(self) -> None:
        """Forget every track; the next new track gets id 1 again."""
        self._boxes: Dict[int, np.ndarray] = {}
        self._missed: Dict[int, int] = {}
        self._next_id = 1

    @property
    def tracks(self) -> Dict[int, List[float]]:
        """The live tracks: {track id: its last box [x, y, w, h] (floats)}, including tracks that missed
        the latest updates but have not expired (e.g. to draw between detections)."""
        return {track_id: box.tolist() for track_id, box in self._boxes.items()}

    def update(self, boxes) -> List[int]:
        """Match this frame's boxes to the tracks.

        Args:
            boxes: (N, 4) array-like of [x, y, w, h] boxes in pixels (N may be 0), e.g. the ``"box"``
                of each face from `FaceExpressionRecognizer.predict`.

        Returns:
            A list of N ints: the track id of each box, in the order given.

        Raises:
            ValueError: if ``boxes`` is not of shape (N, 4).
        """
        new = _as_boxes(boxes)
        ids = list(self._boxes)
        assigned = [-1] * len(new)
        if ids and len(new):
            iou = iou_matrix(np.stack([self._boxes[i] for i in ids]), new)
            rows, cols = linear_sum_assignment(iou, maximize=True)
            for r, c in zip(rows, cols):
                if iou[r, c] >= self.iou_threshold:
                    assigned[c] = ids[r]
        matched = set(assigned)
        for track_id in ids:
            if track_id in matched:
                continue
            self._missed[track_id] += 1
            if self._missed[track_id] > self.max_missed:
                del self._boxes[track_id], self._missed[track_id]
        for c, track_id in enumerate(assigned):
            if track_id < 0:
                track_id = assigned[c] = self._next_id
                self._next_id += 1
            self._boxes[track_id] = new[c].copy()
            self._missed[track_id] = 0
        return assigned
