"""The Gradio app: its functions on real photos, the server through gradio_client, and the page in Chromium."""

import csv
import re
from itertools import pairwise

import numpy as np
import pytest
from PIL import Image

from fer_hf import FER2013_LABELS
from fer_hf.app.handlers import analyze_batch, analyze_frame, analyze_image, model_choices
from fer_hf.inference.results import table_fields

from conftest import SAMPLES, app_page, needs_chromium


def test_model_choices_lists_the_default_first():
    assert model_choices()[0] == "fer-ensemble-real"


def test_analyze_image_on_group_photo(tmp_path):
    annotated, table, chart, png, js, summary, gradcam = analyze_image(SAMPLES / "group.jpeg", output_dir=tmp_path)
    assert len(table) >= 4 and list(table.columns[-7:]) == FER2013_LABELS
    assert np.allclose(table[FER2013_LABELS].sum(axis=1), 1, atol=1e-3)
    assert len(chart) == 7 * len(table) and set(chart["emotion"]) == set(FER2013_LABELS)
    assert Image.open(png).size == Image.open(SAMPLES / "group.jpeg").size
    assert summary.startswith(f"{len(table)} face(s) found")
    assert gradcam == []  # Grad-CAM only when asked (explain=True, tests/test_explain.py)
    import json

    assert len(json.loads(open(js).read())) == len(table)
    with pytest.raises(ValueError):
        analyze_image(None)


def test_analyze_image_without_faces(tmp_path):
    _, table, chart, _, _, summary, _ = analyze_image(Image.new("RGB", (300, 200), "white"), output_dir=tmp_path)
    assert len(table) == 0 and len(chart) == 0 and summary.startswith("No face found")


def test_batch_keeps_going_past_a_corrupt_file(tmp_path):
    files = []
    for name in ("happy-baby.jpeg", "group.jpeg", "surprised.jpeg"):
        files.append(str(SAMPLES / name))
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes((SAMPLES / "neutral.jpeg").read_bytes()[:200])  # truncated JPEG
    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 200), "gray").save(blank)
    files.insert(1, str(corrupt))
    files.append(str(blank))
    calls = []
    gallery, csv_path, table, summary = analyze_batch(files, output_dir=tmp_path / "out",
                                                      progress=lambda f, desc=None: calls.append(f))
    assert calls[-1] == 1.0 and len(calls) == len(files) + 1
    rows = list(csv.DictReader(open(csv_path)))
    assert list(rows[0]) == table_fields(FER2013_LABELS)
    by_file = {}
    for row in rows:
        by_file.setdefault(row["file"], []).append(row)
    assert by_file["corrupt.jpg"][0]["status"].startswith("error:") and len(by_file["corrupt.jpg"]) == 1
    assert by_file["blank.png"][0]["status"] == "no face"
    assert len(by_file["group.jpeg"]) >= 4 and all(r["status"] == "ok" for r in by_file["group.jpeg"])
    assert by_file["happy-baby.jpeg"][0]["top_emotion"] == "happy"
    assert len(gallery) == 4  # every readable file, the corrupt one excluded
    assert "1 unreadable" in summary and len(table) == len(rows)


def test_webcam_frames_report_fps():
    frame = np.asarray(Image.open(SAMPLES / "surprised.jpeg").convert("RGB"))
    state = {}
    for _ in range(3):
        annotated, text, state = analyze_frame(frame, state=state)
    assert annotated.ndim == 3 and max(annotated.shape[:2]) == 480
    assert "frames/s achieved" in text and "1 face(s)" in text and len(state["stamps"]) == 3
    assert "frames processed: 3" in text and state["frames"] == 3
    assert "#1 " in text  # the face keeps track id 1 across frames
    assert analyze_frame(None)[0] is None


