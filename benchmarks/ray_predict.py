#!/usr/bin/env python
"""Throughput of ``fer-hf predict --engine ray`` with 1 and 2 Ray workers against the single-process
``fer-hf predict``, on the same real face photos. Writes benchmarks/results/ray_predict.md (+ .json).

    python benchmarks/ray_predict.py [--data ../shared/data] [--num-images 5000] [--workers 1 2]

The photos: ``--num-images`` FER2013 PrivateTest faces (a fixed random subset, seed 0), each enlarged to a
random size of 96-200 px and pasted at a random position into a 640x480 frame of smoothed noise, saved as
JPEG in a temporary folder (deleted afterwards, never in the repository). So MTCNN searches a whole
640x480 photo for each face, as it does on real photos.

Each configuration is one command, run the way a user runs it, one after the other on an otherwise idle
machine:

- single process: ``python -m fer_hf predict <folder> --threads 1 --output out.csv``;
- Ray, N workers: ``python -m fer_hf predict <folder> --engine ray --num-workers N --threads 1 --output
  out.parquet`` (the command starts a local Ray cluster with the machine's CPUs and stops it at the end).

Reported: wall time of the whole command (Python start, model loading and, for Ray, the cluster's start
included) and images/s over it; Ray's overhead at 1 worker against the single process (target: within
15 %), scaling from 1 to 2 workers (target: >= 1.7x), peak resident memory of each recognizer process
(sampled every 0.5 s with psutil: the single process, or each Ray worker actor), and whether every
configuration returned the same faces as the single process.
"""

import argparse
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from datetime import datetime, timezone
from pathlib import Path

from common import DATA, REPO, command_line, machine, result_path, write_json, write_text

SCRIPT = "ray_predict"


