"""Real (short) training runs of train_accelerate.py on real FER2013 images."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoImageProcessor, AutoModelForImageClassification

import fer_hf  # noqa: F401  (registers the fer_hf model types with the Auto classes)

from conftest import FER2013_ZIP, REPO

pytestmark = pytest.mark.slow
BIN = os.path.dirname(sys.executable)
COMMON = ["--dataset", "fer2013", "--data_dir", str(FER2013_ZIP), "--max_train_samples", "320",
          "--max_eval_samples", "301", "--per_device_train_batch_size", "32", "--per_device_eval_batch_size", "64"]


def run(launcher, args, tmp_path, name):
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    result = subprocess.run([*launcher, str(REPO / "train_accelerate.py"), *COMMON, *args], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=900)
    (tmp_path / f"{name}.log").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result.stdout + result.stderr


ACCELERATE = [os.path.join(BIN, "accelerate"), "launch", "--num_processes", "1", "--cpu", "--mixed_precision", "no",
              "--dynamo_backend", "no", "--num_machines", "1"]


def test_one_epoch_produces_a_loadable_released_folder(tmp_path):
    out = tmp_path / "model"
    run(ACCELERATE, ["--output_dir", str(out), "--num_train_epochs", "1", "--model_name", "tiny-run"], tmp_path, "one")
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "README.md", "eval_results.json",
                 "train_log.jsonl", "training_curves.png", "confusion_matrix.png", "modeling_fer_vgg.py",
                 "configuration_fer_vgg.py", "image_processing_fer.py"):
        assert (out / name).is_file(), name
    results = json.loads((out / "eval_results.json").read_text())
    assert results["test"]["num_samples"] == 301 and results["validation"]["num_samples"] == 301
    assert 0.0 <= results["test"]["accuracy"] <= 1.0 and results["best_epoch"] == 1
    card = (out / "README.md").read_text()
    assert card.startswith("---\n") and "model-index:" in card and "pipeline_tag: image-classification" in card
    assert f"value: {results['test']['accuracy']:.4f}" in card
    assert "accelerate launch train_accelerate.py" in card and "not FER2013 results" in card
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 1 and log[0]["epoch"] == 1
    model = AutoModelForImageClassification.from_pretrained(out)
    processor = AutoImageProcessor.from_pretrained(out)
    assert model.config.model_type == "fer_vgg" and processor.size == {"height": 48, "width": 48}


def test_resume_continues_exactly_where_it_stopped(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run(ACCELERATE, ["--output_dir", str(straight), "--num_train_epochs", "2"], tmp_path, "straight")
    first = run(ACCELERATE, ["--output_dir", str(resumed), "--num_train_epochs", "2", "--stop_after_epochs", "1"],
                tmp_path, "part1")
    assert "resume with --resume_from_checkpoint latest" in first
    assert not (resumed / "model.safetensors").exists()
    second = run(ACCELERATE, ["--output_dir", str(resumed), "--num_train_epochs", "2", "--resume_from_checkpoint",
                              "latest"], tmp_path, "part2")
    assert "Resuming from" in second
    a = load_file(straight / "checkpoints" / "epoch_1" / "model.safetensors")
    b = load_file(resumed / "checkpoints" / "epoch_1" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-5), key
    log_a = [json.loads(line) for line in (straight / "train_log.jsonl").read_text().splitlines()]
    log_b = [json.loads(line) for line in (resumed / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log_b] == [1, 2]
    assert abs(log_a[1]["train_loss"] - log_b[1]["train_loss"]) < 1e-5
    assert abs(log_a[1]["learning_rate"] - log_b[1]["learning_rate"]) < 1e-12


def test_two_processes_gather_each_image_once(tmp_path):
    out = tmp_path / "ddp"
    log = run([os.path.join(BIN, "torchrun"), "--nproc_per_node", "2"],
              ["--output_dir", str(out), "--num_train_epochs", "1", "--num_threads", "1"], tmp_path, "ddp")
    assert "DistributedType.MULTI_CPU" in log
    results = json.loads((out / "eval_results.json").read_text())
    # 301 images over 2 processes x batches of 64: gather_for_metrics must drop the padding
    assert results["test"]["num_samples"] == 301
    assert int(np.sum(results["test"]["confusion_matrix"])) == 301
    # the gathered accuracy equals a single-process evaluation of the saved model on the same images
    from fer_hf.data import dataset_to_uint8, load_fer2013
    from fer_hf.training.trainer import select_subsets

    dataset = select_subsets(load_fer2013(FER2013_ZIP), 320, 301, 42)
    model = AutoModelForImageClassification.from_pretrained(out).eval()
    processor = AutoImageProcessor.from_pretrained(out)
    images, labels = dataset_to_uint8(dataset["test"], processor)
    with torch.no_grad():
        predictions = model(pixel_values=processor.rescale_and_normalize(images)).logits.argmax(-1)
    assert abs((predictions == labels).float().mean().item() - results["test"]["accuracy"]) < 1e-6


def test_checkpoint_selection_breaks_accuracy_ties_by_validation_loss():
    """Validation history of a real CK+ fold (fine-tuned fer-vgg-fer2013, 79 validation faces): accuracy
    reaches 100% at epoch 5 and again at 13 later epochs; the kept epoch is the 100% one with the lowest loss."""
    from fer_hf.training.checkpointing import better_checkpoint

    history = [(0.7342, 0.7774), (0.8861, 0.5146), (0.9494, 0.352), (0.962, 0.2415), (1.0, 0.1663),
               (0.9873, 0.1204), (1.0, 0.1071), (1.0, 0.0946), (1.0, 0.0887), (1.0, 0.0876), (0.9747, 0.1231),
               (0.9873, 0.0998), (1.0, 0.086), (1.0, 0.0793), (1.0, 0.0839), (1.0, 0.0852), (1.0, 0.0812),
               (1.0, 0.0837), (1.0, 0.0831), (1.0, 0.0814)]
    best = (-1.0, float("inf"), None)
    for epoch, (accuracy, loss) in enumerate(history, start=1):
        if better_checkpoint(accuracy, loss, best[0], best[1]):
            best = (accuracy, loss, epoch)
    assert best == (1.0, 0.0793, 14)
    assert not better_checkpoint(0.99, 0.01, 1.0, 0.5)  # accuracy first: a lower loss does not beat it
    assert better_checkpoint(0.7, 9.0, 0.6, 0.1)
