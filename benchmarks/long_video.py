#!/usr/bin/env python
"""Long-video benchmark: wall time and peak memory of a synthetic 720p video through the Video tab's function,
the CLI and `fer_hf.inference.video.analyze_video`, each in its own process. Writes benchmarks/results/long_video.md and
.json.

    python benchmarks/long_video.py                      # 10 minutes of 1280x720 at 30 fps, 2 frames/s analysed
    python benchmarks/long_video.py --minutes 0.5        # a quick check
    python benchmarks/long_video.py --paths cli function # some of the paths only

The video is generated once (PyAV, H.264): sample face photos (../shared/data/samples) sliding over a
gradient background, at 1280x720. Then each path (``--paths``) analyses it in a FRESH child process, so that
each peak memory is its own:

* ``video-tab``: the Video tab's function, `fer_hf.app.handlers.analyze_video_upload` (upload checks of
  `check_video_upload` against `video_limits`, which this script never changes: the limits in force are
  reported), returning the annotated MP4, the timeline CSV / JSON and the emotion plot;
* ``cli``: ``python -m fer_hf predict VIDEO --output OUT.csv`` with the same sampling rate, detector and minimum
  face size, ``--threads`` and ``--annotate`` (the annotated MP4);
* ``function``: `fer_hf.inference.video.analyze_video` called directly (writing the annotated MP4), as before.

Each one streams the video: it decodes every frame, analyses ``--sample-fps`` frames per second (MTCNN + the
default classifier) and writes the annotated H.264 MP4. Memory must not grow with the video's length (frames
are never all held): the parent samples the resident memory (VmRSS in /proc) of the child and its children
every ``--interval`` seconds and reports it when the analysis starts (model loaded), its peak, its peak in the
first and second half of the analysis, and the child's own peak RSS (``ru_maxrss`` from ``os.wait4``).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image
from common import DATA, REPO, command_line, peak_rss_mb, result_path, rss_mb, write_text

DEFAULT_SAMPLES = DATA / "samples"
DEFAULT_FACES = ("happy-baby.jpeg", "surprised.jpeg", "angry.jpg")
PATH_KINDS = ("video-tab", "cli", "function")
#: the Video tab's limits (`fer_hf.app.uploads.video_limits`); this script never sets them
LIMIT_VARIABLES = ("FER_HF_MAX_VIDEO_MB", "FER_HF_MAX_VIDEO_SECONDS", "FER_HF_MAX_VIDEO_PIXELS",
                   "FER_HF_MAX_VIDEO_FRAMES")
#: what a child of this script prints on stderr around the measured call (the parent times the markers)
START_MARKER, END_MARKER = "[long_video] analysis starts", "[long_video] analysis ends"
#: the CLI's progress bar appears once the model is loaded, before the first file
CLI_START = re.compile(rb"predict:\s*0%")
#: ... and its summary is printed once the output file is written
CLI_END = re.compile(rb"processed now: ")


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
    """Write `synthetic_frames` as an H.264 MP4 at ``path`` with PyAV (`fer_hf.inference.video.H264Writer`), one frame at
    a time. ``faces``: photo paths (default: three of the sample photos). Returns the path."""
    from fractions import Fraction

    from fer_hf.inference.video import H264Writer

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


# ------------------------------------------------------------------------------------------ memory of a child

class PeakRSS:
    """Context manager sampling this process's RSS every ``interval`` seconds in a thread: ``.before``,
    ``.peak`` (MB), and ``.samples`` [(seconds since entering, MB)]. In-process (tests/test_video.py uses it);
    the benchmark itself measures child processes (`run_measured`)."""

    def __init__(self, interval: float = 0.1):
        self.interval = interval

    def __enter__(self):
        self.before = self.peak = rss_mb()
        self._start = time.perf_counter()
        self.samples = [(0.0, self.before)]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(self.interval):
            rss = rss_mb()
            self.samples.append((time.perf_counter() - self._start, rss))
            self.peak = max(self.peak, rss)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.samples.append((time.perf_counter() - self._start, rss_mb()))
        self.peak = max(self.peak, self.samples[-1][1])

    def peak_between(self, start: float, end: float) -> float:
        """Peak RSS (MB) among the samples taken from ``start`` to ``end`` (fractions 0..1 of the time inside)."""
        total = self.samples[-1][0] or 1.0
        return max((rss for t, rss in self.samples if start * total <= t <= end * total), default=float("nan"))



def run_measured(command, *, env=None, log_prefix: Path, interval: float = 0.1, start=None, end=None) -> dict:
    """Run ``command`` (a list) in a child process from the repository root and measure it.

    The child's stdout is copied to ``<log_prefix>.stdout.log``, its stderr to ``<log_prefix>.stderr.log`` and
    to this process's stderr (progress bars); both are watched for ``start`` / ``end`` (compiled bytes
    patterns): the time each first appears marks the start / end of the measured part (default: the first
    poll / the child's exit). Every ``interval`` seconds the RSS of the child and its descendants is sampled;
    at the end the child is reaped with ``os.wait4``, whose ``ru_maxrss`` is the child's own peak RSS.

    Returns a dict: ``returncode``, ``wall_s`` (process start to exit), ``ru_maxrss_mb``, ``samples``
    [(time.time(), MB)], ``start_t`` (time.time() of the start mark, None if not seen), ``end_t`` (of the end
    mark, else of the exit), ``end_marked``, ``stdout`` (its text) and ``stderr_tail`` (its last 3000
    characters).
    """
    log_prefix = Path(log_prefix)
    stdout_path, stderr_path = Path(f"{log_prefix}.stdout.log"), Path(f"{log_prefix}.stderr.log")
    marks = {"start": None, "end": None}

    def watch(stream, copies):
        tail = b""
        while True:
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                return
            now = time.time()
            for copy in copies:
                copy.write(chunk)
                copy.flush()
            tail = (tail + chunk)[-4096:]
            for key, pattern in (("start", start), ("end", end)):
                if pattern is not None and marks[key] is None and pattern.search(tail):
                    marks[key] = now

    samples = []
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        started = time.time()
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        watchers = [threading.Thread(target=watch, args=(process.stdout, [out]), daemon=True),
                    threading.Thread(target=watch, args=(process.stderr, [err, sys.stderr.buffer]), daemon=True)]
        for watcher in watchers:
            watcher.start()
        try:
            while True:
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                if pid:
                    break
                samples.append((time.time(), rss_mb(process.pid, descendants=True)))
                time.sleep(interval)
        except BaseException:
            process.kill()
            process.wait()
            raise
        ended = time.time()
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here: tell Popen
        for watcher in watchers:
            watcher.join(timeout=10)
        process.stdout.close()
        process.stderr.close()
    samples = [(t, mb) for t, mb in samples if mb > 0]
    return {"returncode": process.returncode, "wall_s": ended - started,
            "ru_maxrss_mb": usage.ru_maxrss * 1024 / 1e6,  # KB on Linux
            "samples": samples, "start_t": marks["start"], "end_t": marks["end"] or ended,
            "end_marked": marks["end"] is not None, "stdout": stdout_path.read_text(errors="replace"),
            "stderr_tail": stderr_path.read_text(errors="replace")[-3000:]}


def memory_summary(run: dict, rss_at_start=None) -> dict:
    """From `run_measured`'s samples: ``rss_start_mb`` (``rss_at_start`` if given, else the first sample at or
    after the start marker, else the first sample), ``start_marked`` (bool), ``peak_mb`` (all samples),
    ``peak_analysis_mb``, ``peak_first_half_mb`` / ``peak_second_half_mb`` (samples between the start and end
    marks, split at the middle), ``peak_before_start_mb`` (start-up and model loading) / ``peak_after_end_mb``
    and ``trace`` [[seconds since the start mark, MB], ...] (at most ~200 points,
    each the maximum of its bucket)."""
    samples = run["samples"]
    if not samples:
        return {"rss_start_mb": None, "start_marked": False, "end_marked": False, "peak_mb": None,
                "peak_analysis_mb": None,
                "peak_first_half_mb": None, "peak_second_half_mb": None, "peak_before_start_mb": None,
                "peak_after_end_mb": None, "trace": []}
    start_t = run["start_t"] if run["start_t"] is not None else samples[0][0]
    end_t = run["end_t"]
    window = [(t, mb) for t, mb in samples if start_t <= t <= end_t] or samples[-1:]
    middle = start_t + (end_t - start_t) / 2
    first = [mb for t, mb in window if t <= middle]
    second = [mb for t, mb in window if t > middle]
    if rss_at_start is None:
        rss_at_start = window[0][1]
    before = [mb for t, mb in samples if t < start_t]
    after = [mb for t, mb in samples if t > end_t]
    step = max(1, len(window) // 200)
    trace = [[round(window[i][0] - start_t, 1), round(max(mb for _, mb in window[i:i + step]), 1)]
             for i in range(0, len(window), step)]
    return {"rss_start_mb": rss_at_start, "start_marked": run["start_t"] is not None,
            "end_marked": bool(run.get("end_marked")),
            "peak_mb": max(mb for _, mb in samples), "peak_analysis_mb": max(mb for _, mb in window),
            "peak_first_half_mb": max(first) if first else None, "peak_second_half_mb": max(second) if second else None,
            "peak_before_start_mb": max(before) if before else None, "peak_after_end_mb": max(after) if after else None,
            "trace": trace}


def count_decoded_frames(path) -> int:
    """Frames of ``path``'s first video stream that actually decode (PyAV), i.e. the file plays to the end."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for _ in container.decode(stream))


