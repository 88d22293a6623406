#!/usr/bin/env python
"""Long-video benchmark of `fer_hf.video.analyze_video`: wall time and peak memory on a synthetic video.
Writes benchmarks/LONG_VIDEO.md.

    python benchmarks/long_video.py                      # 10 minutes of 1280x720 at 30 fps, 2 frames/s analysed
    python benchmarks/long_video.py --minutes 0.5        # a quick check

The video is generated first (PyAV, H.264): sample face photos (../shared/data/samples) sliding over a
gradient background, at 1280x720. Then `analyze_video` streams it: it decodes every frame, analyses
``--sample-fps`` frames per second (MTCNN + the default classifier) and writes the annotated H.264 MP4.
Memory must not grow with the video's length (frames are never all held): the script reports the resident
memory before the analysis, its peak during it (sampled every 0.1 s), and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shlex
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DEFAULT_SAMPLES = REPO.parent / "shared" / "data" / "samples"
DEFAULT_FACES = ("happy-baby.jpeg", "surprised.jpeg", "angry.jpg")


def _background(width: int, height: int) -> np.ndarray:
    """(height, width, 3) uint8: a smooth blue-grey gradient."""
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    colour = 60 + 80 * x * np.array([0.6, 0.8, 1.0], np.float32) + 50 * y * np.array([1.0, 0.7, 0.5], np.float32)
    return np.broadcast_to(colour, (height, width, 3)).astype(np.uint8)


def synthetic_frames(faces, seconds: float, fps: float = 30.0, size=(1280, 720), face_height: int = 260):
    """Yield (time_s, RGB PIL image of ``size``) for ``seconds`` of video: each photo in ``faces`` (paths),
    resized to ``face_height`` pixels high, moves on its own slow Lissajous path over a gradient; one frame
    is built at a time (nothing accumulates)."""
    width, height = size
    photos = []
    for path in faces:
        photo = Image.open(path).convert("RGB")
        photo = photo.resize((max(1, round(photo.width * face_height / photo.height)), face_height), Image.BILINEAR)
        if photo.width > width // max(1, len(faces)):  # keep wide photos from covering each other
            photo = photo.crop(((photo.width - width // len(faces)) // 2, 0,
                                (photo.width + width // len(faces)) // 2, face_height))
        photos.append(photo)
    background = Image.fromarray(_background(width, height))
    for i in range(int(round(seconds * fps))):
        t = i / fps
        frame = background.copy()
        for k, photo in enumerate(photos):
            lane = width / len(photos)
            span_x, span_y = max(0.0, lane - photo.width), max(0.0, height - photo.height)
            x = k * lane + span_x * (0.5 + 0.5 * np.sin(2 * np.pi * t / (37 + 6 * k)))
            y = span_y * (0.5 + 0.5 * np.sin(2 * np.pi * t / (29 + 5 * k) + k))
            frame.paste(photo, (int(x), int(y)))
        yield t, frame


def make_synthetic_video(path, seconds: float, faces=None, fps: float = 30.0, size=(1280, 720),
                         face_height: int = 260, preset: str = "ultrafast") -> Path:
    """Write `synthetic_frames` as an H.264 MP4 at ``path`` with PyAV (`fer_hf.video.H264Writer`), one frame at
    a time. ``faces``: photo paths (default: three of the sample photos). Returns the path."""
    from fractions import Fraction

    from fer_hf.video import H264Writer

    faces = faces or [DEFAULT_SAMPLES / n for n in DEFAULT_FACES]
    rate = Fraction(fps).limit_denominator(1001)
    writer = H264Writer(path, rate=rate, time_base=1 / rate, preset=preset)
    try:
        for t, frame in synthetic_frames(faces, seconds, fps, size, face_height):
            writer.write(frame, t)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return Path(path)


def _rss_mb() -> float:
    """Resident memory of this process now, in MB (10^6 bytes; Linux /proc, psutil elsewhere)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except OSError:
        import psutil

        return psutil.Process().memory_info().rss / 1e6


