"""The Ray Data runner: ``fer-hf predict --engine ray`` (`predict_files`) and `annotate` for a Ray dataset.

How a run goes (Ray: https://docs.ray.io/en/latest/data/):

1. The driver lists the inputs (`fer_hf.cli.predict.collect_files` for local paths; pyarrow filesystems for
   URIs such as ``s3://bucket/photos/``) and makes work units: ``batch_size`` consecutive images, or one
   video. They become a ``ray.data`` dataset (``from_items``).
2. ``flat_map`` cuts every video into time segments (`fer_hf.inference.video.plan_video_segments`: packets
   only, no decoding), so one long video spreads over workers.
3. ``map_batches`` with an actor pool (`ray.data.ActorPoolStrategy`, one `FaceExpressionRecognizer` per
   actor, loaded once) reads, decodes, detects and classifies: a unit of images through
   `FaceExpressionRecognizer.predict_batch` (``batch_size`` face crops per forward pass), a video segment
   through `fer_hf.inference.video.analyze_video_segment`. Each unit returns face rows plus its position.
4. The driver streams the results in input order (Ray Data's ``preserve_order``), joins the segments of
   each video and gives their faces track ids (`fer_hf.inference.video.assign_track_ids`), and writes the
   rows with `fer_hf.inference.results.RowWriter`: the table of the single-process ``fer-hf predict`` (same
   columns, files, faces, boxes and track ids; probabilities within float rounding, since other faces
   share a forward pass).

Failures. A file that cannot be read or decoded is an error row (in the worker), never a failed job. An
actor process that dies is restarted by Ray and its unfinished unit is run again (Ray Data's actor pools
use ``max_restarts=-1`` and ``max_task_retries=-1``; plain tasks, such as the planning step, are retried
on system failures); a unit's rows reach the driver only when the unit has finished, so nothing is
emitted twice. What fer_hf adds: every unit carries its file and segment number, the driver drops a
duplicate unit should one arrive and fails with a clear error (RuntimeError) if a file or segment is
missing, so a finished table has every input exactly once. Ray does not checkpoint a job: a run stopped
half-way starts again from the beginning (``--resume`` is the single-machine engine's).
"""

from __future__ import annotations

import io
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Optional

import numpy as np

from ..image_io import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from ..inference.results import DECIMALS, RowWriter, error_status, face_rows, parquet_schema, table_fields

#: Default length of the video segments a worker analyses at once, in seconds of video.
DEFAULT_SEGMENT_S = 60.0
#: Columns that carry a row's position through Ray; dropped from the output.
POSITION_FIELDS = ("_order", "_part", "_parts", "_row", "_fps")


def _require_ray():
    try:
        import ray
        import ray.data  # noqa: F401 - Ray Data is an extra of ray
    except ImportError as error:
        raise ImportError("The Ray engine needs Ray Data: pip install 'fer_hf[ray]' (or pip install 'ray[data]')"
                          ) from error
    return ray


def is_uri(path: str) -> bool:
    """True for ``scheme://...`` inputs (read through pyarrow's filesystems), False for local paths."""
    head, sep, _ = str(path).partition("://")
    return bool(sep) and head.isalnum() and len(head) > 1


def open_input(path: str):
    """A local path as is, or a URI as a seekable pyarrow input file (``pyarrow.fs.FileSystem.from_uri``).

    Raises:
        OSError / pyarrow.ArrowInvalid: for a URI that cannot be opened."""
    if not is_uri(path):
        return path
    from pyarrow import fs

    filesystem, inner = fs.FileSystem.from_uri(path)
    return filesystem.open_input_file(inner)


