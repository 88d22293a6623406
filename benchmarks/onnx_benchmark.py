"""Speed and FER2013 PrivateTest accuracy of fer_hf models on the CPU: PyTorch float32, onnxruntime float32,
onnxruntime int8 (static QDQ, calibrated on FER2013 training faces) and onnxruntime int8 (dynamic).

For each model (default: the released default model, `fer_hf.models.hub.DEFAULT_MODEL_DIR`):

- faces/s at batch 1 and batch 64 (``--batch_sizes``) with 1 and 2 threads (``--threads``): the median of
  ``--repeats`` timed windows of ``--seconds`` each, after a warm-up; the input is already ``pixel_values``
  (face detection and preprocessing are not timed), the same batch of real faces every time.
- accuracy on all 3,589 PrivateTest faces (batches of 256), the agreement of each variant's predictions with
  PyTorch's, and the largest difference of a probability from PyTorch's.

Writes a markdown report (``--output``, default benchmarks/results/onnx_benchmark.md) and the raw numbers
(``--json``, default benchmarks/results/onnx_benchmark.json). The exported files go to a temporary folder (``--export_dir`` to keep them).

    python benchmarks/onnx_benchmark.py [--model model_cards/fer-vgg-fer2013 ...] \
        [--data_dir ../shared/data/fer2013/fer2013_images.zip]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import DATA, command_line, cpu_flags, cpu_model, result_path, write_json, write_text

from fer_hf.data import dataset_to_uint8, load_fer2013
from fer_hf.inference.onnx import OnnxImageClassifier, export_onnx, load_model_and_processor
from fer_hf.models.hub import DEFAULT_MODEL_DIR

BAR_FACES_PER_S = 2000  # the bar for the default classifier at batch 64


def throughput(run, batch: np.ndarray, seconds: float, repeats: int) -> dict:
    """faces/s of ``run(batch)``: median and best of ``repeats`` windows of ``seconds`` (wall clock), after a
    warm-up, and faces per CPU-second of this process (median; with one thread, about what one core that is not
    shared gives)."""
    warm_until = time.perf_counter() + min(1.0, seconds)
    run(batch)
    while time.perf_counter() < warm_until:
        run(batch)
    rates, cpu_rates = [], []
    for _ in range(repeats):
        count, start, cpu_start = 0, time.perf_counter(), time.process_time()
        while True:
            run(batch)
            count += len(batch)
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
        rates.append(count / elapsed)
        cpu_rates.append(count / max(time.process_time() - cpu_start, 1e-9))
    return {"median": statistics.median(rates), "best": max(rates), "windows": [round(r, 1) for r in rates],
            "faces_per_cpu_s": statistics.median(cpu_rates)}


def torch_runner(model, threads: int, spinning: bool = True):
    def run(batch):
        torch.set_num_threads(threads)
        with torch.inference_mode():
            return model(pixel_values=torch.from_numpy(batch)).logits.float().numpy()
    return run


def onnx_runner(path, threads: int, spinning: bool = True):
    classifier = OnnxImageClassifier(path, intra_op_num_threads=threads, allow_spinning=spinning)
    session = classifier.session

    def run(batch):
        return session.run(["logits"], {"pixel_values": batch})[0]
    return run


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(1, keepdims=True))
    return shifted / shifted.sum(1, keepdims=True)


def benchmark_model(location: str, dataset, args, export_dir: Path) -> dict:
    model, processor, _ = load_model_and_processor(location)
    model.eval()
    test = dataset["test"]
    if args.max_test_faces:  # smoke runs only: not a PrivateTest result
        test = test.shuffle(seed=0).select(range(min(args.max_test_faces, len(test))))
    images, labels = dataset_to_uint8(test, processor, desc="decode PrivateTest")
    pixel_values = processor.rescale_and_normalize(images).numpy()
    labels = labels.numpy()
    name = Path(location).name
    folder = export_dir / name
    started = time.perf_counter()
    fp32 = export_onnx(location, folder / "fp32" / "model.onnx")
    export_s = time.perf_counter() - started
    started = time.perf_counter()
    int8 = export_onnx(location, folder / "int8_static" / "model.onnx", quantize="int8",
                       calibration_data=dataset["train"], calibration_samples=args.calibration_samples)
    int8_s = time.perf_counter() - started
    int8_dynamic = export_onnx(location, folder / "int8_dynamic" / "model.onnx", quantize="int8-dynamic")
    variants = [("torch", "float32", None, torch_runner), ("onnxruntime", "float32", fp32, onnx_runner),
                ("onnxruntime", f"int8 static QDQ ({args.calibration_samples} calibration faces)", int8, onnx_runner),
                ("onnxruntime", "int8 dynamic", int8_dynamic, onnx_runner)]
    rows, reference = [], None
    for backend, precision, path, make in variants:
        target = model if path is None else path
        run = make(target, max(args.threads))
        logits = np.concatenate([run(pixel_values[i:i + 256]) for i in range(0, len(pixel_values), 256)])
        probabilities = softmax(logits.astype(np.float64))
        predictions = probabilities.argmax(1)
        if reference is None:
            reference = probabilities
        row = {"backend": backend, "precision": precision, "file": None if path is None else str(path),
               "file_bytes": None if path is None else path.stat().st_size,
               "privatetest_accuracy": float((predictions == labels).mean()),
               "agreement_with_torch": float((predictions == reference.argmax(1)).mean()),
               "max_abs_probability_difference_vs_torch": float(np.abs(probabilities - reference).max()),
               "faces_per_s": {}}
        settings = [(t, True) for t in args.threads]
        if path is not None:  # onnxruntime: also without spin-waiting threads (helps on a shared CPU)
            settings += [(t, False) for t in args.threads if t > 1]
        for threads, spinning in settings:
            run = make(target, threads, spinning)
            for batch_size in args.batch_sizes:
                batch = np.ascontiguousarray(pixel_values[:batch_size])
                key = f"threads={threads}{'' if spinning else ' no-spin'},batch={batch_size}"
                row["faces_per_s"][key] = throughput(run, batch, args.seconds, args.repeats)
                print(backend, precision, key, round(row["faces_per_s"][key]["median"]), flush=True)
        rows.append(row)
    return {"model": location, "name": name, "num_test_faces": len(labels), "export_seconds": round(export_s, 1),
            "int8_export_seconds_with_calibration": round(int8_s, 1), "exporter": OnnxImageClassifier(fp32).exporter,
            "rows": rows}


def cpu_rate(row: dict) -> float:
    """faces per CPU-second with 1 thread at batch 64 (nan when not measured)."""
    entry = row["faces_per_s"].get("threads=1,batch=64")
    return entry["faces_per_cpu_s"] if entry else float("nan")


def markdown(results: dict) -> str:
    lines = ["# ONNX export, onnxruntime backend and int8: speed and PrivateTest accuracy", "",
             "Written by `benchmarks/onnx_benchmark.py`. Command:", "", f"    {results['command']}", "",
             f"Machine: {results['machine']}; torch {results['torch']}, onnxruntime {results['onnxruntime']}. "
             f"State of the machine: {results.get('note') or 'not given'} (load average {results['load_before']} "
             f"before, {results['load_after']} after). Where the CPU was shared, every faces/s is a lower bound of "
             "what an idle machine gives; the column *faces per CPU-s* (faces divided by the CPU time this process "
             "got, one thread) is less sensitive to sharing: about what one core that is not shared gives.", "",
             "faces/s: classifier only (input already `pixel_values`; detection and preprocessing not timed), median "
             f"of {results['repeats']} windows of {results['seconds']} s after a warm-up; 'no-spin': onnxruntime with "
             "`session.intra_op.allow_spinning=0` (`OnnxImageClassifier(allow_spinning=False)`). Accuracy: all FER2013 "
             "PrivateTest faces, no TTA. Agreement: share of faces whose predicted class equals PyTorch's.", ""]
    for model in results["models"]:
        keys = list(dict.fromkeys(k for row in model["rows"] for k in row["faces_per_s"]))
        lines += [f"## {model['name']} ({model['num_test_faces']} PrivateTest faces)", "",
                  f"Exporter: {model['exporter']} (`torch.onnx.export(dynamo=True)`, dynamic batch axis); export "
                  f"{model['export_seconds']} s, int8 static export with calibration "
                  f"{model['int8_export_seconds_with_calibration']} s.", "",
                  "| backend | precision | " + " | ".join(f"faces/s {k.replace(',', ', ')}" for k in keys)
                  + " | faces per CPU-s, 1 thread, batch 64 | PrivateTest accuracy | agreement with torch "
                  "| max abs prob. diff. vs torch | file size |",
                  "|---|---|" + "---:|" * (len(keys) + 5)]
        for row in model["rows"]:
            size = "" if row["file_bytes"] is None else f"{row['file_bytes'] / 1e6:.2f} MB"
            lines.append(f"| {row['backend']} | {row['precision']} | "
                         + " | ".join(f"{row['faces_per_s'][k]['median']:,.0f}" if k in row["faces_per_s"] else "n/a"
                                      for k in keys)
                         + f" | {cpu_rate(row):,.0f}"
                         + f" | {row['privatetest_accuracy']:.4f} | {row['agreement_with_torch']:.4f} | "
                         f"{row['max_abs_probability_difference_vs_torch']:.1e} | {size} |")
        batch_keys = [k for k in keys if k.endswith("batch=64")]
        if batch_keys:
            best_row, best_key = max(((r, k) for r in model["rows"] for k in batch_keys if k in r["faces_per_s"]),
                                     key=lambda rk: rk[0]["faces_per_s"][rk[1]]["median"])
            rate = best_row["faces_per_s"][best_key]["median"]
            verdict = "meets" if rate >= BAR_FACES_PER_S else "does not meet"
            fastest_cpu = max(model["rows"], key=cpu_rate)
            lines += ["", f"Fastest at batch 64: {best_row['backend']} {best_row['precision']} ({best_key}), "
                          f"{rate:,.0f} faces/s (best window {best_row['faces_per_s'][best_key]['best']:,.0f}), "
                          f"PrivateTest accuracy {best_row['privatetest_accuracy']:.4f}: measured, this {verdict} the "
                          f"{BAR_FACES_PER_S:,} faces/s bar on this CPU. Per CPU-second, "
                          f"{fastest_cpu['backend']} {fastest_cpu['precision']} does {cpu_rate(fastest_cpu):,.0f} "
                          f"faces with one thread, i.e. an estimated {2 * cpu_rate(fastest_cpu):,.0f} faces/s on two "
                          "unshared cores if two single-threaded sessions (or two threads) scale linearly: an "
                          "estimate, not a measurement."]
        lines.append("")
    lines += ["Choice of int8 method: static QDQ quantisation (int8 activations, per-channel int8 weights, min/max "
              "calibration on FER2013 *training* faces) is what `fer-hf export-onnx --quantize int8` does; dynamic "
              "quantisation (`--quantize int8-dynamic`, no calibration data) is kept as an option but is slower than "
              "float32 on these convolutional models (onnxruntime's ConvInteger path).", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", default=None,
                        help="fer_hf model folder / released name (repeatable; default: the default model).")
    parser.add_argument("--data_dir", default=str(DATA / "fer2013" / "fer2013_images.zip"))
    parser.add_argument("--output", default=str(result_path("onnx_benchmark")))
    parser.add_argument("--json", default=str(result_path("onnx_benchmark", ".json")))
    parser.add_argument("--export_dir", default=None, help="Keep the exported files here (default: a temp folder).")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--note", default="", help="The machine's state while measuring (idle, training paused, ...).")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--calibration_samples", type=int, default=512)
    parser.add_argument("--max_test_faces", type=int, default=None,
                        help="A random subset of PrivateTest (smoke runs; not a result).")
    args = parser.parse_args(argv)
    import onnxruntime

    dataset = load_fer2013(args.data_dir)
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        export_dir = Path(args.export_dir or tmp)
        models = [benchmark_model(str(m), dataset, args, export_dir) for m in (args.model or [str(DEFAULT_MODEL_DIR)])]
    vnni = " (AVX-512 VNNI)" if "avx512_vnni" in cpu_flags() else ""
    results = {"command": ("nice -n 5 " if os.nice(0) >= 5 else "") + command_line("onnx_benchmark", argv),
               "machine": f"{cpu_model()}{vnni}, {os.cpu_count()} CPU cores",
               "cpu_count": os.cpu_count(), "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
               "load_before": load_before, "load_after": [round(x, 2) for x in os.getloadavg()],
               "note": args.note, "seconds": args.seconds, "repeats": args.repeats, "models": models}
    for model in results["models"]:
        for row in model["rows"]:
            if row["file"] and not args.export_dir:
                row["file"] = Path(row["file"]).name
    write_json(args.json, results)
    print(write_text(args.output, markdown(results)).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
