"""The real-photo evaluation suite on real data: muxspace and tfeid test people through the recognizer's own
face crops, balanced accuracy over the classes with enough faces, answer shares, and the corpus registry's
person-disjoint protocols."""

import numpy as np
import pytest

from fer_hf.data.registry import CORPORA, PROTOCOLS, load_corpus, protocol_splits
from fer_hf.evaluation.report import MIN_CLASS_FACES, evaluate_model, load_evaluation_split

from conftest import DATA, REPO

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
    report = evaluate_model(str(REPO / "model_cards" / "fer-vgg-44-distilled-ft"), "muxspace", DATA / "muxspace",
                            split="test", max_samples=400, calibration_split="none", output_dir=tmp_path / "out")
    assert report["num_images"] == 400 and report["face_crops"]["images"] == 400
    assert report["face_crops"]["faces_found"] >= 380  # muxspace photos are face crops of news photos
    support = {name: values["support"] for name, values in report["per_class"].items()}
    over = report["balanced_accuracy_over"]
    assert over == [name for name in report["labels"] if support[name] >= MIN_CLASS_FACES["muxspace"]]
    assert "happy" in over and "neutral" in over and "fear" not in over
    assert report["balanced_accuracy"] == pytest.approx(np.mean([report["per_class"][n]["recall"] for n in over]))
    matrix = np.asarray(report["confusion_matrix"])
    shares = matrix.sum(0) / matrix.sum()
    assert [report["answer_share"][n] for n in report["labels"]] == pytest.approx(shares.tolist())
    assert (tmp_path / "out" / "metrics.json").is_file()
