"""Bad inputs through every interface: zero crashes, each case a clear error or a correct result.

The corpus (tests/bad_inputs.py, about 1,030 files generated once per session, plus CSV, zip and in-memory
cases) goes through the recognizer (``predict`` / ``load_image``, paths and file objects), the app's
functions (``analyze_image``, ``analyze_batch``, ``analyze_video_upload``), the CLI (``fer-hf predict`` in
process, ``fer-hf evaluate`` on an image folder), every loader (``load_fer2013`` from a folder, a zip and a
CSV, ``load_ferplus`` official folder and zip, ``load_ckplus``, ``load_sfew``, ``load_jaffe``, the
``imagefolder`` path of ``fer-hf evaluate``) and ``fer_hf.inference.video.analyze_video``.

*Clear error*, precisely (`clear_error_problem`, `clear_status_problem`):

1. the exception is a ValueError or an OSError (fer_hf's own `ImageTooLargeError` (ValueError) and
   `CorruptImageError` (OSError), PIL.UnidentifiedImageError, FileNotFoundError, ... included); TypeError
   only for objects that are not images at all;
2. an exception of exactly ValueError / OSError was raised by fer_hf's code (the innermost traceback frame
   is in ``fer_hf/``) or is an operating-system error (``errno`` set): a bare error escaping from numpy,
   torch, PIL or FFmpeg internals (IndexError, ZeroDivisionError, struct.error, SyntaxError,
   DecompressionBombError, torch's RuntimeError / ValueError, a raw PIL OSError) fails;
3. its message matches the case's ``problem`` pattern: it names what is wrong ("truncated", "not an image:
   an HTML page", "empty file", "too large ... megapixels", "NaN or infinite", "no video stream", ...).

Batch paths (``analyze_batch``, ``fer-hf predict``) must give exactly one row per bad file, with status
``error: <Type>: <message>`` satisfying 1 and 3 (and a bare ``OSError`` only with an ``[Errno``), and every
good file processed: a result case gives rows with status ok / no face, and at least ``faces`` faces for the
cases made from real photos (and the 7 real sample photos). Loaders keep exactly the result cases and report
exactly the error cases, one invalid row each.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import stat
import struct
import tempfile
import traceback
import warnings
import zipfile
import zlib
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from bad_inputs import (ANY_IMAGE_PROBLEM, EMPTY, ENCODINGS, FER2013_ROW_KINDS, NON_FINITE, Case, array_cases,
                        base_image, generate_corpus, pillow_decodes, png_header_only, write_fer2013_csv)
from conftest import SAMPLES

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning",
                                        "ignore::ResourceWarning")

FER_HF_DIR = os.sep + "fer_hf" + os.sep
#: Exception class names a clear error row may carry.
CLEAR_TYPES = {"ValueError", "OSError", "FileNotFoundError", "IsADirectoryError", "PermissionError",
               "UnidentifiedImageError", "CorruptImageError", "ImageTooLargeError"}
#: Property-based tests: fixed examples by default (reproducible, fast); BAD_INPUT_EXAMPLES=N explores N random
#: examples per test instead (e.g. 2000 for a long local run).
EXPLORE = int(os.environ.get("BAD_INPUT_EXAMPLES", "0"))


def hypothesis_settings(examples: int):
    return settings(max_examples=EXPLORE or examples, deadline=None, derandomize=not EXPLORE,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ---------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a busy 2-core machine several threads are ~20x slower (benchmarks/results/predict_folder.md)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> list:
    return generate_corpus(tmp_path_factory.mktemp("bad_input_corpus"), SAMPLES)


@pytest.fixture(scope="session")
def images(corpus) -> list:
    return [c for c in corpus if c.kind == "image"]


@pytest.fixture(scope="session")
def videos(corpus) -> list:
    return [c for c in corpus if c.kind == "video"]


# ------------------------------------------------------------------------------------------- the checks

def clear_error_problem(error: BaseException, problem: str):
    """None when ``error`` is a clear error whose message matches ``problem`` (module docstring), else why not."""
    if not isinstance(error, (ValueError, OSError)):
        return f"{type(error).__module__}.{type(error).__name__} is neither a ValueError nor an OSError"
    frames = traceback.extract_tb(error.__traceback__)
    origin = frames[-1].filename if frames else ""
    if type(error) in (ValueError, OSError) and getattr(error, "errno", None) is None and FER_HF_DIR not in origin:
        return f"bare {type(error).__name__} from {origin}:{frames[-1].lineno if frames else '?'}"
    message = " ".join(str(error).split())
    if not re.search(problem, message):
        return f"message does not say {problem!r}"
    return None


def clear_status_problem(status: str, problem: str):
    """`clear_error_problem` for the ``status`` of an error row: ``error: <Type>: <message>``."""
    match = re.match(r"error: (\w+): (.*)$", status or "", re.DOTALL)
    if match is None:
        return f"not an error row: {status!r}"
    kind, message = match.groups()
    if kind not in CLEAR_TYPES:
        return f"{kind} is not a clear error type"
    if kind == "OSError" and "[Errno" not in message:
        return "bare OSError (not an operating-system error)"
    if not re.search(problem, message):
        return f"message does not say {problem!r}"
    return None


def check_faces(faces, minimum: int):
    """None for a valid `FaceExpressionRecognizer.predict` result with at least ``minimum`` faces."""
    if not isinstance(faces, list):
        return f"not a list: {type(faces).__name__}"
    if len(faces) < minimum:
        return f"{len(faces)} face(s), expected at least {minimum}"
    for face in faces:
        box, emotions = face["box"], face["emotions"]
        if len(box) != 4 or not all(isinstance(v, int) for v in box) or box[2] < 0 or box[3] < 0:
            return f"bad box {box}"
        values = np.array(list(emotions.values()), dtype=float)
        if not np.isfinite(values).all() or abs(values.sum() - 1) > 1e-3 or values.min() < 0:
            return f"bad probabilities {emotions}"
        if face["top_emotion"] != max(emotions, key=emotions.get) or not math.isfinite(face["score"]):
            return "top emotion is not the most probable one"
    return None


def outcome_problem(case: Case, call):
    """Run ``call()`` for a case; None when the outcome is what the case expects, else a description."""
    try:
        result = call()
    except Exception as error:  # noqa: BLE001 - judged below
        if case.expected == "result":
            return f"expected a result, got {type(error).__name__}: {error}"
        return clear_error_problem(error, case.problem)
    if case.expected == "error":
        return f"expected an error, got a result ({type(result).__name__})"
    return None


def assert_no_failures(failures: list, what: str):
    assert not failures, f"{len(failures)} case(s) failed through {what}:\n" + "\n".join(
        f"  {name}: {why}" for name, why in failures[:40])


# ------------------------------------------------------------------------------------------------ corpus

def test_corpus_has_over_1000_cases_of_every_kind(corpus):
    groups = Counter(c.name.split("/", 1)[0] for c in corpus)
    assert {"truncated", "corrupt", "signature", "empty", "not-image", "sizes", "large", "modes", "nan",
            "animated", "exif", "real", "misc", "video"} <= set(groups)
    assert len(corpus) >= 1000, len(corpus)
    assert len({c.name for c in corpus}) == len(corpus)
    assert {c.expected for c in corpus} == {"error", "result"}
    corrupt = Counter(c.expected for c in corpus if c.name.startswith("corrupt/"))
    assert corrupt["error"] > 100 and corrupt["result"] > 100  # both outcomes of the oracle are exercised
    assert all(c.problem for c in corpus if c.expected == "error")
    # the 20,000 x 20,000 cases are small files, and the valid one really is a 20,000 x 20,000 PNG
    big = next(c for c in corpus if c.name == "large/png-valid-1bit-20000x20000")
    data = big.path.read_bytes()
    assert len(data) < 200_000 and struct.unpack(">II", data[16:24]) == (20000, 20000)
    decompressor, raw, idat = zlib.decompressobj(), 0, data[41:-16]  # IDAT payload, streamed in 1 MB pieces
    for start in range(0, len(idat), 4096):
        chunk = decompressor.decompress(idat[start:start + 4096], 1 << 20)
        raw += len(chunk)
        while decompressor.unconsumed_tail:
            raw += len(decompressor.decompress(decompressor.unconsumed_tail, 1 << 20))
    assert raw == 20000 * (1 + 20000 // 8) and decompressor.eof  # every row of a real 20,000 x 20,000 image
    assert Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < 20000 * 20000


# ---------------------------------------------------------------------------------------------- recognizer

def test_recognizer_predict_on_every_file(images, default_recognizer):
    from fer_hf.image_io import load_image

    failures = []
    for case in images:
        def run(case=case):
            faces = default_recognizer.predict(case.path)
            problem = check_faces(faces, case.faces)
            if problem:
                raise AssertionError(problem)
            return faces

        why = outcome_problem(case, run)
        if why:
            failures.append((case.name, why))
        if case.expected == "result" and why is None:
            image = load_image(case.path)
            if image.mode not in ("L", "RGB"):
                failures.append((case.name, f"load_image gave mode {image.mode}"))
    assert_no_failures(failures, "FaceExpressionRecognizer.predict")


def test_recognizer_on_file_objects(images, default_recognizer):
    """Every third file, given as an open binary file object (what a web framework hands over)."""
    failures = []
    for case in images[::3]:
        if not case.path.is_file():
            continue

        def run(case=case):
            with open(case.path, "rb") as handle:
                faces = default_recognizer.predict(handle)
                assert not handle.closed  # the caller's file is never closed
            return faces

        why = outcome_problem(case, run)
        if why:
            failures.append((case.name, why))
    assert_no_failures(failures, "predict(file object)")


def test_in_memory_inputs(default_recognizer):
    """Arrays (NaN / inf, every dtype, odd shapes), tensors and PIL images (16-bit, float, CMYK, empty,
    lazily opened broken files) through the recognizer, the app's analyze_image and analyze_frame (webcam)
    and the image processor."""
    from fer_hf.app.handlers import analyze_frame, analyze_image
    from fer_hf.image_processing_fer import FerImageProcessor

    processor = FerImageProcessor()
    failures = []
    for name, obj, expected, faces, problem in array_cases(SAMPLES):
        case = Case(f"memory/{name}", Path(name), expected, faces, problem)
        make = obj if callable(obj) else (lambda obj=obj: obj)

        def predict(make=make, case=case):
            result = default_recognizer.predict(make())
            why = check_faces(result, case.faces)
            assert why is None, why
            return result

        def app(make=make, case=case):
            table = analyze_image(make(), output_dir=tempfile.mkdtemp(prefix="bad_input_app_")).table
            assert len(table) >= case.faces
            return table

        def process(make=make):
            pixel_values = processor(make(), return_tensors="np")["pixel_values"]
            assert pixel_values.shape == (1, 1, 48, 48) and np.isfinite(pixel_values).all()
            return pixel_values

        def webcam(make=make):
            frame, status, _ = analyze_frame(make())
            assert frame.ndim == 3 and frame.shape[2] == 3 and status
            return frame

        interfaces = [("predict", predict), ("analyze_image", app)]
        if not isinstance(make(), io.IOBase):  # the image processor and the webcam take images, not files
            interfaces += [("processor", process), ("analyze_frame", webcam)]
        for interface, call in interfaces:
            try:
                why = outcome_problem(case, call)
            except AssertionError as error:
                why = str(error)
            if why:
                failures.append((f"{case.name} [{interface}]", why))
    for not_an_image in (None, "a string", [[0, 0], [0, 0]], 3.5):
        with pytest.raises((TypeError, ValueError, OSError)):
            default_recognizer.predict(not_an_image)
    assert_no_failures(failures, "in-memory inputs")


def test_pixel_limit_is_configurable_and_checked_before_decoding(tmp_path, monkeypatch, default_recognizer):
    from fer_hf.image_io import ImageTooLargeError, max_image_pixels, open_image

    assert max_image_pixels() == 50_000_000
    small, over = tmp_path / "31x32.png", tmp_path / "40x40.png"
    base_image(0, (31, 32)).save(small)
    base_image(0, (40, 40)).save(over)
    monkeypatch.setenv("FER_HF_MAX_IMAGE_PIXELS", "1000")
    assert default_recognizer.predict(small) == []
    with pytest.raises(ImageTooLargeError, match=r"40x40 pixels .*the limit is 0.001 megapixels.*FER_HF_MAX_IMAGE"):
        default_recognizer.predict(over)
    with pytest.raises(ImageTooLargeError):
        default_recognizer.predict(np.zeros((40, 40, 3), np.uint8))
    monkeypatch.setenv("FER_HF_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(ValueError, match="FER_HF_MAX_IMAGE_PIXELS"):
        default_recognizer.predict(small)
    monkeypatch.delenv("FER_HF_MAX_IMAGE_PIXELS")
    # a header claiming 20,000 x 20,000 is refused without decoding: the pixel data is never read
    header_only = tmp_path / "huge.png"
    header_only.write_bytes(png_header_only(9000, 9000))
    with pytest.raises(ImageTooLargeError, match="9000x9000 pixels .81.0 megapixels.; the limit is 50 megapixels"):
        open_image(header_only)
    header_only.write_bytes(png_header_only(20000, 20000))
    with pytest.raises(ImageTooLargeError, match="400.0 megapixels .Pillow refuses it as a decompression bomb"):
        open_image(header_only, max_pixels=10**12)  # Pillow's own bomb guard, wrapped
    assert Image.MAX_IMAGE_PIXELS == int(1024 * 1024 * 1024 // 4 // 3)  # Pillow's global is left alone


def test_special_files(tmp_path, default_recognizer):
    """A folder and a FIFO named like images: clear errors, and the FIFO is never opened for reading."""
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    with pytest.raises(IsADirectoryError, match="folder"):
        default_recognizer.predict(folder)
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        default_recognizer.predict(fifo)

    [(_, result, _)] = list(default_recognizer.predict_batch([str(fifo)]))
    assert isinstance(result, ValueError) and stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_classical_pipeline_on_odd_images():
    from fer_hf.training.classical import ClassicalFERPipeline

    model = ClassicalFERPipeline(detect_faces=True)
    odd = [np.zeros((1, 1), np.uint8), np.zeros((1, 300, 3), np.uint8), np.zeros((300, 1), np.uint16),
           Image.new("P", (5, 7)), Image.new("CMYK", (40, 30)), Image.new("F", (3, 3)), Image.new("LA", (2, 2)),
           np.ones((2, 2, 4), np.float32), Image.new("I;16", (13, 11), 300)]
    faces, found = model.preprocess(odd)
    assert faces.shape == (len(odd), 48, 48) and faces.dtype == np.uint8 and not found.any()
    assert np.isfinite(model.features_from_faces(faces)).all()
    for bad, message in ((np.full((3, 3), np.nan, np.float32), NON_FINITE), (np.zeros((0, 3), np.uint8), "Empty"),
                         (Image.new("L", (0, 0)), "Empty")):
        with pytest.raises(ValueError, match=message):
            model.preprocess([bad])


# ---------------------------------------------------------------------------------------------- the app

def test_app_analyze_image_on_every_file(images):
    from fer_hf.app.handlers import analyze_image

    failures = []
    out = Path(tempfile.mkdtemp(prefix="bad_input_analyze_image_"))
    for index, case in enumerate(images):
        def run(case=case, index=index):
            annotated, table, long, png, json_path, summary, gallery = analyze_image(case.path,
                                                                                     output_dir=out / str(index))
            assert len(table) >= case.faces, f"{len(table)} face(s)"
            assert os.path.isfile(png) and os.path.isfile(json_path)
            return table

        why = outcome_problem(case, run)
        if why:
            failures.append((case.name, why))
    assert_no_failures(failures, "app_functions.analyze_image")


def _rows_by_file(rows, key="file"):
    grouped = defaultdict(list)
    for row in rows:
        grouped[row[key]].append(row)
    return grouped


def check_rows(case: Case, rows: list):
    """None when a batch path's rows for one case are right (module docstring), else why not."""
    if not rows:
        return "no row at all: the file was lost"
    statuses = [str(r.get("status", "")) for r in rows]
    if case.expected == "error":
        if len(rows) != 1:
            return f"{len(rows)} rows for a bad file"
        return clear_status_problem(statuses[0], case.problem)
    if any(s not in ("ok", "no face") for s in statuses):
        return f"statuses {Counter(statuses)}"
    faces = statuses.count("ok")
    if faces < case.faces:
        return f"{faces} face(s), expected at least {case.faces}"
    return None


