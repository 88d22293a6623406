"""``fer-hf predict``: expressions of every face in many images, folders and videos, into one table.

One row per face, in the columns of the app's Batch tab (`fer_hf.inference.results.table_fields`): ``file,
face_index, box_x, box_y, box_w, box_h, detector_score, top_emotion, top_score, <one column per label>,
status``, plus ``time_s, frame_index, track_id`` (after ``file``) when a video is among the inputs. A file
without a face is one row with status ``"no face"``; a file that cannot be read is one row with status
``"error: <exception>"`` and the others are processed.

Throughput: faces are detected image by image, then the crops of several images are classified together,
``batch_size`` crops per forward pass (`FaceExpressionRecognizer.predict_batch`).

Data parallel with Accelerate: ``accelerate launch --num_processes N -m fer_hf predict ...`` (GPUs) splits
the file list between the processes (`accelerate.PartialState.split_between_processes`, contiguous shares);
each process appends what it finishes to its own journal, and the main process merges the journals in the
input order, so the output is the single-process output row for row (probabilities equal up to float
rounding, < 1e-6, since other faces share a forward pass). Several CPU processes:
``accelerate launch --multi_gpu --num_processes N -m fer_hf predict ... --cpu`` or ``torchrun
--nproc_per_node N -m fer_hf predict ... --cpu`` (Accelerate 1.x's ``accelerate launch --cpu`` starts a
single process unless it goes through ``mpirun``).

Beyond one machine: ``--engine ray`` hands the same files to `fer_hf.distributed.predict_files` (Ray Data:
actors holding a recognizer, videos cut into time segments, URIs such as ``s3://``), which writes the same
rows (docs/distributed.md).

Crash safety and ``--resume``: every finished file is appended to a journal ``<output>.parts/rank<i>.jsonl``
as one JSON line (all rows of the file) and flushed, so a killed run leaves at most one torn last line,
which is ignored. ``--resume`` reads the journals back, skips every file already there and processes the
rest; the output file itself is only written at the end, to a temporary file that ``os.replace`` moves
into place, so it is never half written. The journals are removed once the output is written.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


from ..detection.detectors import DETECTORS
from ..image_io import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from ..inference.recognizer import BACKENDS, FaceExpressionRecognizer
from ..inference.results import DECIMALS, OUTPUT_FORMATS, error_status, face_rows, table_fields, write_rows
from ..inference.tta import TTA_MODES
from ..models.hub import DEFAULT_MODEL_NAME

_JOURNAL_VERSION = 1


@dataclass(frozen=True)
class InputFile:
    """One file to process. ``path``: as written in the ``file`` column (the command-line argument, or
    ``<folder>/<relative path>``); ``key``: absolute path (what ``--resume`` matches on); ``relative``:
    where its annotated copy goes under ``--annotate`` (POSIX, unique among the inputs; a video's copy is
    this name with ``.mp4``, also unique); ``kind``: ``"image"`` or ``"video"``."""

    path: str
    key: str
    relative: str
    kind: str


def _kind(path: str) -> str:
    return "video" if os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS else "image"


def collect_files(paths: Sequence[str], recursive: bool = False) -> list[InputFile]:
    """The files ``fer-hf predict PATH...`` processes, in output order.

    Each PATH in the order given: a file is taken as is (any extension; a missing path is kept, so that it
    becomes an error row); a folder contributes its images (`IMAGE_EXTENSIONS`) and videos
    (`VIDEO_EXTENSIONS`), case-insensitive, sorted by relative path, hidden files (``.name``) left out;
    sub-folders only with ``recursive=True``. A file reached twice is kept once (the first time).

    Returns:
        list of `InputFile`; empty if the folders hold no image or video.
    """
    found, seen, taken = [], set(), set()
    wanted = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS
    for argument in paths:
        argument = str(argument)
        if os.path.isdir(argument):
            root = Path(argument)
            candidates = root.rglob("*") if recursive else root.iterdir()
            members = sorted(p.relative_to(root).as_posix() for p in candidates
                             if p.is_file() and p.suffix.lower() in wanted
                             and not any(part.startswith(".") for part in p.relative_to(root).parts))
            entries = [(os.path.join(argument, *m.split("/")), m) for m in members]
        else:
            entries = [(argument, os.path.basename(argument.rstrip("/\\")) or "file")]
        for display, relative in entries:
            key = os.path.abspath(display)
            if key in seen:
                continue
            seen.add(key)
            kind = _kind(display)
            stem, suffix = os.path.splitext(relative)
            unique, n = relative, 1
            # two folders holding the same relative name, or two videos whose annotated .mp4 would be one file
            # (clip.avi and clip.mkv)
            while unique.lower() in taken or (kind == "video" and _annotated_video(unique).lower() in taken):
                n += 1
                unique = f"{stem}-{n}{suffix}"
            taken.add(unique.lower())
            if kind == "video":
                taken.add(_annotated_video(unique).lower())
            found.append(InputFile(display, key, unique, kind))
    return found


def _annotated_video(relative: str) -> str:
    """Where ``--annotate`` writes a video's annotated copy, relative to its folder: the name with ``.mp4``."""
    return os.path.splitext(relative)[0] + ".mp4"


