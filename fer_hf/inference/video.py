"""Expressions over time in a video: a per-frame timeline, an annotated H.264 MP4 and a plot per face track.

Frames are streamed with PyAV (FFmpeg): each one is decoded, analysed, annotated and encoded before the
next is read, so memory does not grow with the video's length (only the small timeline rows are kept)::

    from fer_hf import FaceExpressionRecognizer
    from fer_hf.inference.video import analyze_video

    recognizer = FaceExpressionRecognizer.from_pretrained()
    result = analyze_video("clip.mp4", recognizer, sample_fps=2, output_video="annotated.mp4")
    result.to_csv("timeline.csv"); result.to_json("timeline.json"); result.plot("emotions.png")

Times are in seconds from the start of the video (the presentation time of each frame, so variable frame
rate videos are handled), boxes in pixels of the upright (rotation metadata applied) source frame.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator, List, NamedTuple, Optional, Union

import av
import numpy as np
from PIL import Image

from ..detection.tracking import FaceTracker
from ..image_io import VIDEO_EXTENSIONS
from .drawing import EMOTION_COLORS, draw_track_ids
from .results import face_rows, table_fields, write_rows



ProgressCallback = Callable[..., object]


def timeline_headers(labels) -> list:
    """The columns of `VideoAnalysis.rows` (and of its CSV) for a model with these ``labels``: the face table's
    (`fer_hf.inference.results.table_fields` with the video columns) without ``file`` and ``face_index``:
    time, frame, track id, box, scores, one probability column per label, then ``status`` ("ok" or "no face")."""
    return [name for name in table_fields(labels, with_video=True) if name not in ("file", "face_index")]


def is_video_path(path) -> bool:
    """True if ``path``'s extension is one of `VIDEO_EXTENSIONS` (case-insensitive); the file is not read."""
    return Path(str(path)).suffix.lower() in VIDEO_EXTENSIONS


class VideoFrameSample(NamedTuple):
    """One frame from `iter_video_frames`."""

    index: int  #: position of the frame among all decoded frames of the stream (0-based)
    time_s: float  #: presentation time in seconds from the start of the video
    image: Image.Image  #: RGB PIL image, upright (rotation metadata applied), downscaled to ``max_side``


# --------------------------------------------------------------------------------------------------- reading

def _name(source) -> str:
    return os.path.basename(str(getattr(source, "name", source)))


def _rotate(image: Image.Image, degrees: int) -> Image.Image:
    """Apply a display-matrix rotation (``degrees`` counter-clockwise, PyAV's ``VideoFrame.rotation``)."""
    turn = int(round(degrees / 90.0)) % 4
    if turn == 1:
        return image.transpose(Image.Transpose.ROTATE_90)
    if turn == 2:
        return image.transpose(Image.Transpose.ROTATE_180)
    if turn == 3:
        return image.transpose(Image.Transpose.ROTATE_270)
    return image