def _size_mb(path) -> float | None:
    return os.path.getsize(path) / 1e6 if path and os.path.exists(path) else None


# ------------------------------------------------------------------------------------------ the child processes

def _timeline_counts(rows) -> dict:
    """Counts over timeline / CLI rows: ``rows``, ``face_rows`` (status ok), ``no_face_rows``, ``error_rows``,
    ``frames_analysed`` (distinct frame indices), ``tracks`` (distinct track ids)."""
    rows = list(rows)
    status = [str(r.get("status") or "") for r in rows]
    frames = {r.get("frame_index") for r in rows if r.get("frame_index") not in (None, "")}
    tracks = {r.get("track_id") for r in rows if r.get("track_id") not in (None, "")}
    return {"rows": len(rows), "face_rows": status.count("ok"), "no_face_rows": status.count("no face"),
            "error_rows": sum(s.startswith("error") for s in status), "frames_analysed": len(frames),
            "tracks": len(tracks)}


def child_main(args) -> int:
    """``--child function`` / ``--child video-tab``: load the model, print `START_MARKER`, run the measured
    call, print `END_MARKER`, write a JSON result to ``--child-result``. Exit status 0, or 1 (with ``error``
    in the JSON) when the call raised."""
    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.child_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = {"kind": args.child, "torch_threads": torch.get_num_threads()}
    status = 0

    def mark(text):
        print(text, file=sys.stderr, flush=True)

    try:
        if args.child == "function":
            from fer_hf import FaceExpressionRecognizer
            from fer_hf.inference.video import analyze_video

            recognizer = FaceExpressionRecognizer.from_pretrained(args.model, detector=args.detector,
                                                                  min_face_size=args.min_face_size)
            result["rss_at_start_mb"] = rss_mb()
            mark(START_MARKER)
            started = time.perf_counter()
            analysis = analyze_video(args.video, recognizer, sample_fps=args.sample_fps,
                                     output_video=out / "annotated.mp4", progress=True, max_side=args.max_side)
            result["analysis_s"] = time.perf_counter() - started
            mark(END_MARKER)
            result.update(frames_decoded=analysis.frames_decoded, frames_sampled=analysis.frames_sampled,
                          max_side=args.max_side, files={"annotated video": analysis.output_video},
                          **_timeline_counts(analysis.rows))
        else:  # the Video tab's function, as app.py calls it (model cached by its first request)
            from fer_hf.app.handlers import (DEFAULT_MODEL_NAME, VIDEO_MAX_SIDE, analyze_video_upload, get_recognizer)
            from fer_hf.app.uploads import video_limits

            model = args.model or DEFAULT_MODEL_NAME
            result["limits"] = video_limits()
            get_recognizer(model, args.detector, args.min_face_size)  # cached: what an earlier request leaves
            result["rss_at_start_mb"] = rss_mb()
            last = [0.0]

            def progress(fraction, desc=""):  # the app passes gradio.Progress; a line every ~20 s here
                if time.perf_counter() - last[0] > 20 or fraction >= 1:
                    last[0] = time.perf_counter()
                    print(f"video-tab: {fraction:.0%} {desc}", file=sys.stderr, flush=True)

            mark(START_MARKER)
            started = time.perf_counter()
            video, table, csv_path, json_path, plot_path, summary = analyze_video_upload(
                args.video, model=model, detector=args.detector, min_face_size=args.min_face_size,
                sample_fps=args.sample_fps, progress=progress, output_dir=out)
            result["analysis_s"] = time.perf_counter() - started
            mark(END_MARKER)
            document = json.loads(Path(json_path).read_text())
            with open(csv_path, newline="") as handle:
                csv_rows = sum(1 for _ in csv.DictReader(handle))
            result.update(frames_decoded=document["frames_decoded"], frames_sampled=document["frames_sampled"],
                          max_side=VIDEO_MAX_SIDE, table_rows=len(table), csv_rows=csv_rows, summary=summary,
                          files={"annotated video": video, "timeline CSV": csv_path, "timeline JSON": json_path,
                                 "plot": plot_path}, **_timeline_counts(document["rows"]))
    except Exception as error:  # noqa: BLE001 - reported in the table (e.g. the tab refusing the video)
        result["error"] = f"{type(error).__name__}: {error}"
        status = 1
    result["vmhwm_mb"] = peak_rss_mb()
    Path(args.child_result).write_text(json.dumps(result, indent=1))
    return status


