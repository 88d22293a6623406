"""Video analysis (fer_hf.inference.video) and face tracking (fer_hf.detection.tracking) on the real sample video and on videos
written here with PyAV (rotated, variable frame rate, audio only, long 720p)."""

import csv
import json
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from fer_hf.detection.tracking import FaceTracker, iou_matrix
from fer_hf.inference.video import (H264Writer, VideoAnalysis, analyze_video, is_video_path, iter_video_frames,
                                    probe_video, timeline_headers)

from conftest import REPO, SAMPLES

SLIDESHOW = SAMPLES / "cc0_faces_slideshow.mp4"
LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
# the slideshow (640x360, 15 fps, 8 s): 2 s each of one surprised face, a laughing baby, a crying baby, then a
# meeting with 4 people; each picture is still (a slow zoom at most)
SCENES = [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0), (6.0, 8.0)]


# ------------------------------------------------------------------------------------------------ tracker

def test_iou_matrix_values():
    iou = iou_matrix([[0, 0, 10, 10], [100, 100, 5, 5]], [[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 5, 5]])
    assert iou.shape == (2, 3)
    np.testing.assert_allclose(iou, [[1.0, 50 / 150, 0.0], [0.0, 0.0, 0.0]])
    assert iou_matrix(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)
    with pytest.raises(ValueError, match="shape"):
        iou_matrix([[0, 0, 1]], [[0, 0, 1, 1]])


def test_tracker_keeps_ids_through_motion_swaps_and_short_misses():
    tracker = FaceTracker(iou_threshold=0.3, max_missed=2)
    assert tracker.update([[10, 10, 50, 50], [200, 10, 50, 50]]) == [1, 2]
    # both move a little and come in the other order: matched by overlap, not by position in the list
    assert tracker.update([[205, 12, 50, 50], [14, 11, 50, 50]]) == [2, 1]
    # face 2 is missed twice (= max_missed): it survives and keeps its id; a new face gets id 3
    assert tracker.update([[16, 12, 50, 50]]) == [1]
    assert tracker.update([[18, 12, 50, 50], [400, 300, 40, 40]]) == [1, 3]
    assert set(tracker.tracks) == {1, 2, 3} and tracker.tracks[2] == [205, 12, 50, 50]
    assert tracker.update([[20, 12, 50, 50], [206, 12, 50, 50], [401, 300, 40, 40]]) == [1, 2, 3]
    # now face 3 is gone for 3 updates (> max_missed): it expires, and a face at its place gets a new id
    for _ in range(3):
        assert tracker.update([[20, 12, 50, 50]]) == [1]
    assert 3 not in tracker.tracks
    assert tracker.update([[20, 12, 50, 50], [401, 300, 40, 40]]) == [1, 4]
    assert tracker.update([]) == []
    tracker.reset()
    assert tracker.tracks == {} and tracker.update([[0, 0, 5, 5]]) == [1]


def test_tracker_rejects_bad_settings_and_boxes():
    with pytest.raises(ValueError):
        FaceTracker(iou_threshold=0)
    with pytest.raises(ValueError):
        FaceTracker(max_missed=-1)
    with pytest.raises(ValueError, match="shape"):
        FaceTracker().update([[1, 2, 3]])


# ------------------------------------------------------------------------------------------------ sample video

@pytest.fixture(scope="module")
def slideshow(default_recognizer, tmp_path_factory):
    """The sample slideshow analysed at 2 frames per second, with an annotated video and progress calls."""
    out = tmp_path_factory.mktemp("slideshow")
    calls = []
    result = analyze_video(SLIDESHOW, default_recognizer, sample_fps=2, output_video=out / "annotated.mp4",
                           progress=lambda fraction, desc=None: calls.append((fraction, desc)))
    return result, calls, out


def _frames_of(rows):
    """{frame_index: [rows]} in order."""
    frames = {}
    for row in rows:
        frames.setdefault(row["frame_index"], []).append(row)
    return frames