def list_inputs(paths: Sequence[str], recursive: bool = False) -> list:
    """The files of ``fer-hf predict PATH...``, in output order, as `fer_hf.cli.predict.InputFile`: local
    paths through `collect_files` (same order and rules), URIs through pyarrow's filesystems (a URI that is
    a folder contributes its images and videos, sorted by relative path, hidden names left out; a URI that
    is missing is kept, to become an error row)."""
    from ..cli.predict import InputFile, collect_files

    found, seen = [], set()
    local: list = []

    def flush_local():
        for file in collect_files(local, recursive=recursive):
            if file.key not in seen:
                seen.add(file.key)
                found.append(file)
        local.clear()

    wanted = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS
    for argument in map(str, paths):
        if not is_uri(argument):
            local.append(argument)
            continue
        flush_local()
        from pyarrow import fs

        filesystem, inner = fs.FileSystem.from_uri(argument)
        info = filesystem.get_file_info(inner)
        if info.type == fs.FileType.Directory:
            base = inner.rstrip("/")
            infos = filesystem.get_file_info(fs.FileSelector(base, recursive=recursive))
            members = sorted(str(PurePosixPath(i.path).relative_to(base)) for i in infos
                             if i.type == fs.FileType.File and PurePosixPath(i.path).suffix.lower() in wanted)
            members = [m for m in members if not any(part.startswith(".") for part in m.split("/"))]
            entries = [(argument.rstrip("/") + "/" + m, m) for m in members]
        else:
            entries = [(argument, PurePosixPath(inner).name or "file")]
        for uri, relative in entries:
            if uri not in seen:
                seen.add(uri)
                kind = "video" if PurePosixPath(relative).suffix.lower() in VIDEO_EXTENSIONS else "image"
                found.append(InputFile(uri, uri, relative, kind))
    flush_local()
    return found


# -------------------------------------------------------------------------------------------- the stages


def _units(files: list, batch_size: int) -> list:
    """Work units: runs of up to ``batch_size`` consecutive images, and one unit per video."""
    units, images = [], []

    def close_images():
        if images:
            units.append({"kind": "images", "order": [i for i, _ in images], "file": [f.path for _, f in images],
                          "source": [f.key for _, f in images]})
            images.clear()

    for order, file in enumerate(files):
        if file.kind == "video":
            close_images()
            units.append({"kind": "video", "order": [order], "file": [file.path], "source": [file.key]})
        else:
            images.append((order, file))
            if len(images) >= batch_size:
                close_images()
    close_images()
    return units


def _plan(unit: dict, segment_s: float, sample_fps: Optional[float]) -> list:
    """``flat_map`` step: a video unit becomes one unit per segment (with its `VideoSegment` fields), or one
    unit holding the error that stops it from being read; image units pass through."""
    unit = {"part": 0, "parts": 1, "first_frame": 0, "frames": 0, "start_pts": -1, "fps": 0.0, "error": "",
            **{k: (list(v) if isinstance(v, np.ndarray) else v) for k, v in unit.items()}}
    if unit["kind"] != "video":
        return [unit]
    from ..inference.video import plan_video_segments

    try:
        segments = plan_video_segments(open_input(unit["source"][0]), segment_s, sample_fps)
    except Exception as error:  # noqa: BLE001 - an unreadable video is one error row, not a failed job
        return [dict(unit, error=error_status(error))]
    return [dict(unit, part=s.index, parts=s.count, first_frame=s.first_frame, frames=s.frames,
                 start_pts=-1 if s.start_pts is None else s.start_pts, fps=s.fps) for s in segments]


def _position_schema(fields: Sequence[str]):
    import pyarrow as pa

    schema = parquet_schema(fields)
    for name in POSITION_FIELDS:
        schema = schema.append(pa.field(name, pa.float64() if name == "_fps" else pa.int64()))
    return schema


def _model_labels(model) -> list:
    """The class names of ``model`` in id order, from its config (the driver needs them for the columns;
    loading the config also fails early, with the loader's error, for a model that does not exist)."""
    from transformers import AutoConfig

    from ..models.hub import resolve_model

    config = AutoConfig.from_pretrained(resolve_model(model), trust_remote_code=False)
    return [config.id2label[i] for i in range(len(config.id2label))]