def test_app_analyze_batch_on_every_file(images, monkeypatch):
    from fer_hf.app.handlers import analyze_batch

    monkeypatch.setenv("FER_HF_MAX_BATCH_FILES", "100000")
    out = Path(tempfile.mkdtemp(prefix="bad_input_batch_"))
    names = Counter(c.path.name for c in images)
    assert max(names.values()) == 1  # the batch table names files by their base name
    gallery, csv_path, table, summary = analyze_batch([str(c.path) for c in images], output_dir=out)
    rows = _rows_by_file(table.to_dict("records"))
    failures = [(c.name, why) for c in images if (why := check_rows(c, rows.get(c.path.name, [])))]
    assert_no_failures(failures, "app_functions.analyze_batch")
    assert sum(len(r) for r in rows.values()) == len(table)
    assert set(rows) == {c.path.name for c in images}
    assert len(gallery) == sum(c.expected == "result" for c in images)  # every good file annotated
    n_errors = sum(c.expected == "error" for c in images)
    assert f"{len(images)} file(s)" in summary and f"{n_errors} unreadable" in summary
    with open(csv_path, newline="", encoding="utf-8") as handle:
        assert len(list(csv.DictReader(handle))) == len(table)


def test_app_batch_zip_with_unsafe_entries(images, tmp_path, monkeypatch):
    """A zip uploaded to the Batch tab: its unsafe entries are skipped (one row each), nothing is written
    outside the temporary folder, every good image is processed and every bad one is one error row."""
    from fer_hf.app.handlers import analyze_batch

    monkeypatch.setenv("FER_HF_MAX_BATCH_FILES", "100000")
    chosen = [c for c in images if c.path.is_file() and not c.path.is_symlink() and c.path.stat().st_size < 300_000
              and c.path.suffix.lower() in (".jpg", ".png", ".gif", ".webp", ".tif", ".tiff", ".bmp")][::9][:80]
    zip_path = tmp_path / "upload" / "photos.zip"
    zip_path.parent.mkdir()
    valid_image = next(c for c in images if c.name == "modes/L-png").path.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(zip_path, "w") as archive:
            for case in chosen:
                archive.write(case.path, f"photos/{case.path.name}")
            unsafe = _unsafe_entries(archive, "photos/", valid_image)
    _mark_encrypted(zip_path, "photos/Training_encrypted.jpg")
    before = sorted(p for p in tmp_path.parent.rglob("*") if "bad_input_zip_out" not in str(p))
    gallery, csv_path, table, summary = analyze_batch([str(zip_path)], output_dir=tmp_path / "bad_input_zip_out")
    assert sorted(p for p in tmp_path.parent.rglob("*") if "bad_input_zip_out" not in str(p)) == before
    rows = _rows_by_file(table.to_dict("records"))
    failures = [(c.name, why) for c in chosen if (why := check_rows(c, rows.get(f"photos.zip/photos/{c.path.name}", [])))]
    assert_no_failures(failures, "analyze_batch (zip)")
    skipped = {name: str(r["status"]) for name, rs in rows.items() for r in rs if str(r["status"]).startswith("skipped")}
    for name, reason in unsafe.items():
        status = skipped.get(f"photos.zip/{name.split('#')[0]}", "")
        assert re.search(reason, status), (name, status)
    assert not (Path("/") / "abs").exists() and not list(tmp_path.parent.glob("Training_escape*"))


