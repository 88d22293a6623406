"""The live (webcam) path: detection every N frames, faces carried and tracked in between, on real photos."""

import numpy as np
import pytest
from PIL import Image

from conftest import SAMPLES
from fer_hf.inference.drawing import draw_probability_bars
from fer_hf.inference.live import LiveFaceAnalyzer, measure_live_path


@pytest.fixture(scope="module")
def group():
    return Image.open(SAMPLES / "group.jpeg").convert("RGB")


def test_detection_frames_match_predict(default_recognizer, group):
    default_recognizer.set_options(detector="mtcnn", min_face_size=20)
    analyzer = LiveFaceAnalyzer(default_recognizer, detect_every=1, max_side=None, bars=False)
    annotated, faces = analyzer.process(np.asarray(group))
    expected = default_recognizer.predict(group)
    assert annotated.shape == (group.height, group.width, 3) and annotated.dtype == np.uint8
    assert len(faces) == len(expected) == 4
    for face, reference in zip(faces, expected):
        assert face["box"] == reference["box"]
        assert face["top_emotion"] == reference["top_emotion"]
        np.testing.assert_allclose(list(face["emotions"].values()), list(reference["emotions"].values()), atol=2e-4)
        assert face["detected"] is True
    assert sorted(f["track_id"] for f in faces) == [1, 2, 3, 4]


def test_faces_carried_between_detections_keep_their_track(default_recognizer, group):
    default_recognizer.set_options(detector="mtcnn", min_face_size=20)
    calls = []
    original = default_recognizer._detect

    def counting_detect(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    default_recognizer._detect = counting_detect
    try:
        analyzer = LiveFaceAnalyzer(default_recognizer, detect_every=3, max_side=None, bars=False)
        frames = []
        for shift in range(6):  # the photo moves 2 px right per frame
            frame = Image.new("RGB", group.size)
            frame.paste(group, (2 * shift, 0))
            frames.append(analyzer.process(np.asarray(frame))[1])
    finally:
        default_recognizer._detect = original
    assert len(calls) == 2  # frames 0 and 3
    assert [f[0]["detected"] for f in frames] == [True, False, False, True, False, False]
    ids = [[face["track_id"] for face in faces] for faces in frames]
    assert all(i == ids[0] for i in ids) and len(ids[0]) == 4
    # a carried face keeps the box of the last detection; the next detection moves it
    assert frames[1][0]["box"] == frames[0][0]["box"] == frames[2][0]["box"]
    # (the photo moved 6 px; MTCNN boxes jitter by a few pixels)
    assert frames[3][0]["box"][0] in range(frames[0][0]["box"][0] + 1, frames[0][0]["box"][0] + 12)


def test_mirror_and_downscale(default_recognizer, group):
    default_recognizer.set_options(detector="mtcnn", min_face_size=20)
    plain = LiveFaceAnalyzer(default_recognizer, max_side=640, bars=False)
    mirrored = LiveFaceAnalyzer(default_recognizer, max_side=640, mirror=True, bars=False)
    image_a, faces_a = plain.process(group)
    image_b, faces_b = mirrored.process(group)
    assert max(image_a.shape[:2]) == 640 and image_a.shape == image_b.shape
    width = image_a.shape[1]
    # the mirrored frame's faces are the plain frame's, reflected (left to right order reversed)
    centres_a = sorted(f["box"][0] + f["box"][2] / 2 for f in faces_a)
    centres_b = sorted(width - (f["box"][0] + f["box"][2] / 2) for f in faces_b)
    assert len(centres_a) == len(centres_b) == 4
    np.testing.assert_allclose(centres_a, centres_b, atol=6)


def test_smoothing_averages_per_track(default_recognizer):
    default_recognizer.set_options(detector="mtcnn", min_face_size=20)

    happy = Image.open(SAMPLES / "happy-baby.jpeg").convert("RGB")
    # the same place with another expression: the sad baby's face pasted over the happy one (with a margin, so
    # the detector frames the pasted face as it framed the first), so one track sees its probabilities change
    x, y, w, h = default_recognizer.predict(happy)[0]["box"]
    sad_photo = Image.open(SAMPLES / "sad-baby.jpeg").convert("RGB")
    sx, sy, sw, sh = default_recognizer.predict(sad_photo)[0]["box"]
    mx, my = w // 4, h // 4
    crop = sad_photo.crop((sx - sw // 4, sy - sh // 4, sx + sw + sw // 4, sy + sh + sh // 4))
    sad = happy.copy()
    sad.paste(crop.resize((w + 2 * mx, h + 2 * my)), (x - mx, y - my))
    raw = LiveFaceAnalyzer(default_recognizer, detect_every=1, max_side=480, bars=False)
    smooth = LiveFaceAnalyzer(default_recognizer, detect_every=1, max_side=480, smoothing=0.5, bars=False)
    p_happy = np.array(list(raw.process(happy)[1][0]["emotions"].values()))
    raw.reset()
    p_sad_raw = np.array(list(raw.process(sad)[1][0]["emotions"].values()))
    smooth.process(happy)
    faces = smooth.process(sad)[1]
    assert faces[0]["track_id"] == 1  # the same face continues the track
    # the frames really differ: the average is at least 0.05 from either frame, 25x the tolerance below
    assert np.abs(p_happy - p_sad_raw).max() > 0.1
    np.testing.assert_allclose(list(faces[0]["emotions"].values()), 0.5 * p_happy + 0.5 * p_sad_raw, atol=2e-3)


def test_bars_drawn_and_arguments_checked(default_recognizer, group):
    faces = default_recognizer.predict(group)
    canvas = group.copy()
    draw_probability_bars(canvas, faces)
    assert np.abs(np.asarray(canvas, np.int16) - np.asarray(group, np.int16)).sum() > 0
    assert draw_probability_bars(group.copy(), []).tobytes() == group.tobytes()
    with pytest.raises(ValueError, match="detect_every"):
        LiveFaceAnalyzer(default_recognizer, detect_every=0)
    with pytest.raises(ValueError, match="smoothing"):
        LiveFaceAnalyzer(default_recognizer, smoothing=1.0)


def test_measure_live_path(default_recognizer):
    default_recognizer.set_options(detector="mtcnn", min_face_size=20)
    frame = Image.open(SAMPLES / "surprised.jpeg").convert("RGB").resize((640, 427))
    result = measure_live_path(default_recognizer, frame, frames=3, detect_every=1, warmup=1)
    assert result["faces"] == 1 and result["ms_per_frame"] > 0 and result["ms_p95"] >= result["ms_per_frame"] * 0.5


def test_benchmark_command_measures_the_photo(tmp_path, capsys):
    import json

    from fer_hf.cli.commands import main

    out = tmp_path / "bench.json"
    assert main(["benchmark", "--image", str(SAMPLES / "group.jpeg"), "--repeats", "2", "--batch-size", "8",
                 "--threads", "1", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["faces_in_image"] == 4 and result["detector"] == "blazeface-full" and result["torch_threads"] == 1
    assert result["classifier_faces_per_s_batch_1"] > 0 and result["classifier_faces_per_s_batch_8"] > 0
    assert result["photo_ms"] > 0 and result["live_path_640x480"]["faces"] >= 1
    blank = tmp_path / "blank.png"
    Image.new("RGB", (320, 240), (120, 120, 120)).save(blank)
    assert main(["benchmark", "--image", str(blank), "--repeats", "1"]) == 2
    assert "no face found" in capsys.readouterr().err