class _Reader:
    """An open video container and its first video stream, with FFmpeg errors turned into ValueError."""

    def __init__(self, source):
        self.name = _name(source)
        if isinstance(source, (str, os.PathLike)) and not os.path.exists(source):
            raise FileNotFoundError(f"Video file not found: {source}")
        try:
            self.container = av.open(os.fspath(source) if isinstance(source, os.PathLike) else source, mode="r")
        except av.error.FFmpegError as error:
            raise ValueError(f"{self.name} is not a video file that FFmpeg can read ({error}).") from error
        if not self.container.streams.video:
            kinds = ", ".join(sorted({s.type for s in self.container.streams})) or "none"
            self.container.close()
            raise ValueError(f"{self.name} has no video stream (streams found: {kinds}).")
        self.stream = self.container.streams.video[0]
        if self.stream.codec_context is None:
            self.container.close()
            raise ValueError(f"{self.name}: its video codec is not supported by this FFmpeg build.")
        self.stream.thread_type = "AUTO"  # frame + slice threads: a few frames in flight, bounded
        self.time_base = self.stream.time_base or Fraction(1, 90000)
        rate = self.stream.average_rate or self.stream.guessed_rate or self.stream.base_rate
        self.fps = float(rate) if rate else 0.0
        if self.stream.duration:
            self.duration_s = float(self.stream.duration * self.time_base)
        elif self.container.duration:
            self.duration_s = self.container.duration / av.time_base
        else:
            self.duration_s = None
        self.start_s = float(self.stream.start_time * self.time_base) if self.stream.start_time is not None else None
        self.frames_reported = int(self.stream.frames or 0)
        self.decode_errors = 0

    def close(self):
        self.container.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def frames(self, start_pts: Optional[int] = None, first_index: int = 0) -> Iterator[tuple]:
        """(index, time_s, av.VideoFrame) for every decodable frame, in presentation order. Packets that
        fail to decode are counted in ``decode_errors`` and skipped.

        ``start_pts``: seek to the key frame at or before this presentation timestamp (stream time base) and
        start at the first frame whose timestamp is not earlier; that frame gets index ``first_index`` (a
        `VideoSegment`'s first frame). None: from the first frame, index 0."""
        index = first_index if start_pts is not None else 0
        started = index
        last = None
        step = 1.0 / self.fps if self.fps > 0 else 1.0 / 30
        if start_pts is not None:
            self.container.seek(int(start_pts), stream=self.stream, backward=True, any_frame=False)
        try:
            for packet in self.container.demux(self.stream):
                try:
                    decoded = packet.decode()
                except av.error.FFmpegError:
                    self.decode_errors += 1
                    continue
                for frame in decoded:
                    if start_pts is not None and (frame.pts is None or frame.pts < start_pts):
                        continue  # decoded from the key frame before the segment: not ours
                    if frame.time is not None:
                        if self.start_s is None:
                            self.start_s = float(frame.time)
                        t = max(0.0, float(frame.time) - self.start_s)
                    else:
                        t = 0.0 if last is None else last + step
                    if last is not None and t < last:  # a broken timestamp: keep the timeline ordered
                        t = last
                    last = t
                    yield index, t, frame
                    index += 1
        except av.error.FFmpegError as error:  # a demuxer error (truncated or corrupt file)
            if index == started:
                raise ValueError(f"{self.name}: no video frame could be read ({error}).") from error
            self.decode_errors += 1
        if index == started:
            raise ValueError(f"{self.name}: no video frame could be decoded (broken file or unsupported codec "
                             f"{self.stream.codec_context.name!r}).")


def _frame_image(frame, max_side: Optional[int]) -> tuple:
    """(upright RGB PIL image, scale applied) for a decoded frame: downscaled by swscale so that its longer
    side is at most ``max_side``, then rotated by its display matrix."""
    scale = 1.0
    if max_side and max(frame.width, frame.height) > max_side:
        scale = max_side / max(frame.width, frame.height)
        image = frame.to_image(width=max(2, round(frame.width * scale)), height=max(2, round(frame.height * scale)))
        scale = image.width / frame.width
    else:
        image = frame.to_image()
    return _rotate(image, frame.rotation or 0), scale


class _Sampler:
    """Take the frames closest after each multiple of ``1 / sample_fps`` seconds (every frame for None)."""

    def __init__(self, sample_fps: Optional[float]):
        self.interval = None
        if sample_fps is not None:
            try:
                rate = float(sample_fps)
            except (TypeError, ValueError):
                rate = float("nan")
            if not (rate > 0 and math.isfinite(rate)):
                raise ValueError(f"sample_fps must be a positive number of frames per second, or None for every "
                                 f"frame; got {sample_fps!r}")
            self.interval = 1.0 / rate
        self.next_t = None

    def take(self, t: float) -> bool:
        if self.interval is None:
            return True
        if self.next_t is not None and t < self.next_t - 1e-6:
            return False
        self.next_t = (math.floor(t / self.interval + 1e-6) + 1) * self.interval
        return True