def test_app_video_upload_and_analyze_video(videos, default_recognizer, tmp_path):
    from fer_hf.app.handlers import analyze_video_upload
    from fer_hf.inference.video import analyze_video

    failures = []
    for index, case in enumerate(videos):
        def direct(case=case):
            result = analyze_video(case.path, default_recognizer, progress=False)
            ok = [r for r in result.rows if r["status"] == "ok"]
            assert result.rows and len(ok) >= case.faces, f"{len(ok)} face rows"
            return result

        def app(case=case, index=index):
            output = analyze_video_upload(str(case.path), sample_fps=None, output_dir=tmp_path / f"v{index}")
            assert os.path.isfile(output.video_path) and os.path.isfile(output.csv_path)
            return output

        for interface, call in (("analyze_video", direct), ("analyze_video_upload", app)):
            try:
                why = outcome_problem(case, call)
            except AssertionError as error:
                why = str(error)
            if why:
                failures.append((f"{case.name} [{interface}]", why))
    assert_no_failures(failures, "the video functions")


def test_one_pixel_video(tmp_path, default_recognizer):
    """1x1 frames: analysed (no face); the app, which must write an H.264 copy, says they are too small."""
    import av

    from fer_hf.app.handlers import analyze_video_upload
    from fer_hf.inference.video import analyze_video

    path = tmp_path / "one-pixel.avi"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("rawvideo", rate=5)
        stream.width = stream.height = 1
        stream.pix_fmt = "bgr24"
        for _ in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((1, 1, 3), np.uint8), format="bgr24")
            for packet in stream.encode(frame):
                container.mux(packet)
    result = analyze_video(path, default_recognizer, progress=False)
    assert [r["status"] for r in result.rows] == ["no face"] * 3
    with pytest.raises(ValueError, match="too small"):
        analyze_video_upload(str(path), sample_fps=None, output_dir=tmp_path / "out")


