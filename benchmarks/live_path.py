#!/usr/bin/env python
"""Live-path and photo latency of fer_hf on this machine, per model; writes benchmarks/results/live_path.md and .json.

    python benchmarks/live_path.py [--model fer-vgg-fer2013] [--frames 100] [--note "..."]
    python benchmarks/live_path.py --model fer-ensemble --backends torch --skip_image_tab
    python benchmarks/live_path.py --model fer-vgg-44-distilled-ft fer-mobilenet-real --backends torch \
        --threads 1 --detectors blazeface-full --skip_image_tab \
        --output benchmarks/results/live_path_side_by_side.json \
        --markdown benchmarks/results/live_path_side_by_side.md   # side by side, the webcam tab's defaults

Several ``--model`` names are measured one after the other in the same run (same machine, same load), so that
their figures can be compared.

The results hold the newest run of each model: a run replaces its model's section and keeps the others.

Measures (median / mean over repeats after warm-up, wall-clock on this CPU):
1. The live path: one 640x480 frame with one face (a real sample photo letterboxed into 640x480) through
   `fer_hf.inference.live.LiveFaceAnalyzer.process` (detect, crop + align, classify, annotate with probability bars),
   detection on every frame and on every 3rd frame (the app's default), per detector, torch intra-op
   threads 1 and 2, classifier backend torch and onnx.
2. A 1280x853 photo with 4 faces (samples/group.jpeg): `FaceExpressionRecognizer.predict` per detector,
   threads and backend; faces found.
3. The Image tab: `analyze_image` on group.jpeg (recognition + annotation + PNG + JSON), and the same
   request end to end through the running Gradio app (`gradio_client`, loopback: request to result).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from common import DATA, command_line, machine, result_path, update_keyed, write_text

from fer_hf import FaceExpressionRecognizer  # noqa: E402
from fer_hf.models.hub import DEFAULT_MODEL_NAME  # noqa: E402
from fer_hf.inference.live import measure_live_path  # noqa: E402
from fer_hf.evaluation.profiling import run_times  # noqa: E402

DETECTORS = ("blazeface-short", "blazeface-full", "mtcnn")


def letterboxed_frame(photo: Path, size=(640, 480)) -> Image.Image:
    image = Image.open(photo).convert("RGB")
    scale = min(size[0] / image.width, size[1] / image.height)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
    frame = Image.new("RGB", size, (90, 90, 90))
    frame.paste(image, ((size[0] - image.width) // 2, (size[1] - image.height) // 2))
    return frame


def timed(fn, repeats: int, warmup: int = 2) -> dict:
    times = [1000 * t for t in run_times(fn, repeats, warmup)]
    return {"median_ms": statistics.median(times), "p95_ms": float(np.percentile(times, 95))}


def image_tab_end_to_end(photo: Path, repeats: int, model: str) -> dict:
    """Launch app.py's demo on a free loopback port and time `analyze_image` requests with gradio_client."""
    from gradio_client import Client, handle_file

    import app  # noqa: PLC0415

    app.demo.queue().launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(app.demo.local_url, verbose=False)
        call = lambda: client.predict(handle_file(str(photo)), model, "mtcnn", 20, False,  # noqa: E731
                                      api_name="/analyze_image")
        return timed(call, repeats, warmup=1)
    finally:
        app.demo.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", default=[None],
                        help="Released names or folders, measured one after the other (default: the default model).")
    parser.add_argument("--detectors", nargs="+", default=list(DETECTORS), choices=list(DETECTORS))
    parser.add_argument("--samples", default=str(DATA / "samples"))
    parser.add_argument("--frames", type=int, default=100, help="Frames timed per live-path setting.")
    parser.add_argument("--repeats", type=int, default=20, help="Repeats per photo setting.")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--backends", nargs="+", default=["torch", "onnx"])
    parser.add_argument("--note", default="", help="Free text written into the results (e.g. machine load).")
    parser.add_argument("--output", default=str(result_path("live_path", ".json")),
                        help="Every model's newest run (this run replaces its model's).")
    parser.add_argument("--markdown", default=str(result_path("live_path")), help="The tables' file.")
    parser.add_argument("--skip_image_tab", action="store_true", help="Leave out section 3 (the app's Image tab).")
    args = parser.parse_args()
    for name in args.model:
        measure_model(name, args)


