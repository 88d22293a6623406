"""Real (short) runs of the corpora protocols of train_accelerate.py: subject-independent cross-validation
on CK+, fine-tuning across label sets, SFEW selection on held-out Train movies."""

import json
import os
import subprocess
import sys

import pytest

from conftest import CKPLUS, DATA, REPO

pytestmark = pytest.mark.slow
TINY = ["--config_overrides", "hidden_sizes=[8,16],classifier_hidden_size=32", "--num_train_epochs", "1",
        "--per_device_train_batch_size", "32"]


def train(args, tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, str(REPO / "train_accelerate.py"), *args], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result.stdout + result.stderr


def test_ckplus_subject_independent_cross_validation_end_to_end(tmp_path):
    out = tmp_path / "cv"
    train(["--dataset", "ckplus", "--data_dir", str(CKPLUS), "--output_dir", str(out), "--cv", "subject",
           "--folds", "3", *TINY], tmp_path)
    summary = json.loads((out / "cv_results.json").read_text())
    assert summary["subject_independent"] and summary["folds"] == 3
    assert summary["label_names"] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "contempt"]  # no neutral
    assert sum(f["test_images"] for f in summary["per_fold"]) == 981  # every CK+ image tested exactly once
    accuracies = [f["accuracy"] for f in summary["per_fold"]]
    assert abs(summary["accuracy_mean"] - sum(accuracies) / 3) < 1e-9
    tested = []
    for fold in range(3):
        subjects = json.loads((out / f"fold_{fold:02d}" / "eval_results.json").read_text())["subjects"]
        assert not set(subjects["test"]) & (set(subjects["train"]) | set(subjects["validation"]))
        assert not set(subjects["train"]) & set(subjects["validation"])  # selection on held-out subjects
        tested += subjects["test"]
    assert len(tested) == len(set(tested)) == 118


def test_fine_tuning_carries_the_classifier_over_by_label_name(tmp_path):
    """A FER2013 model (7 labels with neutral) fine-tuned on CK+ (7 labels with contempt, no neutral)."""
    from transformers import AutoModelForImageClassification

    import fer_hf  # noqa: F401
    from fer_hf.models.hub import MODEL_CARDS_DIR

    source_dir = MODEL_CARDS_DIR / "fer-mobilenet-real-2"  # one network with a classifier head
    out = tmp_path / "ft"
    train(["--dataset", "ckplus", "--data_dir", str(CKPLUS), "--output_dir", str(out), "--cv", "stratified",
           "--folds", "2", "--num_train_epochs", "1", "--learning_rate", "0", "--lr_scheduler", "constant",
           "--model_name_or_path", str(source_dir)], tmp_path)
    summary = json.loads((out / "cv_results.json").read_text())
    assert not summary["subject_independent"] and "NOT subject-independent" in summary["protocol"]
    assert "carried over by label name" in summary["initialisation"]
    source = AutoModelForImageClassification.from_pretrained(source_dir)
    tuned = AutoModelForImageClassification.from_pretrained(out / "fold_00")
    assert [tuned.config.id2label[i] for i in range(7)][-1] == "contempt"
    # learning rate 0: the rows of the labels both models share are the source model's rows
    old = source.classifier[-1].weight
    new = tuned.classifier[-1].weight
    for name in ("angry", "happy", "surprise"):
        assert (new[tuned.config.label2id[name]] == old[source.config.label2id[name]]).all()


def test_sfew_selects_on_held_out_train_movies_and_reports_val(tmp_path):
    out = tmp_path / "sfew"
    train(["--dataset", "sfew", "--data_dir", str(DATA / "sfew"), "--output_dir", str(out), "--max_train_samples",
           "300", *TINY], tmp_path)
    results = json.loads((out / "eval_results.json").read_text())
    assert results["split_sizes"]["test"] == 405  # every usable Val image, never trained on
    movies = results["movies"]
    assert not set(movies["train"]) & set(movies["validation"])
    assert "SFEW Val (test) reported" in results["protocol"]
    card = (out / "README.md").read_text()  # the card names SFEW's splits, not FER2013's
    assert "**SFEW Val** was evaluated once" in card and "on **held-out SFEW Train movies** accuracy only" in card
    assert "PrivateTest" not in card and "Dhall" in card


def test_ferplus_run_writes_an_8_class_model_and_its_card(tmp_path):
    out = tmp_path / "ferplus"
    train(["--dataset", "ferplus", "--data_dir", str(DATA / "ferplus" / "ferplus_images.zip"), "--output_dir",
           str(out), "--ferplus_labels", "distribution", "--max_train_samples", "300", "--max_eval_samples", "200",
           *TINY], tmp_path)
    results = json.loads((out / "eval_results.json").read_text())
    assert results["label_names"][-1] == "contempt" and len(results["label_names"]) == 8
    assert len(results["test"]["confusion_matrix"]) == 8
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"]["7"] == "contempt"
    card = (out / "README.md").read_text()
    assert "on FER+;" in card and "8 expressions" in card and "- ferplus" in card
    assert "PrivateTest (FER2013Test)" in card and "Barsoum" in card
    assert f"{results['test']['accuracy']:.4f}" in card  # the card's numbers are the run's
    assert (out / "confusion_matrix.png").is_file()