# ---------------------------------------------------------------------------------------------- the CLI

def test_cli_predict_on_every_file(corpus, tmp_path, capsys):
    from fer_hf.cli.commands import main

    cases = corpus
    output = tmp_path / "predictions.csv"
    code = main(["predict", *[str(c.path) for c in cases], "--output", str(output), "--cpu", "--threads", "1",
                 "--annotate", str(tmp_path / "annotated")])
    assert code == 0, capsys.readouterr().err[-3000:]
    annotated = [p for p in (tmp_path / "annotated").rglob("*") if p.is_file()]
    assert len(annotated) == sum(c.expected == "result" for c in cases)  # each good image / video drawn
    with open(output, newline="", encoding="utf-8") as handle:
        rows = _rows_by_file(list(csv.DictReader(handle)))
    failures = [(c.name, why) for c in cases if (why := check_rows(c, rows.get(str(c.path), [])))]
    assert_no_failures(failures, "fer-hf predict")
    assert set(rows) == {str(c.path) for c in cases}
    summary = capsys.readouterr().out
    errors = sum(c.expected == "error" for c in cases)
    assert f"errors (unreadable files): {errors}" in summary


def test_cli_predict_on_a_folder_with_special_files(tmp_path, capsys):
    """``fer-hf predict FOLDER -r``: FIFOs, broken links and link loops are not read (no hang), hidden files are
    left out, every image is one row or more."""
    from fer_hf.cli.commands import main

    root = tmp_path / "photos"
    (root / "nested" / "deeper").mkdir(parents=True)
    with Image.open(SAMPLES / "happy-baby.jpeg") as photo:
        face = photo.convert("RGB")
    face.thumbnail((176, 176))
    face.save(root / "face.jpg")
    face.save(root / "nested" / "deeper" / "face.png")
    (root / "nested" / "empty.png").write_bytes(b"")
    (root / ".hidden.jpg").write_bytes(b"not an image")
    os.mkfifo(root / "pipe.jpg")
    (root / "broken.jpg").symlink_to(root / "missing.jpg")
    (root / "loop.jpg").symlink_to(root / "loop.jpg")
    (root / "nested" / "up").symlink_to(root)  # a folder link loop
    output = tmp_path / "out.jsonl"
    assert main(["predict", str(root), "-r", "--output", str(output), "--cpu", "--threads", "1"]) == 0
    import json

    rows = [json.loads(line) for line in output.read_text().splitlines()]
    by_file = _rows_by_file(rows)
    assert sorted(os.path.relpath(f, root) for f in by_file) == ["face.jpg", "nested/deeper/face.png",
                                                                  "nested/empty.png"]
    assert by_file[str(root / "face.jpg")][0]["status"] == "ok"
    assert clear_status_problem(by_file[str(root / "nested" / "empty.png")][0]["status"], EMPTY) is None
    capsys.readouterr()


# ------------------------------------------------------------------------------------------------ loaders

LOADER_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".pgm"}