def _load_recognizer(model, detector, min_face_size, tta, backend, threads, device):
    """An actor's recognizer, loaded once in its process, with torch limited to the CPUs Ray reserved."""
    import torch

    from ..inference.recognizer import FaceExpressionRecognizer

    if threads:
        torch.set_num_threads(int(threads))
    options = {} if backend == "torch" else {"backend": backend}
    return FaceExpressionRecognizer.from_pretrained(model, detector=detector, min_face_size=min_face_size, tta=tta,
                                                    device=device, **options)


def _predict_each(recognizer, values: list, opener, batch_size: int):
    """(index, faces or exception) of each value, opened with ``opener`` and classified with
    `FaceExpressionRecognizer.predict_batch`; a value that cannot be opened is its exception, the others go on."""
    opened, failures = [], {}
    for index, value in enumerate(values):
        try:
            opened.append(opener(value))
        except Exception as error:  # noqa: BLE001 - one bad input is one error row
            opened.append(None)
            failures[index] = error
    for index, result, _ in recognizer.predict_batch(opened, batch_size):
        yield index, failures.get(index, result)


class FaceWorker:
    """The Ray actor of `predict_files`: one `FaceExpressionRecognizer`, loaded once; called on one work
    unit at a time (``map_batches(batch_size=1)``), returns its face rows (pyarrow table, `table_fields`
    plus `POSITION_FIELDS`)."""

    def __init__(self, model, detector, min_face_size, tta, backend, threads, batch_size, sample_fps, fields,
                 device=None):
        self.recognizer = _load_recognizer(model, detector, min_face_size, tta, backend, threads, device)
        self.batch_size = int(batch_size)
        self.sample_fps = sample_fps
        self.fields = list(fields)
        self.schema = _position_schema(self.fields)

    def __call__(self, batch: dict):
        import pyarrow as pa

        rows = []
        for i in range(len(batch["kind"])):
            unit = {k: batch[k][i] for k in batch}
            for n, (order, part, row) in enumerate(self._unit_rows(unit)):
                row.update(_order=int(order), _part=int(part), _parts=int(unit["parts"]), _row=n, _fps=float(unit["fps"]))
                rows.append(row)
        return pa.Table.from_pylist([{f: row.get(f) for f in self.schema.names} for row in rows], schema=self.schema)

    def _unit_rows(self, unit: dict):
        """(file order, segment, row) for each row of a unit."""
        orders, files, sources = list(unit["order"]), list(unit["file"]), list(unit["source"])
        if unit["kind"] == "video":
            yield from ((orders[0], unit["part"], row) for row in self._segment_rows(unit, files[0], sources[0]))
            return
        for index, result in _predict_each(self.recognizer, sources, open_input, self.batch_size):
            for row in face_rows(files[index], result):
                yield orders[index], 0, row

    def _segment_rows(self, unit: dict, file: str, source: str) -> list:
        if unit["error"]:
            return [{"file": file, "status": str(unit["error"])}]
        from ..inference.video import VideoSegment, analyze_video_segment

        segment = VideoSegment(int(unit["part"]), int(unit["parts"]), int(unit["first_frame"]), int(unit["frames"]),
                               None if int(unit["start_pts"]) < 0 else int(unit["start_pts"]), float(unit["fps"]))
        try:
            rows = analyze_video_segment(open_input(source), self.recognizer, segment, sample_fps=self.sample_fps)
        except Exception as error:  # noqa: BLE001 - one bad video must not stop the run
            return [{"file": file, "status": error_status(error)}]
        return [dict(row, file=file) for row in rows]