def test_probe_sample_video():
    assert probe_video(SLIDESHOW) == {"duration_s": 8.0, "fps": 15.0, "width": 640, "height": 360, "frames": 120,
                                      "rotation": 0, "codec": "h264"}
    assert is_video_path(SLIDESHOW) and is_video_path("A.MOV") and not is_video_path(SAMPLES / "group.jpeg")


def test_timeline_has_every_sampled_frame_in_time_order(slideshow):
    result, calls, _ = slideshow
    assert (result.frames_decoded, result.frames_sampled, result.fps, result.duration_s) == (120, 16, 15.0, 8.0)
    assert (result.width, result.height, result.labels, result.decode_errors) == (640, 360, LABELS, 0)
    frames = _frames_of(result.rows)
    assert len(frames) == 16  # every sampled frame is in the timeline
    times = [rows[0]["time_s"] for rows in frames.values()]
    assert all(b > a for a, b in zip(times, times[1:]))
    # one frame at or just after every half second (15 fps: within one frame)
    assert all(k * 0.5 <= t < k * 0.5 + 1 / 15 for k, t in enumerate(times))
    assert [index for index in frames] == [round(t * 15) for t in times]
    for row in result.rows:
        assert list(row) == timeline_headers(LABELS) and row["status"] == "ok"
        assert abs(sum(row[n] for n in LABELS) - 1) < 2e-3
        assert row["top_emotion"] == max(LABELS, key=lambda n: row[n]) and row["top_score"] == row[row["top_emotion"]]
        assert 0 <= row["box_x"] and row["box_x"] + row["box_w"] <= 640 and row["box_y"] + row["box_h"] <= 360
        assert 0.9 <= row["detector_score"] <= 1
    # progress: once per analysed frame, fractions rising, then 1.0 "done"
    fractions = [f for f, _ in calls]
    assert len(calls) == 17 and fractions[-1] == 1.0 and calls[-1][1] == "done"
    assert all(b >= a for a, b in zip(fractions, fractions[1:])) and 0 <= fractions[0] < 0.1


def test_track_ids_are_stable_on_still_faces_and_change_at_scene_cuts(slideshow):
    result, _, _ = slideshow
    frames = _frames_of(result.rows)
    scene_ids = []
    for start, end in SCENES[:3]:  # one face per picture
        rows = [r for rows in frames.values() for r in rows if start <= r["time_s"] < end]
        assert len(rows) == 4, rows  # 4 frames, one face each
        ids = {r["track_id"] for r in rows}
        assert len(ids) == 1, rows
        scene_ids.append(ids.pop())
    assert len(set(scene_ids)) == 3  # a cut to another face starts a new track
    assert all(r["top_emotion"] == "happy" for r in result.rows if 2.0 <= r["time_s"] < 4.0)
    meeting = [rows for rows in frames.values() if rows[0]["time_s"] >= 6.0]
    assert len(meeting) == 4 and all(len(rows) >= 3 for rows in meeting)
    everywhere = set.intersection(*[{r["track_id"] for r in rows} for rows in meeting])
    assert len(everywhere) >= 3 and not everywhere & set(scene_ids)  # the seated people keep their ids
    tracks = result.tracks()
    assert tracks[scene_ids[1]]["top_emotion"] == "happy" and tracks[scene_ids[1]]["frames"] == 4
    assert f"#{scene_ids[1]}: mostly happy" in result.summary()


