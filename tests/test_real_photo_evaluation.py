"""The real-photo evaluation suite on real data: muxspace and tfeid test people through the recognizer's own
face crops, balanced accuracy over the classes with enough faces, answer shares, and the corpus registry's
person-disjoint protocols."""

import json

import numpy as np
import pytest

from fer_hf.data.registry import CORPORA, PROTOCOLS, load_corpus, protocol_splits
from fer_hf.evaluation.metrics import MIN_CLASS_FACES
from fer_hf.evaluation.report import evaluate_model, load_evaluation_split

from conftest import DATA, FER2013_MODEL, REPO

pytestmark = pytest.mark.skipif(not (DATA / "tfeid").is_dir() or not (DATA / "muxspace").is_dir(),
                                reason="real-photo corpora not found")


def test_registry_gives_real_photo_corpora_person_disjoint_protocols():
    assert {"muxspace", "tfeid"} <= set(CORPORA) and {"muxspace", "tfeid"} <= set(PROTOCOLS)
    corpus = load_corpus("tfeid", DATA / "tfeid")
    splits = protocol_splits("tfeid", corpus)
    people = {name: set(split["performer"]) for name, split in splits.items()}
    assert people["train"] and not (people["train"] & people["validation"]) and not (people["train"] & people["test"])
    assert len(splits["test"]) == len(corpus["test"])


def test_real_photo_split_is_cropped_like_the_recognizer_and_cached(tmp_path, monkeypatch, default_recognizer):
    """Each tfeid test photo becomes the crop `FaceExpressionRecognizer` classifies for its most confident
    face (detector, adjustment, margin, eye alignment), pixel for pixel; a second load reads the cache."""
    monkeypatch.setenv("FER_HF_CACHE", str(tmp_path))
    cropped = load_evaluation_split("tfeid", DATA / "tfeid", "test", max_samples=5)
    assert cropped.face_report["from_cache"] is False and cropped.face_report["images"] == 5
    source = load_corpus("tfeid", DATA / "tfeid")["test"]
    by_id = {image_id: i for i, image_id in enumerate(source["image_id"])}
    for row in cropped:
        photo = source[by_id[row["image_id"]]]["image"]
        boxes, scores, crops = default_recognizer.crop_faces(photo)
        assert row["face_detected"] and len(crops) >= 1
        expected = crops[int(np.argmax(scores))]
        assert row["image"].size == expected.size
        assert np.array_equal(np.asarray(row["image"].convert("RGB")), np.asarray(expected.convert("RGB")))
        assert row["face_box"] == [int(round(v)) for v in boxes[int(np.argmax(scores))]]
        assert row["label"] == source[by_id[row["image_id"]]]["label"]
    again = load_evaluation_split("tfeid", DATA / "tfeid", "test", max_samples=5)
    assert again.face_report["from_cache"] is True and again["image_id"] == cropped["image_id"]


def test_evaluate_reports_balanced_accuracy_over_classes_with_enough_faces_and_answer_shares(tmp_path,
                                                                                             monkeypatch):
    """`fer-hf evaluate` on 400 muxspace test photos with the default model: balanced accuracy is the mean
    recall over exactly the classes with >= 50 faces, answer shares are the confusion matrix's column sums."""
    monkeypatch.setenv("FER_HF_CACHE", str(tmp_path / "cache"))
    report = evaluate_model(str(REPO / "model_cards" / FER2013_MODEL), "muxspace", DATA / "muxspace",
                            split="test", max_samples=400, calibration_split="none", output_dir=tmp_path / "out")
    assert report["num_images"] == 400 and report["face_crops"]["images"] == 400
    assert report["face_crops"]["faces_found"] >= 380  # muxspace photos are face crops of news photos
    support = {name: values["support"] for name, values in report["per_class"].items()}
    over = report["balanced_accuracy_over"]
    assert over == [name for name in report["labels"] if support[name] >= MIN_CLASS_FACES["muxspace/test"]]
    assert "happy" in over and "neutral" in over and "fear" not in over
    assert report["balanced_accuracy"] == pytest.approx(np.mean([report["per_class"][n]["recall"] for n in over]))
    matrix = np.asarray(report["confusion_matrix"])
    shares = matrix.sum(0) / matrix.sum()
    assert [report["answer_share"][n] for n in report["labels"]] == pytest.approx(shares.tolist())
    assert (tmp_path / "out" / "metrics.json").is_file()


def test_prior_correction_is_never_fitted_on_a_test_split():
    from fer_hf.training.prior_correction import development_log_probabilities

    with pytest.raises(ValueError, match="never on a test split"):
        development_log_probabilities(REPO / "model_cards" / FER2013_MODEL, DATA,
                                      splits=(("tfeid", "validation"), ("tfeid", "test")))


