#!/usr/bin/env python
"""Long-schedule FER2013 runs on a lent GPU, several ``train_accelerate.py`` processes at once, inside a fixed
time budget.

Models of 0.05-1 GFLOPs per 48x48 face leave one GPU mostly idle at batch 64 (the step is bound by kernel
launches, not arithmetic), so the runs of one phase share the GPU as separate processes. The machine is lent
for minutes, so every schedule (OneCycle spans ``--num_train_epochs``) is sized to end inside the phase's
budget from a measured speed:

1. ``--phase timing``: every run of the teacher phase, plus the student architecture, trains 2 epochs at the
   same time on a subset (``--timing_samples``); seconds per full epoch (training + the PublicTest pass) are
   scaled from the second epoch and written to ``RUNS_DIR/timing.json``.
2. ``--phase teachers``: the teachers (``TEACHERS``: fer-vgg twice, seeds and augmentation differing, and the
   FER+ system's VGG) with as many epochs as fit in ``--budget_minutes`` at that speed, alongside the zoo runs
   still untrained (``benchmarks/train_zoo.py``'s recipe and epochs, same protocol as the CPU rows).
3. ``--phase student``: the teachers that finished become an ensemble (``fer-hf ensemble``, weights fitted on
   PublicTest), and a student of at most twice the default model's GFLOPs (``STUDENT``: fer-vgg widened to
   44-352, 0.447 GFLOPs) is distilled from it (Hinton et al., 2015) from scratch, sized to the budget left.

Every run keeps the GUIDE's protocol (checkpoint chosen on PublicTest, PrivateTest reported once). Runs are
resumable: a run already finished (``eval_results.json``) is skipped; a run stopped by its
``--stop_after_minutes`` guard resumes from its last checkpoint when its phase is run again.

    python benchmarks/train_gpu.py --data_dir /tmp/fer2013 --phase timing
    python benchmarks/train_gpu.py --data_dir /tmp/fer2013 --phase teachers --budget_minutes 7.5
    python benchmarks/train_gpu.py --data_dir /tmp/fer2013 --phase student --budget_minutes 8.5

Seen on one H100 (2026-11-23, 8 processes sharing it, bf16 autocast, batch 64): per process, fer-vgg 4,800 and
the FER+ VGG 4,050 training images/s, the ACNN-ALSTM variants 2,600, EfficientNet-B0 880 (about 25,000 in all);
6-7 s per FER2013 epoch for the VGG nets, so a 7.5-minute teacher phase gave them 35-47 epochs: fewer processes
at once give each run more epochs. That first lease lost every run: five reached their last epoch and failed
in the final evaluation, which ran the selected model on the CPU against CUDA batches (fixed in
``train_accelerate.py``); two were stopped by their guard (see `guard_minutes`); the machine was not lent again
before they could be resumed.

``--pack`` / ``--unpack`` move the FER2013 image folder zip as one file of the JPEG bytes plus an index (the
zip's per-file headers are 5 MB of its 62 MB; the device's working tree is limited to 64 MiB).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from common import REPO
from train_zoo import COMMON, ZOO_RUNS

#: name -> flags over COMMON. Seeds differ so that the members of the teacher ensemble differ.
TEACHERS = {
    "gpu-fer-vgg-a": "--model_type fer_vgg --config_preset fer-vgg --seed 1",
    "gpu-fer-vgg-b": "--model_type fer_vgg --config_preset fer-vgg --seed 2 --augmentation mixup+cutmix",
    "gpu-ferplus-vgg": "--model_type fer_vgg --config_preset ferplus-vgg --seed 3",
}
#: the zoo rows still untrained when the GPU came (same flags and epochs as on the CPU)
ZOO_ON_GPU = ["cnn-alstm", "cnn-lstm", "fer-efficientnet-b0", "ferplus-vgg"]
#: the distilled student: fer-vgg widened to 44-352 channels (3.84M parameters, 0.447 GFLOPs per face, under
#: twice the 0.237 of fer-vgg-distilled, the default when the model-zoo issue set the 0.48 bar; today's default,
#: fer-vgg-44-distilled-ft, has this architecture)
STUDENT = ("--model_type fer_vgg --config_preset fer-vgg --config_overrides hidden_sizes=[44,88,176,352] --seed 4 "
           "--distillation_alpha 0.7 --distillation_temperature 4")
STUDENT_NAME = "gpu-student-44"
MAX_EPOCHS = 400
#: seconds a run spends outside its epochs: start-up and decoding the 35,887 faces before the first epoch (35 s
#: with 8 processes on the 16-core H100 machine), the final evaluation (three TTA modes on two splits), plots, card
OVERHEAD_SECONDS = 75
#: share of the time left for epochs that a schedule is sized to fill: the runs' speed varies (8-15% between
#: epochs was seen), and a run slower than measured must still end its schedule before its guard
SCHEDULE_FILL = 0.85
#: seconds per epoch assumed for a run whose timing failed
FALLBACK_SECONDS_PER_EPOCH = 10.0


EXTRA = ""  # --extra: flags added to every run (a smoke test on the CPU: "--cpu --max_eval_samples 100")


def train_command(name: str, flags: str, data_dir: str, output_dir: Path, epochs: int, extra: str = "") -> list:
    return [sys.executable, str(REPO / "train_accelerate.py"), "--dataset", "fer2013", "--data_dir", data_dir,
            "--output_dir", str(output_dir), "--model_name", name, "--num_train_epochs", str(epochs),
            "--num_threads", "2", "--checkpoints_total_limit", "2",
            *shlex.split(COMMON), *shlex.split(flags), *shlex.split(extra), *shlex.split(EXTRA)]


def launch(commands: dict, log_dir: Path) -> dict:
    log_dir.mkdir(parents=True, exist_ok=True)
    processes = {}
    for name, command in commands.items():
        print("running:", " ".join(shlex.quote(c) for c in command), flush=True)
        log = open(log_dir / f"{name}.log", "a")
        processes[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    return processes


def wait(processes: dict, started: float) -> dict:
    codes = {}
    while len(codes) < len(processes):
        for name, process in processes.items():
            if name not in codes and process.poll() is not None:
                codes[name] = process.returncode
                print(f"{name}: exit {process.returncode} after {time.time() - started:.0f} s", flush=True)
        time.sleep(2)
    return codes


def resumable(output_dir: Path) -> str:
    return "--resume_from_checkpoint latest" if list((output_dir / "checkpoints").glob("epoch_*")) else ""


def epochs_for(seconds_per_epoch: float, budget_seconds: float) -> int:
    """Epochs of a schedule that fills SCHEDULE_FILL of the budget left after the overhead (5 to MAX_EPOCHS)."""
    return max(5, min(MAX_EPOCHS, int(SCHEDULE_FILL * (budget_seconds - OVERHEAD_SECONDS) / seconds_per_epoch)))


def guard_minutes(seconds_per_epoch: float, budget_seconds: float) -> float:
    """``--stop_after_minutes`` of a run: no epoch starts after the time left for epochs less one epoch, so that
    a run far slower than measured still checkpoints, and stops for a resume, inside the budget. The first
    lease's guard (the time left less 30 s) was shorter than the schedules it sized and stopped the first fer-vgg
    teacher at epoch 38 of 47."""
    return max(1.0, (budget_seconds - OVERHEAD_SECONDS - seconds_per_epoch) / 60)


def scheduled_command(name: str, flags: str, data_dir: str, out: Path, seconds_per_epoch, budget: float) -> list:
    """The command of a budget-sized run: its epochs from the measured speed (`epochs_for`; kept in
    ``out/schedule.json`` so that a resumed run keeps its schedule), its guard (`guard_minutes`), resumed if
    it has a checkpoint."""
    seconds = seconds_per_epoch or FALLBACK_SECONDS_PER_EPOCH
    schedule = out / "schedule.json"
    epochs = json.loads(schedule.read_text())["epochs"] if schedule.is_file() else epochs_for(seconds, budget)
    out.mkdir(parents=True, exist_ok=True)
    schedule.write_text(json.dumps({"epochs": epochs, "seconds_per_epoch": seconds_per_epoch}))
    return train_command(name, flags, data_dir, out, epochs,
                         f"--stop_after_minutes {guard_minutes(seconds, budget):.1f} {resumable(out)}")


def zoo_command(name: str, data_dir: str, out: Path, seconds_per_epoch, budget: float) -> list:
    """The command of a zoo row on the GPU: its flags and epochs as on the CPU (`ZOO_RUNS`), stopped by
    `guard_minutes` of the budget left, resumed if it has a checkpoint (both phases run the unfinished ones)."""
    flags, epochs = ZOO_RUNS[name]
    guard = guard_minutes(seconds_per_epoch or FALLBACK_SECONDS_PER_EPOCH, budget)
    return train_command(name, flags, data_dir, out, epochs, f"--stop_after_minutes {guard:.1f} {resumable(out)}")


def phase_timing(args, runs: Path) -> None:
    commands = {name: train_command(name, flags, args.data_dir, runs / "timing" / name, MAX_EPOCHS,
                                    f"--stop_after_epochs 2 --max_train_samples {args.timing_samples}")
                for name, flags in {**TEACHERS, STUDENT_NAME: STUDENT.split(" --distillation")[0]}.items()}
    for name in ZOO_ON_GPU:  # the zoo runs share the GPU in the teacher phase: they load it here too
        flags, _ = ZOO_RUNS[name]
        commands[name] = train_command(name, flags, args.data_dir, runs / "timing" / name, MAX_EPOCHS,
                                       f"--stop_after_epochs 2 --max_train_samples {args.timing_samples}")
    started = time.time()
    wait(launch(commands, runs / "logs" / "timing"), started)
    timing = {}
    for name in commands:
        log = runs / "timing" / name / "train_log.jsonl"
        if not log.is_file() or not log.read_text().strip():
            print(f"{name}: no timing (the run failed: see {runs / 'logs' / 'timing' / name}.log)", flush=True)
            continue
        last = [json.loads(line) for line in log.read_text().splitlines()][-1]
        scale = 28709 / args.timing_samples
        timing[name] = round(last["train_seconds"] * scale + last["eval_seconds"], 2)
    timing["_note"] = (f"seconds per full FER2013 epoch (training scaled from {args.timing_samples} faces, plus the "
                       f"PublicTest pass), epoch 2 of {len(commands)} runs sharing the GPU")
    (runs / "timing.json").write_text(json.dumps(timing, indent=1))
    print(json.dumps(timing, indent=1), flush=True)


def phase_teachers(args, runs: Path) -> None:
    timing = json.loads((runs / "timing.json").read_text())
    budget = args.budget_minutes * 60
    commands = {}
    for name, flags in TEACHERS.items():
        out = runs / name
        if not (out / "eval_results.json").is_file():
            commands[name] = scheduled_command(name, flags, args.data_dir, out, timing.get(name), budget)
    for name in ZOO_ON_GPU:
        out = runs / "zoo" / name
        if not (out / "eval_results.json").is_file():
            commands[name] = zoo_command(name, args.data_dir, out, timing.get(name), budget)
    started = time.time()
    wait(launch(commands, runs / "logs" / "teachers"), started)


def phase_student(args, runs: Path) -> None:
    started = time.time()
    timing = json.loads((runs / "timing.json").read_text())
    teacher = runs / "teacher-ensemble"
    if not (teacher / "eval_results.json").is_file():
        members = [name for name in TEACHERS if (runs / name / "eval_results.json").is_file()]
        if not members:
            raise SystemExit("no teacher finished: run --phase teachers first")
        command = [sys.executable, "-m", "fer_hf", "ensemble", "--members", *[str(runs / m) for m in members],
                   "--data_dir", args.data_dir, "--output_dir", str(teacher), "--model_name", "gpu-teacher-ensemble",
                   "--device", args.device]
        print("running:", " ".join(shlex.quote(c) for c in command), flush=True)
        subprocess.run(command, check=True)
    budget = args.budget_minutes * 60 - (time.time() - started)
    out = runs / STUDENT_NAME
    commands = {}
    if not (out / "eval_results.json").is_file():
        commands[STUDENT_NAME] = scheduled_command(STUDENT_NAME, f"{STUDENT} --teacher_model {teacher}",
                                                   args.data_dir, out, timing.get(STUDENT_NAME), budget)
    for name in ZOO_ON_GPU:  # zoo runs the teacher phase could not finish
        zoo_out = runs / "zoo" / name
        if not (zoo_out / "eval_results.json").is_file():
            commands[name] = zoo_command(name, args.data_dir, zoo_out, timing.get(name), budget)
    wait(launch(commands, runs / "logs" / "student"), time.time())


def collect(runs: Path, folder: Path, max_mb: float) -> None:
    """Tar the finished run folders (``eval_results.json``) not collected before into ``folder``: the model, card,
    logs and plots, not the checkpoints; parts of at most 15 MiB (``runs.tar.part-aa``, ...), at most ``max_mb``
    MB in all (the rest waits for the next call); plus ``logs.tar`` (phase logs, timing)."""
    import tarfile

    done_file = runs / "collected.json"
    done = json.loads(done_file.read_text()) if done_file.is_file() else []
    skip = {"checkpoints", "best_model", "teacher_soft_targets.pt"}
    chosen, total = [], 0
    for results in sorted(runs.glob("**/eval_results.json")):
        run = results.parent
        if "timing" in run.relative_to(runs).parts or str(run) in done:
            continue
        # the teacher ensemble's weights are its members' (collected as runs): its results and card suffice
        run_skip = skip | ({"model.safetensors"} if run.name == "teacher-ensemble" else set())
        size = sum(f.stat().st_size for f in run.iterdir() if f.is_file() and f.name not in run_skip)
        if total + size > max_mb * 1e6:
            continue
        chosen.append((run, run_skip))
        total += size
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(folder / "logs.tar", "w") as tar:
        for path in [runs / "timing.json", runs / "logs"]:
            if path.exists():
                tar.add(path)
    if not chosen:
        return
    blob = folder / "runs.tar"
    with tarfile.open(blob, "w") as tar:
        for run, run_skip in chosen:
            for f in sorted(run.iterdir()):
                if f.is_file() and f.name not in run_skip:
                    tar.add(f)
    data = blob.read_bytes()
    blob.unlink()
    part = 15 * 2 ** 20
    for i in range(0, len(data), part):
        (folder / f"runs.tar.part-{i // part:02d}").write_bytes(data[i:i + part])
    done_file.write_text(json.dumps(done + [str(run) for run, _ in chosen]))
    print("collected:", [str(run) for run, _ in chosen], f"{total / 1e6:.1f} MB", flush=True)


def pack(zip_path: str, output: Path) -> None:
    """The image-folder zip -> ``output`` (the JPEG bytes, concatenated) + ``output.index.json``."""
    index = []
    with zipfile.ZipFile(zip_path) as archive, open(output, "wb") as blob:
        offset = 0
        for info in archive.infolist():
            if info.is_dir():
                continue
            data = archive.read(info)
            blob.write(data)
            index.append([info.filename, offset, len(data)])
            offset += len(data)
    Path(f"{output}.index.json").write_text(json.dumps(index))


def unpack(blob_path: Path, folder: Path) -> None:
    """`pack`'s output -> the image folder (``train/<label>/*.jpg``, ``test/<label>/*.jpg``)."""
    index = json.loads(Path(f"{blob_path}.index.json").read_text())
    data = blob_path.read_bytes()
    for name, offset, size in index:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data[offset:offset + size])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", help="The FER2013 image folder (or zip).")
    parser.add_argument("--runs_dir", default="runs/gpu")
    parser.add_argument("--phase", choices=["timing", "teachers", "student"])
    parser.add_argument("--budget_minutes", type=float, default=8.0, help="Wall-clock budget of the phase.")
    parser.add_argument("--until", type=float, default=None,
                        help="End of the phase as a Unix time (instead of --budget_minutes).")
    parser.add_argument("--collect", default=None, metavar="FOLDER",
                        help="Tar the finished runs not collected before (without checkpoints) into FOLDER, in "
                             "parts of at most 15 MiB, at most --collect_mb MB in all, and the logs.")
    parser.add_argument("--collect_mb", type=float, default=60.0)
    parser.add_argument("--timing_samples", type=int, default=9600)
    parser.add_argument("--device", default="cuda", help="Where the teacher ensemble is fitted and evaluated.")
    parser.add_argument("--only", nargs="+", default=None, help="Only these runs (teachers, zoo names, the student).")
    parser.add_argument("--extra", default="", help="Flags added to every train_accelerate.py run.")
    parser.add_argument("--pack", nargs=2, metavar=("ZIP", "BLOB"), help="Pack the image-folder zip into BLOB.")
    parser.add_argument("--unpack", nargs=2, metavar=("BLOB", "FOLDER"), help="Unpack BLOB into FOLDER.")
    args = parser.parse_args()
    if args.pack:
        return pack(args.pack[0], Path(args.pack[1]))
    if args.unpack:
        return unpack(Path(args.unpack[0]), Path(args.unpack[1]))
    if args.until is not None:
        args.budget_minutes = (args.until - time.time()) / 60
        print(f"budget: {args.budget_minutes:.2f} minutes", flush=True)
    global EXTRA
    EXTRA = args.extra
    if args.only:
        for name in list(TEACHERS):
            if name not in args.only:
                del TEACHERS[name]
        ZOO_ON_GPU[:] = [name for name in ZOO_ON_GPU if name in args.only]
    runs = Path(args.runs_dir)
    runs.mkdir(parents=True, exist_ok=True)
    if args.phase:
        {"timing": phase_timing, "teachers": phase_teachers, "student": phase_student}[args.phase](args, runs)
    if args.collect:
        collect(runs, Path(args.collect), args.collect_mb)


if __name__ == "__main__":
    main()
