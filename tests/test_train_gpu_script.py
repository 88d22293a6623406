"""benchmarks/train_gpu.py's parts that run without a GPU: the data packing that fits FER2013 into the device's
64 MiB working tree, the collection of finished runs into parts the device tool brings back (at most 8 files of
16 MiB), and the schedule sizing."""

import json
import shutil
import tarfile
import zipfile

import pytest
from conftest import FER2013_ZIP, REPO, load_benchmark

train_gpu = load_benchmark("train_gpu")

RELEASED = REPO / "model_cards" / "fer-vgg-distilled"


@pytest.mark.skipif(not FER2013_ZIP.is_file(), reason=f"{FER2013_ZIP} not found")
def test_pack_and_unpack_give_back_every_face_byte_for_byte(tmp_path):
    blob = tmp_path / "fer2013.pack"
    train_gpu.pack(str(FER2013_ZIP), blob)
    with zipfile.ZipFile(FER2013_ZIP) as archive:
        files = [info for info in archive.infolist() if not info.is_dir()]
        assert blob.stat().st_size == sum(info.file_size for info in files)
        # smaller than the zip: the per-file headers are gone
        assert blob.stat().st_size + (tmp_path / "fer2013.pack.index.json").stat().st_size < FER2013_ZIP.stat().st_size
        train_gpu.unpack(blob, tmp_path / "folder")
        unpacked = sorted(p for p in (tmp_path / "folder").rglob("*") if p.is_file())
        assert len(unpacked) == len(files) == 35887
        for info in files[::97] + files[-3:]:
            assert (tmp_path / "folder" / info.filename).read_bytes() == archive.read(info)


def _run_folder(path, with_checkpoints=True):
    shutil.copytree(RELEASED, path)
    if with_checkpoints:
        (path / "checkpoints" / "epoch_3").mkdir(parents=True)
        (path / "checkpoints" / "epoch_3" / "model.safetensors").write_bytes(b"0" * 1000)
        (path / "teacher_soft_targets.pt").write_bytes(b"0" * 1000)
    return path


def test_collect_tars_finished_runs_without_checkpoints_within_the_size_limit(tmp_path):
    runs = tmp_path / "runs"
    a = _run_folder(runs / "run-a")
    b = _run_folder(runs / "zoo" / "run-b")
    (runs / "logs").mkdir()
    (runs / "logs" / "run-a.log").write_text("epoch 1\n")
    unfinished = runs / "run-c"
    unfinished.mkdir()
    (unfinished / "train_log.jsonl").write_text("{}\n")
    one_run = sum(f.stat().st_size for f in RELEASED.iterdir() if f.is_file())
    out = tmp_path / "out1"
    train_gpu.collect(runs, out, max_mb=1.5 * one_run / 1e6)  # room for one run only
    parts = sorted(out.glob("runs.tar.part-*"))
    assert parts and all(p.stat().st_size <= 15 * 2 ** 20 for p in parts)
    names = _tar_names(parts)
    assert any(n.endswith("run-a/model.safetensors") for n in names)
    assert not any("run-b" in n or "checkpoints" in n or "teacher_soft_targets" in n or "run-c" in n for n in names)
    with tarfile.open(out / "logs.tar") as tar:
        assert any(n.endswith("logs/run-a.log") for n in tar.getnames())
    assert json.loads((runs / "collected.json").read_text()) == [str(a)]
    # the next call brings the run that did not fit, and not run-a again
    out2 = tmp_path / "out2"
    train_gpu.collect(runs, out2, max_mb=60)
    names = _tar_names(sorted(out2.glob("runs.tar.part-*")))
    assert any(n.endswith("run-b/model.safetensors") for n in names)
    assert not any("run-a" in n for n in names)
    assert json.loads((runs / "collected.json").read_text()) == [str(a), str(b)]


def _tar_names(parts) -> list:
    data = b"".join(p.read_bytes() for p in parts)
    path = parts[0].parent / "joined.tar"
    path.write_bytes(data)
    with tarfile.open(path) as tar:
        return tar.getnames()


def test_schedules_fit_the_budget_and_end_before_their_guard():
    # the first lease's numbers: 7.88 s per epoch, 7.53 minutes
    for seconds_per_epoch, budget in [(7.88, 452), (10.77, 452), (8.0, 600), (30.1, 452)]:
        epochs = train_gpu.epochs_for(seconds_per_epoch, budget)
        planned = epochs * seconds_per_epoch
        guard = train_gpu.guard_minutes(seconds_per_epoch, budget) * 60
        # the schedule ends before the guard, even 10% slower than measured ...
        assert 1.1 * planned < guard + seconds_per_epoch
        # ... and the guard stops a far slower run inside the budget (an epoch may start just before it)
        assert train_gpu.OVERHEAD_SECONDS + guard + seconds_per_epoch <= budget + 1e-9
        assert planned > 0.7 * (budget - train_gpu.OVERHEAD_SECONDS)  # most of the budget is used
    assert train_gpu.epochs_for(0.01, 600) == train_gpu.MAX_EPOCHS
    assert train_gpu.epochs_for(100.0, 60) == 5  # never fewer than 5 epochs


def test_zoo_runs_on_the_gpu_keep_their_cpu_recipe_and_share_the_guard(tmp_path):
    """Both phases build a zoo row's command alike: the CPU recipe and epochs of benchmarks/train_zoo.py, the
    `guard_minutes` of the budget left (the student phase once gave them "budget - 2 min", which outlasts the
    budget for a slow row), and a resume once the run has a checkpoint."""
    flags, epochs = train_gpu.ZOO_RUNS["cnn-lstm"]
    out = tmp_path / "zoo" / "cnn-lstm"
    command = train_gpu.zoo_command("cnn-lstm", "data.zip", out, 30.1, 452)
    joined = " ".join(command)
    assert flags in joined and f"--num_train_epochs {epochs} " in joined and train_gpu.COMMON in joined
    guard = float(command[command.index("--stop_after_minutes") + 1])
    assert guard == pytest.approx(train_gpu.guard_minutes(30.1, 452), abs=0.05)
    assert "--resume_from_checkpoint" not in command
    (out / "checkpoints" / "epoch_3").mkdir(parents=True)
    resumed = train_gpu.zoo_command("cnn-lstm", "data.zip", out, None, 452)  # no timing: the fallback speed
    assert resumed[resumed.index("--resume_from_checkpoint") + 1] == "latest"
    assert float(resumed[resumed.index("--stop_after_minutes") + 1]) == pytest.approx(
        train_gpu.guard_minutes(train_gpu.FALLBACK_SECONDS_PER_EPOCH, 452), abs=0.05)