def _place(case: Case, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(case.path, target)
    except OSError:
        target.write_bytes(case.path.read_bytes())


@pytest.fixture(scope="module")
def loader_cases(images):
    """The image cases the loaders read: regular files with a corpus image extension."""
    return [c for c in images if c.path.is_file() and not c.path.is_symlink()
            and c.path.suffix.lower() in LOADER_SUFFIXES]


def _check_loader(cases_by_id: dict, kept_ids, dropped, what: str):
    expected_kept = {i for i, c in cases_by_id.items() if c.expected == "result"}
    expected_dropped = {i for i, c in cases_by_id.items() if c.expected == "error"}
    kept_ids = list(kept_ids)
    failures = []
    for i in sorted(expected_kept - set(kept_ids)):
        failures.append((cases_by_id[i].name, f"valid file dropped: {dropped.reasons.get(i)}"))
    for i in sorted(set(kept_ids) - expected_kept):
        failures.append((cases_by_id.get(i, Case(i, Path(i), "?")).name, "invalid file kept"))
    for i in sorted(expected_dropped - set(dropped.reasons)):
        failures.append((cases_by_id[i].name, "invalid file not reported"))
    for i in sorted(expected_dropped & set(dropped.reasons)):
        reason = dropped.reasons[i]
        if not re.search(cases_by_id[i].problem + "|undecodable|not an image|too large|empty|invalid pixel", reason):
            failures.append((cases_by_id[i].name, f"reason does not name the problem: {reason}"))
    assert len(kept_ids) == len(set(kept_ids)), "a row was loaded twice"
    assert_no_failures(failures, what)


def test_fer2013_image_folder_loader_on_the_corpus(loader_cases, tmp_path):
    from fer_hf.data import load_fer2013

    by_id = {}
    for i, case in enumerate(loader_cases):
        row_id = f"train/happy/Training_{i:05d}{case.path.suffix}"
        _place(case, tmp_path / row_id)
        by_id[row_id] = case
    (tmp_path / "test" / "happy").mkdir(parents=True)
    ds = load_fer2013(tmp_path)
    _check_loader(by_id, ds["train"]["image_id"], ds.dropped, "load_fer2013 (image folder)")
    assert ds.dropped.counts().keys() <= {"undecodable image", "not an image", "empty file", "image too large",
                                          "invalid pixel values", "empty image"}


def _unsafe_entries(archive: zipfile.ZipFile, prefix: str, valid_image: bytes) -> dict:
    """Add entries the loaders must skip; returns {entry name: reason pattern}."""
    unsafe = {}
    archive.writestr(f"../{prefix}Training_escape.jpg", valid_image)
    unsafe[f"../{prefix}Training_escape.jpg"] = r"'\.\.' in the"
    archive.writestr(f"{prefix}../../Training_escape2.jpg", valid_image)
    unsafe[f"{prefix}../../Training_escape2.jpg"] = r"'\.\.' in the"
    archive.writestr(f"/abs/{prefix}Training_absolute.jpg", valid_image)
    unsafe[f"/abs/{prefix}Training_absolute.jpg"] = "absolute path"
    link = zipfile.ZipInfo(f"{prefix}Training_symlink.jpg")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive.writestr(link, "../../../../etc/passwd")
    unsafe[link.filename] = "symbolic link"
    fifo = zipfile.ZipInfo(f"{prefix}Training_fifo.jpg")
    fifo.external_attr = (stat.S_IFIFO | 0o644) << 16
    archive.writestr(fifo, valid_image)
    unsafe[fifo.filename] = "not a regular file"
    archive.writestr(f"{prefix}Training_encrypted.jpg", valid_image)  # flagged encrypted afterwards
    unsafe[f"{prefix}Training_encrypted.jpg"] = "encrypted"
    archive.writestr(f"{prefix}Training_twice.jpg", valid_image)
    archive.writestr(f"{prefix}Training_twice.jpg", b"second entry of the same name")
    unsafe[f"{prefix}Training_twice.jpg#2"] = "repeated name|duplicate name"
    archive.writestr(zipfile.ZipInfo(f"{prefix}folder.jpg/"), b"")  # a directory entry named like an image
    return unsafe


def _mark_encrypted(zip_path: Path, name: str) -> None:
    """Set the "encrypted" flag of an entry in its local header and central directory record (zipfile
    clears flag_bits when writing)."""
    with zipfile.ZipFile(zip_path) as archive:
        info = archive.getinfo(name)
    data = bytearray(zip_path.read_bytes())
    data[info.header_offset + 6] |= 0x1
    encoded = name.encode()
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        length = int.from_bytes(data[at + 28:at + 30], "little")
        if bytes(data[at + 46:at + 46 + length]) == encoded:
            data[at + 8] |= 0x1
        at = data.find(b"PK\x01\x02", at + 4)
    zip_path.write_bytes(bytes(data))
    with zipfile.ZipFile(zip_path) as archive:
        assert archive.getinfo(name).flag_bits & 0x1


def _corrupt_stored_entry(zip_path: Path, name: str) -> None:
    """Flip a byte of a stored entry's data: its CRC no longer matches."""
    with zipfile.ZipFile(zip_path) as archive:
        info = archive.getinfo(name)
    data = bytearray(zip_path.read_bytes())
    header = info.header_offset
    name_length, extra_length = int.from_bytes(data[header + 26:header + 28], "little"), \
        int.from_bytes(data[header + 28:header + 30], "little")
    data[header + 30 + name_length + extra_length + 10] ^= 0xFF
    zip_path.write_bytes(bytes(data))


def test_fer2013_zip_loader_on_the_corpus_with_unsafe_entries(loader_cases, tmp_path):
    from fer_hf.data import load_fer2013

    zip_path = tmp_path / "data" / "fer2013_corpus.zip"
    zip_path.parent.mkdir()
    valid_image = next(c for c in loader_cases if c.name == "modes/L-png").path.read_bytes()
    by_id = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name" from zipfile
        with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for i, case in enumerate(loader_cases):
                row_id = f"train/happy/Training_{i:05d}{case.path.suffix}"
                archive.write(case.path, row_id)
                by_id[row_id] = case
            archive.writestr("train/happy/Training_crc.png", valid_image, compress_type=zipfile.ZIP_STORED)
            unsafe = _unsafe_entries(archive, "train/happy/", valid_image)
    _corrupt_stored_entry(zip_path, "train/happy/Training_crc.png")
    _mark_encrypted(zip_path, "train/happy/Training_encrypted.jpg")
    before = sorted(p for p in tmp_path.rglob("*"))
    ds = load_fer2013(zip_path)
    assert sorted(p for p in tmp_path.rglob("*")) == before  # nothing extracted, nothing written
    assert not any(Path(p).name.startswith("Training_escape") for p in Path("/").glob("*"))
    kept = [i for i in ds["train"]["image_id"] if i in by_id]
    _check_loader(by_id, kept, ds.dropped, "load_fer2013 (zip)")
    assert "crc" in ds.dropped.reasons["train/happy/Training_crc.png"].lower()
    for name, reason in unsafe.items():
        entry = name.split("#")[0]
        assert re.search(reason, ds.dropped.reasons.get(entry, "")), (name, ds.dropped.reasons.get(entry))
    # no unsafe entry was loaded; of two entries with the same name, the first is
    assert set(ds["train"]["image_id"]) - set(by_id) == {"train/happy/Training_twice.jpg"}
    twice = ds["train"][ds["train"]["image_id"].index("train/happy/Training_twice.jpg")]["image"]
    assert twice.size == Image.open(io.BytesIO(valid_image)).size
    with pytest.raises(ValueError, match="not a readable zip"):
        (tmp_path / "broken.zip").write_bytes(zip_path.read_bytes()[:1000])
        load_fer2013(tmp_path / "broken.zip")


def test_zip_with_thousands_of_entries(tmp_path):
    from fer_hf.data import load_ckplus, load_fer2013

    zip_path = tmp_path / "many.zip"
    buffer = io.BytesIO()
    Image.new("L", (8, 8), 7).save(buffer, format="PNG")
    png = buffer.getvalue()
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for i in range(3000):
            archive.writestr(f"train/{['angry', 'happy', 'sad'][i % 3]}/Training_{i:05d}.png", png)
        for i in range(2000):
            archive.writestr(f"notes/readme_{i:05d}.txt", b"not an image")
        for i in range(300):
            archive.writestr(zipfile.ZipInfo(f"empty_dirs/{i:03d}/"), b"")
    ds = load_fer2013(zip_path)
    assert len(ds["train"]) == 3000 and len(ds.dropped) == 0
    ck_path = tmp_path / "ck.zip"
    with zipfile.ZipFile(ck_path, "w") as archive:
        for i in range(2500):
            archive.writestr(f"CK+48/happy/S{i:03d}_001_{i:08d}.png", png)
    assert len(load_ckplus(ck_path)["train"]) == 2500


def test_ckplus_sfew_jaffe_loaders_on_the_corpus(loader_cases, tmp_path):
    from fer_hf.data import load_ckplus, load_jaffe, load_sfew

    ck, sfew, jaffe = {}, {}, {}
    for i, case in enumerate(loader_cases):
        suffix = case.path.suffix
        ck[f"happy/S{i:03d}_001_{i:08d}{suffix}"] = case
        sfew[f"Train/Happy/Movie_{i:09d}_00000001{suffix}"] = case
        jaffe[f"KA.HA1.{i}{suffix}"] = case
    for root, table in (("ck", ck), ("sfew", sfew), ("jaffe", jaffe)):
        for row_id, case in table.items():
            _place(case, tmp_path / root / row_id)
    ds = load_ckplus(tmp_path / "ck")
    _check_loader(ck, ds["train"]["image_id"], ds.dropped, "load_ckplus")
    ds = load_sfew(tmp_path / "sfew")
    _check_loader(sfew, ds["train"]["image_id"], ds.dropped, "load_sfew")
    ds = load_jaffe(tmp_path / "jaffe", detector=None, cache_dir=tmp_path / "cache")
    _check_loader(jaffe, ds["train"]["image_id"], ds.dropped, "load_jaffe")
    # 16-bit and float JAFFE frames are scaled to 8-bit grey, not clipped to white
    ids = ds["train"]["image_id"]
    for name in ("modes/I16-tiff", "modes/F-0-1-tiff"):
        row_id = next(k for k, c in jaffe.items() if c.name == name)
        mean = np.asarray(ds["train"][ids.index(row_id)]["image"]).mean()
        assert 40 < mean < 220, (name, mean)


def _ferplus_label_line(name: str, votes=(0, 10, 0, 0, 0, 0, 0, 0, 0, 0)) -> str:
    return f'{name},"(0, 0, 48, 48)",' + ",".join(str(v) for v in votes) + "\n"


def test_ferplus_loader_on_the_corpus_folder_and_zip(loader_cases, tmp_path):
    from fer_hf.data import load_ferplus

    by_id, lines = {}, []
    for i, case in enumerate(loader_cases):
        name = f"fer{i:07d}{case.path.suffix}"
        _place(case, tmp_path / "official" / "FER2013Train" / name)
        by_id[f"FER2013Train/{name}"] = case
        lines.append(_ferplus_label_line(name))
    first_good = next(i for i, c in enumerate(loader_cases) if c.expected == "result")
    repeated = f"fer{first_good:07d}{loader_cases[first_good].path.suffix}"
    bad_rows = {"../../outside.png": "path", "/etc/passwd": "path", "fer_nan.png": "malformed",
                "fer_inf.png": "malformed", "fer_huge.png": "malformed", "fer_short.png": "malformed",
                repeated: "repeated"}
    (tmp_path / "outside.png").write_bytes(next(c for c in loader_cases if c.name == "modes/L-png").path.read_bytes())
    lines.append(_ferplus_label_line("../../outside.png"))
    lines.append(_ferplus_label_line("/etc/passwd"))
    lines.append(_ferplus_label_line("fer_nan.png", ("nan",) + (1,) * 9))
    lines.append(_ferplus_label_line("fer_inf.png", ("inf",) + (1,) * 9))
    lines.append(_ferplus_label_line("fer_huge.png", ("1e300",) + (1,) * 9))
    lines.append('fer_short.png,"(0, 0, 48, 48)",1,2\n')
    lines.append(_ferplus_label_line(repeated))
    text = "".join(lines).encode() + b"fer_bytes.png,\xff\xfe,1\n"
    (tmp_path / "official" / "FER2013Train" / "label.csv").write_bytes(text)
    ds = load_ferplus(tmp_path / "official")
    kept = ds["train"]["image_id"]
    _check_loader(by_id, kept, ds.dropped, "load_ferplus (official folder)")
    for name, kind in bad_rows.items():
        assert kind in ds.dropped.reasons.get(f"FER2013Train/{name}", ""), (name, ds.dropped.reasons.get(
            f"FER2013Train/{name}"))
    # the same as a zip, with unsafe entries
    zip_path = tmp_path / "ferplus.zip"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(zip_path, "w") as archive:
            archive.writestr("data/FER2013Train/label.csv", text + _ferplus_label_line("fer_symlink.png").encode()
                             + _ferplus_label_line("fer_encrypted.png").encode())
            for row_id in by_id:
                archive.write(tmp_path / "official" / row_id, "data/" + row_id)
            link = zipfile.ZipInfo("data/FER2013Train/fer_symlink.png")
            link.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(link, "/etc/passwd")
            archive.writestr("data/FER2013Train/fer_encrypted.png", b"x")
    _mark_encrypted(zip_path, "data/FER2013Train/fer_encrypted.png")
    ds = load_ferplus(zip_path)
    _check_loader(by_id, ds["train"]["image_id"], ds.dropped, "load_ferplus (zip)")
    assert "symbolic link" in ds.dropped.reasons["FER2013Train/fer_symlink.png"]
    assert "encrypted" in ds.dropped.reasons["FER2013Train/fer_encrypted.png"]


def test_evaluate_imagefolder_on_the_corpus(loader_cases, tmp_path, capsys):
    """``fer-hf evaluate --dataset imagefolder``: the bad files are left out and reported, the rest evaluated."""
    from fer_hf.cli.commands import main
    from fer_hf.evaluation.report import load_evaluation_split
    from fer_hf.models.hub import DEFAULT_MODEL_DIR

    by_id = {}
    for i, case in enumerate(loader_cases):
        row_id = f"{['happy', 'sad', 'angry'][i % 3]}/{i:05d}{case.path.suffix}"
        _place(case, tmp_path / "folder" / row_id)
        by_id[row_id] = case
    ds = load_evaluation_split("imagefolder", tmp_path / "folder", "all")
    _check_loader(by_id, ds["image_id"], ds.dropped, "evaluation.load_image_folder")
    code = main(["evaluate", "--model", str(DEFAULT_MODEL_DIR), "--dataset", "imagefolder", "--data_dir",
                 str(tmp_path / "folder"), "--split", "all", "--output_dir", str(tmp_path / "report")])
    out = capsys.readouterr()
    assert code == 0, out.err[-3000:]
    assert f'"num_images": {sum(c.expected == "result" for c in by_id.values())}' in out.out


# --------------------------------------------------------------------------------------------------- CSVs

def test_fer2013_csv_with_every_kind_of_invalid_row(tmp_path):
    from fer_hf.data import InvalidRowsWarning, load_fer2013

    kinds = list(FER2013_ROW_KINDS) * 3
    for variant, options in {"plain": {}, "bom-crlf": {"bom": True, "newline": "\r\n"},
                             "spaced-header": {"header": " emotion , pixels ,Usage "}}.items():
        path = tmp_path / variant / "fer2013.csv"
        path.parent.mkdir()
        valid = write_fer2013_csv(path, kinds, seed=len(variant), **options)
        with pytest.warns(InvalidRowsWarning):
            ds = load_fer2013(path.parent)
        kept = sorted(int(i[3:]) for split in ds for i in ds[split]["image_id"])
        assert kept == [i for i, ok in enumerate(valid) if ok], variant
        assert sorted(int(i[3:]) for i in ds.dropped.reasons) == [i for i, ok in enumerate(valid) if not ok]
        for reason in ds.dropped.reasons.values():
            assert reason and len(reason) < 500


WRONG_CSVS = {
    "missing-pixels.csv": (b"emotion,Usage\n3,Training\n", r"missing column\(s\) \['pixels'\]"),
    "missing-usage.csv": (b"emotion,pixels\n3,1 2 3\n", r"missing column\(s\) \['Usage'\]"),
    "lowercase-usage.csv": (b"emotion,pixels,usage\n3,1 2 3,Training\n", r"\['Usage'\].*'usage'"),
    "tab-separated.csv": (b"emotion\tpixels\tUsage\n3\t1 2\tTraining\n", r"missing column\(s\) \['Usage', 'emotion'"),
    "empty.csv": (b"", r"missing column.*the file is empty"),
    "binary.csv": (bytes(range(256)) * 40, r"missing column"),
    "html-page.csv": (b"<!DOCTYPE html><html><body>Sign in to download</body></html>\n", r"missing column"),
    "git-lfs.csv": (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 301072766\n",
                    r"missing column"),
    "ferplus-votes-as-fer2013.csv": (b"Usage,Image name,neutral,happiness\nTraining,fer0000000.png,4,6\n",
                                     r"\['emotion', 'pixels'\]"),
}


@pytest.mark.parametrize("name", sorted(WRONG_CSVS))
def test_csv_with_wrong_columns_is_a_clear_error(name, tmp_path):
    from fer_hf.data import load_fer2013

    data, message = WRONG_CSVS[name]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ValueError, match=message):
        load_fer2013(path)