def measure_model(name, args) -> None:
    """Sections 1-3 for one model (``name`` None: the default), written into the results files."""
    model = name or DEFAULT_MODEL_NAME
    samples = Path(args.samples)
    frame = letterboxed_frame(samples / "surprised.jpeg")
    group = Image.open(samples / "group.jpeg").convert("RGB")
    results = {"live": [], "group_photo": [], "image_tab": {}}
    started = time.time()
    for backend in args.backends:
        recognizer = FaceExpressionRecognizer.from_pretrained(name, backend=backend)
        for threads in args.threads:
            torch.set_num_threads(threads)
            if backend == "onnx":
                recognizer = FaceExpressionRecognizer.from_pretrained(name, backend="onnx", onnx_threads=threads)
            for detector in args.detectors:
                recognizer.set_options(detector=detector)
                for every in (1, 3):
                    r = measure_live_path(recognizer, frame, frames=args.frames, detect_every=every)
                    row = {"backend": backend, "threads": threads, "detector": detector, "detect_every": every, **r}
                    results["live"].append(row)
                    print(model, "live", row, flush=True)
                faces = recognizer.predict(group)
                r = timed(lambda: recognizer.predict(group), args.repeats)
                row = {"backend": backend, "threads": threads, "detector": detector, "faces": len(faces), **r}
                results["group_photo"].append(row)
                print(model, "group", row, flush=True)
    torch.set_num_threads(max(args.threads))
    from fer_hf.app.handlers import analyze_image

    if not args.skip_image_tab:
        analyze_image(samples / "group.jpeg", model=model)
        results["image_tab"]["analyze_image_function"] = timed(lambda: analyze_image(samples / "group.jpeg", model=model),
                                                               args.repeats)
        results["image_tab"]["gradio_request_end_to_end"] = image_tab_end_to_end(samples / "group.jpeg", args.repeats,
                                                                                 model)
        print("image tab", results["image_tab"], flush=True)
    meta = {"command": command_line("live_path"),
            "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "note": args.note, "model": model,
            "machine": machine(), "run_time_s": round(time.time() - started, 1)}
    runs = update_keyed(args.output, model, {**meta, **results})
    write_text(args.markdown, "\n".join(["# Live path and photo latency", "",
                                         "The newest run of each model (`--model NAME` replaces that model's section; "
                                         "earlier runs are in git history; models named in one command were measured "
                                         "side by side).", ""]
                                        + [line for run in runs.values() for line in markdown_section(run)]))


def markdown_section(results: dict) -> list[str]:
    lines = [f"## `{results.get('model', DEFAULT_MODEL_NAME)}`", "",
             f"Command: `{results['command']}`  ",
             f"Date: {results['date']}  ",
             f"Machine: {json.dumps(results['machine'])}  ", f"Note: {results['note'] or '-'}  ",
             f"Run time: {results['run_time_s']} s", "",
             "### 1. Live path: one 640x480 frame with one face (detect, crop + align, classify, annotate + bars)", "",
             "| backend | threads | detector | detect every | ms per frame (mean) | p95 ms | frames/s |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in results["live"]:
        lines.append(f"| {r['backend']} | {r['threads']} | {r['detector']} | {r['detect_every']} | "
                     f"{r['ms_per_frame']:.1f} | {r['ms_p95']:.1f} | {r['frames_per_second']:.1f} |")
    lines += ["", "### 2. group.jpeg (1280x853, 4 findable faces): `recognizer.predict`", "",
              "| backend | threads | detector | faces found | median ms | p95 ms |", "| --- | --- | --- | --- | --- | --- |"]
    for r in results["group_photo"]:
        lines.append(f"| {r['backend']} | {r['threads']} | {r['detector']} | {r['faces']} | {r['median_ms']:.1f} | "
                     f"{r['p95_ms']:.1f} |")
    tab = results["image_tab"]
    if not tab:
        return lines + [""]
    lines += ["", "### 3. Image tab on group.jpeg (MTCNN, torch)", "",
              "| measure | median ms | p95 ms |", "| --- | --- | --- |",
              f"| `analyze_image` (recognition, annotation, PNG, JSON) | {tab['analyze_image_function']['median_ms']:.1f} | "
              f"{tab['analyze_image_function']['p95_ms']:.1f} |",
              f"| request to result through the running app (`gradio_client`, loopback) | "
              f"{tab['gradio_request_end_to_end']['median_ms']:.1f} | {tab['gradio_request_end_to_end']['p95_ms']:.1f} |", ""]
    return lines


if __name__ == "__main__":
    main()