def make_photos(zip_path: Path, folder: Path, n: int, seed: int = 0) -> None:
    """``n`` 640x480 JPEG photos, each holding one FER2013 PrivateTest face (see the module docstring)."""
    import numpy as np
    from PIL import Image, ImageFilter

    rng = random.Random(seed)
    with zipfile.ZipFile(zip_path) as archive:
        names = sorted(name for name in archive.namelist()
                       if name.endswith(".jpg") and os.path.basename(name).startswith("PrivateTest_"))
        chosen = rng.sample(names, min(n, len(names)))
        while len(chosen) < n:  # more photos than PrivateTest faces: reuse faces at other places
            chosen.append(rng.choice(names))
        noise = np.random.default_rng(seed)
        for i, name in enumerate(chosen):
            face = Image.open(io.BytesIO(archive.read(name))).convert("RGB")
            side = rng.randint(96, 200)
            face = face.resize((side, side), Image.BICUBIC)
            background = Image.fromarray(noise.integers(0, 256, (480 // 8, 640 // 8, 3), dtype=np.uint8))
            frame = background.resize((640, 480), Image.BILINEAR).filter(ImageFilter.GaussianBlur(3))
            frame.paste(face, (rng.randint(0, 640 - side), rng.randint(0, 480 - side)))
            frame.save(folder / f"{i:05d}.jpg", quality=90)


class PeakMemory:
    """Peak RSS (MB) of each process whose command line contains one of ``markers``, sampled every 0.5 s."""

    def __init__(self, root_pid: int, markers: tuple):
        import psutil

        self.psutil, self.root, self.markers = psutil, root_pid, markers
        self.peaks: dict = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            for process in self.psutil.process_iter(["pid", "cmdline"]):
                try:
                    line = " ".join(process.info["cmdline"] or [])
                    if process.info["pid"] == self.root or any(m in line for m in self.markers):
                        rss = process.memory_info().rss / 1e6
                        self.peaks[process.info["pid"]] = max(self.peaks.get(process.info["pid"], 0.0), rss)
                except (self.psutil.NoSuchProcess, self.psutil.AccessDenied):
                    pass
            self.stop.wait(0.5)

    def finish(self) -> dict:
        self.stop.set()
        self.thread.join()
        return self.peaks


def run(folder: Path, output: Path, workers) -> dict:
    """One configuration: the command, its wall time, peak memory per recognizer process and its summary."""
    command = [sys.executable, "-m", "fer_hf", "predict", str(folder), "--threads", "1", "--output", str(output)]
    if workers:
        command += ["--engine", "ray", "--num-workers", str(workers)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TQDM_DISABLE="1", PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    memory = PeakMemory(process.pid, ("MapWorker(MapBatches(FaceWorker))",) if workers else ())
    out, err = process.communicate()
    wall = time.perf_counter() - started
    peaks = memory.finish()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{out[-2000:]}\n{err[-3000:]}")
    recognizers = [mb for pid, mb in peaks.items() if pid != process.pid] if workers else [peaks.get(process.pid, 0.0)]
    return {"command": " ".join(["python", *command[1:]]).replace(str(folder), "<photos>").replace(str(output), "<out>"),
            "workers": workers or 0, "wall_s": round(wall, 1), "summary": out.strip().splitlines(),
            "peak_rss_mb_per_recognizer": [round(mb) for mb in sorted(recognizers)]}


def faces_of(path: Path) -> dict:
    from fer_hf.inference.results import read_rows

    return {(Path(r["file"]).name, str(r["face_index"])): (r["top_emotion"], str(r["box_x"]), str(r["box_y"]))
            for r in read_rows(path) if r["status"] == "ok"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--num-images", type=int, default=5000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fer_hf_ray_bench_") as scratch:
        folder = Path(scratch) / "photos"
        folder.mkdir()
        make_photos(args.data / "fer2013" / "fer2013_images.zip", folder, args.num_images)
        runs = [run(folder, Path(scratch) / "single.csv", None)]
        reference = faces_of(Path(scratch) / "single.csv")
        for workers in args.workers:
            result = run(folder, Path(scratch) / f"ray{workers}.parquet", workers)
            result["same_faces_as_single_process"] = faces_of(Path(scratch) / f"ray{workers}.parquet") == reference
            runs.append(result)
    for result in runs:
        result["images_per_s"] = round(args.num_images / result["wall_s"], 2)
    single = runs[0]
    by_workers = {r["workers"]: r for r in runs[1:]}
    figures = {}
    if 1 in by_workers:
        figures["ray_1_worker_overhead"] = round(by_workers[1]["wall_s"] / single["wall_s"] - 1, 3)
    if 1 in by_workers and 2 in by_workers:
        figures["scaling_2_over_1_workers"] = round(by_workers[1]["wall_s"] / by_workers[2]["wall_s"], 2)
    report = {"command": command_line(SCRIPT, argv), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": machine(), "num_images": args.num_images, "runs": runs, **figures}
    write_json(result_path(SCRIPT, ".json"), report)

    lines = [f"# `fer-hf predict --engine ray` against one process ({args.num_images} photos)", "",
             f"Command: `{report['command']}` ({report['date']})  ", f"Machine: `{json.dumps(report['machine'])}`",
             "", "Photos: FER2013 PrivateTest faces pasted at random sizes (96-200 px) and places into 640x480 "
             "frames (benchmarks/ray_predict.py). Wall time: the whole command (start, model loading, Ray's local "
             "cluster included). Memory: peak RSS of each process holding a recognizer.", "",
             "| run | wall (s) | images/s | peak RSS per recognizer process (MB) | same faces as one process |",
             "| --- | ---: | ---: | --- | --- |"]
    for r in runs:
        name = "single process (1 thread)" if not r["workers"] else f"Ray, {r['workers']} worker(s), 1 thread each"
        same = "(reference)" if not r["workers"] else ("yes" if r["same_faces_as_single_process"] else "NO")
        lines.append(f"| {name} | {r['wall_s']} | {r['images_per_s']} | {r['peak_rss_mb_per_recognizer']} | {same} |")
    lines.append("")
    if "ray_1_worker_overhead" in figures:
        lines.append(f"- Ray's overhead at 1 worker: {figures['ray_1_worker_overhead']:+.1%} of the single process's "
                     "wall time (target: within 15 %).")
    if "scaling_2_over_1_workers" in figures:
        lines.append(f"- 2 workers / 1 worker: {figures['scaling_2_over_1_workers']}x (target: >= 1.7x).")
    lines += ["", "Commands (``<photos>``: the generated folder):", ""]
    lines += [f"- `{r['command']}`" for r in runs]
    write_text(result_path(SCRIPT), "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