def probe_video(source) -> dict:
    """What a video is, read from its container and its first frame (for upload limits).

    Args:
        source: path (str / Path) or binary file object of a video FFmpeg can read.

    Returns:
        dict with ``duration_s`` (float seconds, None if the container does not say), ``fps`` (float,
        average frame rate; 0.0 if unknown), ``width`` and ``height`` (ints, pixels of the upright frame,
        i.e. after rotation metadata), ``frames`` (int: the container's frame count, else
        ``round(duration_s * fps)``, else 0), ``rotation`` (int degrees counter-clockwise applied for
        display), ``codec`` (str, e.g. "h264").

    Raises:
        FileNotFoundError: for a missing path.
        ValueError: for a file that is not a video, has no video stream or whose first frame cannot be
            decoded.
    """
    with _Reader(source) as reader:
        rotation = 0
        for _, _, frame in reader.frames():
            rotation = int(frame.rotation or 0)
            break
        width, height = reader.stream.codec_context.width, reader.stream.codec_context.height
        if int(round(rotation / 90.0)) % 2:
            width, height = height, width
        frames = reader.frames_reported
        if not frames and reader.duration_s and reader.fps:
            frames = int(round(reader.duration_s * reader.fps))
        return {"duration_s": reader.duration_s, "fps": reader.fps, "width": int(width), "height": int(height),
                "frames": frames, "rotation": rotation, "codec": reader.stream.codec_context.name}


def iter_video_frames(source, sample_fps: Optional[float] = None, *, max_side: Optional[int] = None,
                      max_duration_s: Optional[float] = None) -> Iterator[VideoFrameSample]:
    """Stream a video's frames one at a time (never more than a few decoded frames in memory).

    Args:
        source: path or binary file object of a video FFmpeg can read.
        sample_fps: None: every frame; a number: about that many frames per second of video (the first
            frame at or after each multiple of ``1 / sample_fps`` seconds; every frame if it exceeds the
            video's frame rate).
        max_side: downscale frames so that their longer side is at most this many pixels (None: as is).
        max_duration_s: stop after this many seconds of video (None: to the end).

    Yields:
        `VideoFrameSample` (index, time_s, image): RGB PIL images, upright.

    Raises:
        FileNotFoundError, ValueError: as `probe_video`; ValueError for a non-positive ``sample_fps``.
    """
    sampler = _Sampler(sample_fps)
    with _Reader(source) as reader:
        for index, t, frame in reader.frames():
            if max_duration_s is not None and t > max_duration_s:
                return
            if sampler.take(t):
                yield VideoFrameSample(index, round(t, 4), _frame_image(frame, max_side)[0])


class VideoSegment(NamedTuple):
    """A stretch of a video that one worker analyses on its own (`plan_video_segments`)."""

    index: int  #: position of the segment in the video (0-based)
    count: int  #: number of segments of the video
    first_frame: int  #: index of its first frame among all decoded frames (`VideoFrameSample.index`)
    frames: int  #: number of frames it holds
    start_pts: Optional[int]  #: presentation timestamp of its first frame (stream time base); None: from the start
    fps: float  #: the video's average frame rate (0.0 if unknown), for the tracker


def plan_video_segments(source, segment_s: float, sample_fps: Optional[float] = None) -> list:
    """Cut a video into time segments that can be analysed independently and give, joined, exactly the
    frames and timeline of one `analyze_video` pass (the distributed runner spreads a long video over
    workers this way).

    Only packets are read (demuxing, no decoding). Segment boundaries fall on multiples of the sampling
    interval (``1 / sample_fps``) nearest above ``segment_s``, so the frame sampling restarts exactly where a
    single pass would take a frame; each segment starts at a frame's own timestamp, from which a worker seeks
    to the key frame before it.

    Args:
        source: path or seekable binary file object of a video.
        segment_s: target segment length in seconds of video (> 0).
        sample_fps: the sampling rate the segments will be analysed with (None: every frame).

    Returns:
        list of `VideoSegment`, in time order; a single segment from the start when the stream lacks
        timestamps or a start time (then it cannot be cut safely).

    Raises:
        ValueError: for a non-positive ``segment_s`` or ``sample_fps``, and as `probe_video` for a file that
            is not a readable video. FileNotFoundError: for a missing path.
    """
    if not (segment_s > 0 and math.isfinite(segment_s)):
        raise ValueError(f"segment_s must be a positive number of seconds, got {segment_s!r}")
    interval = _Sampler(sample_fps).interval
    if interval is not None:
        segment_s = max(1, math.ceil(segment_s / interval - 1e-9)) * interval
    with _Reader(source) as reader:
        stamps, complete = [], True
        try:
            for packet in reader.container.demux(reader.stream):
                if packet.size == 0:  # the demuxer's end-of-stream flush packet
                    continue
                if packet.pts is None:
                    complete = False
                    break
                stamps.append(int(packet.pts))
        except av.error.FFmpegError:
            complete = False
        whole = [VideoSegment(0, 1, 0, 2 ** 62, None, reader.fps)]  # every frame, from the start
        if not complete or not stamps or reader.start_s is None:
            return whole
        stamps.sort()
        starts = [0]
        for i, pts in enumerate(stamps):
            t = max(0.0, float(pts * reader.time_base) - reader.start_s)
            # same 1e-6 tolerance as the frame sampler, so the first frame of a segment is one it takes
            if t >= len(starts) * segment_s - 1e-6 and i > starts[-1]:
                starts.append(i)
        ends = starts[1:] + [len(stamps)]
        return [VideoSegment(k, len(starts), first, end - first, stamps[first] if k else None, reader.fps)
                for k, (first, end) in enumerate(zip(starts, ends))]