def _save_annotated(recognizer, image, faces, destination: Path) -> None:
    """``recognizer.annotate`` drawn on ``image``, saved in the format of ``destination``'s extension
    (PNG, with ``.png`` appended, where Pillow cannot write that format)."""
    from PIL import Image

    Image.init()
    destination.parent.mkdir(parents=True, exist_ok=True)
    fmt = Image.registered_extensions().get(destination.suffix.lower())
    if fmt not in Image.SAVE:
        destination, fmt = destination.with_name(destination.name + ".png"), "PNG"
    recognizer.annotate(image, faces).save(destination, format=fmt)


def _video_rows(recognizer, file: InputFile, sample_fps, annotate_dir) -> list[dict]:
    """Rows of one video through `fer_hf.inference.video.analyze_video` (its rows carry time_s / frame_index /
    track_id); an error row where it fails or is not available."""
    try:
        from ..inference.video import analyze_video  # PyAV only when a video is among the inputs
    except ImportError as error:
        return [{"file": file.path, "status": error_status(
            RuntimeError(f"video support is not available (fer_hf.inference.video.analyze_video: {error})"))}]
    output_video = None
    if annotate_dir is not None:
        output_video = Path(annotate_dir) / _annotated_video(file.relative)
        output_video.parent.mkdir(parents=True, exist_ok=True)
    try:
        analysis = analyze_video(file.path, recognizer, sample_fps=sample_fps,
                                 output_video=None if output_video is None else str(output_video), progress=False)
    except Exception as error:  # noqa: BLE001 - one bad file must not stop the run
        return [{"file": file.path, "status": error_status(error)}]
    return video_table_rows(file.path, analysis.rows)


def video_table_rows(file: str, timeline_rows: list) -> list:
    """The ``fer-hf predict`` rows of one video from its timeline rows (`fer_hf.inference.video.VideoAnalysis.rows`,
    or the joined segments of the Ray engine): floats rounded to `DECIMALS`, ``file`` set, faces of a frame
    numbered 0, 1, ... as in images; one ``"no face"`` row if there is none."""
    rows, per_frame = [], {}
    for row in timeline_rows:
        row = {k: (round(v, DECIMALS) if isinstance(v, float) else v) for k, v in dict(row).items()}
        row["file"] = file
        if row.get("status") == "ok" and row.get("face_index") is None:
            row["face_index"] = per_frame.get(row.get("frame_index"), 0)
            per_frame[row.get("frame_index")] = row["face_index"] + 1
        rows.append(row)
    return rows or [{"file": file, "status": "no face"}]


# ----------------------------------------------------------------------------------------------- journals