def test_prior_correction_lowers_the_answer_share_a_model_over_predicts(tmp_path, monkeypatch):
    """On real tfeid validation faces the FER2013 default over-answers one class; biases fitted there (logit
    adjustment) are negative for that class and lower its share of answers, and the cross-fitted adoption
    test scores each split with biases fitted on the other only."""
    from fer_hf.evaluation.metrics import answer_share, balanced_accuracy
    from fer_hf.training.prior_correction import (cross_fitted_gain, development_log_probabilities,
                                                  fit_logit_adjustment)

    monkeypatch.setenv("FER_HF_CACHE", str(tmp_path))
    model = REPO / "model_cards" / FER2013_MODEL
    dev = development_log_probabilities(model, DATA, splits=(("tfeid", "validation"),))
    log_probs, labels = dev["tfeid/validation"]
    assert log_probs.shape == (len(labels), 7) and len(labels) > 150
    before = answer_share(log_probs.argmax(1), 7)
    true_share = np.bincount(labels, minlength=7) / len(labels)
    worst = int(np.argmax(before - true_share))  # the most over-answered class
    bias = fit_logit_adjustment(log_probs, labels, 7)
    assert bias[worst] < 0 and abs(float(bias.mean())) < 1e-5
    after = answer_share((log_probs + bias).argmax(1), 7)
    assert after[worst] < before[worst]
    # two halves of the faces (alternate rows): each is scored with the biases fitted on the other
    performers = np.arange(len(labels)) % 2 == 0
    halves = {"a": (log_probs[performers], labels[performers]), "b": (log_probs[~performers], labels[~performers])}
    result = cross_fitted_gain(halves, 7)
    fitted_on_a = fit_logit_adjustment(*halves["a"], 7)
    expected_b = balanced_accuracy(halves["b"][1], (halves["b"][0] + fitted_on_a).argmax(1), 7)[0]
    assert result["cross_fitted"]["b"] == pytest.approx(expected_b)
    assert result["adopt"] == (result["cross_fitted_mean"] > result["uncorrected_mean"])