# --------------------------------------------------------------------------------------------------- writing

class H264Writer:
    """Write PIL images one at a time into an H.264 MP4 that browsers play: libx264, yuv420p, the moov
    atom first (``movflags=+faststart``, so playback starts before the download ends), no audio.

    Args:
        path: the .mp4 file to write (parent folders are created).
        rate: nominal frame rate (frames per second, e.g. ``Fraction(30000, 1001)``), for rate control and
            the file's stated rate; each frame's own timestamp decides when it is shown.
        time_base: timestamp unit in seconds (e.g. the source stream's ``time_base``).
        crf: x264 constant rate factor (0..51, lower is better quality, 23 is x264's default).
        preset: x264 speed preset ("ultrafast" … "veryslow").

    ``write(image, time_s)``: an RGB PIL image shown from ``time_s`` seconds; every frame is cropped to the
    first frame's size rounded down to even pixels (yuv420p needs even dimensions; a frame of another size
    is resized). Timestamps are made strictly increasing. ``close()`` flushes the encoder and finishes the
    file; ``abort()`` closes and deletes it. Raises ValueError for a first frame under 2x2 pixels.
    """

    def __init__(self, path, rate: Fraction, time_base: Fraction, crf: int = 23, preset: str = "veryfast"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rate, self.time_base = rate, time_base
        self.options = {"crf": str(crf), "preset": preset}
        self.container = av.open(str(self.path), mode="w", format="mp4", options={"movflags": "+faststart"})
        self.stream = None
        self.last_pts = None
        self.size = None
        self.frames = 0

    def write(self, image: Image.Image, time_s: float) -> None:
        if self.stream is None:
            width, height = image.width - image.width % 2, image.height - image.height % 2
            if width < 2 or height < 2:
                raise ValueError(f"Frames of {image.width}x{image.height} pixels are too small to encode.")
            self.size = (width, height)
            self.stream = self.container.add_stream("libx264", rate=self.rate, options=self.options)
            self.stream.width, self.stream.height = width, height
            self.stream.pix_fmt = "yuv420p"
            self.stream.codec_context.time_base = self.time_base
        if image.size != self.size:
            image = image.crop((0, 0, *self.size)) if image.width >= self.size[0] and image.height >= self.size[1] \
                else image.resize(self.size, Image.BILINEAR)
        frame = av.VideoFrame.from_image(image).reformat(format="yuv420p")
        pts = int(round(time_s / self.time_base))
        if self.last_pts is not None and pts <= self.last_pts:
            pts = self.last_pts + 1
        frame.pts, frame.time_base = pts, self.time_base
        self.last_pts = pts
        self.container.mux(self.stream.encode(frame))
        self.frames += 1

    def close(self) -> None:
        if self.stream is not None:
            self.container.mux(self.stream.encode(None))
        self.container.close()

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.container.close()
        with contextlib.suppress(OSError):
            self.path.unlink()


# --------------------------------------------------------------------------------------------------- result

@dataclass
class VideoAnalysis:
    """The result of `analyze_video`.

    Attributes:
        rows: the timeline, one dict per face per sampled frame (keys: `timeline_headers`): ``time_s``
            (float seconds), ``frame_index`` (int, among all decoded frames), ``track_id`` (int, stable
            while the face is tracked), ``box_x``/``box_y``/``box_w``/``box_h`` (ints, pixels of the upright
            source frame), ``detector_score`` (float), ``top_emotion`` (str), ``top_score`` and one
            probability per label (floats 0..1), ``status`` ("ok"). A sampled frame without a face gives one
            row with ``status`` "no face" and None for the face fields, so every sampled frame is in it.
        labels: the model's labels, in probability-column order.
        fps: the source's average frame rate (frames per second; 0.0 if unknown).
        duration_s: the source's duration in seconds (from the container, else up to the last frame read).
        frames_sampled: frames analysed. frames_decoded: frames read (analysed or not).
        width, height: pixels of the upright source frame.
        sample_fps: the sampling rate asked for (None: every frame).
        output_video: path of the annotated MP4, or None.
        decode_errors: packets that could not be decoded (skipped).
        source: the video's file name.
    """

    rows: List[dict]
    labels: List[str]
    fps: float
    duration_s: float
    frames_sampled: int
    frames_decoded: int = 0
    width: int = 0
    height: int = 0
    sample_fps: Optional[float] = None
    output_video: Optional[str] = None
    decode_errors: int = 0
    source: str = ""
    headers: List[str] = field(default_factory=list)

    def __post_init__(self):
        if not self.headers:
            self.headers = timeline_headers(self.labels)

    def to_dataframe(self):
        """The rows as a pandas DataFrame (columns `timeline_headers`; missing values NaN/None)."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=self.headers)

    def to_csv(self, path) -> Path:
        """Write the timeline as CSV (header = `timeline_headers`, empty cells for "no face" rows); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as handle:
            write_rows(self.rows, self.headers, handle)
        return path

    def to_json(self, path) -> Path:
        """Write ``{"source", "fps", "duration_s", "width", "height", "sample_fps", "frames_decoded",
        "frames_sampled", "labels", "rows"}`` as JSON (null for "no face" rows' face fields); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        document = {"source": self.source, "fps": self.fps, "duration_s": self.duration_s, "width": self.width,
                    "height": self.height, "sample_fps": self.sample_fps, "frames_decoded": self.frames_decoded,
                    "frames_sampled": self.frames_sampled, "labels": self.labels, "rows": self.rows}
        path.write_text(json.dumps(document, indent=1))
        return path

    def tracks(self) -> dict:
        """{track id: {"first_s", "last_s" (float seconds), "frames" (int rows), "top_emotion" (its most
        frequent top emotion), "mean" ({label: mean probability})}}, tracks in id order."""
        grouped = {}
        for row in self.rows:
            if row.get("track_id") is not None:
                grouped.setdefault(row["track_id"], []).append(row)
        summary = {}
        for track_id in sorted(grouped):
            rows = grouped[track_id]
            summary[track_id] = {
                "first_s": rows[0]["time_s"], "last_s": rows[-1]["time_s"], "frames": len(rows),
                "top_emotion": Counter(r["top_emotion"] for r in rows).most_common(1)[0][0],
                "mean": {n: round(float(np.mean([r[n] for r in rows])), 4) for n in self.labels}}
        return summary

    def plot(self, path, max_tracks: int = 6) -> Path:
        """Emotion over time: a PNG with one panel per face track (the ``max_tracks`` longest, in id order),
        each the probability (0..1) of every label against time in seconds; lines break where the track
        was not seen. Drawn with matplotlib's Agg canvas (no display, thread-safe). Returns the path."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        tracks = self.tracks()
        chosen = sorted(sorted(tracks, key=lambda t: -tracks[t]["frames"])[:max(1, int(max_tracks))])
        panels = max(1, len(chosen))
        figure = Figure(figsize=(10, 1.0 + 2.2 * panels), layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.subplots(panels, 1, sharex=True, squeeze=False)[:, 0]
        step = 1.0 / (self.sample_fps or self.fps or 1.0)
        end = max(self.duration_s or 0.0, max((r["time_s"] for r in self.rows), default=0.0), step)
        for ax, track_id in zip(axes, chosen):
            rows = [r for r in self.rows if r.get("track_id") == track_id]
            times = np.array([r["time_s"] for r in rows], dtype=float)
            gaps = np.flatnonzero(np.diff(times) > 1.5 * step) + 1  # where the track was not seen
            for label in self.labels:
                values = np.array([r[label] for r in rows], dtype=float)
                t, v = np.insert(times, gaps, np.nan), np.insert(values, gaps, np.nan)
                color = EMOTION_COLORS.get(label)
                ax.plot(t, v, label=label, color=None if color is None else np.array(color) / 255,
                        marker="." if len(rows) < 60 else None, linewidth=1.5)
            info = tracks[track_id]
            ax.set_title(f"face track #{track_id}: {info['frames']} frame(s), {info['first_s']:.1f}–"
                         f"{info['last_s']:.1f} s, mostly {info['top_emotion']}", fontsize=10, loc="left")
            ax.set_ylim(0, 1)
            ax.set_ylabel("probability")
            ax.grid(alpha=0.3)
        if not chosen:
            axes[0].text(0.5, 0.5, "no face found in the sampled frames", ha="center", va="center",
                         transform=axes[0].transAxes)
            axes[0].set_ylim(0, 1)
        axes[-1].set_xlim(0, end)
        axes[-1].set_xlabel("time in the video (s)")
        shown = f" (the {len(chosen)} longest of {len(tracks)} tracks)" if len(tracks) > len(chosen) else ""
        figure.suptitle(f"Expression probabilities over time: {self.source}{shown}", fontsize=11)
        if chosen:
            figure.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center",
                          ncol=len(self.labels), fontsize=9)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=100)
        return path

    def summary(self) -> str:
        """One Markdown paragraph: frames analysed, duration, faces found, each track's main expression."""
        tracks = self.tracks()
        no_face = sum(1 for r in self.rows if r.get("status") == "no face")
        rate = "every frame" if self.sample_fps is None else f"{self.sample_fps:g} frame(s) per second"
        text = (f"{self.frames_sampled} of {self.frames_decoded} frames analysed ({rate}) over "
                f"{self.duration_s:.1f} s of {self.width}x{self.height} video; {len(tracks)} face track(s); "
                f"{no_face} analysed frame(s) without a face.")
        if tracks:
            longest = sorted(tracks, key=lambda t: -tracks[t]["frames"])[:10]
            text += " " + "; ".join(f"#{t}: mostly {tracks[t]['top_emotion']} ({tracks[t]['first_s']:.1f}–"
                                    f"{tracks[t]['last_s']:.1f} s)" for t in sorted(longest)) + "."
        if self.decode_errors:
            text += f" {self.decode_errors} undecodable packet(s) skipped."
        return text


