#!/usr/bin/env python
"""Throughput and peak memory of ``fer-hf predict`` on a folder of 1,000 real face images.
Writes benchmarks/results/predict_folder.md.

    python benchmarks/predict_folder.py [--data ../shared/data] [--num-images 1000] [--configs 32:default 1:1 32:1]

1,000 FER2013 PrivateTest images (a fixed random subset, seed 0; the zip is sorted by class) are
extracted from ``fer2013/fer2013_images.zip`` into a temporary folder (deleted afterwards, never into the
repository), then ``python -m fer_hf predict <folder> --output <tmp>/out.csv --batch-size N [--threads T]`` runs under
``/usr/bin/time -v`` once per configuration (batch size, torch threads). Reported: images/s as the command's summary prints it (model
loading excluded), wall time of the whole command (model loading included), peak resident memory
(``Maximum resident set size``), faces found and files without a face. The images are 48x48 grayscale
face crops, so MTCNN (minimum face size 20 px) sees one large face per image or none.
"""

import argparse
import os
import platform
import random
import re
import shlex
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from common import DATA, REPO, command_line, cpu_model, result_path, write_text


def extract(zip_path: Path, folder: Path, n: int, seed: int = 0) -> list:
    """Extract ``n`` PrivateTest JPEGs (random subset, ``seed``) into ``folder``; returns their names."""
    with zipfile.ZipFile(zip_path) as archive:
        names = sorted(name for name in archive.namelist()
                       if name.endswith(".jpg") and os.path.basename(name).startswith("PrivateTest_"))
        chosen = sorted(random.Random(seed).sample(names, n))
        for name in chosen:
            label = name.split("/")[-2]
            (folder / f"{label}_{os.path.basename(name)}").write_bytes(archive.read(name))
    return chosen


def run(folder: Path, output: Path, batch_size: int, threads, extra) -> dict:
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "fer_hf", "predict", str(folder), "--output", str(output),
               "--batch-size", str(batch_size), *(["--threads", str(threads)] if threads else []), *extra]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TQDM_DISABLE="1", PYTHONPATH=str(REPO))
    env.pop("OMP_NUM_THREADS", None)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])

    def grab(pattern, text):
        match = re.search(pattern, text)
        return match.group(1) if match else None

    return {"batch_size": batch_size, "threads": threads or f"default ({os.cpu_count()})", "command": " ".join(shlex.quote(c) for c in command[2:]),
            "images_per_s": float(grab(r"\(([\d.]+) images/s", done.stdout)),
            "processing_s": float(grab(r"files in ([\d.]+) s", done.stdout)),
            "wall_s": wall, "max_rss_mib": int(grab(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)) / 1024,
            "faces": int(grab(r"faces: (\d+)", done.stdout)),
            "no_face": int(grab(r"files without a face: (\d+)", done.stdout)),
            "errors": int(grab(r"errors \(unreadable files\): (\d+)", done.stdout)),
            "summary": done.stdout.strip()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--num-images", type=int, default=1000)
    parser.add_argument("--configs", nargs="+", default=["32:default", "1:1", "32:1"],
                        help="BATCH_SIZE:THREADS runs (THREADS 'default': torch's default, no --threads).")
    parser.add_argument("--output", default=str(result_path("predict_folder")))
    parser.add_argument("extra", nargs="*", help="Further fer-hf predict options (after --).")
    args = parser.parse_args()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="fer_hf_predict_bench_") as tmp:
        folder = Path(tmp) / "faces"
        folder.mkdir()
        extract(Path(args.data) / "fer2013" / "fer2013_images.zip", folder, args.num_images)
        results = []
        for i, config in enumerate(args.configs):
            batch, threads = config.split(":")
            threads = None if threads == "default" else int(threads)
            results.append(run(folder, Path(tmp) / f"out_{i}.csv", int(batch), threads, args.extra))
        for r in results:
            r["command"] = r["command"].replace(tmp, "<tmp>").replace(sys.executable, "python")
            r["summary"] = r["summary"].replace(tmp, "<tmp>")
    load_after = os.getloadavg()

    lines = ["# `fer-hf predict` on a folder of 1,000 real face images", "",
             f"Written by `{command_line('predict_folder')}`.",
             "",
             f"Input: {args.num_images} FER2013 PrivateTest images (48x48 grayscale JPEG face crops; a fixed random "
             "subset, seed 0, of `fer2013/fer2013_images.zip`), extracted to a temporary folder.",
             "Model: the default `fer-vgg-fer2013`; detector: MTCNN (default options); CPU only.", "",
             "**Measured under load:** the machine has "
             f"{os.cpu_count()} CPU cores, shared with two training runs and other jobs going on at the same time (load average "
             f"{load[0]:.1f} before, {load_after[0]:.1f} after). Absolute numbers are therefore low and noisy; "
             "on an idle machine expect more.", "",
             f"Machine: {cpu_model()}, Python {platform.python_version()}.", "",
             "| --batch-size | torch threads | images/s (processing) | processing s | wall s (incl. start-up, model loading) "
             "| peak RSS MiB | faces | files without a face | errors |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        lines.append(f"| {r['batch_size']} | {r['threads']} | {r['images_per_s']:.1f} | {r['processing_s']:.1f} | {r['wall_s']:.1f} | "
                     f"{r['max_rss_mib']:.0f} | {r['faces']} | {r['no_face']} | {r['errors']} |")
    lines += ["", "Commands (`/usr/bin/time -v` around each, `OMP_NUM_THREADS` unset; `<tmp>` is the temporary "
              "folder):", ""]
    for r in results:
        lines += ["```", r["command"], "```", ""]
    lines += ["Summary printed by the last run:", "", "```", results[-1]["summary"], "```", "",
              "Notes: `images/s` counts files over the processing time (detection, classification, writing), model "
              "loading excluded. On 48x48 crops detection dominates; `--batch-size` only groups the classifier's "
              "forward passes (several images' faces in one), so its gain is bounded by the classifier's share of "
              "the time. The peak memory is that of one process (`Maximum resident set size`).", "",
              "Threads: with torch's default of one thread per core on cores that other processes keep busy, "
              "OpenMP's worker threads wait on each other (MTCNN's many small convolutions), which is far slower "
              "than one thread; `--threads 1` (or `OMP_NUM_THREADS=1`) avoids it. With several processes "
              "(`accelerate launch`), give each process its share of the cores.", "",
              "MTCNN finds no face in some 48x48 crops (the face fills the whole image); those files are "
              "`no face` rows."]
    write_text(args.output, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