def test_header_only_csv_is_an_empty_result(tmp_path):
    from fer_hf.data import load_fer2013

    path = tmp_path / "fer2013.csv"
    path.write_bytes(b"\xef\xbb\xbfemotion,pixels,Usage\r\n\r\n")
    ds = load_fer2013(path)
    assert {split: len(ds[split]) for split in ds} == {"train": 0, "validation": 0, "test": 0}


def test_ferplus_csvs_with_wrong_columns_and_bad_rows(tmp_path):
    from fer_hf.data.ferplus import read_fer2013new, read_link_table

    votes = tmp_path / "fer2013new.csv"
    votes.write_bytes(b"Usage,Image name,neutral,happiness\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['surprise'"):
        read_fer2013new(votes)
    header = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"
    votes.write_bytes(("\ufeff" + header + "Training,fer0.png,10,0,0,0,0,0,0,0,0,0\n"
                       "Training,fer1.png,nan,0,0,0,0,0,0,0,0,0\nTraining,fer2.png,inf,0,0,0,0,0,0,0,0,0\n"
                       "Training,fer3.png,1\n" + "PublicTest,fer4.png," + "x" * 200_000 + ",0,0,0,0,0,0,0,0,0\n"
                       "PrivateTest,fer5.png,0,10,0,0,0,0,0,0,0,0\n").encode())
    rows = read_fer2013new(votes)
    assert [r[2] is not None for r in rows] == [True, False, False, False, False, True]  # row i stays row i
    link = tmp_path / "link.csv"
    link.write_text("image,usage,fer2013_row,match\n")
    assert read_link_table(link) == {}
    link.write_text("image,usage,fer2013_row,match\na.jpg,Training,12,unique\nb.jpg,Training,abc,unique\n"
                    "c.jpg,Training,nan,unique\nd.jpg,Training,-3,unique\ne.jpg,Training,inf,unique\nf.jpg\n"
                    "g.jpg,Training,,unmatched\n")
    table = read_link_table(link)
    assert table["a.jpg"][1] == 12 and table["g.jpg"] == ("Training", None, "unmatched")
    assert all(table[k][1] is None and "invalid" in table[k][2] for k in ("b.jpg", "c.jpg", "d.jpg", "e.jpg"))
    link.write_text("image,usage\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['fer2013_row', 'match'\]"):
        read_link_table(link)