def test_webcam_detects_every_n_frames_and_mirrors():
    from fer_hf.app import handlers as app_functions

    photo = Image.open(SAMPLES / "group.jpeg").convert("RGB")
    frame = np.asarray(photo)
    state = {}
    outputs = [analyze_frame(frame, state=state, detect_every=2, mirror=True) for _ in range(1)]
    state = outputs[-1][2]
    for _ in range(3):
        outputs.append(analyze_frame(frame, state=state, detect_every=2, mirror=True))
        state = outputs[-1][2]
    analyzer = app_functions._live_sessions[state["session"]][1]
    assert analyzer.frames == 4 and analyzer.detect_every == 2 and analyzer.mirror
    # the same faces (4 tracks) on every frame, detected on frames 0 and 2 only
    assert all(text.count("#") == 4 for _, text, _ in outputs), [t for _, t, _ in outputs]
    plain = analyze_frame(frame, state={})[0]
    np.testing.assert_array_equal(outputs[0][0][:, ::-1].shape, plain.shape)
    assert np.abs(outputs[0][0][:, ::-1].astype(int) - plain.astype(int)).mean() < 40  # mirrored, same content
    # changing a setting gives the stream a fresh analyzer
    analyze_frame(frame, state=state, detect_every=1, mirror=True)
    assert app_functions._live_sessions[state["session"]][1].detect_every == 1


def test_concurrent_requests_keep_their_own_detector():
    """Two visitors with different detectors at the same time: each result is the one its own settings give."""
    from concurrent.futures import ThreadPoolExecutor

    photo = SAMPLES / "group.jpeg"
    expected = {det: analyze_image(photo, detector=det, min_face_size=size).summary
                for det, size in (("mtcnn", 20), ("haar", 60))}
    assert expected["mtcnn"] != expected["haar"]
    jobs = [("mtcnn", 20), ("haar", 60)] * 4
    with ThreadPoolExecutor(4) as pool:
        summaries = list(pool.map(lambda job: analyze_image(photo, detector=job[0], min_face_size=job[1]).summary, jobs))
    assert summaries == [expected[det] for det, _ in jobs]


