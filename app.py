"""fer_hf Gradio app: the expression of every face in a photo, a webcam stream or a batch of files.

    python app.py            # http://127.0.0.1:7860
"""

import functools
import os
import time

from fer_hf.serving import limit_malloc_arenas

limit_malloc_arenas()  # before Gradio's worker threads exist: flat memory under concurrent visitors

import gradio as gr  # noqa: E402

from fer_hf.app.handlers import (analyze_batch, analyze_frame, analyze_image, analyze_video_upload, chart_color_map,
                                 chart_rows_for_every_label, model_choices, table_headers)
from fer_hf.app.uploads import gradio_max_file_size, upload_limits, video_limits
from fer_hf.detection.detectors import available_detectors
from fer_hf.inference.results import table_fields
from fer_hf.inference.video import timeline_headers
from fer_hf.labels import FER2013_LABELS, FERPLUS_LABELS
from fer_hf.models.hub import DEFAULT_MODEL_NAME



def shown_to_user(function):
    """Errors a visitor can cause (no image, a model name that is not a fer_hf model, an unreachable Hub
    id) become Gradio messages with their text instead of a generic "Error"."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except (ValueError, OSError) as error:
            raise gr.Error(str(error)) from error
    return wrapper


# inside the repository (licences in examples/README.md), so a Space shows them too
EXAMPLES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "examples")
EXAMPLES = [os.path.join(EXAMPLES_DIR, n) for n in ("group.jpeg", "happy-baby.jpeg", "surprised.jpeg", "sad-baby.jpeg",
                                                    "image-2-women-on-phones.jpg")]
VIDEO_EXAMPLES = [os.path.join(EXAMPLES_DIR, "cc0_faces_slideshow.mp4")]

# delete_cache: every annotated webcam frame is a temporary file; files older than an hour go, checked every 30 min
with gr.Blocks(title="fer_hf: facial expression recognition", delete_cache=(1800, 3600)) as demo:
    gr.Markdown(
        "# fer_hf: facial expression recognition\n"
        "Finds every face (MTCNN, MediaPipe BlazeFace or OpenCV Haar) and classifies its expression into "
        "angry, disgust, fear, happy, sad, surprise or neutral with CNNs trained for faces in real photos (the "
        "default, fer-ensemble-real; *Settings* offers the other released models, e.g. the FER2013 ones, or one "
        "trained on FER+ that adds contempt). "
        "Expressions are not emotions: do not use the output to judge people."
    )
    with gr.Accordion("Settings", open=False):
        with gr.Row():
            model = gr.Dropdown(model_choices() or [DEFAULT_MODEL_NAME], value=DEFAULT_MODEL_NAME,
                                allow_custom_value=True, label="Model (released name, local folder or Hub id)")
            detector = gr.Radio(available_detectors(), value="mtcnn", label="Face detector")
            min_face_size = gr.Slider(10, 200, value=20, step=1, label="Minimum face size (pixels)")

    with gr.Tab("Image"):
        with gr.Row():
            image_in = gr.Image(type="pil", sources=["upload", "clipboard"], label="Photo", image_mode=None)
            image_out = gr.Image(type="filepath", label="Annotated", format="png")
        image_explain = gr.Checkbox(False, label="Explain with Grad-CAM", elem_id="image-explain",
                                    info="Where in each face the evidence for its top emotion lies (slower)")
        image_button = gr.Button("Find expressions", variant="primary")
        image_summary = gr.Markdown()
        image_gradcam = gr.Gallery(label="Grad-CAM per face (red: raises the top emotion's score)", columns=4,
                                   visible=False,  # shown while "Explain with Grad-CAM" is ticked
                                   height="auto", elem_id="image-gradcam")
        image_table = gr.Dataframe(headers=table_headers(FER2013_LABELS), label="Faces (probabilities)",
                                   interactive=False, wrap=True)
        image_chart = gr.BarPlot(x="face", y="probability", color="emotion", y_lim=[0, 1],
                                 # every label of every released model (FER+ adds contempt), in the boxes' colours
                                 color_map=chart_color_map(FERPLUS_LABELS), elem_id="image-chart",
                                 label="Probabilities per face (each bar sums to 1)", sort=None)
        with gr.Row():
            png_file = gr.File(label="Annotated PNG")
            json_file = gr.File(label="Faces JSON")
        if EXAMPLES:
            gr.Examples(EXAMPLES, inputs=image_in)

    with gr.Tab("Webcam"):
        gr.Markdown("Live stream: frames are downscaled and processed one at a time, so a 2-core CPU keeps up "
                    "(slow frames are skipped, not queued). Faces are detected every N frames and followed (#track "
                    "id) in between; each face is classified on every frame.")
        with gr.Row():
            webcam_mirror = gr.Checkbox(True, label="Mirror", elem_id="webcam-mirror")
            webcam_detect_every = gr.Slider(1, 10, value=3, step=1, label="Detect faces every N frames",
                                            elem_id="webcam-detect-every")
            webcam_interval = gr.Slider(0, 2, value=0, step=0.1, label="Processing interval (s, 0 = as fast as possible)",
                                        elem_id="webcam-interval")
        with gr.Row():
            # the live path's own detector: BlazeFace full range keeps it real-time where MTCNN does not
            # (benchmarks/results/live_path.md); photos keep MTCNN (Settings), which
            # also finds small, low-contrast faces that BlazeFace misses
            webcam_detector = gr.Radio(available_detectors(), value="blazeface-full", label="Face detector (live)",
                                       elem_id="webcam-detector")
            webcam_min_face_size = gr.Slider(10, 200, value=40, step=1, label="Minimum face size (pixels, live)",
                                             elem_id="webcam-min-face-size")
        with gr.Row():
            webcam_in = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Webcam")
            webcam_out = gr.Image(label="Annotated stream", format="jpeg")
        webcam_status = gr.Markdown()
        webcam_state = gr.State({})

    with gr.Tab("Batch"):
        _upload = upload_limits()
        gr.Markdown(f"Images and zip files of images: up to {_upload['max_batch_files']:.0f} images per batch, "
                    f"{_upload['max_image_mb']:g} MB and {_upload['max_image_pixels'] / 1e6:.0f} megapixels each; "
                    f"zip files up to {_upload['max_zip_mb']:g} MB, {_upload['max_zip_entries']:.0f} entries and "
                    f"{_upload['max_zip_uncompressed_mb']:g} MB uncompressed (extracted into a temporary folder "
                    "that is removed after the batch; unsafe or non-image entries are skipped and listed).")
        batch_files = gr.File(file_count="multiple", file_types=["image", ".zip"], label="Images or zip files",
                              elem_id="batch-files")
        batch_button = gr.Button("Process all", variant="primary")
        batch_summary = gr.Markdown(elem_id="batch-summary")
        batch_gallery = gr.Gallery(label="Annotated", columns=4, height="auto")
        batch_csv = gr.File(label="Results CSV")
        batch_table = gr.Dataframe(headers=table_fields(FER2013_LABELS), label="Results", interactive=False,
                                   elem_id="batch-table")

    with gr.Tab("Video"):
        _limits = video_limits()
        gr.Markdown(f"Upload a video (up to {_limits['max_mb']:g} MB, {_limits['max_seconds']:g} s, "
                    f"{_limits['max_pixels'] / 1e6:.1f} megapixels per frame). Frames are streamed: the sampled "
                    "ones are analysed one at a time, faces get track ids (#1, #2, …), and the annotated video "
                    "shows the analysed frames at their own times (no audio).")
        with gr.Row():
            video_in = gr.Video(sources=["upload"], label="Video", elem_id="video-upload")
            video_out = gr.Video(label="Annotated video (H.264 MP4)", elem_id="video-annotated")
        video_rate = gr.Slider(0, 15, value=2, step=0.5, label="Frames analysed per second (0 = every frame)",
                               elem_id="video-rate")
        video_button = gr.Button("Analyse video", variant="primary")
        video_summary = gr.Markdown(elem_id="video-summary")
        video_plot = gr.Image(type="filepath", label="Expressions over time, per face track", format="png",
                              elem_id="video-plot")
        video_table = gr.Dataframe(headers=timeline_headers(FER2013_LABELS), label="Timeline (one row per face "
                                   "per analysed frame; empty for frames without a face)", interactive=False,
                                   elem_id="video-timeline")
        with gr.Row():
            video_csv = gr.File(label="Timeline CSV")
            video_json = gr.File(label="Timeline JSON")
        if VIDEO_EXAMPLES:
            gr.Examples(VIDEO_EXAMPLES, inputs=video_in)

    @shown_to_user
    def _image(image, model, detector, min_face_size, explain=False):
        result = analyze_image(image, model, detector, min_face_size, explain=explain)
        chart = chart_rows_for_every_label(result.chart, FERPLUS_LABELS)
        # show the annotated PNG already written for download (a file path), so Gradio does not encode
        # the image a second time
        return (result.png_path, result.table, chart, result.png_path, result.json_path, result.summary,
                result.gallery)

    image_explain.change(lambda explain: gr.Gallery(visible=bool(explain)), image_explain, image_gradcam,
                         api_name=False, queue=False)
    image_button.click(_image, [image_in, model, detector, min_face_size, image_explain],
                       [image_out, image_table, image_chart, png_file, json_file, image_summary, image_gradcam],
                       api_name="analyze_image")
    # One long-lived stream per session: the browser posts a frame every `stream_every` seconds into the
    # open event, and the server keeps only the newest one (each chunk overwrites the event's data), so
    # frames that arrive while one is processed are dropped, never queued. Leave `trigger_mode` at the
    # stream default ("multiple"): with "always_last" (or "once") Gradio's frontend defers (skips) every
    # frame after the first while the stream's submission is open, so only one frame is ever processed.
    # `concurrency_limit=1`: one stream at a time on a 2-core CPU; `time_limit` ends it after 10 minutes.
    @shown_to_user
    def _frame(frame, model, detector, min_face_size, state, mirror, detect_every, interval):
        # frames closer than the processing interval to the last processed one are skipped (no update sent)
        stamps = (state or {}).get("stamps") or [0.0]
        if frame is not None and interval and time.time() - stamps[-1] < float(interval):
            return gr.skip(), gr.skip(), state
        return analyze_frame(frame, model, detector, min_face_size, state, mirror=mirror, detect_every=detect_every)

    webcam_in.stream(_frame, [webcam_in, model, webcam_detector, webcam_min_face_size, webcam_state, webcam_mirror,
                              webcam_detect_every, webcam_interval],
                     [webcam_out, webcam_status, webcam_state], stream_every=0.1, concurrency_limit=1,
                     time_limit=600, show_progress="hidden", api_name="analyze_frame")

    @shown_to_user
    def _batch(files, model, detector, min_face_size, progress=gr.Progress()):
        result = analyze_batch(files, model, detector, min_face_size, progress=progress)
        return result.gallery, result.csv_path, result.table, result.summary

    batch_button.click(_batch, [batch_files, model, detector, min_face_size],
                       [batch_gallery, batch_csv, batch_table, batch_summary], api_name="analyze_batch")

    @shown_to_user
    def _video(video, model, detector, min_face_size, sample_fps, progress=gr.Progress()):
        result = analyze_video_upload(video, model, detector, min_face_size, sample_fps, progress=progress)
        return result.video_path, result.table, result.csv_path, result.json_path, result.plot_path, result.summary

    video_button.click(_video, [video_in, model, detector, min_face_size, video_rate],
                       [video_out, video_table, video_csv, video_json, video_plot, video_summary],
                       concurrency_limit=1, api_name="analyze_video")

if __name__ == "__main__":
    demo.queue().launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        server_port=int(os.environ.get("GRADIO_SERVER_PORT", 7860)),
                        # Gradio refuses larger uploads (HTTP 413) before writing them; bytes, FER_HF_MAX_UPLOAD_MB
                        max_file_size=gradio_max_file_size())