# --------------------------------------------------------------------------------------- property-based

@st.composite
def image_arrays(draw):
    """(array, valid): shapes (H, W), (H, W, 1|3|4) (and invalid ones), dtypes uint8 / uint16 / float32 in
    [0, 1] or [0, 255] (and NaN / inf), H, W in 1..300, contents drawn from a seeded generator."""
    height, width = draw(st.integers(1, 300)), draw(st.integers(1, 300))
    layout = draw(st.sampled_from(["hw", "hw1", "hw3", "hw4", "hw2", "hw5", "4d", "empty"]))
    dtype = draw(st.sampled_from(["uint8", "uint16", "float01", "float255"]))
    pattern = draw(st.sampled_from(["random", "constant", "extremes", "checker"]))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    channels = {"hw": None, "hw1": 1, "hw3": 3, "hw4": 4, "hw2": 2, "hw5": 5, "4d": 3, "empty": 3}[layout]
    shape = (height, width) if channels is None else (height, width, channels)
    if layout == "4d":
        shape = (1,) + shape
    if layout == "empty":
        shape = (0, width, 3)
    top = {"uint8": 255, "uint16": 65535, "float01": 1.0, "float255": 255.0}[dtype]
    rng = np.random.default_rng(seed)
    if pattern == "random":
        unit = rng.random(shape)
    elif pattern == "constant":
        unit = np.full(shape, rng.random())
    elif pattern == "extremes":
        unit = rng.integers(0, 2, shape).astype(float)
    else:
        unit = (np.indices(shape).sum(0) % 2).astype(float)
    array = (unit * top).astype({"uint8": np.uint8, "uint16": np.uint16}.get(dtype, np.float32))
    non_finite = None
    if dtype.startswith("float") and array.size:
        non_finite = draw(st.sampled_from([None, None, np.nan, np.inf, -np.inf]))
        if non_finite is not None:
            array.flat[int(rng.integers(0, array.size))] = non_finite
    # (C, H, W) arrays are accepted too: (1|3|4, W, 2|5) is read as channels first
    shape_ok = layout in ("hw", "hw1", "hw3", "hw4") or (layout in ("hw2", "hw5") and height in (1, 3, 4))
    return array, shape_ok and non_finite is None


@hypothesis_settings(60)
@given(image_arrays(), st.sampled_from([(1, True), (3, True), (3, False)]))
def test_processor_on_arbitrary_arrays(drawn, config):
    from fer_hf.image_processing_fer import FerImageProcessor

    array, valid = drawn
    num_channels, grayscale = config
    processor = FerImageProcessor(num_channels=num_channels, do_grayscale=grayscale)
    if not valid:
        with pytest.raises(ValueError):
            processor(array, return_tensors="np")
        return
    pixel_values = processor(array, return_tensors="np")["pixel_values"]
    assert pixel_values.dtype == np.float32 and pixel_values.shape == (1, num_channels, 48, 48)
    low = (0 - np.array(processor.image_mean)) / np.array(processor.image_std)
    high = (1 - np.array(processor.image_mean)) / np.array(processor.image_std)
    assert np.isfinite(pixel_values).all()
    assert (pixel_values >= low.min() - 1e-5).all() and (pixel_values <= high.max() + 1e-5).all()


MODES = ["1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "I", "I;16",
         "I;16B", "I;16L", "F"]


@hypothesis_settings(80)
@given(st.sampled_from(MODES), st.integers(1, 120), st.integers(1, 120), st.integers(0, 2 ** 32 - 1),
       st.sampled_from([None, np.nan, np.inf]), st.integers(0, 8))