def write_moving_face_y4m(path, face=SAMPLES / "happy-baby.jpeg", size=(640, 480), fps=15, seconds=3,
                          face_height=260):
    """A YUV4MPEG2 (4:2:0) video of ``face`` sliding left and right across a gray ``size`` frame, for
    Chromium's fake camera (``--use-file-for-fake-video-capture``, which loops it)."""
    width, height = size
    image = Image.open(face).convert("RGB")
    image = image.resize((round(image.width * face_height / image.height), face_height), Image.BILINEAR)
    n = fps * seconds
    span = width - image.width
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(n):
            phase = i / n  # there and back, so the loop has no jump
            x = round(span * (2 * phase if phase < 0.5 else 2 - 2 * phase))
            y = (height - image.height) // 2 + round(20 * np.sin(2 * np.pi * phase))
            frame = Image.new("RGB", size, (128, 128, 128))
            frame.paste(image, (x, y))
            ycc = np.asarray(frame.convert("YCbCr"), dtype=np.float32)
            chroma = ycc[:, :, 1:].reshape(height // 2, 2, width // 2, 2, 2).mean(axis=(1, 3))
            out.write(b"FRAME\n")
            out.write(ycc[:, :, 0].round().astype(np.uint8).tobytes())
            out.write(chroma[:, :, 0].round().astype(np.uint8).tobytes())
            out.write(chroma[:, :, 1].round().astype(np.uint8).tobytes())
    return path


def test_moving_face_y4m_is_a_valid_4_2_0_stream(tmp_path):
    path = write_moving_face_y4m(tmp_path / "face.y4m", seconds=1)
    data = path.read_bytes()
    header, rest = data.split(b"\n", 1)
    assert header == b"YUV4MPEG2 W640 H480 F15:1 Ip A1:1 C420jpeg"
    frame_bytes = len(b"FRAME\n") + 640 * 480 * 3 // 2
    assert len(rest) == 15 * frame_bytes and rest.startswith(b"FRAME\n")
    y0 = np.frombuffer(rest[6:6 + 640 * 480], np.uint8).reshape(480, 640)
    y5 = np.frombuffer(rest[5 * frame_bytes + 6:5 * frame_bytes + 6 + 640 * 480], np.uint8).reshape(480, 640)
    assert y0[0, 0] == 128 and y0.std() > 10 and np.abs(y0.astype(int) - y5).mean() > 5  # a face, and it moves


@pytest.mark.slow
def test_server_through_gradio_client(server):
    from gradio_client import Client, handle_file

    client = Client(server, verbose=False)
    annotated, table, chart, png, js, summary, gradcam = client.predict(
        handle_file(str(SAMPLES / "group.jpeg")), "fer-vgg-fer2013", "mtcnn", 20, api_name="/analyze_image")
    assert "face(s) found" in summary and int(summary.split()[0]) >= 4
    assert len(table["data"]) >= 4
    assert Image.open(png).size == (1280, 853)
    gallery, csv_file, batch_table, batch_summary = client.predict(
        [handle_file(str(SAMPLES / "happy-baby.jpeg")), handle_file(str(SAMPLES / "surprised.jpeg"))],
        "fer-vgg-fer2013", "haar", 30, api_name="/analyze_batch")
    assert len(gallery) == 2 and batch_summary.startswith("2 file(s)")
    assert open(csv_file).read().startswith("file,face_index")


@pytest.mark.slow
def test_a_typed_model_that_is_not_fer_hf_gets_a_clear_message(server, tmp_path):
    """A visitor types a folder whose config names another model type (with code that would write a file
    if it ran): the app answers with the reason, and nothing of that folder runs on the server."""
    import json
    import shutil

    from gradio_client import Client, handle_file

    from fer_hf.models.hub import MODEL_CARDS_DIR

    from conftest import FER2013_MODEL

    folder = tmp_path / "other_model"
    shutil.copytree(MODEL_CARDS_DIR / FER2013_MODEL, folder)  # a fer_vgg folder: its code files are named so
    marker = tmp_path / "code_ran"
    (folder / "modeling_fer_vgg.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n"
                                                + (folder / "modeling_fer_vgg.py").read_text())
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "other_model"
    (folder / "config.json").write_text(json.dumps(config))
    client = Client(server, verbose=False)
    with pytest.raises(Exception, match="not a fer_hf model"):
        client.predict(handle_file(str(SAMPLES / "angry.jpg")), str(folder), "mtcnn", 20, api_name="/analyze_image")
    assert not marker.exists()


@pytest.mark.slow
@needs_chromium
def test_page_in_headless_chromium(server, tmp_path):
    from playwright.sync_api import expect

    with app_page(server, tmp_path, "image") as page:
        page.locator("input[type=file]").first.set_input_files(str(SAMPLES / "group.jpeg"))
        page.wait_for_timeout(1500)
        page.get_by_role("button", name="Find expressions").click()
        summary = page.get_by_text("face(s) found with mtcnn")
        expect(summary).to_be_visible(timeout=120_000)
        assert int(summary.inner_text().split()[0]) >= 4
        # the annotated output: a second served image next to the uploaded one, with a Download link
        expect(page.get_by_role("link", name="Download").first).to_be_visible(timeout=30_000)
        served = page.locator("img[src*='/gradio_api/file=']")
        assert served.count() >= 2
        width = served.last.evaluate("img => img.naturalWidth")
        assert width == 1280
        chart = page.locator("#image-chart")
        expect(chart).to_contain_text("neutral", timeout=30_000)
        # switch to the released FER+ model (Settings): the table and the chart gain contempt, which the
        # chart's legend shows although the first model drawn had no such class
        page.get_by_role("button", name="Settings").first.click()
        page.get_by_role("combobox").first.click()
        page.get_by_role("option", name="fer-vgg-ferplus").click()
        page.get_by_role("button", name="Find expressions").click()
        expect(page.get_by_role("columnheader", name="contempt")).to_be_visible(timeout=120_000)
        expect(chart).to_contain_text("contempt", timeout=30_000)
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)


WEBCAM_READOUT = re.compile(r"([0-9.]+) frames/s achieved · frames processed: (\d+)")