class _Journal:
    """The journal of one process: the settings line, then one line per finished file
    ``{"key", "file", "rows"}``, appended and flushed file by file."""

    def __init__(self, path: Path, settings: dict):
        self.path = path
        valid = _valid_length(path) if path.exists() else 0
        self.handle = open(path, "r+b" if path.exists() else "wb")
        self.handle.truncate(valid)  # drop a line torn by a kill
        self.handle.seek(valid)
        if valid == 0:
            self._write({"fer_hf_predict_journal": _JOURNAL_VERSION, "settings": settings})

    def _write(self, record: dict) -> None:
        self.handle.write((json.dumps(record) + "\n").encode())
        self.handle.flush()

    def add(self, file: InputFile, rows: list[dict]) -> None:
        self._write({"key": file.key, "file": file.path, "rows": rows})

    def close(self) -> None:
        self.handle.close()


def _read_journal(path: Path) -> tuple[dict | None, list[dict], int]:
    """(settings, file records, byte length of the complete lines) of one journal; reading stops at the
    first line that is torn (no newline) or not JSON."""
    data = path.read_bytes()
    settings, records, offset = None, [], 0
    while True:
        end = data.find(b"\n", offset)
        if end < 0:
            break
        try:
            record = json.loads(data[offset:end])
        except ValueError:
            break
        if offset == 0:
            if not isinstance(record, dict) or "settings" not in record:
                break
            settings = record["settings"]
        else:
            records.append(record)
        offset = end + 1
    return settings, records, offset


def _valid_length(path: Path) -> int:
    return _read_journal(path)[2]


def read_journals(parts_dir, settings: dict | None = None) -> dict:
    """Finished files recorded in the journals of ``parts_dir`` (``rank*.jsonl``): {absolute path: record
    with ``file`` and ``rows``}; torn or invalid trailing lines are ignored.

    Raises:
        ValueError: if ``settings`` is given and a journal was written with other settings (another model,
            detector, minimum face size, TTA, labels, columns or sample rate).
    """
    done = {}
    for path in sorted(Path(parts_dir).glob("rank*.jsonl")):
        found, records, _ = _read_journal(path)
        if found is None:
            continue
        if settings is not None and found != settings:
            raise ValueError(f"{path} was written with other settings ({found}) than this run ({settings}); "
                             "run again without --resume")
        for record in records:
            done.setdefault(record["key"], record)
    return done


# ------------------------------------------------------------------------------------------------ outputs


class PredictSummary:
    """Counts over a run's results, file by file (`add`), for `summarize` and the Ray engine's streamed rows."""

    def __init__(self):
        self.counts, self.files, self.images, self.videos, self.faces, self.no_face, self.errors = {}, 0, 0, 0, 0, 0, 0

    def add(self, kind: str, rows: list) -> None:
        """Count one file (``kind`` "image" or "video") and its table rows."""
        self.files += 1
        self.images += kind == "image"
        self.videos += kind == "video"
        ok = [r for r in rows if r.get("status") == "ok"]
        self.faces += len(ok)
        if any(str(r.get("status", "")).startswith("error") for r in rows):
            self.errors += 1
        elif not ok:
            self.no_face += 1
        for row in ok:
            self.counts[row["top_emotion"]] = self.counts.get(row["top_emotion"], 0) + 1

    def result(self) -> dict:
        """``files``, ``images``, ``videos``, ``faces`` (rows with status ok), ``no_face_files``, ``error_files``,
        ``emotions`` ({top emotion: faces}, most frequent first)."""
        return {"files": self.files, "images": self.images, "videos": self.videos, "faces": self.faces,
                "no_face_files": self.no_face, "error_files": self.errors,
                "emotions": dict(sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0])))}


def summarize(files: Sequence[InputFile], rows_by_key: dict) -> dict:
    """Counts over the merged results (`PredictSummary.result`)."""
    summary = PredictSummary()
    for file in files:
        summary.add(file.kind, rows_by_key[file.key])
    return summary.result()