# --------------------------------------------------------------------------------------------------- analysis

def _face_rows(time_s, frame_index, faces, track_ids, scale, labels) -> list:
    """Timeline rows of one sampled frame: `fer_hf.inference.results.face_rows` of its faces (boxes scaled back
    to the video's pixels), with the frame's time, index and each face's track id, in `timeline_headers`."""
    unscaled = [{**face, "box": [int(round(v / scale)) for v in face["box"]]} for face in faces]
    rows = face_rows("", unscaled, decimals=None, extra={"time_s": round(time_s, 4), "frame_index": frame_index},
                     per_face=[{"track_id": int(track_id)} for track_id in track_ids])
    headers = timeline_headers(labels)
    return [{name: row.get(name) for name in headers} for row in rows]


def video_tracker(fps: float, sample_fps: Optional[float]) -> FaceTracker:
    """The `FaceTracker` of `analyze_video`: a face may be missed for about a second of analysed frames."""
    per_second = min(sample_fps or math.inf, fps or 30.0)
    return FaceTracker(iou_threshold=0.3, max_missed=max(1, int(round(per_second))))


def analyze_video_segment(source, recognizer, segment: VideoSegment, *, sample_fps: Optional[float] = None) -> list:
    """Timeline rows (`timeline_headers`) of the sampled frames of one `VideoSegment`, without track ids
    (``track_id`` None; `assign_track_ids` gives them once the segments are joined). The rows of all
    segments of a video, in order, equal the rows of one `analyze_video` pass with the same ``sample_fps``
    and no ``max_side``.

    Raises:
        as `analyze_video`.
    """
    sampler = _Sampler(sample_fps)
    labels = [recognizer.id2label[i] for i in sorted(recognizer.id2label)]
    rows: list = []
    end = segment.first_frame + segment.frames
    with _Reader(source) as reader:
        for index, t, frame in reader.frames(segment.start_pts, segment.first_frame):
            if index >= end:
                break
            if not sampler.take(t):
                continue
            image, scale = _frame_image(frame, None)
            faces = recognizer.predict(image)
            for row in _face_rows(t, index, faces, [0] * len(faces), scale, labels):
                row["track_id"] = None
                rows.append(row)
    return rows