def test_logit_adjustment_travels_in_the_config_and_is_added_in_forward(tmp_path):
    import torch
    from PIL import Image
    from transformers import AutoModelForImageClassification

    from fer_hf.image_processing_fer import FerImageProcessor
    from fer_hf.models import build_model

    from conftest import CKPLUS

    model = build_model("fer_mobilenet", None, {"image_size": 64, "width_mult": 0.35}).eval()
    processor = FerImageProcessor(num_channels=3, do_grayscale=False, size={"height": 64, "width": 64})
    faces = [Image.open(p) for p in sorted((CKPLUS / "happy").glob("*.png"))[:4]]
    pixel_values = processor(faces, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        plain = model(pixel_values=pixel_values).logits
    bias = [0.5, -0.25, 0.0, 1.0, -1.0, 0.25, -0.5]
    model.config.logit_adjustment = bias
    model.save_pretrained(tmp_path)
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    assert loaded.config.logit_adjustment == bias
    with torch.no_grad():
        assert torch.allclose(loaded(pixel_values=pixel_values).logits, plain + torch.tensor(bias), atol=1e-5)


def test_training_prior_of_a_mix_is_its_targets_class_mass(tmp_path):
    """`mix_target_prior` on real FER2013 training labels with their FER+ votes and real tfeid labels: with
    FER2013's own labels as targets and classes drawn evenly the prior is uniform; with half of each target from the
    FER+ votes (as the default's members trained) fear carries less than 1/7 of the mass and neutral more, so the
    logit adjustment raises fear and lowers neutral; the exact sum agrees with what the sampler actually draws."""
    from fer_hf.data.tfeid import load_tfeid
    from fer_hf.labels import FER2013_LABELS
    from fer_hf.training.face_cache import ferplus_distributions
    from fer_hf.training.multicorpus import MixingSampler, training_targets
    from fer_hf.training.prior_correction import mix_target_prior, prior_adjustment, training_target_prior

    votes = {path: v for path, v in ferplus_distributions(DATA).items() if path.startswith("train/")}
    fer_labels = np.array([FER2013_LABELS.index(path.split("/")[1]) for path in votes])
    tfeid = load_tfeid(DATA / "tfeid")["train"]
    tfeid_labels = np.asarray(tfeid["label"])
    labels = {"fer2013": fer_labels, "tfeid": tfeid_labels}
    soft = {"fer2013": np.stack(list(votes.values())), "tfeid": np.eye(7, dtype=np.float32)[tfeid_labels]}
    settings = {"mix": {"fer2013": 2.0, "tfeid": 1.0}, "sample_by": "label", "class_power": 0.0, "corpus_power": 0.5,
                "original_label_weight": 1.0, "label_smoothing": 0.0}
    assert mix_target_prior(labels, soft, settings) == pytest.approx(np.full(7, 1 / 7))
    half = {**settings, "original_label_weight": 0.5, "label_smoothing": 0.1}
    prior = mix_target_prior(labels, soft, half)
    fear, neutral = FER2013_LABELS.index("fear"), FER2013_LABELS.index("neutral")
    assert prior.sum() == pytest.approx(1) and prior[fear] < 0.95 / 7 and prior[neutral] > 1.1 / 7
    bias = prior_adjustment(prior)
    assert bias[fear] > 0 > bias[neutral] and abs(float(bias.mean())) < 1e-6
    sampler = MixingSampler(labels, half["mix"], 7, 0.0, 0.5, seed=1)
    pairs = sampler.draw(20000)
    drawn_rows = {c: [i for cc, i in pairs if cc == c] for c in labels}
    drawn = np.concatenate([training_targets(soft[c][rows], labels[c][rows], 7, 0.5, 0.1).numpy()
                            for c, rows in drawn_rows.items()]).mean(0)
    assert np.abs(drawn - prior).max() < 0.006
    # a run file: the recorded settings are read; a distilled run has the teacher's prior, not the mix's
    (tmp_path / "mix_settings.json").write_text(json.dumps({**half, "teacher_model": "model_cards/fer-ensemble-real"}))
    with pytest.raises(ValueError, match="teacher"):
        training_target_prior(tmp_path, tmp_path)
    with pytest.raises(FileNotFoundError, match="mix_settings"):
        training_target_prior(tmp_path / "no-run", tmp_path)


def test_ensemble_logit_adjustment_travels_in_its_config_and_is_added_to_its_logits(tmp_path):
    """The released colour ensemble with biases in its config: saved and loaded again, its logits on real tfeid
    faces are the plain ensemble's plus the biases (so a positive fear bias answers fear more often); a bias list
    of the wrong length is refused."""
    import torch
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    from fer_hf.data.tfeid import load_tfeid
    from fer_hf.models.ensemble import FerEnsembleConfig

    released = REPO / "model_cards" / "fer-ensemble-real"
    model = AutoModelForImageClassification.from_pretrained(released).eval()
    processor = AutoImageProcessor.from_pretrained(released)
    model.config.logit_adjustment = None  # the plain average (the release carries its own adjustment)
    faces = list(load_tfeid(DATA / "tfeid")["validation"].select(range(48))["image"])
    pixel_values = processor(faces, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        plain = model(pixel_values=pixel_values).logits
    bias = [0.0, 0.0, 3.0, 0.0, 0.0, 0.0, -1.0]
    model.config.logit_adjustment = bias
    model.save_pretrained(tmp_path)
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    assert loaded.config.logit_adjustment == bias
    with torch.no_grad():
        adjusted = loaded(pixel_values=pixel_values).logits
    assert torch.allclose(adjusted, plain + torch.tensor(bias), atol=1e-4)
    assert int((adjusted.argmax(1) == 2).sum()) > int((plain.argmax(1) == 2).sum())
    with pytest.raises(ValueError, match="one bias per label"):
        FerEnsembleConfig(members=model.config.members, logit_adjustment=[0.0, 1.0])


def test_default_reads_real_photo_test_people_better_than_the_fer2013_model(tmp_path, monkeypatch):
    """The premise of the default (docs/real_photos_rules.md) on people no model chose anything on: on tfeid's
    test performers, through the recognizer's crops, the real-photo default has a higher balanced accuracy than
    the FER2013 model it replaced, and no class under the issue's 20% recall bar."""
    from fer_hf.models.hub import DEFAULT_MODEL_DIR

    monkeypatch.setenv("FER_HF_CACHE", str(tmp_path))
    default = evaluate_model(str(DEFAULT_MODEL_DIR), "tfeid", DATA / "tfeid", split="test", calibration_split="none")
    fer2013 = evaluate_model(str(REPO / "model_cards" / FER2013_MODEL), "tfeid", DATA / "tfeid", split="test",
                             calibration_split="none")
    assert default["num_images"] == fer2013["num_images"] > 150
    assert default["balanced_accuracy"] > fer2013["balanced_accuracy"], (default["balanced_accuracy"],
                                                                         fer2013["balanced_accuracy"])
    assert min(m["recall"] for m in default["per_class"].values()) >= 0.2, default["per_class"]
