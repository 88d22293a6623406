import zipfile
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification, pipeline

from fer_hf import FER2013_LABELS, FerImageProcessor, FerVGGConfig, FerVGGForImageClassification
from fer_hf.models.hub import DEFAULT_MODEL_DIR

from conftest import CKPLUS, FER2013_ZIP


def _faces(count=8):
    paths = sorted((CKPLUS / "happy").glob("*.png"))[:count // 2] + sorted((CKPLUS / "surprise").glob("*.png"))[:count // 2]
    return [Image.open(p) for p in paths]


def test_config_defaults_and_validation():
    config = FerVGGConfig()
    assert config.model_type == "fer_vgg" and config.num_labels == 7
    assert [config.id2label[i] for i in range(7)] == FER2013_LABELS
    with pytest.raises(ValueError):
        FerVGGConfig(image_size=50)


def test_forward_shapes_and_loss():
    model = FerVGGForImageClassification(FerVGGConfig(hidden_sizes=[8, 16], classifier_hidden_size=32)).eval()
    pixel_values = torch.randn(3, 1, 48, 48)
    out = model(pixel_values=pixel_values, labels=torch.tensor([0, 3, 6]))
    assert out.logits.shape == (3, 7) and out.loss.ndim == 0 and out.loss > 0
    assert model(pixel_values, output_hidden_states=True).hidden_states[-1].shape == (3, 16, 12, 12)
    with pytest.raises(ValueError, match="pixel_values"):
        model(pixel_values=torch.randn(3, 3, 48, 48))


def test_save_load_round_trip_through_auto_classes(tmp_path):
    torch.manual_seed(0)
    model = FerVGGForImageClassification(FerVGGConfig()).eval()
    processor = FerImageProcessor()
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    assert {"configuration_fer_vgg.py", "modeling_fer_vgg.py", "image_processing_fer.py"} <= {p.name for p in tmp_path.iterdir()}
    assert isinstance(AutoConfig.from_pretrained(tmp_path), FerVGGConfig)
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, FerVGGForImageClassification)
    auto_processor = AutoImageProcessor.from_pretrained(tmp_path)
    inputs = auto_processor(_faces(), return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, loaded(**inputs).logits)


def test_default_model_is_accurate_on_real_private_test_faces():
    """The released default model on 700 real PrivateTest images (every 5th): well above chance (14%)
    and near its full PrivateTest accuracy in its eval_results.json (700 faces: a standard error of ~1.9 points)."""
    model = AutoModelForImageClassification.from_pretrained(DEFAULT_MODEL_DIR).eval()
    processor = AutoImageProcessor.from_pretrained(DEFAULT_MODEL_DIR)
    with zipfile.ZipFile(FER2013_ZIP) as archive:
        names = sorted(n for n in archive.namelist() if "/PrivateTest_" in n)[::5]
        images = [Image.open(io.BytesIO(archive.read(n))) for n in names]
    labels = np.array([FER2013_LABELS.index(n.split("/")[1]) for n in names])
    with torch.no_grad():
        predictions = model(**processor(images, return_tensors="pt")).logits.argmax(-1).numpy()
    accuracy = (predictions == labels).mean()
    released = json.loads((DEFAULT_MODEL_DIR / "eval_results.json").read_text())["test"]["accuracy"]
    assert accuracy > 0.4 and abs(accuracy - released) < 0.06, (accuracy, released)


def test_pipeline_with_fer_hf_installed():
    classifier = pipeline("image-classification", model=str(DEFAULT_MODEL_DIR))
    happy_faces = sorted((CKPLUS / "happy").glob("*.png"))[::20]
    results = classifier([str(p) for p in happy_faces])
    top = [r[0]["label"] for r in results]
    assert len(top) == len(happy_faces)
    assert top.count("happy") >= 0.8 * len(top), top
    assert abs(sum(r["score"] for r in classifier(str(happy_faces[0]), top_k=7)) - 1) < 1e-4
