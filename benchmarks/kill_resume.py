#!/usr/bin/env python
"""Kill / resume benchmark of ``train_accelerate.py``: one small real run trained without interruption, and
the same run (same seed and arguments) SIGKILLed ``--kills`` times at random points and resumed each time
with ``--resume_from_checkpoint latest`` until it finishes. Writes ``benchmarks/results/kill_resume.md`` (and a
JSON next to it): the commands, where each kill landed (mid-epoch, inside a checkpoint write, in the final
evaluation, inside the release write...), the optimiser steps, epochs and metrics of both runs.

    python benchmarks/kill_resume.py --data_dir ../shared/data/fer2013/fer2013_images.zip --kills 5

Kill points are drawn from ``random.Random(--seed)``: ``--kills`` points uniform over the training phase of
the uninterrupted run (from the end of data loading to its last checkpoint) plus 10%, sorted; an invocation
resumed after N epochs is killed at its point minus N epochs' worth of that time. They land in epochs,
checkpoint writes, the final evaluation and the release. Only the PIDs this script
starts are killed. Runs go to ``--work_dir`` (a new temporary folder by default), never to ``runs/``.
"""

import argparse
import json
import os
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, result_path, write_json, write_text

DEFAULT_TRAIN_ARGS = ("--dataset fer2013 --max_train_samples 2048 --max_eval_samples 512 "
                      "--config_overrides hidden_sizes=[16,32,64],classifier_hidden_size=64 "
                      "--per_device_train_batch_size 64 --num_threads 1 --cpu --mixed_precision no "
                      "--checkpoints_total_limit 2 --seed 11")


def latest_state(out: Path):
    from fer_hf.training.checkpointing import latest_checkpoint

    path = latest_checkpoint(out)
    return (path, json.loads((path / "trainer_state.json").read_text())) if path else (None, None)


def where(out: Path, epochs: int) -> str:
    """Where a kill landed, from what it left on disk."""
    _, state = latest_state(out)
    done = len(state["history"]) if state else 0
    checkpoints = out / "checkpoints"
    if (out / ".release_pending.json").exists():
        return "moving the release files in"
    if (out / ".tmp_release").exists():
        return "writing the release (staging)"
    if checkpoints.is_dir() and any(checkpoints.glob(".old_epoch_*")):
        return f"swapping checkpoint epoch_{done}"
    if checkpoints.is_dir() and any(checkpoints.glob(".tmp_epoch_*")):
        return f"writing checkpoint of epoch {done + 1} (staging)"
    if done < epochs:
        return f"epoch {done + 1} (training or evaluation)"
    if (out / "eval_results.json").exists():
        return "after the release (shutdown)"
    return "final evaluation"