def test_annotated_video_is_browser_h264_with_the_sampled_frames(slideshow):
    result, _, out = slideshow
    path = out / "annotated.mp4"
    assert result.output_video == str(path)
    data = path.read_bytes()
    assert 0 < data.find(b"moov") < data.find(b"mdat")  # +faststart: the index first
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        assert (stream.width, stream.height) == (640, 360) and not container.streams.audio
        decoded = [(frame.time, frame.to_ndarray(format="rgb24")) for frame in container.decode(stream)]
    frames = _frames_of(result.rows)
    assert len(decoded) == 16
    np.testing.assert_allclose([t for t, _ in decoded], [rows[0]["time_s"] for rows in frames.values()], atol=1e-3)
    # the frames are annotated: the laughing baby's box edge is drawn, the far left of the picture is untouched
    k = next(i for i, index in enumerate(frames) if frames[index][0]["time_s"] >= 2.0)
    row = frames[list(frames)[k]][0]
    with av.open(str(SLIDESHOW)) as container:
        source = next(f.to_ndarray(format="rgb24") for i, f in enumerate(container.decode(video=0))
                      if i == row["frame_index"])
    annotated = decoded[k][1].astype(int)
    x, y, w = row["box_x"], row["box_y"], row["box_w"]
    edge = np.abs(annotated[y:y + 2, x + 5:x + w - 5] - source[y:y + 2, x + 5:x + w - 5]).mean()
    untouched = np.abs(annotated[:, :150] - source[:, :150]).mean()
    assert edge > 40 and untouched < 6, (edge, untouched)


