"""Every released folder under model_cards/: it loads without fer_hf (trust_remote_code, the same logits as
with fer_hf), its card's headline number is the one in its eval_results.json, the app offers it, and the
recognizer uses it on a real photo with the model's own label set. The FER+ release is checked on real FER+
test faces."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModelForImageClassification

from fer_hf.inference.recognizer import FaceExpressionRecognizer
from fer_hf.models.hub import MODEL_CARDS_DIR, available_models

from conftest import CKPLUS, DATA, SAMPLES, run_without_fer_hf

RELEASED = available_models()
FERPLUS_ZIP = DATA / "ferplus" / "ferplus_images.zip"

def test_released_models_exist():
    assert {"fer-vgg-fer2013", "fer-vgg-ferplus", "fer-vgg-distilled", "fer-vgg-44-distilled-ft", "fer-ensemble", "fer-ensemble-sfew", "fer-mobilenet-real", "fer-mobilenet-real-2", "fer-ensemble-real"} <= set(RELEASED), \
        RELEASED


@pytest.mark.parametrize("name", RELEASED)
def test_released_folder_loads_without_fer_hf(name, tmp_path):
    folder = MODEL_CARDS_DIR / name
    assert not list(folder.glob("*.bin")) and not list(folder.glob("*.pth"))  # safetensors only
    face = sorted((CKPLUS / "happy").glob("*.png"))[0]
    out = run_without_fer_hf(folder, face, tmp_path)
    assert out["module"].startswith("transformers_modules.")
    model = AutoModelForImageClassification.from_pretrained(folder).eval()
    processor = AutoImageProcessor.from_pretrained(folder)
    with torch.no_grad():
        expected = model(**processor(Image.open(face), return_tensors="pt")).logits[0]
    assert torch.allclose(torch.tensor(out["logits"]), expected, atol=1e-5)
    assert out["labels"] == [model.config.id2label[i] for i in range(model.config.num_labels)]
    assert out["top"]["label"] == model.config.id2label[int(expected.argmax())]
    assert abs(out["top"]["score"] - float(expected.softmax(-1).max())) < 1e-4


@pytest.mark.parametrize("name", RELEASED)
def test_released_files_stay_under_the_repository_limit(name):
    """Released folders are committed to git: no file over 25 MB (a member that needs more, like the
    11.3M-parameter ResNet-18 in an ensemble, does not belong in a release)."""
    sizes = {path.name: path.stat().st_size for path in (MODEL_CARDS_DIR / name).rglob("*") if path.is_file()}
    assert sizes.get("model.safetensors", 0) > 0, sizes
    assert max(sizes.values()) < 25_000_000, sizes


@pytest.mark.parametrize("name", RELEASED)
def test_card_headline_matches_eval_results(name):
    folder = MODEL_CARDS_DIR / name
    results = json.loads((folder / "eval_results.json").read_text())
    card = (folder / "README.md").read_text()
    accuracy = results["test"]["accuracy"]
    assert f"**{100 * accuracy:.2f}%**" in card, (name, accuracy)
    assert f"# {name}" in card


def test_app_offers_every_released_model():
    from fer_hf.app.handlers import model_choices

    choices = model_choices()
    assert choices[0] == "fer-ensemble-real" and set(RELEASED) <= set(choices), choices


def test_ferplus_release_on_real_photo_has_contempt_and_eight_probabilities():
    recognizer = FaceExpressionRecognizer.from_pretrained("fer-vgg-ferplus")
    faces = recognizer.predict(SAMPLES / "happy-baby.jpeg")
    assert len(faces) == 1
    emotions = faces[0]["emotions"]
    assert list(emotions) == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral", "contempt"]
    assert abs(sum(emotions.values()) - 1) < 2e-3 and faces[0]["top_emotion"] == "happy", emotions


@pytest.mark.skipif(not FERPLUS_ZIP.is_file(), reason="FER+ data not available")
def test_ferplus_release_accuracy_on_real_ferplus_test_faces():
    """Every 4th FER+ test (FER2013Test, majority vote) face: near the card's 86.87% (well above the
    FER2013 model's 72.58% on the same test set, benchmarks/results/cross_dataset.md)."""
    from fer_hf.data import load_ferplus

    test = load_ferplus(FERPLUS_ZIP)["test"]
    test = test.select(range(0, len(test), 4))
    folder = MODEL_CARDS_DIR / "fer-vgg-ferplus"
    model = AutoModelForImageClassification.from_pretrained(folder).eval()
    processor = AutoImageProcessor.from_pretrained(folder)
    assert model.config.id2label[7] == "contempt" and test.features["label"].names[7] == "contempt"
    predictions = []
    for start in range(0, len(test), 256):
        batch = test[start:start + 256]
        with torch.no_grad():
            predictions.append(model(**processor(batch["image"], return_tensors="pt")).logits.argmax(-1).numpy())
    accuracy = float((np.concatenate(predictions) == np.array(test["label"])).mean())
    assert accuracy > 0.84, accuracy