class PeakRSS:
    """Context manager sampling this process's RSS every ``interval`` seconds in a thread: ``.before``,
    ``.peak`` (MB), and ``.samples`` [(seconds since entering, MB)]."""

    def __init__(self, interval: float = 0.1):
        self.interval = interval

    def __enter__(self):
        self.before = self.peak = _rss_mb()
        self._start = time.perf_counter()
        self.samples = [(0.0, self.before)]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(self.interval):
            rss = _rss_mb()
            self.samples.append((time.perf_counter() - self._start, rss))
            self.peak = max(self.peak, rss)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.samples.append((time.perf_counter() - self._start, _rss_mb()))
        self.peak = max(self.peak, self.samples[-1][1])

    def peak_between(self, start: float, end: float) -> float:
        """Peak RSS (MB) among the samples taken from ``start`` to ``end`` (fractions 0..1 of the time inside)."""
        total = self.samples[-1][0] or 1.0
        return max((rss for t, rss in self.samples if start * total <= t <= end * total), default=float("nan"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="video length in minutes (default 10)")
    parser.add_argument("--fps", type=float, default=30.0, help="frame rate of the generated video")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--sample-fps", type=float, default=2.0, help="frames analysed per second (default 2)")
    parser.add_argument("--max-side", type=int, default=None, help="downscale frames to this longer side first")
    parser.add_argument("--detector", default="mtcnn")
    parser.add_argument("--model", default=None, help="model name or folder (default: the released default)")
    parser.add_argument("--samples", default=str(DEFAULT_SAMPLES), help="folder with the sample face photos")
    parser.add_argument("--workdir", default=None,
                        help="where the generated and annotated videos go (default: a temp folder)")
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "LONG_VIDEO.md"))
    args = parser.parse_args(argv)
    command = "python benchmarks/long_video.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))

    from fer_hf import FaceExpressionRecognizer
    from fer_hf.video import analyze_video, probe_video

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="fer_hf_long_video_"))
    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / "synthetic.mp4"
    started = time.perf_counter()
    make_synthetic_video(source, args.minutes * 60, faces=[Path(args.samples) / n for n in DEFAULT_FACES],
                         fps=args.fps, size=(args.width, args.height))
    generate_s = time.perf_counter() - started
    info = probe_video(source)
    print(f"generated {source} in {generate_s:.0f} s: {info}", flush=True)

    recognizer = FaceExpressionRecognizer.from_pretrained(args.model, detector=args.detector)
    load_before = os.getloadavg()
    with PeakRSS() as memory:
        started = time.perf_counter()
        result = analyze_video(source, recognizer, sample_fps=args.sample_fps, output_video=workdir / "annotated.mp4",
                               progress=True, max_side=args.max_side)
        wall = time.perf_counter() - started
    max_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6  # KB on Linux
    out = probe_video(result.output_video)
    frame_mb = info["width"] * info["height"] * 3 / 1e6
    faces = sum(1 for r in result.rows if r["status"] == "ok")
    lines = [
        "# Long video: time and memory of `analyze_video`",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
        f"load average (1, 5, 15 min) before / after the analysis {', '.join(f'{v:.1f}' for v in load_before)} / "
        f"{', '.join(f'{v:.1f}' for v in os.getloadavg())} "
        "(other jobs share the CPU: times are contended).",
        "",
        f"Video: synthetic, {info['width']}x{info['height']}, {info['fps']:g} fps, {info['duration_s']:.1f} s "
        f"({info['frames']} frames, H.264), generated in {generate_s:.0f} s.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| frames decoded / analysed | {result.frames_decoded} / {result.frames_sampled} "
        f"({args.sample_fps:g} per second, detector {args.detector}) |",
        f"| face rows in the timeline | {faces} ({len(result.tracks())} tracks) |",
        f"| wall time of `analyze_video` | {wall:.1f} s ({wall / max(1, result.frames_sampled) * 1000:.0f} ms per "
        f"analysed frame; {info['duration_s'] / wall:.2f}x real time) |",
        f"| RSS before the analysis (model loaded) | {memory.before:.0f} MB |",
        f"| peak RSS during the analysis | {memory.peak:.0f} MB (+{memory.peak - memory.before:.0f} MB) |",
        f"| peak RSS in the first / second half of the analysis | {memory.peak_between(0, 0.5):.0f} MB / "
        f"{memory.peak_between(0.5, 1):.0f} MB ({memory.peak_between(0.5, 1) - memory.peak_between(0, 0.5):+.0f} MB) |",
        f"| peak RSS of the process (ru_maxrss) | {max_rss_mb:.0f} MB |",
        f"| all decoded frames, if they were held | {frame_mb * result.frames_decoded:.0f} MB "
        f"({frame_mb:.1f} MB each as RGB) |",
        f"| annotated output | {out['width']}x{out['height']}, {out['frames']} frames, {out['codec']}, "
        f"{os.path.getsize(result.output_video) / 1e6:.1f} MB |",
        "",
    ]
    if args.minutes < 10:
        lines += [f"This is a {args.minutes:g}-minute check run, not the 10-minute benchmark (run the script "
                  "without `--minutes` for that).", ""]
    text = "\n".join(lines)
    Path(args.output).write_text(text)
    print(text)
    return result


if __name__ == "__main__":
    main()
