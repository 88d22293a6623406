"""The app's Video tab: its function on the sample video, its upload limits, and the page in headless Chromium."""

import csv
import json

import pytest
from PIL import Image

from fer_hf.app.handlers import analyze_video_upload
from fer_hf.app.uploads import check_video_upload, video_limits
from fer_hf.inference.video import probe_video, timeline_headers

from conftest import SAMPLES, app_page, needs_chromium

SLIDESHOW = SAMPLES / "cc0_faces_slideshow.mp4"
LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
LIMIT_VARIABLES = ("FER_HF_MAX_VIDEO_MB", "FER_HF_MAX_VIDEO_SECONDS", "FER_HF_MAX_VIDEO_PIXELS",
                   "FER_HF_MAX_VIDEO_FRAMES")


@pytest.fixture
def default_limits(monkeypatch):
    for variable in LIMIT_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    return monkeypatch


def test_video_limits_defaults_and_environment(default_limits):
    assert video_limits() == {"max_mb": 500, "max_seconds": 600, "max_pixels": 1920 * 1080, "max_frames": 3600}
    default_limits.setenv("FER_HF_MAX_VIDEO_SECONDS", "30")
    assert video_limits()["max_seconds"] == 30
    default_limits.setenv("FER_HF_MAX_VIDEO_MB", "lots")
    with pytest.raises(ValueError, match="FER_HF_MAX_VIDEO_MB='lots'"):
        video_limits()


@pytest.mark.parametrize("variable, value, sample_fps, message", [
    ("FER_HF_MAX_VIDEO_MB", "0.05", 2, r"cc0_faces_slideshow.mp4 is 0.1 MB; videos up to 0.05 MB are accepted"),
    ("FER_HF_MAX_VIDEO_SECONDS", "5", 2, r"lasts 8 s; videos up to 5 s \(0.1 min\) are accepted. Trim it first."),
    ("FER_HF_MAX_VIDEO_PIXELS", "200000", 2, r"has 640x360 frames \(0.2 megapixels\); the limit is 0.2 megapixels"),
    ("FER_HF_MAX_VIDEO_FRAMES", "100", 0, r"at 15 frames per second means about 120 frames; the limit is 100"),
])
def test_uploads_over_a_limit_get_a_clear_message(default_limits, variable, value, sample_fps, message):
    default_limits.setenv(variable, value)
    with pytest.raises(ValueError, match=message):
        analyze_video_upload(str(SLIDESHOW), sample_fps=sample_fps)


def test_upload_checks_pass_the_sample_and_reject_non_videos(default_limits, tmp_path):
    assert check_video_upload(str(SLIDESHOW), 2) == probe_video(SLIDESHOW)
    default_limits.setenv("FER_HF_MAX_VIDEO_FRAMES", "100")
    assert check_video_upload(str(SLIDESHOW), 2)["frames"] == 120  # 16 frames to analyse at 2 per second
    with pytest.raises(ValueError, match="Upload a video first"):
        analyze_video_upload(None)
    photo = tmp_path / "photo.mp4"
    photo.write_bytes((SAMPLES / "neutral.jpeg").read_bytes()[:3000])  # a truncated JPEG named .mp4
    with pytest.raises(ValueError, match="photo.mp4"):
        analyze_video_upload(str(photo))


def test_analyze_video_upload_outputs(default_limits, tmp_path):
    calls = []
    video, table, csv_path, json_path, plot_path, summary = analyze_video_upload(
        str(SLIDESHOW), "fer-vgg-fer2013", "mtcnn", 20, 1, progress=lambda f, desc=None: calls.append(f),
        output_dir=tmp_path)
    assert summary.startswith("8 of 120 frames analysed (1 frame(s) per second) over 8.0 s of 640x360 video")
    info = probe_video(video)
    assert (info["codec"], info["width"], info["height"], info["frames"]) == ("h264", 640, 360, 8)
    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(table.columns) == timeline_headers(LABELS) and len(table) == len(rows) >= 8
    assert [str(v) for v in table["top_emotion"]] == [r["top_emotion"] for r in rows]
    with open(json_path) as handle:
        assert json.load(handle)["frames_sampled"] == 8
    assert Image.open(plot_path).size[0] == 1000
    assert calls[-1] == 1.0 and len(calls) == 9


# ------------------------------------------------------------------------------------------------ the page

@pytest.mark.slow
def test_a_text_file_named_mp4_gets_a_clear_message(server, tmp_path):
    from gradio_client import Client, handle_file

    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video\n" * 20)
    client = Client(server, verbose=False)
    with pytest.raises(Exception, match="notes.mp4 is not a video file"):
        client.predict(handle_file(str(notes)), "fer-vgg-fer2013", "mtcnn", 20, 2,
                       api_name="/analyze_video")


@pytest.mark.slow
@needs_chromium
def test_video_tab_in_headless_chromium(server, tmp_path):
    """Upload the sample video, analyse 1 frame per second: the annotated video plays in the browser (its
    metadata loads: 8 s), the timeline table fills, the plot is shown."""
    from playwright.sync_api import expect

    with app_page(server, tmp_path, "video") as page:
        page.get_by_role("tab", name="Video").click()
        page.locator("#video-upload input[type=file]").set_input_files(str(SLIDESHOW))
        expect(page.locator("#video-upload video")).to_have_count(1, timeout=30_000)  # the upload's preview
        rate = page.locator("#video-rate input[type=number]")
        rate.fill("1")
        rate.press("Enter")
        page.get_by_role("button", name="Analyse video").click()
        summary = page.locator("#video-summary")
        expect(summary).to_contain_text("8 of 120 frames analysed (1 frame(s) per second)", timeout=240_000)
        video = page.locator("#video-annotated video")
        expect(video).to_have_count(1, timeout=30_000)
        src = video.get_attribute("src")
        assert "/gradio_api/file=" in src and src.endswith("_annotated.mp4"), src
        # the browser reads the H.264 file: its metadata loads and it lasts the video's 8 s
        page.wait_for_function("v => v.readyState >= 1 && v.duration > 0", arg=video.element_handle(),
                               timeout=30_000)
        assert abs(video.evaluate("v => v.duration") - 8.0) < 0.6
        assert video.evaluate("v => v.videoWidth") == 640
        table = page.locator("#video-timeline")
        expect(table).to_contain_text("happy", timeout=30_000)  # the laughing baby's rows
        cells = table.inner_text().split()
        assert cells[:3] == ["Timeline", "(one", "row"] and "top_emotion" in cells
        assert cells.count("ok") >= 8  # a row per face, and every analysed frame has one
        plot = page.locator("#video-plot img")
        expect(plot).to_be_visible(timeout=30_000)
        assert plot.evaluate("img => img.naturalWidth") == 1000