def assign_track_ids(rows: list, fps: float, sample_fps: Optional[float]) -> list:
    """Give the face rows of one video (timeline rows of all its sampled frames, in frame order, e.g. the
    joined `analyze_video_segment` rows) the track ids `analyze_video`'s tracker gives them; rows are
    updated in place and returned. A frame's ``"no face"`` row counts as a frame without faces."""
    tracker = video_tracker(fps, sample_fps)
    frame, pending = object(), []

    def flush():
        ok = [r for r in pending if r.get("status") == "ok"]
        for row, track_id in zip(ok, tracker.update([[r["box_x"], r["box_y"], r["box_w"], r["box_h"]] for r in ok])):
            row["track_id"] = int(track_id)

    for row in rows:
        if row.get("frame_index") != frame and pending:
            flush()
            pending = []
        frame = row.get("frame_index")
        pending.append(row)
    if pending:
        flush()
    return rows


def _progress_function(progress, duration_s, name):
    """A function(time_s, frames_sampled, final=False) that reports to tqdm, to a callable, or to nothing."""
    if progress is None or progress is False:
        return lambda *args, **kwargs: None
    if progress is True:
        from tqdm.auto import tqdm

        if duration_s:
            bar = tqdm(total=round(duration_s, 1), unit="s", desc=name, leave=False,
                       bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total_fmt} s of video "
                                  "[{elapsed}<{remaining}]")
        else:
            bar = tqdm(total=None, unit="s of video", desc=name, leave=False)

        def report(time_s, frames, final=False):
            target = bar.total if final and bar.total else round(time_s, 1)
            bar.update(max(0.0, target - bar.n))
            bar.set_postfix_str(f"{frames} frames analysed", refresh=False)
            if final:
                bar.close()
        return report

    def report(time_s, frames, final=False):
        fraction = 1.0 if final else (min(0.999, time_s / duration_s) if duration_s else 0.0)
        total = f" of {duration_s:.1f}" if duration_s else ""
        progress(fraction, desc="done" if final else f"{time_s:.1f}{total} s analysed ({frames} frames)")
    return report