# -------------------------------------------------------------------------------------------- the command


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``fer-hf predict`` (see `run_predict`)."""
    parser.add_argument("paths", nargs="+", metavar="PATH", help="Image or video files and folders.")
    parser.add_argument("--recursive", "-r", action="store_true", help="Also search the sub-folders of folders.")
    parser.add_argument("--output", "-o", default=None,
                        help="results.csv, .json (a list of rows) or .jsonl (a row per line); default: CSV on "
                             "stdout (summary on stderr). Required with several processes and with --resume.")
    parser.add_argument("--annotate", default=None, metavar="OUT_DIR",
                        help="Also save each image with its faces drawn (and each video, as .mp4) under OUT_DIR, "
                             "under its path relative to the folder given.")
    parser.add_argument("--model", default=None,
                        help="Released model name (model_cards/), local folder or Hub id of a fer_hf model "
                             f"(default: {DEFAULT_MODEL_NAME}). Only fer_hf model types load; no code from the model "
                             "folder is ever run.")
    parser.add_argument("--detector", default="mtcnn", choices=DETECTORS, help="Face detector (default: mtcnn).")
    parser.add_argument("--min-face-size", "--min_face_size", type=int, default=20,
                        help="Smallest face searched for, in pixels (default: 20).")
    parser.add_argument("--tta", default="none", choices=TTA_MODES, help="Test-time augmentation (default: none).")
    parser.add_argument("--backend", default="torch", choices=BACKENDS,
                        help="Classifier backend: torch (default) or onnx (onnxruntime, CPU; see "
                             "FaceExpressionRecognizer.from_pretrained).")
    parser.add_argument("--batch-size", "--batch_size", type=int, default=32,
                        help="Face crops classified per forward pass, across images (default: 32).")
    parser.add_argument("--sample-fps", "--sample_fps", type=float, default=None,
                        help="Videos: frames analysed per second of video (default: fer_hf.inference.video's default).")
    parser.add_argument("--resume", action="store_true",
                        help="Continue an interrupted run with the same --output: files already finished "
                             "(journals in <output>.parts/) are not processed again.")
    parser.add_argument("--cpu", action="store_true", help="Run on the CPU even if a GPU is available.")
    parser.add_argument("--engine", default="local", choices=("local", "ray"),
                        help="local (default): this machine (several processes with accelerate launch); ray: a Ray "
                             "cluster (pip install 'fer_hf[ray]'; see docs/distributed.md). Paths may then be URIs "
                             "pyarrow reads (s3://, gs://, file://), and --output may be .parquet.")
    parser.add_argument("--address", default=None,
                        help="--engine ray: the cluster to join (auto, ray://host:10001, host:6379); default: "
                             "RAY_ADDRESS, else a local cluster for this run.")
    parser.add_argument("--num-workers", "--num_workers", type=int, default=None,
                        help="--engine ray: recognizer actors (default: the cluster's CPUs / --threads).")
    parser.add_argument("--segment-seconds", "--segment_seconds", type=float, default=60.0,
                        help="--engine ray: videos are analysed in segments of this many seconds, spread over "
                             "workers (default: 60).")
    parser.add_argument("--gpus-per-worker", "--gpus_per_worker", type=float, default=0.0,
                        help="--engine ray: GPUs reserved per actor (default: 0, CPU).")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads per process (torch.set_num_threads; default: torch's, or OMP_NUM_THREADS). "
                             "On a busy machine 1 is much faster than several (benchmarks/results/predict_folder.md).")


def _use_cpu(requested: bool) -> bool:
    """CPU processes: asked for (``--cpu``, ``accelerate launch --cpu``) or no accelerator. Accelerate only
    joins CPU processes launched together (torchrun / ``accelerate launch --multi_gpu`` on a machine without
    GPU) into one group when told it runs on the CPU."""
    import torch
    from accelerate.utils import parse_flag_from_env

    return bool(requested or parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.accelerator.is_available())


def run_predict(args: argparse.Namespace, recognizer=None) -> dict:
    """``fer-hf predict``: process ``args.paths`` (see `add_predict_arguments`) on this process's share of the
    files, then, on the main process, merge every share into ``args.output`` and print the summary.

    Args:
        args: the parsed options.
        recognizer: a loaded `FaceExpressionRecognizer` to use instead of loading ``args.model`` (its
            detector / minimum face size are then set from ``args``).

    Returns:
        the `summarize` dict plus ``processes`` (Accelerate processes), ``processed`` (files processed by
        this run, all processes), ``resumed`` (files taken from journals), ``seconds`` (processing time,
        model loading excluded), ``files_per_s`` and ``output``; on a process other than the main one, ``{}``.

    Raises:
        ValueError: for bad options (batch size < 1, unknown output extension, several processes or
            --resume without --output, journals from other settings). OSError / ValueError: if the model
            cannot be loaded.
    """
    if getattr(args, "engine", "local") == "ray":
        return _run_ray(args, recognizer)
    from accelerate import PartialState
    from tqdm.auto import tqdm

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.output is not None and Path(args.output).suffix.lower() not in OUTPUT_FORMATS:
        raise ValueError(f"--output must end in one of {OUTPUT_FORMATS}, got {args.output!r}")
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    state = PartialState(cpu=_use_cpu(args.cpu))
    if args.output is None and (state.num_processes > 1 or args.resume):
        raise ValueError("--output is required with several processes and with --resume")

    files = collect_files(args.paths, recursive=args.recursive)
    if recognizer is None:
        backend = {} if args.backend == "torch" else {"backend": args.backend}
        recognizer = FaceExpressionRecognizer.from_pretrained(args.model, detector=args.detector,
                                                              min_face_size=args.min_face_size,
                                                              device=str(state.device), tta=args.tta, **backend)
    else:
        recognizer.set_options(detector=args.detector, min_face_size=args.min_face_size)
    labels = [recognizer.id2label[i] for i in range(len(recognizer.id2label))]
    fields = table_fields(labels, with_video=any(f.kind == "video" for f in files))
    settings = {"model": str(args.model or DEFAULT_MODEL_NAME), "backend": args.backend, "detector": args.detector,
                "min_face_size": args.min_face_size, "tta": recognizer.tta, "labels": labels, "fields": fields,
                "sample_fps": args.sample_fps}

    scratch = None
    if args.output is None:
        scratch = tempfile.TemporaryDirectory(prefix="fer_hf_predict_")
        parts = Path(scratch.name)
    else:
        parts = Path(str(args.output) + ".parts")
    if state.is_main_process:
        if parts.exists() and not args.resume and scratch is None:
            left = len(read_journals(parts))
            if left:
                print(f"fer-hf predict: discarding {left} finished file(s) of an interrupted run in {parts} "
                      "(use --resume to keep them)", file=sys.stderr)
            shutil.rmtree(parts)
        parts.mkdir(parents=True, exist_ok=True)
    state.wait_for_everyone()
    done = read_journals(parts, settings) if args.resume else {}
    if args.resume and not done and state.is_main_process:
        print(f"fer-hf predict: nothing to resume in {parts}; processing every file", file=sys.stderr)
    state.wait_for_everyone()  # every process has read the same journals before any appends
    todo = [f for f in files if f.key not in done]

    started = time.perf_counter()
    journal = _Journal(parts / f"rank{state.process_index}.jsonl", settings)
    annotate_dir = Path(args.annotate) if args.annotate else None
    with state.split_between_processes(todo) as share:
        desc = "predict" if state.num_processes == 1 else f"predict (process 0 of {state.num_processes})"
        bar = tqdm(total=len(share), desc=desc, unit="file", disable=not state.is_main_process, file=sys.stderr)
        images = [f for f in share if f.kind == "image"]
        for index, result, image in recognizer.predict_batch([f.path for f in images], args.batch_size,
                                                   return_images=annotate_dir is not None):
            file = images[index]
            if annotate_dir is not None and image is not None:
                try:
                    _save_annotated(recognizer, image, result, annotate_dir / file.relative)
                except Exception as error:  # noqa: BLE001 - e.g. a full disk: an error row, not a crash
                    result = error
            journal.add(file, face_rows(file.path, result))
            bar.update(1)
        for file in (f for f in share if f.kind == "video"):
            journal.add(file, _video_rows(recognizer, file, args.sample_fps, annotate_dir))
            bar.update(1)
        bar.close()
    journal.close()
    state.wait_for_everyone()
    if not state.is_main_process:
        return {}

    finished = read_journals(parts)
    missing = [f.path for f in files if f.key not in finished]
    if missing:
        raise RuntimeError(f"no result for {len(missing)} file(s), e.g. {missing[:3]}")
    rows_by_key = {f.key: [dict(row, file=f.path) for row in finished[f.key]["rows"]] for f in files}
    rows = [row for f in files for row in rows_by_key[f.key]]
    write_rows(rows, fields, args.output if args.output is not None else sys.stdout)
    seconds = time.perf_counter() - started
    if scratch is not None:
        scratch.cleanup()
    else:
        shutil.rmtree(parts, ignore_errors=True)
    summary = summarize(files, rows_by_key)
    processed = len(todo)
    summary.update(processes=state.num_processes, processed=processed, resumed=len(files) - processed,
                   seconds=round(seconds, 3), files_per_s=round(processed / seconds, 3) if seconds > 0 else None,
                   output=args.output)
    print(format_summary(summary), file=sys.stdout if args.output is not None else sys.stderr)
    return summary


def _run_ray(args: argparse.Namespace, recognizer=None) -> dict:
    """``--engine ray``: `fer_hf.distributed.predict_files` with the command's options."""
    unsupported = [flag for flag, value in (("--annotate", args.annotate), ("--resume", args.resume),
                                            ("a loaded recognizer", recognizer)) if value]
    if unsupported:
        raise ValueError(f"{', '.join(unsupported)}: not available with --engine ray (use --engine local)")
    from ..distributed import predict_files

    return predict_files(args.paths, args.output, model=args.model, detector=args.detector,
                         min_face_size=args.min_face_size, tta=args.tta, backend=args.backend,
                         batch_size=args.batch_size, sample_fps=args.sample_fps, recursive=args.recursive,
                         address=args.address, num_workers=args.num_workers, threads=args.threads or 1,
                         gpus_per_worker=args.gpus_per_worker, segment_s=args.segment_seconds)