def measure_path(kind: str, args, video: Path, workdir: Path) -> dict:
    """Run one path (``video-tab``, ``cli`` or ``function``) on ``video`` in a fresh child process; returns its
    measures (see `run_measured`, `memory_summary`) and outputs."""
    out = workdir / kind
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    env = dict(os.environ)
    if kind == "cli":
        csv_path = out / "predict.csv"
        command = [sys.executable, "-m", "fer_hf", "predict", str(video), "--output", str(csv_path),
                   "--sample-fps", f"{args.sample_fps:g}", "--detector", args.detector,
                   "--min-face-size", str(args.min_face_size), "--threads", str(args.threads),
                   "--annotate", str(out / "annotated"), *(["--model", args.model] if args.model else [])]
        env.pop("TQDM_DISABLE", None)  # its progress bar marks the end of model loading
        env["PYTHONUNBUFFERED"] = "1"  # its summary (after the CSV is written) marks the end, not the exit
        run = run_measured(command, env=env, log_prefix=out / "log", interval=args.interval, start=CLI_START,
                           end=CLI_END)
        result = {"returncode": run["returncode"]}
        if csv_path.exists():
            with open(csv_path, newline="") as handle:
                result.update(_timeline_counts(csv.DictReader(handle)))
        match = re.search(r"files in ([\d.]+) s", run["stdout"])
        result["analysis_s"] = float(match.group(1)) if match else None
        result["analysis_s_from"] = "the CLI's summary (model loading excluded)"
        annotated = out / "annotated" / (video.stem + ".mp4")
        result["files"] = {"CSV": str(csv_path), "annotated video": str(annotated)}
        result["frames_sampled"] = result.get("frames_analysed")
        result["frames_decoded"] = None  # the CLI does not say
        result["max_side"] = None
        if result.get("error_rows"):
            result["error"] = f"{result['error_rows']} error row(s) in the CSV"
    else:
        child_result = out / "child.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--video", str(video),
                   "--child-dir", str(out), "--child-result", str(child_result), "--sample-fps", f"{args.sample_fps:g}",
                   "--detector", args.detector, "--min-face-size", str(args.min_face_size),
                   "--threads", str(args.threads), *(["--model", args.model] if args.model else []),
                   *(["--max-side", str(args.max_side)] if kind == "function" and args.max_side else [])]
        run = run_measured(command, env=env, log_prefix=out / "log", interval=args.interval,
                           start=re.compile(re.escape(START_MARKER.encode())),
                           end=re.compile(re.escape(END_MARKER.encode())))
        result = json.loads(child_result.read_text()) if child_result.exists() else {}
        result["returncode"] = run["returncode"]
        result["analysis_s_from"] = "timed in the child around the call (model loaded before)"
    if run["returncode"] != 0 and "error" not in result:
        result["error"] = f"exit status {run['returncode']}: {run['stderr_tail'][-500:]}"
    result["command"] = " ".join(shlex.quote(str(c)) for c in command)
    result["process_wall_s"] = run["wall_s"]
    result["ru_maxrss_mb"] = run["ru_maxrss_mb"]
    result["memory"] = memory_summary(run, result.get("rss_at_start_mb"))
    result["outputs"] = {}
    for name, path in (result.get("files") or {}).items():
        entry = {"path": path, "mb": _size_mb(path)}
        if name == "annotated video" and entry["mb"] is not None:
            try:
                entry["frames_decoded"] = count_decoded_frames(path)
            except Exception as error:  # noqa: BLE001 - reported
                entry["decode_error"] = f"{type(error).__name__}: {error}"
        result["outputs"][name] = entry
    return result


