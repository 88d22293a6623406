"""Fault tolerance of train_accelerate.py on real FER2013 images: a run SIGKILLed at random points and
resumed with ``--resume_from_checkpoint latest`` ends exactly like an uninterrupted run with the same seed
(same optimiser steps, epochs, metrics, weights); kills inside a checkpoint write or a release write
leave the previous checkpoint / release usable (fer_hf.atomic).

Kills use SIGKILL on the PID of the training process this test started (nothing else), or the test hook
``FER_HF_TEST_CRASH_IN_SAVE`` (fer_hf.atomic.crash_point: ``os._exit(137)`` at a named point of a write).
The random kill points are drawn from ``random.Random(FER_HF_FAULT_SEED)`` (default 0) and printed.
"""

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import pytest
import torch
from conftest import FER2013_ZIP, REPO
from safetensors.torch import load_file

pytestmark = pytest.mark.slow
EPOCHS = 5
SIZES = {"Training": 1024, "PublicTest": 128, "PrivateTest": 128}
TRAIN = ["--dataset", "fer2013", "--config_overrides", "hidden_sizes=[8,16],classifier_hidden_size=32",
         "--per_device_train_batch_size", "32", "--num_train_epochs", str(EPOCHS), "--num_threads", "1", "--cpu",
         "--mixed_precision", "no", "--checkpoints_total_limit", "2", "--seed", "7", "--augmentation", "crp"]
STEPS_PER_EPOCH = SIZES["Training"] // 32
RELEASE_FILES = ("config.json", "model.safetensors", "preprocessor_config.json", "eval_results.json", "README.md",
                 "training_curves.png", "confusion_matrix.png")
READY = "train {Training}, validation {PublicTest}, test {PrivateTest}".format(**SIZES)  # data decoded


@pytest.fixture(scope="module")
def data_zip(tmp_path_factory):
    """A seeded random subset of the real FER2013 image-folder zip, in the same layout, written to a
    temporary folder: loading (and validating) 1,280 images instead of 35,887 keeps each of the many
    invocations short."""
    source = zipfile.ZipFile(FER2013_ZIP)
    names = [n for n in source.namelist() if n.endswith(".jpg")]
    rng = random.Random(0)
    target = tmp_path_factory.mktemp("data") / "fer2013_subset.zip"
    with zipfile.ZipFile(target, "w") as subset:
        for prefix, count in SIZES.items():
            for name in rng.sample(sorted(n for n in names if n.rsplit("/", 1)[-1].startswith(prefix + "_")), count):
                subset.writestr(name, source.read(name))
    return target


def command(out, *extra):
    return [sys.executable, str(REPO / "train_accelerate.py"), *TRAIN, "--data_dir", str(DATA_ZIP[0]),
            "--output_dir", str(out), *extra]


DATA_ZIP = []  # set by the `straight` fixture (module scope) from `data_zip`


def environment(crash=None):
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    env.pop("FER_HF_TEST_CRASH_IN_SAVE", None)
    if crash:
        env["FER_HF_TEST_CRASH_IN_SAVE"] = crash
    return env


def train(out, *extra, crash=None, expect=0):
    result = subprocess.run(command(out, *extra), check=False, cwd=out.parent, env=environment(crash),
                            capture_output=True, text=True, timeout=600)
    log = result.stdout + result.stderr
    assert result.returncode == expect, log[-4000:]
    return log