def invoke(cmd, log_path: Path, delay=None, ready="", trained_marker: Path | None = None):
    """Run ``cmd``; with ``delay``, SIGKILL it (its PID only) ``delay`` seconds after ``ready`` appears in its
    log. Returns (killed, exit status, seconds from ready to trained_marker or to the end, wall seconds)."""
    begun = time.time()
    with open(log_path, "w") as log:
        process = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                   env=dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO)))
    try:
        while ready not in log_path.read_text() and process.poll() is None:
            time.sleep(0.05)
        started, trained = time.time(), None
        while process.poll() is None and (delay is None or time.time() - started < delay):
            if trained is None and trained_marker is not None and trained_marker.is_dir():
                trained = time.time() - started
            time.sleep(0.01)
        killed = process.poll() is None
        if killed:
            os.kill(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
    return killed, process.returncode, trained if trained is not None else time.time() - started, time.time() - begun


def summary(out: Path) -> dict:
    import torch

    path, state = latest_state(out)
    optimizer = torch.load(path / "optimizer.bin", weights_only=True)
    results = json.loads((out / "eval_results.json").read_text())
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    return {"global_step": state["global_step"], "optimizer_step": sorted({int(s["step"]) for s in optimizer["state"].values()}),
            "epochs": state["epoch"] + 1, "best_epoch": state["best_epoch"], "logged_epochs": [r["epoch"] for r in log],
            "validation_accuracy_per_epoch": [r["validation_accuracy"] for r in log],
            "train_loss_per_epoch": [r["train_loss"] for r in log],
            **{f"{split}_accuracy": results[split]["accuracy"] for split in ("validation", "test", "test_flip_tta")},
            "test_macro_f1": results["test"]["macro_f1"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="Seed of the kill points.")
    parser.add_argument("--train_args", default=DEFAULT_TRAIN_ARGS)
    parser.add_argument("--work_dir", default=None)
    parser.add_argument("--output", default=str(result_path("kill_resume")))
    args = parser.parse_args()
    import torch
    from safetensors.torch import load_file

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="kill_resume_"))
    work.mkdir(parents=True, exist_ok=True)
    base = [sys.executable, "train_accelerate.py", "--data_dir", args.data_dir, *shlex.split(args.train_args),
            "--num_train_epochs", str(args.epochs)]
    ready = ", validation "  # "train N, validation M, test K": data decoded, training starts
    straight, killed_run = work / "straight", work / "killed"
    last = f"epoch_{args.epochs - 1}"
    _, code, seconds, straight_wall = invoke([*base, "--output_dir", str(straight)], work / "straight.log", ready=ready,
                                             trained_marker=straight / "checkpoints" / last)
    assert code == 0, (work / "straight.log").read_text()[-3000:]
    rng = random.Random(args.seed)
    # kill points on the uninterrupted run's timeline (seconds after data loading), uniform over its training
    # phase and 10% beyond (final evaluation, release); a resumed invocation starts at its checkpoint's place
    # on that timeline (epochs done x seconds per epoch)
    points = sorted(rng.uniform(0, 1.1 * seconds) for _ in range(args.kills))
    kills, invocations, killed_wall = [], 0, 0.0
    cmd = [*base, "--output_dir", str(killed_run), "--resume_from_checkpoint", "latest"]
    while True:
        invocations += 1
        _, state = latest_state(killed_run)
        done = len(state["history"]) if state else 0
        delay = max(0.0, points[len(kills)] - done * seconds / args.epochs) if len(kills) < args.kills else None
        log_path = work / f"killed_{invocations}.log"
        killed, code, _, wall = invoke(cmd, log_path, delay=delay, ready=ready)
        killed_wall += wall
        resumed = next((line.split("Resuming from ")[1] for line in log_path.read_text().splitlines()
                        if "Resuming from " in line), "(fresh start)")
        if not killed:
            assert code == 0, log_path.read_text()[-3000:]
            break
        kills.append({"invocation": invocations, "resumed_from": Path(resumed).name if resumed[0] == "/" else resumed,
                      "timeline_s": round(points[len(kills)], 2), "killed_after_s": round(delay, 2),
                      "landed": where(killed_run, args.epochs)})
        print(kills[-1], flush=True)
    a, b = summary(straight), summary(killed_run)
    weights_a, weights_b = load_file(straight / "model.safetensors"), load_file(killed_run / "model.safetensors")
    max_weight_diff = max((weights_a[k].float() - weights_b[k].float()).abs().max().item() for k in weights_a)
    per_epoch = max(abs(x - y) for x, y in zip(a["validation_accuracy_per_epoch"], b["validation_accuracy_per_epoch"]))
    loss_diff = max(abs(x - y) for x, y in zip(a["train_loss_per_epoch"], b["train_loss_per_epoch"]))
    report = {"command": " ".join(shlex.quote(c) for c in [*base[1:], "--output_dir", "<dir>"]), "seed": args.seed,
              "kills": kills, "invocations": invocations, "uninterrupted": a, "killed_and_resumed": b,
              "max_abs_weight_difference": max_weight_diff, "max_abs_validation_accuracy_difference_per_epoch": per_epoch,
              "max_abs_train_loss_difference_per_epoch": loss_diff,
              "wall_seconds": {"uninterrupted": round(straight_wall, 1), "killed_and_resumed_total": round(killed_wall, 1)},
              "torch": torch.__version__, "cpu_count": os.cpu_count()}
    write_json(Path(args.output).with_suffix(".json"), report)
    rows = "\n".join(f"| {k['invocation']} | {k['resumed_from']} | {k['timeline_s']} | {k['killed_after_s']} | "
                     f"{k['landed']} |" for k in kills)
    keys = ("global_step", "optimizer_step", "epochs", "best_epoch", "logged_epochs", "validation_accuracy",
            "test_accuracy", "test_flip_tta_accuracy", "test_macro_f1")
    table = "\n".join(f"| {key} | {a[key]} | {b[key]} | {'yes' if a[key] == b[key] else 'NO'} |" for key in keys)
    exact = all(a[key] == b[key] for key in keys) and max_weight_diff == 0 and per_epoch == 0 and loss_diff == 0
    verdict = ("**Result: identical.** Same optimiser steps, epochs, per-epoch metrics, selected epoch, final metrics "
               "and bitwise-identical released weights." if exact else
               "**Result: not bitwise identical** (see the differences above).")
    md = f"""# Kill / resume benchmark

`python benchmarks/kill_resume.py --data_dir {args.data_dir} --epochs {args.epochs} --kills {args.kills} --seed {args.seed}`
(torch {torch.__version__}, CPU, {os.cpu_count()} cores shared with other jobs).

Each invocation of the interrupted run:

```bash
python {report['command'].replace('<dir>', 'KILLED')} --resume_from_checkpoint latest
```

SIGKILLed (`kill -9` of its PID) at a random point, {len(kills)} times, then left to finish
({invocations} invocations in all). The uninterrupted run is the same command with another `--output_dir`,
without `--resume_from_checkpoint`. Kill points: `random.Random({args.seed})`, {len(kills)} points uniform over
the uninterrupted run's training phase ({seconds:.1f} s after data loading, to its last checkpoint) + 10%,
sorted; an invocation resumed after N epochs is killed at its point minus N x {seconds / args.epochs:.1f} s.

| invocation | resumed from | kill point on the timeline (s) | killed after (s, from end of data loading) | landed in |
|---|---|---|---|---|
{rows}

| | uninterrupted | killed {len(kills)}x and resumed | equal |
|---|---|---|---|
{table}

Largest difference per epoch: validation accuracy {per_epoch:.3g}, train loss {loss_diff:.3g}; largest
absolute difference of a released weight: {max_weight_diff:.3g}. Wall time: {straight_wall:.0f} s uninterrupted,
{killed_wall:.0f} s over the {invocations} interrupted invocations (each pays start-up and data loading again;
work after the last checkpoint is redone).

{verdict}

Why: checkpoints are taken at epoch ends and hold the model, optimiser, scheduler and every RNG
state (accelerate `save_state`), so a resumed run replays the same batches and augmentations; on a CPU with
`--num_threads 1` float32 training is deterministic, so the noise to expect is 0. With bf16 autocast, several
threads or a GPU, kernels may not be bitwise reproducible and the numbers then differ by run-to-run noise, not
by the kills. The global step counts optimiser steps (`trainer_state.json`, `train_log.jsonl`) and matches the
optimiser's own `step` counter in `optimizer.bin`.

Raw numbers: `{Path(args.output).with_suffix('.json').name}`.
"""
    write_text(args.output, md)
    print(md)


if __name__ == "__main__":
    main()