def analyze_video(source, recognizer, *, sample_fps: Optional[float] = None,
                  output_video: Optional[Union[str, os.PathLike]] = None, max_duration_s: Optional[float] = None,
                  progress: Union[bool, ProgressCallback, None] = True, max_side: Optional[int] = None,
                  tracker: Optional[FaceTracker] = None, annotate_all_frames: bool = False,
                  lock=None) -> VideoAnalysis:
    """Expressions of every face over a video, streamed frame by frame.

    Each sampled frame goes through ``recognizer.predict`` (detection + classification), the faces get
    track ids from a `FaceTracker`, and the frame, annotated with ``recognizer.annotate`` and the track
    ids, is encoded into ``output_video``. Memory stays bounded whatever the video's length: one decoded
    frame at a time (plus the decoder's and x264's few buffered frames) and the timeline rows.

    Args:
        source: path (str / Path) or binary file object of a video FFmpeg can read (MP4, MOV, MKV, WebM,
            AVI, …). Rotation metadata (phone videos) is applied.
        recognizer: a `fer_hf.inference.recognizer.FaceExpressionRecognizer` (or any object with its ``predict``,
            ``annotate`` and ``id2label``).
        sample_fps: frames analysed per second of video; None: every frame. Frames are picked by their
            timestamps (the first at or after each multiple of ``1 / sample_fps`` s).
        output_video: path of the annotated video to write: H.264 (libx264, CRF 23), yuv420p, even
            dimensions, ``+faststart``; no audio. It holds the analysed frames at their own timestamps (so
            it lasts as long as the source), or every frame with ``annotate_all_frames``. None: no video.
        max_duration_s: raise ValueError for a video longer than this (seconds), before decoding when the
            container states its duration, else as soon as a frame past it is read.
        progress: True: a tqdm bar; a callable: called as ``progress(fraction, desc=str)`` after every
            analysed frame with fraction in [0, 1] (`gradio.Progress` fits), and ``progress(1.0, desc="done")``
            at the end; False/None: silent.
        max_side: downscale frames so that their longer side is at most this many pixels before detection
            and annotation (the timeline's boxes stay in source pixels; the output video has the smaller
            size). None: full resolution.
        tracker: the `FaceTracker` to use (reset first); default ``FaceTracker(0.3, max_missed)`` with
            ``max_missed`` = the number of analysed frames in one second.
        annotate_all_frames: with ``output_video``, also write the frames in between analysed ones, drawn
            with the last analysed frame's faces (smooth video; costs a conversion and an encode per frame).
        lock: optional context manager (e.g. `threading.Lock`) held around each ``recognizer.predict`` call,
            for a recognizer shared between threads.

    Returns:
        `VideoAnalysis` (rows, labels, fps, duration_s, frames_sampled, …).

    Raises:
        FileNotFoundError: for a missing path.
        ValueError: for a file that is not a video, without a video stream, with no decodable frame, longer
            than ``max_duration_s``, or for a non-positive ``sample_fps``. A partial ``output_video`` is deleted.
    """
    sampler = _Sampler(sample_fps)
    sample_fps = None if sample_fps is None else float(sample_fps)
    labels = [recognizer.id2label[i] for i in sorted(recognizer.id2label)]
    lock = lock if lock is not None else contextlib.nullcontext()
    with _Reader(source) as reader:
        if max_duration_s is not None and reader.duration_s is not None and reader.duration_s > max_duration_s + 1e-3:
            raise ValueError(f"{reader.name} lasts {reader.duration_s:.1f} s; the limit is {max_duration_s:g} s. "
                             "Trim the video or analyse it in parts.")
        if tracker is None:
            tracker = video_tracker(reader.fps, sample_fps)
        tracker.reset()
        report = _progress_function(progress, reader.duration_s, reader.name)
        writer = None
        if output_video is not None:
            if annotate_all_frames or sample_fps is None:
                rate = reader.stream.average_rate or Fraction(30)
            else:
                rate = Fraction(sample_fps).limit_denominator(1001)
            writer = H264Writer(output_video, rate=Fraction(rate), time_base=Fraction(reader.time_base))
        rows: list = []
        frames_sampled = frames_decoded = 0
        last_t = 0.0
        width = height = 0
        carried = None  # (faces, track ids) of the last analysed frame, in working pixels
        try:
            for index, t, frame in reader.frames():
                if max_duration_s is not None and t > max_duration_s + 1e-3:
                    raise ValueError(f"{reader.name} lasts more than {max_duration_s:g} s (the limit). "
                                     "Trim the video or analyse it in parts.")
                frames_decoded += 1
                last_t = t
                take = sampler.take(t)
                if not take and not (writer is not None and annotate_all_frames):
                    continue
                image, scale = _frame_image(frame, max_side)
                if not width:
                    width, height = (round(image.width / scale), round(image.height / scale))
                if take:
                    with lock:
                        faces = recognizer.predict(image)
                    track_ids = tracker.update([f["box"] for f in faces])
                    carried = (faces, track_ids)
                    rows.extend(_face_rows(t, index, faces, track_ids, scale, labels))
                    frames_sampled += 1
                    report(t, frames_sampled)
                if writer is not None:
                    faces, track_ids = carried if carried is not None else ([], [])
                    annotated = recognizer.annotate(image, faces)
                    draw_track_ids(annotated, [f["box"] for f in faces], track_ids)
                    writer.write(annotated, t)
                del image, frame
            if writer is not None:
                writer.close()
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        report(last_t, frames_sampled, final=True)
        if reader.duration_s:
            duration = reader.duration_s
        else:
            duration = last_t + (1.0 / reader.fps if reader.fps else 0.0)
        return VideoAnalysis(rows=rows, labels=labels, fps=reader.fps, duration_s=float(duration),
                             frames_sampled=frames_sampled, frames_decoded=frames_decoded, width=int(width),
                             height=int(height), sample_fps=sample_fps,
                             output_video=None if writer is None else str(writer.path),
                             decode_errors=reader.decode_errors, source=reader.name)