def start_and_kill(out, delay, log_path):
    """Start a resumable invocation, wait until it has decoded the data, sleep ``delay`` seconds and SIGKILL
    it (its own PID only). Returns (killed, seconds from training start to the last checkpoint's commit or
    to the kill, exit status)."""
    with open(log_path, "w") as log:
        process = subprocess.Popen(command(out, "--resume_from_checkpoint", "latest"), cwd=out.parent,
                                   env=environment(), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 300
        while READY not in log_path.read_text() and process.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        started = time.time()
        last = out / "checkpoints" / f"epoch_{EPOCHS - 1}"
        trained = None
        while time.time() - started < delay and process.poll() is None:
            if trained is None and last.is_dir():
                trained = time.time() - started
            time.sleep(0.01)
        killed = process.poll() is None
        if killed:
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
    return killed, trained if trained is not None else time.time() - started, process.returncode


def final_state(out):
    checkpoints = sorted((out / "checkpoints").glob("epoch_*"), key=lambda p: int(p.name.split("_")[1]))
    return json.loads((checkpoints[-1] / "trainer_state.json").read_text()), checkpoints


def assert_same_run(straight, other, exact=True):
    """Same optimiser steps, epochs, per-epoch metrics, selected epoch, final metrics and weights."""
    state_a, _ = final_state(straight)
    state_b, checkpoints = final_state(other)
    assert [c.name for c in checkpoints] == [f"epoch_{EPOCHS - 2}", f"epoch_{EPOCHS - 1}"]  # limit 2
    assert state_b["global_step"] == state_a["global_step"] == EPOCHS * STEPS_PER_EPOCH
    assert state_b["epoch"] == state_a["epoch"] == EPOCHS - 1
    assert state_b["best_epoch"] == state_a["best_epoch"]
    # the optimiser's own step counter agrees: no step was lost or repeated across the kills
    optimizer = torch.load(checkpoints[-1] / "optimizer.bin", weights_only=True)
    assert {int(s["step"]) for s in optimizer["state"].values()} == {EPOCHS * STEPS_PER_EPOCH}
    log_a = [json.loads(line) for line in (straight / "train_log.jsonl").read_text().splitlines()]
    log_b = [json.loads(line) for line in (other / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log_b] == list(range(1, EPOCHS + 1))  # no epoch lost, doubled or truncated
    assert [r["global_step"] for r in log_b] == [STEPS_PER_EPOCH * e for e in range(1, EPOCHS + 1)]
    tolerance = 1e-6 if exact else 1e-2
    for a, b in zip(log_a, log_b):
        for key in ("train_loss", "validation_loss", "validation_accuracy", "learning_rate"):
            assert abs(a[key] - b[key]) <= tolerance, (key, a, b)
    results_a = json.loads((straight / "eval_results.json").read_text())
    results_b = json.loads((other / "eval_results.json").read_text())
    assert results_b["epochs_trained"] == results_a["epochs_trained"] == EPOCHS
    for split in ("validation", "test", "test_flip_tta"):
        assert abs(results_a[split]["accuracy"] - results_b[split]["accuracy"]) <= tolerance, split
        assert abs(results_a[split]["macro_f1"] - results_b[split]["macro_f1"]) <= tolerance, split
    weights_a, weights_b = load_file(straight / "model.safetensors"), load_file(other / "model.safetensors")
    assert weights_a.keys() == weights_b.keys()
    for key in weights_a:
        assert torch.allclose(weights_a[key], weights_b[key], atol=1e-5), key
    leftovers = [p.name for p in (*other.iterdir(), *(other / "checkpoints").iterdir())
                 if p.name.startswith((".tmp_", ".old_", ".release_pending"))]
    assert not leftovers


def digest(folder):
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in RELEASE_FILES}


@pytest.fixture(scope="module")
def straight(tmp_path_factory, data_zip):
    """The uninterrupted reference run, and how long it trains (from the decoded data to its last
    checkpoint)."""
    DATA_ZIP[:] = [data_zip]
    out = tmp_path_factory.mktemp("straight") / "run"
    log = out.parent / "straight.log"
    killed, seconds, code = start_and_kill(out, delay=10 ** 6, log_path=log)
    assert not killed and code == 0, log.read_text()[-4000:]
    return out, seconds


def test_sigkill_at_random_points_then_resume_ends_like_an_uninterrupted_run(straight, tmp_path):
    from fer_hf.training.checkpointing import latest_checkpoint

    reference, seconds = straight
    out = tmp_path / "run"
    rng = random.Random(int(os.environ.get("FER_HF_FAULT_SEED", "0")))
    # kill points on the reference run's timeline (seconds after data loading): uniform over its training
    # phase (epochs and checkpoint writes) and 10% beyond it (final evaluation, release). A resumed
    # invocation starts at its checkpoint's place on that timeline (epochs done x seconds per epoch).
    points = sorted(rng.uniform(0.0, 1.1 * seconds) for _ in range(3))
    kills, invocations = [], 0
    while True:
        invocations += 1
        done = len(json.loads((latest_checkpoint(out) / "trainer_state.json").read_text())["history"]) \
            if latest_checkpoint(out) else 0
        delay = max(0.0, points[len(kills)] - done * seconds / EPOCHS) if len(kills) < len(points) else 10 ** 6
        killed, _, code = start_and_kill(out, delay, tmp_path / f"invocation_{invocations}.log")
        if not killed:
            assert code == 0, (tmp_path / f"invocation_{invocations}.log").read_text()[-4000:]
            break
        assert code == -signal.SIGKILL
        committed = sorted(p.name for p in (out / "checkpoints").glob("epoch_*")) if (out / "checkpoints").is_dir() else []
        kills.append({"after_seconds": round(delay, 2), "checkpoints_left": committed})
        assert invocations < 10
    print(f"kills (seed {os.environ.get('FER_HF_FAULT_SEED', '0')}): {kills}")
    assert kills, "no kill landed: the reference run was too short"
    assert_same_run(reference, out)
    logs = "".join((tmp_path / f"invocation_{i}.log").read_text() for i in range(2, invocations + 1))
    assert "Resuming from" in logs or "No checkpoint" in logs


def test_kill_inside_a_checkpoint_write_resumes_from_the_previous_checkpoint(straight, tmp_path):
    from fer_hf.training.checkpointing import latest_checkpoint

    reference, _ = straight
    out = tmp_path / "run"
    # 1. killed while writing epoch 3's checkpoint (weights and optimiser written, trainer_state.json not yet)
    train(out, crash="checkpoint:3", expect=137)
    checkpoints = out / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == [".tmp_epoch_2", "epoch_0", "epoch_1"]
    assert (checkpoints / ".tmp_epoch_2" / "model.safetensors").is_file()
    assert not (checkpoints / ".tmp_epoch_2" / "trainer_state.json").exists()
    assert latest_checkpoint(out) == checkpoints / "epoch_1"
    # a kill can also truncate the last line of the log: resume must not trip on it
    with open(out / "train_log.jsonl", "a") as handle:
        handle.write('{"epoch": 3, "train_lo')
    # 2. re-running an epoch whose checkpoint exists (resume from epoch_0) and killed between the two renames
    #    that swap the new epoch_1 in: only .old_epoch_1 is left, and the next invocation puts it back
    log = train(out, "--resume_from_checkpoint", str(checkpoints / "epoch_0"), crash="checkpoint_swap:2",
                expect=137)
    assert "Resuming from" in log
    assert not (checkpoints / "epoch_1").exists() and (checkpoints / ".old_epoch_1").is_dir()
    # 3. resume: the previous complete checkpoint is used, staging folders are cleaned up
    log = train(out, "--resume_from_checkpoint", "latest")
    assert f"Resuming from {checkpoints / 'epoch_1'}" in log
    assert_same_run(reference, out)


def test_kill_while_writing_a_release_keeps_the_previous_release_loadable(straight, tmp_path):
    from fer_hf.atomic import RELEASE_JOURNAL, RELEASE_STAGING, recover_release
    from fer_hf.models import load_fer_model

    reference, _ = straight
    out = tmp_path / "run"
    shutil.copytree(reference, out)  # a finished run; re-invoking it re-evaluates and re-releases
    before = digest(out)
    probe = torch.rand(4, 1, 48, 48)
    expected = load_fer_model(out).eval()(pixel_values=probe).logits
    # 1. killed while the new release is written (weights written, the rest not): nothing published
    train(out, "--resume_from_checkpoint", "latest", crash="release", expect=137)
    assert (out / RELEASE_STAGING / "model.safetensors").is_file()
    assert digest(out) == before
    assert torch.allclose(load_fer_model(out).eval()(pixel_values=probe).logits, expected)
    # 2. killed while moving the files in (after the first one): the journal lets the next run roll forward
    train(out, "--resume_from_checkpoint", "latest", crash="release_publish", expect=137)
    assert (out / RELEASE_JOURNAL).is_file() and (out / RELEASE_STAGING).is_dir()
    assert recover_release(out) == "rolled forward"
    assert not (out / RELEASE_JOURNAL).exists() and not (out / RELEASE_STAGING).exists()
    assert all((out / name).is_file() for name in RELEASE_FILES)
    assert torch.allclose(load_fer_model(out).eval()(pixel_values=probe).logits, expected)
    assert json.loads((out / "eval_results.json").read_text())["test"] == \
        json.loads((reference / "eval_results.json").read_text())["test"]


CRASHING_WRITER = """
import os, sys
from pathlib import Path
from fer_hf.atomic import RELEASE_STAGING, publish_files, replace_dir, staging_dir
root, what = Path(sys.argv[1]), sys.argv[2]
if what == "folder":
    staged = staging_dir(root / "folder")
    staged.mkdir()
    (staged / "a.txt").write_text("new")
    replace_dir(staged, root / "folder", crash_stage="test")
elif what == "release":
    staged = root / "release" / RELEASE_STAGING
    staged.mkdir()
    for name in ("a.txt", "b.txt", "eval_results.json"):
        (staged / name).write_text("new")
    publish_files(staged, root / "release", remove=["stale.py"])
else:  # killed while writing the staging folder
    staged = root / "release" / RELEASE_STAGING
    staged.mkdir()
    (staged / "a.txt").write_text("new")
    os._exit(137)
"""


@pytest.mark.parametrize("what", ["folder", "release", "staging"])
def test_atomic_primitives_survive_a_kill_at_their_worst_point(tmp_path, what):
    from fer_hf.atomic import RELEASE_JOURNAL, recover_dir, recover_release

    folder, release = tmp_path / "folder", tmp_path / "release"
    folder.mkdir()
    (folder / "a.txt").write_text("old")
    release.mkdir()
    for name in ("a.txt", "b.txt", "eval_results.json", "stale.py"):
        (release / name).write_text("old")
    crash = {"folder": "test_swap", "release": "release_publish", "staging": None}[what]
    result = subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(tmp_path), what], check=False,
                            env=environment(crash), capture_output=True, text=True, timeout=120)
    assert result.returncode == 137, result.stderr
    if what == "folder":  # killed between "folder -> .old_folder" and ".tmp_folder -> folder"
        assert not folder.exists()
        recover_dir(folder)
        assert (folder / "a.txt").read_text() == "old"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "release"]
    elif what == "release":  # killed after the first file was moved in: mixed until rolled forward
        assert (release / RELEASE_JOURNAL).is_file() and (release / "a.txt").read_text() == "new"
        assert (release / "eval_results.json").read_text() == "old"  # the "done" marker goes last
        assert (release / "stale.py").is_file()  # removed after the moves, under the journal
        assert recover_release(release) == "rolled forward"
        assert {p.name: p.read_text() for p in release.iterdir()} == dict.fromkeys(
            ("a.txt", "b.txt", "eval_results.json"), "new")
    else:  # killed while writing the new release: the old one is untouched, the staging is discarded
        assert {p.name: p.read_text() for p in release.iterdir() if p.is_file()} == dict.fromkeys(
            ("a.txt", "b.txt", "eval_results.json", "stale.py"), "old")
        assert recover_release(release) == "discarded staging"
        assert sorted(p.name for p in release.iterdir()) == ["a.txt", "b.txt", "eval_results.json", "stale.py"]