@pytest.mark.slow
@needs_chromium
def test_webcam_stream_in_headless_chromium(server, tmp_path):
    """Chromium's fake camera plays a face moving across the frame; once the user starts the stream, the
    server keeps processing frames: the processed-frame count keeps rising and the rate is not zero."""
    from playwright.sync_api import expect

    video = write_moving_face_y4m(tmp_path / "face.y4m")
    with app_page(server, tmp_path, "webcam", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                  f"--use-file-for-fake-video-capture={video}") as page:
        page.get_by_role("tab", name="Webcam").click()
        # what Gradio 6 shows: "Click to Access Webcam", then the webcam's "Record" button (aria-label
        # "capture photo"), which turns into "Stop" once the stream is open
        page.get_by_role("button", name="Click to Access Webcam").click()
        record = page.get_by_role("button", name="capture photo")
        expect(record).to_have_text(re.compile("Record"), timeout=30_000)
        record.click()
        expect(record).to_have_text(re.compile("Stop"), timeout=60_000)
        readout = page.get_by_text(WEBCAM_READOUT)
        expect(readout).to_be_visible(timeout=60_000)
        reads, texts = [], []
        for _ in range(6):
            page.wait_for_timeout(3_000)
            text = readout.inner_text()
            texts.append(text)
            fps, frames = WEBCAM_READOUT.search(text).groups()
            reads.append((int(frames), float(fps)))
        counts = [frames for frames, _ in reads]
        assert all(b > a for a, b in pairwise(counts)), reads
        assert len(counts) - 1 >= 3 and reads[-1][1] > 0, reads
        # the moving face is found and followed with a track id (it may be between detections or at the
        # frame's edge in a single reading)
        assert sum(" face(s): #" in text for text in texts) >= 3, texts
        # the annotated stream is shown next to the webcam, as served files
        assert page.locator("img[src*='/gradio_api/file=']").count() >= 1


def test_ensemble_members_shown_beside_the_ensemble(tmp_path, fer2013_recognizer):
    """A typed ensemble folder: the Image tab's summary lists each face's ensemble prediction and every
    member's own, and a member's column is that member's prediction alone."""
    import copy

    import torch

    from fer_hf.models.ensemble import FerEnsembleForImageClassification

    base = fer2013_recognizer.model
    other = copy.deepcopy(base)
    with torch.no_grad():  # a second member that disagrees: its classifier favours "surprise"
        last = [m for m in other.modules() if isinstance(m, torch.nn.Linear)][-1]
        last.bias[5] += 20.0
    ensemble = FerEnsembleForImageClassification.from_members(
        [base, other], [fer2013_recognizer.image_processor] * 2, names=["released", "surprised"],
        member_weights=[0.7, 0.3])
    folder = tmp_path / "ensemble"
    ensemble.save_pretrained(folder)
    fer2013_recognizer.image_processor.save_pretrained(folder)
    photo = SAMPLES / "group.jpeg"
    summary = analyze_image(photo, model=str(folder), detector="mtcnn").summary
    assert "| face | ensemble | released (weight 0.70) | surprised (weight 0.30) |" in summary
    fer2013_recognizer.set_options(detector="mtcnn", min_face_size=20)
    alone = fer2013_recognizer.predict(photo)
    rows = [line for line in summary.splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(rows) == len(alone) == 4
    for row, face in zip(rows, alone):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[2] == f"{face['top_emotion']} {face['top_score']:.0%}"
        assert cells[3].startswith("surprise")
    # an ensemble whose answer is shifted by a logit adjustment says so above its column; the members' stay their own
    ensemble.config.logit_adjustment = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0]
    ensemble.save_pretrained(tmp_path / "adjusted")  # another folder: the app keeps loaded models by path
    fer2013_recognizer.image_processor.save_pretrained(tmp_path / "adjusted")
    adjusted = analyze_image(photo, model=str(tmp_path / "adjusted"), detector="mtcnn").summary
    assert "| face | ensemble (prior-adjusted) | released (weight 0.70) |" in adjusted
    rows = [line for line in adjusted.splitlines() if re.match(r"\| \d+ \|", line)]
    assert all(c.strip().startswith("neutral") for c in (r.strip("|").split("|")[1] for r in rows))