def test_processor_and_read_image_on_every_pil_mode(mode, width, height, seed, non_finite, orientation):
    from fer_hf.image_io import read_image
    from fer_hf.image_processing_fer import FerImageProcessor

    rng = np.random.default_rng(seed)
    if mode == "F":
        values = rng.random((height, width)).astype(np.float32) * float(rng.choice([1.0, 255.0]))
        if non_finite is not None:
            values.flat[int(rng.integers(0, values.size))] = non_finite
        image = Image.fromarray(values, "F")
    elif mode in ("I", "I;16", "I;16B", "I;16L"):
        values = rng.integers(0, 65536, (height, width))
        image = Image.frombytes(mode, (width, height), values.astype(
            {"I": "<i4", "I;16": "<u2", "I;16L": "<u2", "I;16B": ">u2"}[mode]).tobytes())
    elif mode == "1":
        image = Image.fromarray(rng.integers(0, 256, (height, width), dtype=np.uint8)).convert("1")
    else:
        size = len(Image.new(mode, (1, 1)).tobytes())  # bytes per pixel
        image = Image.frombytes(mode, (width, height), rng.integers(0, 256, width * height * size,
                                                                    dtype=np.uint8).tobytes())
    if orientation:
        image.getexif()[0x0112] = orientation
    invalid = mode == "F" and non_finite is not None
    for processor in (FerImageProcessor(), FerImageProcessor(num_channels=3, do_grayscale=False)):
        if invalid:
            with pytest.raises(ValueError, match=NON_FINITE):
                processor(image)
            continue
        pixel_values = processor(image, return_tensors="np")["pixel_values"]
        assert pixel_values.shape == (1, processor.num_channels, 48, 48) and np.isfinite(pixel_values).all()
    if invalid:
        with pytest.raises(ValueError, match=NON_FINITE):
            read_image(image)
    else:
        upright = read_image(image)
        assert upright.mode in ("L", "RGB")
        assert sorted(upright.size) == sorted(image.size)


@hypothesis_settings(150)
@given(st.sampled_from(sorted(ENCODINGS)), st.integers(0, 2 ** 32 - 1), st.floats(0, 1), st.integers(0, 6),
       st.integers(1, 90), st.integers(1, 90))
def test_read_image_agrees_with_pillow_on_damaged_files(key, seed, keep, flips, width, height):
    """Any cut and any byte flips of any encoding: a clear error exactly when Pillow cannot decode it."""
    from fer_hf.image_io import read_image

    fmt, options, _ = ENCODINGS[key]
    image = base_image(seed % 1000, (width, height))
    buffer = io.BytesIO()
    (image.quantize(64) if fmt == "GIF" else image).save(buffer, format=fmt, **options)
    data = bytearray(buffer.getvalue())
    rng = np.random.default_rng(seed)
    for _ in range(flips):
        data[int(rng.integers(0, len(data)))] = int(rng.integers(0, 256))
    data = bytes(data[: max(0, int(round(len(data) * keep)))] if keep < 1 else data)
    size = None
    try:
        with Image.open(io.BytesIO(data)) as probe:
            size = probe.size
    except Exception:  # noqa: BLE001
        pass
    assume(size is None or size[0] * size[1] <= 4_000_000)  # decodable giants are slow; the corpus covers them
    decodable = pillow_decodes(data)
    try:
        upright = read_image(io.BytesIO(data))
    except Exception as error:  # noqa: BLE001
        assert not decodable, f"Pillow decodes it but read_image raised {type(error).__name__}: {error}"
        assert clear_error_problem(error, ANY_IMAGE_PROBLEM) is None, clear_error_problem(error, ANY_IMAGE_PROBLEM)
    else:
        assert decodable and upright.mode in ("L", "RGB")


@hypothesis_settings(25)
@given(st.lists(st.sampled_from(FER2013_ROW_KINDS), max_size=14), st.integers(0, 1000), st.booleans(),
       st.booleans())
def test_fer2013_csv_loader_keeps_every_valid_row_and_reports_every_invalid_one(kinds, seed, bom, crlf):
    from fer_hf.data import load_fer2013_csv

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fer2013.csv"
        valid = write_fer2013_csv(path, kinds, seed=seed, bom=bom, newline="\r\n" if crlf else "\n")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = load_fer2013_csv(path)
    kept = sorted(int(i[3:]) for split in ds for i in ds[split]["image_id"])
    assert kept == [i for i, ok in enumerate(valid) if ok]
    assert sorted(int(i[3:]) for i in ds.dropped.reasons) == [i for i, ok in enumerate(valid) if not ok]


#: File kinds of the generated folder corpora: kind -> (bytes maker, valid).
def _folder_file(kind: str, rng) -> tuple:
    image = base_image(int(rng.integers(0, 1000)), (int(rng.integers(1, 60)), int(rng.integers(1, 60))))
    buffer = io.BytesIO()
    if kind == "png":
        image.save(buffer, format="PNG")
        return buffer.getvalue(), ".png", True
    if kind == "jpeg":
        image.save(buffer, format="JPEG")
        return buffer.getvalue(), ".jpg", True
    if kind == "gray-tiff-16":
        Image.fromarray(np.asarray(image.convert("L")).astype(np.uint16) * 257).save(buffer, format="TIFF")
        return buffer.getvalue(), ".tif", True
    if kind == "truncated":
        base_image(3, (64, 48)).save(buffer, format="PNG")
        data = buffer.getvalue()
        return data[: int(rng.integers(1, len(data) - 20))], ".png", False
    if kind == "empty":
        return b"", ".jpg", False
    if kind == "text":
        return b"<html>not an image</html>", ".jpg", False
    if kind == "huge-header":
        return png_header_only(20000, 20000), ".png", False
    if kind == "nan-tiff":
        Image.fromarray(np.full((5, 5), np.nan, np.float32)).save(buffer, format="TIFF")
        return buffer.getvalue(), ".tif", False
    raise ValueError(kind)


FOLDER_KINDS = ("png", "jpeg", "gray-tiff-16", "truncated", "empty", "text", "huge-header", "nan-tiff")


@hypothesis_settings(25)
@given(st.lists(st.sampled_from(FOLDER_KINDS), min_size=1, max_size=10), st.integers(0, 1000),
       st.sampled_from(["fer2013-folder", "fer2013-zip", "ckplus-folder", "ckplus-zip", "sfew-folder"]))
def test_folder_loaders_keep_every_valid_file_and_report_every_invalid_one(kinds, seed, loader):
    from fer_hf.data import load_ckplus, load_fer2013, load_sfew

    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "corpus"
        files = {}
        for i, kind in enumerate(kinds):
            data, suffix, valid = _folder_file(kind, rng)
            name = {"fer2013": f"train/happy/Training_{i:03d}{suffix}", "ckplus": f"happy/S{i:03d}_001_{i:08d}{suffix}",
                    "sfew": f"Train/Happy/Movie_{i:09d}_00000001{suffix}"}[loader.split("-")[0]]
            files[name] = valid
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)
        source = root
        if loader.endswith("zip"):
            source = Path(folder) / "corpus.zip"
            with zipfile.ZipFile(source, "w") as archive:
                for name in files:
                    archive.write(root / name, name)
        load = {"fer2013": load_fer2013, "ckplus": load_ckplus, "sfew": load_sfew}[loader.split("-")[0]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = load(source)
    kept = sorted(i for split in ds for i in ds[split]["image_id"])
    assert kept == sorted(n for n, ok in files.items() if ok)
    assert sorted(ds.dropped.reasons) == sorted(n for n, ok in files.items() if not ok)