# ------------------------------------------------------------------------------------------------ the report

def _mb(value, signed=False) -> str:
    if value is None:
        return "—"
    return f"{value:+.0f} MB" if signed else f"{value:.0f} MB"


def _limits_line(limits: dict, info: dict, size_mb: float, sample_fps: float) -> str:
    """The Video tab's limits in force, and how much of each this video takes."""
    set_here = {v: os.environ[v] for v in LIMIT_VARIABLES if os.environ.get(v, "").strip()}
    where = ("the defaults: no FER_HF_MAX_VIDEO_* variable is set" if not set_here else
             "set in the environment: " + ", ".join(f"{k}={v}" for k, v in set_here.items()))
    rate = min(sample_fps, info["fps"] or sample_fps)
    frames = (info["duration_s"] or 0) * rate
    return (f"Video tab limits in force ({where}; this script never changes them): {limits['max_mb']:g} MB "
            f"(this video {size_mb:.1f} MB), {limits['max_seconds']:g} s ({info['duration_s']:.1f} s), "
            f"{limits['max_pixels']:.0f} pixels per frame ({info['width'] * info['height']}), "
            f"{limits['max_frames']:.0f} frames to analyse ({frames:.0f} at {rate:g} per second).")


def render_report(report: dict) -> str:
    info, paths = report["video"], report["paths"]
    load_before, load_after = report["load_average_before"], report["load_average_after"]
    lines = [
        "# Long video: time and memory of the Video tab, the CLI and `analyze_video`",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Date: {report['date']}",
        "",
        f"Machine: {report['platform']}, {report['cpu_count']} CPU cores, Python {report['python']}, "
        f"{report['threads']} torch thread(s) per child; load average (1, 5, 15 min) before / after the runs "
        f"{', '.join(f'{v:.1f}' for v in load_before)} / {', '.join(f'{v:.1f}' for v in load_after)} "
        f"({report.get('note') or 'state of the machine not given: times may be contended'}).",
        "",
        f"Video: synthetic, {info['width']}x{info['height']}, {info['fps']:g} fps, {info['duration_s']:.1f} s "
        f"({info['frames']} frames, {info['codec']}), {info['size_mb']:.1f} MB, generated in "
        f"{report['generate_s']:.0f} s. Analysed at {report['sample_fps']:g} frames per second, detector "
        f"{report['detector']}, minimum face size {report['min_face_size']} px, model "
        f"{report['model'] or 'the default'}.",
        "",
    ]
    if report.get("limits"):
        lines += [_limits_line(report["limits"], info, info["size_mb"], report["sample_fps"]), ""]
    lines += [
        "Each path runs in its own fresh process; RSS is the resident memory of that process and its children, "
        f"sampled every {report['interval']:g} s by the parent (/proc VmRSS); ru_maxrss is the child's own peak "
        "(os.wait4), which also counts start-up, model loading and the interpreter's exit. The analysis is timed "
        "from the end of model loading to the end of the call (for the CLI: from its progress bar to its summary, "
        "i.e. including writing the CSV).",
        "",
        "| path | frames decoded / analysed | face rows (timeline rows) | analysis wall time | ms per analysed "
        "frame | x real time | process wall time | RSS at analysis start | peak RSS during the analysis | "
        "peak RSS 1st / 2nd half of the analysis | peak RSS of the process (polled / ru_maxrss) | outputs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, r in paths.items():
        m = r["memory"]
        if r.get("error") and r.get("analysis_s") is None:
            lines.append(f"| {kind} | failed: {r['error'][:200]} | | | | | {r['process_wall_s']:.1f} s | "
                         f"{_mb(m['rss_start_mb'])} | | | {_mb(m['peak_mb'])} / {_mb(r['ru_maxrss_mb'])} | |")
            continue
        analysed = r.get("frames_sampled") or 0
        wall = r.get("analysis_s")
        decoded = "—" if r.get("frames_decoded") is None else str(r["frames_decoded"])
        first, second = m["peak_first_half_mb"], m["peak_second_half_mb"]
        halves = f"{_mb(first)} / {_mb(second)}"
        if first is not None and second is not None:
            halves += f" ({second - first:+.0f} MB)"
        start = _mb(m["rss_start_mb"]) + ("" if m["start_marked"] else " (first poll)")
        outputs = "; ".join(f"{name} {o['mb']:.2f} MB" if o["mb"] is not None else f"{name} missing"
                            for name, o in r["outputs"].items())
        lines.append(
            f"| {kind} | {decoded} / {analysed} | {r.get('face_rows', '—')} ({r.get('rows', '—')}) | "
            + (f"{wall:.1f} s | {wall / max(1, analysed) * 1000:.0f} | {info['duration_s'] / wall:.2f}x | "
               if wall else "— | — | — | ")
            + f"{r['process_wall_s']:.1f} s | {start} | {_mb(m['peak_analysis_mb'])} "
            f"(+{(m['peak_analysis_mb'] or 0) - (m['rss_start_mb'] or 0):.0f} MB) | {halves} | "
            f"{_mb(m['peak_mb'])} / {_mb(r['ru_maxrss_mb'])} | {outputs} |")
    frame_mb = info["width"] * info["height"] * 3 / 1e6
    lines += [
        "",
        f"All decoded frames, if they were held: {frame_mb * info['frames']:.0f} MB ({info['frames']} frames x "
        f"{frame_mb:.1f} MB each as RGB); analysed frames only: {frame_mb * report['frames_to_analyse']:.0f} MB.",
        "",
    ]
    for kind, r in paths.items():
        lines.append(f"- **{kind}**: `{r['command']}` — exit status {r['returncode']}"
                     + (f", error: {r['error'][:300]}" if r.get("error") else "") + ".")
        m = r["memory"]
        details = [f"peak RSS before the analysis (start-up, model loading) {_mb(m['peak_before_start_mb'])}, "
                   f"during it {_mb(m['peak_analysis_mb'])}, after it (to the exit) {_mb(m['peak_after_end_mb'])}"
                   + ("" if m["end_marked"] else " (end of the analysis not marked: the exit counts as its end)")]
        if r.get("vmhwm_mb"):
            details.append(f"the child's own VmHWM just before it exits: {_mb(r['vmhwm_mb'])} (ru_maxrss "
                           f"{_mb(r['ru_maxrss_mb'])}: the difference comes at the interpreter's exit)")
        if kind == "cli" and "rows" in r:
            details.append(f"{r['rows']} rows written ({r['face_rows']} faces, {r['no_face_rows']} 'no face', "
                           f"{r['error_rows']} error rows), {r.get('tracks', 0)} track ids")
        if kind == "video-tab" and "rows" in r:
            details.append(f"timeline {r['rows']} rows in the JSON, {r['csv_rows']} in the CSV, {r['table_rows']} "
                           f"in the app's table, {r['tracks']} tracks; frames at most {r['max_side']} px")
        if kind == "function" and "rows" in r:
            details.append(f"timeline {r['rows']} rows, {r['tracks']} tracks"
                           + (f"; frames downscaled to {r['max_side']} px" if r.get("max_side") else ""))
        for o in r["outputs"].values():
            if "frames_decoded" in o:
                expected = r.get("frames_sampled")
                details.append(f"the annotated video decodes: {o['frames_decoded']} frames"
                               + ("" if expected is None or o["frames_decoded"] == expected
                                  else f" (expected {expected}!)"))
            elif "decode_error" in o:
                details.append(f"the annotated video does NOT decode: {o['decode_error']}")
        if r.get("summary"):
            details.append(f"summary: \"{r['summary'][:400]}\"")
        if details:
            lines.append("  " + "; ".join(details) + ".")
    lines.append("")
    if report["minutes"] < 10:
        lines += [f"This is a {report['minutes']:g}-minute short check, not the 10-minute benchmark (run the "
                  "script without `--minutes` for that).", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="video length in minutes (default 10)")
    parser.add_argument("--fps", type=float, default=30.0, help="frame rate of the generated video")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--sample-fps", type=float, default=2.0, help="frames analysed per second (default 2)")
    parser.add_argument("--max-side", type=int, default=None,
                        help="function path only: downscale frames to this longer side first (the Video tab always "
                             "uses fer_hf.app.handlers.VIDEO_MAX_SIDE, the CLI never downscales)")
    parser.add_argument("--detector", default="mtcnn")
    parser.add_argument("--min-face-size", type=int, default=20, help="smallest face in pixels (default 20)")
    parser.add_argument("--model", default=None, help="model name or folder (default: the released default)")
    parser.add_argument("--paths", nargs="+", choices=PATH_KINDS, default=list(PATH_KINDS),
                        help="what to measure, each in its own process (default: all three)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads in each child process (default 2)")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between RSS samples (default 0.1)")
    parser.add_argument("--note", default="", help="The machine's state while measuring (idle, training paused, ...).")
    parser.add_argument("--samples", default=str(DEFAULT_SAMPLES), help="folder with the sample face photos")
    parser.add_argument("--workdir", default=None,
                        help="where the generated video and the outputs go, kept (default: a temp folder, removed)")
    parser.add_argument("--output", default=str(result_path("long_video")))
    parser.add_argument("--json", default=None,
                        help="JSON results (default: beside --output, the same name with .json)")
    # a child process of this script (not for direct use)
    parser.add_argument("--child", choices=("function", "video-tab"), help=argparse.SUPPRESS)
    parser.add_argument("--video", help=argparse.SUPPRESS)
    parser.add_argument("--child-dir", help=argparse.SUPPRESS)
    parser.add_argument("--child-result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args)
    paths = list(dict.fromkeys(args.paths))
    command = command_line("long_video", argv)
    output = Path(args.output)
    json_path = Path(args.json) if args.json else output.with_suffix(".json")

    from fer_hf.app.uploads import video_limits
    from fer_hf.inference.video import probe_video

    keep = args.workdir is not None
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="fer_hf_long_video_"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        source = workdir / "synthetic.mp4"
        started = time.perf_counter()
        make_synthetic_video(source, args.minutes * 60, faces=[Path(args.samples) / n for n in DEFAULT_FACES],
                             fps=args.fps, size=(args.width, args.height))
        generate_s = time.perf_counter() - started
        info = probe_video(source)
        info["size_mb"] = _size_mb(source)
        print(f"generated {source} in {generate_s:.0f} s: {info}", flush=True)

        load_before = os.getloadavg()
        results = {}
        for kind in paths:
            print(f"--- {kind}: fresh process", flush=True)
            results[kind] = measure_path(kind, args, source, workdir)
            r = results[kind]
            print(f"--- {kind}: exit {r['returncode']}, analysis {r.get('analysis_s')} s, peak RSS "
                  f"{r['memory']['peak_mb']} MB" + (f", error {r['error']}" if r.get("error") else ""), flush=True)
        load_after = os.getloadavg()
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)

    rate = min(args.sample_fps, info["fps"] or args.sample_fps)
    report = {
        "command": command, "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
        "threads": args.threads, "note": args.note, "interval": args.interval, "minutes": args.minutes,
        "short_check": args.minutes < 10, "load_average_before": load_before, "load_average_after": load_after,
        "video": info, "generate_s": generate_s, "sample_fps": args.sample_fps, "detector": args.detector,
        "min_face_size": args.min_face_size, "model": args.model,
        "frames_to_analyse": int(round((info["duration_s"] or 0) * rate)),
        "limits": results.get("video-tab", {}).get("limits") or video_limits(),
        "limit_variables_set": {v: os.environ[v] for v in LIMIT_VARIABLES if v in os.environ},
        "workdir": str(workdir) if keep else None, "paths": results,
    }
    text = render_report(report)
    write_text(output, text)
    write_text(json_path, json.dumps(report, indent=1, default=str))
    print(text)
    print(f"wrote {output} and {json_path}")
    return report


if __name__ == "__main__":
    result = main()
    sys.exit(result if isinstance(result, int) else 0)
