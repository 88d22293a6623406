"""The evaluation report: `evaluate` metric modules (checked against scikit-learn on the released model's real
predictions), calibration (ECE by hand, temperature scaling) and ``fer-hf evaluate`` end to end."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import (accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support,
                             top_k_accuracy_score)

from fer_hf.evaluation.calibration import (expected_calibration_error, fit_temperature, negative_log_likelihood,
                                           reliability_diagram_data, softmax)
from fer_hf.evaluation.report import (load_evaluation_split, load_image_folder, map_labels, predict_log_probabilities,
                                      random_subset)
from fer_hf.evaluation.metrics import METRIC_NAMES, classification_metrics, load_metric
from fer_hf.labels import FER2013_LABELS

from conftest import CKPLUS, FER2013_ZIP, REPO

MODEL = REPO / "model_cards" / "fer-vgg-fer2013"
N = 300


def _predictions(split):
    """The released model's log-probabilities and labels on the same fixed random N images of a FER2013
    split that ``fer-hf evaluate --max_samples N`` uses."""
    from transformers import AutoImageProcessor

    from fer_hf.data import dataset_to_uint8
    from fer_hf.models import load_fer_model

    model = load_fer_model(MODEL)
    processor = AutoImageProcessor.from_pretrained(MODEL)
    ds = random_subset(load_evaluation_split("fer2013", FER2013_ZIP, split), N)
    images, labels = dataset_to_uint8(ds, processor)
    return predict_log_probabilities(model, processor, images), labels.numpy()


@pytest.fixture(scope="module")
def private_test():
    return _predictions("test")


@pytest.fixture(scope="module")
def public_test():
    return _predictions("validation")


def test_metric_modules_load_offline_and_are_cached():
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    for name in METRIC_NAMES:
        assert load_metric(name) is load_metric(name)
    with pytest.raises(ValueError, match="Unknown fer_hf metric"):
        load_metric("bleu")


def test_metric_modules_equal_sklearn_on_real_predictions(private_test):
    log_probs, labels = private_test
    predictions = log_probs.argmax(1)
    assert len(labels) == N and len(np.unique(labels)) >= 6  # a mixed subset, not one class
    ids = list(range(7))
    args = {"predictions": predictions, "references": labels}
    assert load_metric("accuracy").compute(**args)["accuracy"] == pytest.approx(accuracy_score(labels, predictions))
    prf = load_metric("precision_recall_f1")
    for average in ("macro", "micro", "weighted"):
        expected = precision_recall_fscore_support(labels, predictions, labels=ids, average=average, zero_division=0)
        result = prf.compute(**args, labels=ids, average=average)
        for key, value in zip(("precision", "recall", "f1"), expected[:3]):
            assert result[key] == pytest.approx(value), (key, average)
        assert result["support"] is None  # as scikit-learn: no support for an average
    assert prf.compute(**args, labels=ids)["f1"] == pytest.approx(  # the default average is macro
        f1_score(labels, predictions, labels=ids, average="macro", zero_division=0))
    precision, recall, f1, support = precision_recall_fscore_support(labels, predictions, labels=ids, zero_division=0)
    result = prf.compute(**args, labels=ids, average=None)
    for key, value in (("precision", precision), ("recall", recall), ("f1", f1)):
        np.testing.assert_allclose(result[key], value, err_msg=key)
    assert result["support"] == support.tolist()
    # labels left out: every id seen in predictions or references, sorted, as scikit-learn
    np.testing.assert_allclose(prf.compute(**args, average=None)["f1"],
                               precision_recall_fscore_support(labels, predictions, zero_division=0)[2])
    assert load_metric("confusion_matrix").compute(**args, labels=ids)["confusion_matrix"] == \
        confusion_matrix(labels, predictions, labels=ids).tolist()
    probabilities = softmax(log_probs)
    for k in (1, 2, 3):
        assert load_metric("top_k_accuracy").compute(predictions=probabilities, references=labels, k=k)[
            "top_k_accuracy"] == pytest.approx(top_k_accuracy_score(labels, probabilities, k=k, labels=ids))
    # classification_metrics (training, ensembling, fer-hf evaluate) goes through the modules: same numbers
    report = classification_metrics(labels, predictions, FER2013_LABELS)
    assert report["num_samples"] == N
    assert report["accuracy"] == pytest.approx(accuracy_score(labels, predictions))
    assert report["macro_f1"] == pytest.approx(f1_score(labels, predictions, labels=ids, average="macro", zero_division=0))
    assert report["confusion_matrix"] == confusion_matrix(labels, predictions, labels=ids).tolist()
    for name, p, r, f, s in zip(FER2013_LABELS, precision, recall, f1, support):
        assert report["per_class"][name] == pytest.approx({"precision": p, "recall": r, "f1": f, "support": s})


def test_expected_calibration_error_by_hand():
    # 10 predictions (3 classes, class 0 always predicted), confidence and whether it is right:
    confidence = [0.95, 0.92, 0.97, 0.85, 0.82, 0.65, 0.62, 0.68, 0.45, 0.55]
    correct = [1, 1, 0, 1, 0, 1, 1, 0, 0, 1]
    probabilities = np.array([[c, (1 - c) / 2, (1 - c) / 2] for c in confidence])
    labels = np.array([0 if ok else 1 for ok in correct])
    # 10 equal-width bins; |B|/N * |acc - conf| per non-empty bin:
    #   (0.9, 1.0]: 0.95 0.92 0.97 -> acc 2/3, conf 0.94667 -> 3/10 * 0.28           = 0.084
    #   (0.8, 0.9]: 0.85 0.82      -> acc 1/2, conf 0.835   -> 2/10 * 0.335          = 0.067
    #   (0.6, 0.7]: 0.65 0.62 0.68 -> acc 2/3, conf 0.65    -> 3/10 * (2/3 - 0.65)   = 0.005
    #   (0.5, 0.6]: 0.55           -> acc 1,   conf 0.55    -> 1/10 * 0.45           = 0.045
    #   (0.4, 0.5]: 0.45           -> acc 0,   conf 0.45    -> 1/10 * 0.45           = 0.045
    expected = 0.084 + 0.067 + 0.005 + 0.045 + 0.045  # = 0.246
    assert expected_calibration_error(probabilities, labels, n_bins=10) == pytest.approx(0.246)
    assert load_metric("expected_calibration_error").compute(
        predictions=probabilities, references=labels, n_bins=10)["expected_calibration_error"] == pytest.approx(expected)
    data = reliability_diagram_data(probabilities, labels, n_bins=10)
    assert data["bin_counts"] == [0, 0, 0, 0, 1, 1, 3, 0, 2, 3]
    assert data["bin_accuracy"][9] == pytest.approx(2 / 3) and data["bin_confidence"][8] == pytest.approx(0.835)
    assert data["maximum_calibration_error"] == pytest.approx(0.45)
    # perfectly calibrated: confidence 0.75 everywhere (bin (0.7, 0.8] of 15 and of 10), 3 of 4 right
    probabilities = np.array([[0.75, 0.25]] * 4)
    assert expected_calibration_error(probabilities, np.array([0, 0, 0, 1])) == pytest.approx(0.0)


def test_temperature_scaling_lowers_nll_and_keeps_argmax(public_test, private_test):
    log_probs, labels = public_test
    temperature = fit_temperature(log_probs, labels)
    assert 0.05 < temperature < 20
    assert negative_log_likelihood(log_probs, labels, temperature) < negative_log_likelihood(log_probs, labels)
    # the optimum: nearby temperatures are not better
    for factor in (0.9, 1.1):
        assert negative_log_likelihood(log_probs, labels, temperature) <= \
            negative_log_likelihood(log_probs, labels, temperature * factor) + 1e-9
    for split_log_probs, _ in (public_test, private_test):
        assert np.array_equal(softmax(split_log_probs, temperature).argmax(1), split_log_probs.argmax(1))
    # synthetic: labels drawn from softmax(z), logits 3 z are over-confident by a factor 3 -> T close to 3
    rng = np.random.default_rng(0)
    z = rng.normal(size=(20000, 5)) * 1.5
    drawn = np.array([rng.choice(5, p=p) for p in softmax(z)])
    assert fit_temperature(3 * z, drawn) == pytest.approx(3.0, rel=0.1)


def test_map_labels_by_name():
    ferplus = list(FER2013_LABELS) + ["contempt"]
    seven_on_eight = map_labels(FER2013_LABELS, ferplus)
    assert seven_on_eight["evaluated_labels"] == list(FER2013_LABELS)
    assert seven_on_eight["dataset_labels_not_in_model"] == ["contempt"]
    assert 7 not in seven_on_eight["dataset_to_evaluated"]
    eight_on_seven = map_labels(ferplus, FER2013_LABELS)
    assert eight_on_seven["model_columns"] == list(range(7))
    assert eight_on_seven["model_labels_not_in_dataset"] == ["contempt"]
    aliases = map_labels(FER2013_LABELS, ["Anger", "sadness", "Happiness", "surprised", "fearful"])
    # the dataset lacks disgust and neutral: the argmax is restricted to the 5 shared labels (model order)
    assert aliases["evaluated_labels"] == ["angry", "fear", "happy", "sad", "surprise"]
    assert aliases["model_labels_not_in_dataset"] == ["disgust", "neutral"]
    assert aliases["dataset_to_evaluated"] == {0: 0, 1: 3, 2: 2, 3: 4, 4: 1}
    with pytest.raises(ValueError, match="share no label"):
        map_labels(FER2013_LABELS, ["cat", "dog"])


def test_cli_evaluate_end_to_end(tmp_path, private_test):
    out = tmp_path / "report"
    command = [sys.executable, "-m", "fer_hf", "evaluate", "--model", str(MODEL), "--dataset", "fer2013",
               "--data_dir", str(FER2013_ZIP), "--split", "test", "--output_dir", str(out),
               "--max_samples", str(N)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    run = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    for name in ("metrics.json", "confusion_matrix.png", "roc.png", "reliability_diagram.png",
                 "confident_mistakes.png"):
        assert (out / name).stat().st_size > 1000, name
    metrics = json.loads((out / "metrics.json").read_text())
    log_probs, labels = private_test
    predictions = log_probs.argmax(1)
    assert metrics["num_images"] == N and metrics["split"] == "test" and metrics["tta"] == "none"
    assert metrics["accuracy"] == pytest.approx(accuracy_score(labels, predictions))
    assert metrics["macro_f1"] == pytest.approx(f1_score(labels, predictions, average="macro", labels=list(range(7)),
                                                         zero_division=0))
    assert metrics["confusion_matrix"] == confusion_matrix(labels, predictions, labels=list(range(7))).tolist()
    assert metrics["top_2_accuracy"] == pytest.approx(top_k_accuracy_score(labels, softmax(log_probs), k=2))
    assert set(metrics["per_class"]) == set(FER2013_LABELS)
    assert metrics["expected_calibration_error"] == pytest.approx(
        expected_calibration_error(softmax(log_probs), labels), abs=1e-6)
    assert metrics["calibration_split"] == "validation" and metrics["temperature"] > 0
    assert metrics["expected_calibration_error_after_temperature_scaling"] is not None
    assert metrics["argmax_unchanged_by_temperature"] is True
    assert metrics["calibration"]["nll_after"] <= metrics["calibration"]["nll_before"]
    assert 0.5 < metrics["roc_auc"]["macro"] <= 1 and len(metrics["roc_auc"]["per_class"]) == 7
    assert metrics["label_mapping"]["images_left_out"] == 0
    assert metrics["command"].startswith("python -m fer_hf evaluate --model")
    assert metrics["model"] == str(MODEL) and metrics["dataset"] == "fer2013"


def test_imagefolder_maps_class_folders_by_name(tmp_path):
    from fer_hf.evaluation.report import evaluate_model

    root = tmp_path / "faces"
    folders = {"happy": "happy", "sadness": "sadness", "anger": "Anger", "surprise": "surprised",
               "contempt": "contempt"}
    for source, target in folders.items():
        (root / target).mkdir(parents=True)
        for path in sorted((CKPLUS / source).glob("*.png"))[:8]:
            shutil.copy(path, root / target / path.name)
    ds = load_image_folder(root)
    assert ds.features["label"].names == list(FER2013_LABELS) + ["contempt"]
    names = ds.features["label"].names
    assert {names[label] for label in ds["label"]} == {"angry", "happy", "sad", "surprise", "contempt"}
    sad = [i for i, image_id in enumerate(ds["image_id"]) if image_id.startswith("sadness/")]
    assert len(sad) == 8 and all(names[ds["label"][i]] == "sad" for i in sad)

    results = evaluate_model(MODEL, "imagefolder", root, output_dir=tmp_path / "report")
    assert results["num_images"] == 32
    mapping = results["label_mapping"]
    assert mapping["images_left_out"] == 8 and mapping["images_left_out_per_class"] == {"contempt": 8}
    assert mapping["dataset_labels_not_in_model"] == ["contempt"]
    assert mapping["evaluated_labels"] == list(FER2013_LABELS)
    assert {name: row["support"] for name, row in results["per_class"].items()} == \
        {"angry": 8, "disgust": 0, "fear": 0, "happy": 8, "sad": 8, "surprise": 8, "neutral": 0}
    assert results["per_class"]["happy"]["recall"] > 0.5  # CK+ peak smiles are easy
    assert results["classes_without_images"] == ["disgust", "fear", "neutral"]
    assert results["macro_f1_over_classes_with_images"] == pytest.approx(
        np.mean([results["per_class"][n]["f1"] for n in ("angry", "happy", "sad", "surprise")]))
    assert results["calibration_split"] is None and results["temperature"] is None
    assert results["roc_auc"]["per_class"]["disgust"] is None
    assert (tmp_path / "report" / "metrics.json").is_file()


def test_eight_class_model_on_seven_class_data_restricts_the_argmax(tmp_path):
    from fer_hf.evaluation.report import evaluate_model
    from fer_hf.image_processing_fer import FerImageProcessor
    from fer_hf.models import build_model

    model_dir = tmp_path / "eight"
    build_model("fer_vgg", label_names=list(FER2013_LABELS) + ["contempt"]).save_pretrained(model_dir)
    FerImageProcessor().save_pretrained(model_dir)
    root = tmp_path / "faces"
    for source in ("happy", "surprise"):
        (root / source).mkdir(parents=True)
        for path in sorted((CKPLUS / source).glob("*.png"))[:5]:
            shutil.copy(path, root / source / path.name)
    results = evaluate_model(model_dir, "imagefolder", root)
    mapping = results["label_mapping"]
    assert mapping["model_labels_not_in_dataset"] == ["contempt"] and mapping["images_left_out"] == 0
    assert results["labels"] == list(FER2013_LABELS) and len(results["confusion_matrix"]) == 7
    assert sum(map(sum, results["confusion_matrix"])) == results["num_images"] == 10
    assert 0 <= mapping["unrestricted_predictions_outside_shared_labels"] <= 10


def test_refuses_a_model_that_is_not_a_fer_hf_type(tmp_path, capsys):
    from fer_hf.cli.commands import main
    from fer_hf.evaluation.report import evaluate_model

    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "auto_map": {
        "AutoModelForImageClassification": "modeling_evil.EvilModel"}}))
    with pytest.raises(ValueError, match="not a fer_hf model"):
        evaluate_model(folder, "imagefolder", CKPLUS)
    code = main(["evaluate", "--model", str(folder), "--dataset", "imagefolder", "--data_dir", str(CKPLUS),
                 "--output_dir", str(tmp_path / "out")])
    assert code == 2
    assert "not a fer_hf model" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    empty = tmp_path / "empty"  # a folder that holds no model at all
    empty.mkdir()
    assert main(["evaluate", "--model", str(empty), "--dataset", "imagefolder", "--data_dir", str(CKPLUS),
                 "--output_dir", str(tmp_path / "out")]) == 2
    assert "has no config.json: not a saved model folder" in capsys.readouterr().err