class _FileAssembler:
    """Driver side: gathers the rows of one file from its units (in order), checks that every segment came
    exactly once, and turns a video's segment rows into its final rows."""

    def __init__(self, files: list, sample_fps):
        self.files = files
        self.sample_fps = sample_fps
        self.order = None  # the file being gathered
        self.done = -1  # files 0..done are finished
        self.parts: dict = {}
        self.expected = 0
        self.fps = 0.0
        self.duplicates = 0

    @property
    def finished(self) -> int:
        return self.done + 1

    def add(self, row: dict):
        """Feed one result row (in input order); yields ``(file, rows)`` of the previous file once a new file
        starts. A row of a file already finished, or a unit's rows delivered again, are dropped (counted in
        ``duplicates``).

        Raises:
            RuntimeError: if a file was skipped (no row came back for it)."""
        order, part = row["_order"], row["_part"]
        if order <= self.done:
            self.duplicates += 1
            return
        if order != self.order:
            yield from self.finish()
            if order != self.done + 1:
                raise RuntimeError(f"no result came back for {self.files[self.done + 1].path}; the run is incomplete")
            self.order, self.parts, self.expected, self.fps = order, {}, row["_parts"], row["_fps"]
        rows = self.parts.setdefault(part, [])
        if rows and rows[-1]["_row"] >= row["_row"]:  # a segment delivered twice: keep the first copy
            self.duplicates += 1
            return
        rows.append(row)

    def finish(self):
        if self.order is None:
            return
        file = self.files[self.order]
        if sorted(self.parts) != list(range(self.expected)):
            raise RuntimeError(f"{file.path}: segments {sorted(self.parts)} of {self.expected} came back; "
                               "the run is incomplete")
        rows = [{k: v for k, v in r.items() if k not in POSITION_FIELDS} for part in sorted(self.parts)
                for r in self.parts[part]]
        if file.kind == "video":
            errors = [r for r in rows if str(r.get("status", "")).startswith("error")]
            if errors:  # as the single-process run: a video that fails is one error row
                rows = [{"file": file.path, "status": errors[0]["status"]}]
            else:
                from ..cli.predict import video_table_rows
                from ..inference.video import assign_track_ids

                assign_track_ids(rows, self.fps, self.sample_fps)
                rows = video_table_rows(file.path, rows)
        self.done, self.order = self.order, None
        yield file, rows