def format_summary(summary: dict) -> str:
    """The summary `run_predict` prints (a few lines of text)."""
    unit = "images/s" if summary["videos"] == 0 else "files/s"
    rate = f"{summary['files_per_s']:.2f} {unit}" if summary.get("files_per_s") is not None else "-"
    lines = [f"files: {summary['files']} ({summary['images']} images, {summary['videos']} videos)",
             f"faces: {summary['faces']}", f"files without a face: {summary['no_face_files']}",
             f"errors (unreadable files): {summary['error_files']}",
             "top emotions: " + (", ".join(f"{k} {v}" for k, v in summary["emotions"].items()) or "-"),
             f"processed now: {summary['processed']} files in {summary['seconds']:.1f} s ({rate}, "
             + ("Ray cluster start and model loading included)" if summary.get("engine") == "ray"
                else "model loading excluded)") + (f"; {summary['resumed']} files already done (--resume)" if summary["resumed"] else ""),
             (f"Ray workers: {summary['processes']}" if summary.get("engine") == "ray"
              else f"processes: {summary['processes']}")]
    if summary.get("output"):
        lines.append(f"output: {summary['output']}")
    return "\n".join(lines)


def main_predict(args: argparse.Namespace) -> int:
    """Exit status of ``fer-hf predict``: 0 when every file was processed (unreadable files are error rows,
    not failures), 2 for bad options or a model that cannot be loaded."""
    try:
        run_predict(args)
    except (ValueError, OSError, ImportError) as error:
        print(f"fer-hf predict: error: {error}", file=sys.stderr)
        return 2
    finally:
        from accelerate import PartialState

        if PartialState._shared_state and getattr(args, "engine", "local") == "local":  # initialised: leave torch.distributed cleanly (no-op in one process)
            PartialState().destroy_process_group()
    return 0