def test_a_truncated_log_line_is_skipped(tmp_path):
    from fer_hf.atomic import read_jsonl

    log = tmp_path / "train_log.jsonl"
    log.write_text('{"epoch": 1, "a": 1}\n{"epoch": 2, "a": 2}\n{"epoch": 2, "a": 3}\n{"epoch": 3, "a"')
    assert read_jsonl(log, key="epoch") == [{"epoch": 1, "a": 1}, {"epoch": 2, "a": 3}]


def test_latest_checkpoint_ignores_staging_and_incomplete_folders(tmp_path):
    from fer_hf.training.checkpointing import latest_checkpoint, recover_run_folder

    checkpoints = tmp_path / "checkpoints"
    for name, state in (("epoch_1", "{}"), ("epoch_2", None), ("epoch_3", '{"epoch": 3, "hist'),
                        (".tmp_epoch_4", "{}"), ("epoch_x", "{}")):
        (checkpoints / name).mkdir(parents=True)
        if state is not None:
            (checkpoints / name / "trainer_state.json").write_text(state)
    # epoch_2: no completion marker; epoch_3: marker truncated (written in place by an older version)
    assert latest_checkpoint(tmp_path) == checkpoints / "epoch_1"
    recover_run_folder(tmp_path)
    assert sorted(p.name for p in checkpoints.iterdir()) == ["epoch_1", "epoch_x"]
