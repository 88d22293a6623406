#!/usr/bin/env python
"""Train every fer_hf architecture on full FER2013 under one protocol, one run after another.

Each run is ``train_accelerate.py`` with a shared recipe plus its architecture's flags (below), writing to
``RUNS_DIR/<name>/``. Finished runs (with ``eval_results.json``) are skipped; interrupted ones resume from
their last checkpoint. With ``--deadline HH:MM`` (local time) every run gets ``--stop_after_minutes`` so
that it checkpoints and stops before then: run the same command again later to continue. The results
table is written by ``benchmarks/model_zoo.py --runs_dir RUNS_DIR``.

    python benchmarks/train_zoo.py --data_dir ../shared/data/fer2013/fer2013_images.zip --deadline 14:30
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import subprocess
import sys
from pathlib import Path

from common import REPO

#: Shared recipe: AdamW + OneCycle, label smoothing, bf16 autocast (about 2x on this CPU), crp+cutout.
COMMON = ("--mixed_precision bf16 --optimizer adamw --lr_scheduler onecycle --learning_rate 3e-3 "
          "--weight_decay 0.05 --label_smoothing 0.1 --augmentation crp+cutout")

#: name -> (architecture flags, epochs). Names match benchmarks/model_zoo.py's rows. Epochs are set by cost on
#: the project's 2-core CPU: 60 for the reference fer-vgg, 40 for the ResNet-18, 30 for the small nets, 20 for the
#: slowest (ferplus-vgg: 0.94 GFLOPs per face; EfficientNet-B0: depthwise convolutions, about 70 images/s; the
#: three ACNN-ALSTM variants, kept equal so that the ablation compares like with like).
ZOO_RUNS = {
    "ferplus-baseline": ("--model_type fer_vgg --config_preset ferplus-baseline", 30),
    "fer-lrn": ("--model_type fer_lrn --config_preset fer-lrn", 30),
    "fer-conv1x1": ("--model_type fer_conv1x1 --config_preset fer-conv1x1", 30),
    "fer-vgg": ("--model_type fer_vgg --config_preset fer-vgg", 60),
    "fer-resnet18": ("--model_type fer_resnet --config_preset fer-resnet18", 40),
    "fer-efficientnet-b0": ("--model_type fer_efficientnet --config_preset fer-efficientnet-b0", 20),
    "acnn-alstm": ("--model_type fer_acnn_alstm --config_preset acnn-alstm", 20),
    "ferplus-vgg": ("--model_type fer_vgg --config_preset ferplus-vgg", 20),
    "cnn-alstm": ("--model_type fer_acnn_alstm --config_preset cnn-alstm", 20),
    "cnn-lstm": ("--model_type fer_acnn_alstm --config_preset cnn-lstm", 20),
}


def run_command(name: str, data_dir: str, runs_dir: str, common: str, threads: int) -> list:
    flags, epochs = ZOO_RUNS[name]
    return [sys.executable, str(REPO / "train_accelerate.py"), "--dataset", "fer2013", "--data_dir", data_dir,
            "--output_dir", str(Path(runs_dir) / name), "--model_name", name, "--num_train_epochs", str(epochs),
            "--num_threads", str(threads), *shlex.split(common), *shlex.split(flags)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--runs_dir", default="runs/zoo")
    parser.add_argument("--only", nargs="+", choices=sorted(ZOO_RUNS), default=None, help="Only these runs, in this order.")
    parser.add_argument("--common", default=COMMON, help="The shared recipe flags.")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the training process.")
    parser.add_argument("--deadline", default=None, help="HH:MM local time by which every run must have stopped.")
    parser.add_argument("--minimum_minutes", type=float, default=8.0,
                        help="Do not start (or resume) a run with less time than this before the deadline.")
    args = parser.parse_args()
    deadline = None
    if args.deadline:
        hour, minute = map(int, args.deadline.split(":"))
        deadline = dt.datetime.now().replace(hour=hour, minute=minute, second=0, microsecond=0)
        if deadline < dt.datetime.now():  # a deadline after midnight
            deadline += dt.timedelta(days=1)
    for name in args.only or list(ZOO_RUNS):
        out = Path(args.runs_dir) / name
        if (out / "eval_results.json").is_file():
            print(f"{name}: finished", flush=True)
            continue
        command = run_command(name, args.data_dir, args.runs_dir, args.common, args.threads)
        if list((out / "checkpoints").glob("epoch_*")):
            command += ["--resume_from_checkpoint", "latest"]
        if deadline is not None:
            # an epoch may still start just before the budget runs out: keep one epoch's worth of margin
            minutes = (deadline - dt.datetime.now()).total_seconds() / 60 - args.minimum_minutes
            if minutes <= 0:
                print(f"{name}: not started, deadline {args.deadline} too close", flush=True)
                break
            command += ["--stop_after_minutes", f"{minutes:.1f}"]
        print("running:", " ".join(shlex.quote(c) for c in command), flush=True)
        subprocess.run(command, check=True)
        if not (out / "eval_results.json").is_file():
            print(f"{name}: stopped before the end (deadline); run again to resume", flush=True)
            break


if __name__ == "__main__":
    main()