def test_csv_and_json_hold_the_rows(slideshow, tmp_path):
    result, _, _ = slideshow
    with open(result.to_csv(tmp_path / "timeline.csv"), newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == timeline_headers(LABELS)
        rows = list(reader)
    assert len(rows) == len(result.rows)
    for written, row in zip(rows, result.rows):
        assert written["top_emotion"] == row["top_emotion"] and int(written["track_id"]) == row["track_id"]
        assert [float(written[k]) for k in ["time_s", "box_x", "box_w", *LABELS]] == \
            [row[k] for k in ["time_s", "box_x", "box_w", *LABELS]]
    document = json.loads(result.to_json(tmp_path / "timeline.json").read_text())
    assert document["rows"] == result.rows and document["labels"] == LABELS
    assert (document["fps"], document["duration_s"], document["frames_sampled"], document["sample_fps"]) == \
        (15.0, 8.0, 16, 2.0)
    frame = result.to_dataframe()
    assert list(frame.columns) == timeline_headers(LABELS) and len(frame) == len(result.rows)


def test_plot_has_one_panel_per_track(slideshow, tmp_path):
    result, _, _ = slideshow
    n_tracks = len(result.tracks())
    assert n_tracks >= 6
    with Image.open(result.plot(tmp_path / "emotions.png")) as image:  # 10 x (1 + 2.2 per panel) inches at 100 dpi
        assert image.format == "PNG" and image.size == (1000, round(100 * (1.0 + 2.2 * min(6, n_tracks))))
        pixels = np.asarray(image.convert("RGB"))
    happy = np.all(np.abs(pixels.astype(int) - (250, 190, 0)) < 30, axis=-1).sum()
    assert happy > 500  # the "happy" line (and legend) is drawn in its colour
    with Image.open(result.plot(tmp_path / "two.png", max_tracks=2)) as image:
        assert image.size == (1000, round(100 * (1.0 + 2.2 * 2)))


def test_iter_video_frames_streams_sampled_upright_frames(slideshow):
    result, _, _ = slideshow
    samples = list(iter_video_frames(SLIDESHOW, 2, max_side=320))
    assert [s.time_s for s in samples] == [rows[0]["time_s"] for rows in _frames_of(result.rows).values()]
    assert all(s.image.size == (320, 180) and s.image.mode == "RGB" for s in samples)
    first_second = list(iter_video_frames(SLIDESHOW, max_duration_s=1.0))
    assert len(first_second) == 16 and first_second[-1].time_s == 1.0 and first_second[0].index == 0


# ------------------------------------------------------------------------------------------------ written here

def _write_video(path, images_and_times, rate=10, time_base=Fraction(1, 1000), rotation=None):
    """An H.264 MP4 of (PIL image, time in s) pairs, optionally with a display rotation (counter-clockwise)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate, options={"preset": "ultrafast"})
        first = images_and_times[0][0]
        stream.width, stream.height, stream.pix_fmt = first.width, first.height, "yuv420p"
        stream.codec_context.time_base = time_base
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for image, t in images_and_times:
            frame = av.VideoFrame.from_image(image)
            frame.pts, frame.time_base = round(t / time_base), time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def test_variable_frame_rate_video_without_faces(default_recognizer, tmp_path):
    times = [0.0, 0.04, 0.08, 0.5, 0.52, 1.3, 1.31, 2.05]
    path = _write_video(tmp_path / "vfr.mp4", [(Image.new("RGB", (160, 120), (90, 120, 90)), t) for t in times])
    every = analyze_video(path, default_recognizer, progress=False, output_video=tmp_path / "every.mp4")
    assert [r["time_s"] for r in every.rows] == times and [r["frame_index"] for r in every.rows] == list(range(8))
    assert all(r["status"] == "no face" and r["track_id"] is None and r["happy"] is None for r in every.rows)
    with av.open(str(tmp_path / "every.mp4")) as container:
        np.testing.assert_allclose([f.time for f in container.decode(video=0)], times, atol=1e-3)
    # one per second: the first frame at or after 0 s, 1 s and 2 s
    sampled = analyze_video(path, default_recognizer, sample_fps=1, progress=False,
                            output_video=tmp_path / "smooth.mp4", annotate_all_frames=True)
    assert [r["time_s"] for r in sampled.rows] == [0.0, 1.3, 2.05] and sampled.frames_sampled == 3
    with av.open(str(tmp_path / "smooth.mp4")) as container:  # annotate_all_frames: every frame is in the video
        assert sum(1 for _ in container.decode(video=0)) == 8
    with open(sampled.to_csv(tmp_path / "t.csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["track_id"], r["box_x"], r["status"]) for r in rows] == [("", "", "no face")] * 3
    with Image.open(sampled.plot(tmp_path / "none.png")) as image:
        assert image.size == (1000, 320)  # a single panel saying no face was found
    assert "3 analysed frame(s) without a face" in sampled.summary()


def test_rotation_metadata_is_applied(default_recognizer, tmp_path):
    """A phone-style video: frames stored sideways plus a display matrix; faces are found upright."""
    face = Image.open(SAMPLES / "happy-baby.jpeg").convert("RGB")
    face = face.resize((540, 360), Image.BILINEAR)
    stored = face.transpose(Image.Transpose.ROTATE_90)  # 360x540, lying on its side
    path = _write_video(tmp_path / "phone.mp4", [(stored, t) for t in (0.0, 0.1, 0.2)], rotation=-90)
    assert probe_video(path)["rotation"] == -90 and probe_video(path)["width"] == 540
    result = analyze_video(path, default_recognizer, progress=False, output_video=tmp_path / "upright.mp4")
    assert len(result.rows) == 3 and (result.width, result.height) == (540, 360)
    assert all(r["status"] == "ok" and r["top_emotion"] == "happy" and r["track_id"] == 1 for r in result.rows)
    assert all(r["box_w"] < r["box_h"] * 1.3 and 150 < r["box_x"] + r["box_w"] / 2 < 400 for r in result.rows)
    assert probe_video(tmp_path / "upright.mp4")["width"] == 540


def _audio_only_mp4(path):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        stream.layout = "mono"
        tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.float32)[None, :]
        for start in range(0, 16000, 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, start:start + 1024]), format="fltp",
                                               layout="mono")
            frame.sample_rate, frame.pts = 16000, start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def test_files_that_are_not_usable_videos_raise_clear_errors(default_recognizer, tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    with pytest.raises(ValueError, match="notes.mp4 is not a video file"):
        analyze_video(text, default_recognizer, progress=False)
    audio = _audio_only_mp4(tmp_path / "voice.mp4")
    assert av.open(str(audio)).streams.audio  # a real MP4, just without video
    with pytest.raises(ValueError, match=r"voice.mp4 has no video stream \(streams found: audio\)"):
        probe_video(audio)
    with pytest.raises(ValueError, match="no video stream"):
        analyze_video(audio, default_recognizer, progress=False)
    # a valid MP4 whose H.264 data is all zeros: nothing decodes
    data = bytearray(SLIDESHOW.read_bytes())
    start = data.find(b"mdat") + 4
    data[start:] = bytes(len(data) - start)
    broken = tmp_path / "zeros.mp4"
    broken.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="no video frame could be decoded"):
        analyze_video(broken, default_recognizer, progress=False, output_video=tmp_path / "broken_out.mp4")
    assert not (tmp_path / "broken_out.mp4").exists()  # no partial output left behind
    with pytest.raises(FileNotFoundError):
        probe_video(tmp_path / "missing.mp4")
    with pytest.raises(ValueError, match="lasts 8.0 s; the limit is 5 s"):
        analyze_video(SLIDESHOW, default_recognizer, max_duration_s=5, output_video=tmp_path / "long.mp4")
    assert not (tmp_path / "long.mp4").exists()
    for rate in (0, -1, float("nan"), "fast"):
        with pytest.raises(ValueError, match="sample_fps"):
            analyze_video(SLIDESHOW, default_recognizer, sample_fps=rate)


def test_h264_writer_crops_to_even_size(tmp_path):
    writer = H264Writer(tmp_path / "odd.mp4", rate=Fraction(5), time_base=Fraction(1, 5))
    for i in range(3):
        writer.write(Image.new("RGB", (101, 75), (10 * i, 0, 0)), i / 5)
    writer.close()
    assert probe_video(tmp_path / "odd.mp4") | {"duration_s": None} == {
        "duration_s": None, "fps": 5.0, "width": 100, "height": 74, "frames": 3, "rotation": 0, "codec": "h264"}
    with pytest.raises(ValueError, match="too small"):
        H264Writer(tmp_path / "tiny.mp4", rate=Fraction(5), time_base=Fraction(1, 5)).write(Image.new("RGB", (1, 1)), 0)


def test_memory_stays_bounded_on_a_long_720p_video(default_recognizer, tmp_path):
    """230 frames of 1280x720 (a face photo moving over a background): the analysis (every frame decoded,
    converted, annotated and encoded) grows RSS by far less than the frames would take if they were held."""
    from conftest import load_benchmark

    long_video = load_benchmark("long_video")
    PeakRSS, make_synthetic_video = long_video.PeakRSS, long_video.make_synthetic_video

    faces = [SAMPLES / "happy-baby.jpeg"]
    warm = make_synthetic_video(tmp_path / "warm.mp4", 1.0, faces=faces, fps=30)
    long = make_synthetic_video(tmp_path / "long.mp4", 200 / 30, faces=faces, fps=30)
    assert probe_video(long)["frames"] == 200 and probe_video(long)["width"] == 1280
    settings = dict(sample_fps=0.5, max_side=640, annotate_all_frames=True, progress=False)
    analyze_video(warm, default_recognizer, output_video=tmp_path / "warm_out.mp4", **settings)  # loads codecs, sizes
    with PeakRSS(interval=0.02) as memory:
        result = analyze_video(long, default_recognizer, output_video=tmp_path / "long_out.mp4", **settings)
    held = 200 * 1280 * 720 * 3 / 1e6  # MB of RGB frames if they were all kept
    assert result.frames_decoded == 200 and result.frames_sampled == 4
    assert sum(r["status"] == "ok" for r in result.rows) >= 3  # the moving face is found
    assert probe_video(tmp_path / "long_out.mp4")["frames"] == 200
    assert memory.peak - memory.before < 0.1 * held, (memory.before, memory.peak, held)


def test_video_analysis_defaults():
    analysis = VideoAnalysis(rows=[], labels=["a", "b"], fps=0.0, duration_s=0.0, frames_sampled=0)
    assert analysis.headers == timeline_headers(["a", "b"]) and analysis.tracks() == {}