def predict_files(paths: Sequence[str], output=None, *, model=None, detector: str = "mtcnn", min_face_size: int = 20,
                  tta: str = "none", backend: str = "torch", batch_size: int = 32, sample_fps: Optional[float] = None,
                  recursive: bool = False, address: Optional[str] = None, num_workers: Optional[int] = None,
                  threads: int = 1, gpus_per_worker: float = 0.0, segment_s: float = DEFAULT_SEGMENT_S,
                  quiet: bool = False) -> dict:
    """``fer-hf predict PATH... --engine ray``: expressions of every face in images and videos, on Ray Data.

    Args:
        paths: files and folders, local or URIs pyarrow reads (``s3://``, ``gs://``, ``file://``).
        output: .parquet, .csv, .json or .jsonl path (written on the driver's machine; a temporary file moved
            into place at the end), or None for CSV on stdout.
        model, detector, min_face_size, tta, backend, batch_size, sample_fps, recursive: as ``fer-hf predict``
            (``batch_size`` is also the number of images per work unit). The model must load on every node
            (a released name or a path present on each node, or a Hub id).
        address: Ray cluster to join (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``); None: the one
            in ``RAY_ADDRESS``, else a local cluster started for this run and stopped after it.
        num_workers: actors, each holding a recognizer (default: the cluster's CPUs / ``threads``, at least 1).
        threads: torch threads per actor (also the CPUs Ray reserves for it).
        gpus_per_worker: GPUs Ray reserves per actor (the recognizer then runs on CUDA).
        segment_s: length of the video segments a worker analyses at once, in seconds of video (> 0).
        quiet: no summary on stderr/stdout (Ray's own progress bars still show).

    Returns:
        the summary of the single-process run (`fer_hf.cli.predict.summarize`: files, images, videos, faces,
        no_face_files, error_files, emotions) plus ``processes`` (actors), ``processed``, ``resumed`` (0),
        ``seconds`` (listing to the last row written), ``files_per_s``, ``output``, ``duplicates_dropped``.

    Raises:
        ImportError: without ``ray[data]``. ValueError: for bad options. RuntimeError: if the run came back
            incomplete (a file or video segment missing). ConnectionError: if the cluster cannot be reached.
    """
    from ..cli.predict import PredictSummary
    from ..inference.results import OUTPUT_FORMATS
    from ..inference.video import _Sampler
    from ..models.hub import DEFAULT_MODEL_NAME

    ray = _require_ray()
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    if threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    if num_workers is not None and num_workers < 1:
        raise ValueError(f"--num-workers must be >= 1, got {num_workers}")
    if not (segment_s > 0 and math.isfinite(segment_s)):
        raise ValueError(f"--segment-seconds must be a positive number, got {segment_s}")
    _Sampler(sample_fps)  # checks sample_fps
    if output is not None and os.path.splitext(str(output))[1].lower() not in OUTPUT_FORMATS:
        raise ValueError(f"--output must end in one of {OUTPUT_FORMATS}, got {str(output)!r}")

    started = time.perf_counter()
    files = list_inputs(paths, recursive=recursive)
    labels = _model_labels(model)
    fields = table_fields(labels, with_video=any(f.kind == "video" for f in files))

    own_cluster = not ray.is_initialized() and address is None and not os.environ.get("RAY_ADDRESS")
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    context = ray.data.DataContext.get_current()
    preserved = context.execution_options.preserve_order
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        workers = num_workers or max(1, cpus // threads)
        context.execution_options.preserve_order = True  # rows come back in input order: no sort, bounded memory
        units = _units(files, batch_size)
        dataset = ray.data.from_items(units, override_num_blocks=max(1, min(len(units), 4 * workers)))
        # planning reads packets only: it must not wait for a CPU that the recognizer actors hold, and without a
        # CPU to wait for Ray would start a process per block at once; one planning task at a time keeps ahead
        dataset = dataset.flat_map(_plan, fn_kwargs={"segment_s": float(segment_s), "sample_fps": sample_fps},
                                   num_cpus=0, concurrency=1)
        dataset = dataset.map_batches(
            FaceWorker, batch_size=1, compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=threads,
            num_gpus=gpus_per_worker or None, batch_format="numpy",
            fn_constructor_kwargs={"model": model, "detector": detector, "min_face_size": min_face_size, "tta": tta,
                                   "backend": backend, "threads": threads, "batch_size": batch_size,
                                   "sample_fps": sample_fps, "fields": fields,
                                   "device": "cuda" if gpus_per_worker else "cpu"})
        summary = PredictSummary()
        assembler = _FileAssembler(files, sample_fps)
        writer = RowWriter(output, fields) if output is not None else None
        buffered: list = []
        try:
            def take(finished):
                for file, rows in finished:
                    summary.add(file.kind, rows)
                    if writer is not None:
                        writer.write(rows)
                    else:
                        buffered.extend(rows)

            for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
                for row in batch.to_pylist():
                    take(assembler.add(row))
            take(assembler.finish())
            if assembler.finished != len(files):
                missing = [f.path for i, f in enumerate(files) if i >= assembler.finished][:3]
                raise RuntimeError(f"the run came back with {assembler.finished} of {len(files)} files "
                                   f"(e.g. missing {missing})")
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        if writer is not None:
            writer.close()
        else:
            from ..inference.results import write_rows

            write_rows(buffered, fields, sys.stdout)
    finally:
        context.execution_options.preserve_order = preserved
        if own_cluster:
            ray.shutdown()
    seconds = time.perf_counter() - started
    result = summary.result()
    result.update(processes=workers, processed=len(files), resumed=0, seconds=round(seconds, 3),
                  files_per_s=round(len(files) / seconds, 3) if seconds > 0 else None, output=output,
                  duplicates_dropped=assembler.duplicates, engine="ray", model=str(model or DEFAULT_MODEL_NAME))
    if not quiet:
        from ..cli.predict import format_summary

        print(format_summary(result), file=sys.stdout if output is not None else sys.stderr)
    return result


# ------------------------------------------------------------------------------------- a Ray dataset's images


def _image_input(value):
    """An image cell of a Ray dataset -> something `load_image` reads: bytes, {"bytes", "path"} (Hugging Face
    Image feature), a path or URI string, or an (H, W, C) / (H, W) uint8 array."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(value))
    if isinstance(value, dict):
        if value.get("bytes") is not None:
            return io.BytesIO(bytes(value["bytes"]))
        if value.get("path"):
            return open_input(str(value["path"]))
        raise ValueError("an image cell holds neither bytes nor a path")
    if isinstance(value, str):
        return open_input(value)
    if isinstance(value, np.ndarray) and value.dtype == object and value.ndim == 0:
        return _image_input(value.item())
    return value


class AnnotateWorker:
    """The Ray actor of `annotate`: one recognizer; each input row becomes one row per face (or one ``"no
    face"`` / error row), the input's other columns copied onto each."""

    def __init__(self, image_column, model, detector, min_face_size, tta, backend, threads, batch_size, device=None):
        self.recognizer = _load_recognizer(model, detector, min_face_size, tta, backend, threads, device)
        self.image_column = image_column
        self.batch_size = int(batch_size)
        self.fields = [f for f in table_fields(self.recognizer.labels) if f != "file"]

    def __call__(self, batch):
        import pyarrow as pa

        table = batch if isinstance(batch, pa.Table) else pa.Table.from_pandas(batch)
        if self.image_column not in table.column_names:
            raise KeyError(f"annotate: no column {self.image_column!r} (columns: {table.column_names})")
        images = table.column(self.image_column).to_pylist()
        rest = table.drop_columns([self.image_column])
        kept = rest.to_pylist()
        out = []
        for index, result in _predict_each(self.recognizer, images, _image_input, self.batch_size):
            for row in face_rows("", result):
                row.pop("file", None)
                out.append({**kept[index], **{f: row.get(f) for f in self.fields}})
        schema = rest.schema
        for field in parquet_schema(self.fields):
            schema = schema.append(field)
        return pa.Table.from_pylist(out, schema=schema)


def annotate(dataset, image_column: str = "image", *, model=None, detector: str = "mtcnn", min_face_size: int = 20,
             tta: str = "none", backend: str = "torch", batch_size: int = 32, num_workers: Optional[int] = None,
             threads: int = 1, gpus_per_worker: float = 0.0):
    """Faces and expressions of the images in a Ray dataset, as a Ray dataset with one row per face.

    Args:
        dataset: a ``ray.data.Dataset`` with an image column: encoded bytes, ``{"bytes", "path"}`` dicts (the
            Hugging Face ``Image`` feature), path / URI strings, or (H, W, C) uint8 RGB arrays
            (``ray.data.read_images``).
        image_column: that column's name; it is dropped from the output.
        model, detector, min_face_size, tta, backend: as `FaceExpressionRecognizer.from_pretrained`.
        batch_size: rows per ``map_batches`` call and face crops per forward pass.
        num_workers: actors (default: the cluster's CPUs / ``threads``). threads: torch threads per actor.
        gpus_per_worker: GPUs per actor.

    Returns:
        a lazy ``ray.data.Dataset``: the input's other columns, then ``face_index, box_x, box_y, box_w, box_h,
        detector_score, top_emotion, top_score``, one probability per label, ``status`` (``"ok"``, ``"no
        face"`` or ``"error: ..."``: an unreadable image is an error row, the others go on). Row order
        follows the input when ``DataContext.execution_options.preserve_order`` is set.

    Raises:
        ImportError: without ``ray[data]``. KeyError (when executed): no column ``image_column``.
    """
    ray = _require_ray()
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    workers = num_workers or max(1, int(ray.cluster_resources().get("CPU", 1)) // max(1, threads))
    return dataset.map_batches(
        AnnotateWorker, batch_size=batch_size, batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=threads, num_gpus=gpus_per_worker or None,
        fn_constructor_kwargs={"image_column": image_column, "model": model, "detector": detector,
                               "min_face_size": min_face_size, "tta": tta, "backend": backend, "threads": threads,
                               "batch_size": batch_size, "device": "cuda" if gpus_per_worker else "cpu"})
