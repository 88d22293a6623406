import subprocess
import sys
import zipfile
import io

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification, pipeline

from fer_hf import FER2013_LABELS, FerImageProcessor, FerVGGConfig, FerVGGForImageClassification
from fer_hf.recognizer import DEFAULT_MODEL_DIR

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


REMOTE_CODE_SCRIPT = r"""
import sys, json
sys.modules["fer_hf"] = None  # fer_hf is not importable: everything must come from the folder
from PIL import Image
import torch
from transformers import AutoModelForImageClassification, AutoImageProcessor, pipeline
folder, face = sys.argv[1], sys.argv[2]
model = AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True).eval()
processor = AutoImageProcessor.from_pretrained(folder, trust_remote_code=True)
with torch.no_grad():
    logits = model(**processor(Image.open(face), return_tensors="pt")).logits
classifier = pipeline("image-classification", model=folder, trust_remote_code=True)
print(json.dumps({"module": type(model).__module__, "logits": logits[0].tolist(), "pipeline": classifier(face)}))
"""


def test_trust_remote_code_without_fer_hf_and_pipeline(tmp_path):
    import json

    face = sorted((CKPLUS / "happy").glob("*.png"))[0]
    result = subprocess.run([sys.executable, "-c", REMOTE_CODE_SCRIPT, str(DEFAULT_MODEL_DIR), str(face)],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["module"].startswith("transformers_modules.")
    model = AutoModelForImageClassification.from_pretrained(DEFAULT_MODEL_DIR).eval()
    processor = AutoImageProcessor.from_pretrained(DEFAULT_MODEL_DIR)
    with torch.no_grad():
        expected = model(**processor(Image.open(face), return_tensors="pt")).logits[0]
    assert torch.allclose(torch.tensor(out["logits"]), expected, atol=1e-5)
    top = out["pipeline"][0]
    assert top["label"] == FER2013_LABELS[int(expected.argmax())]
    assert abs(top["score"] - float(expected.softmax(-1).max())) < 1e-4


def test_default_model_is_accurate_on_real_private_test_faces():
    """The released default model on 700 real PrivateTest images (every 5th): well above chance (14%)
    and near its full PrivateTest accuracy in the model card."""
    model = AutoModelForImageClassification.from_pretrained(DEFAULT_MODEL_DIR).eval()
    processor = AutoImageProcessor.from_pretrained(DEFAULT_MODEL_DIR)
    with zipfile.ZipFile(FER2013_ZIP) as archive:
        names = sorted(n for n in archive.namelist() if "/PrivateTest_" in n)[::5]
        images = [Image.open(io.BytesIO(archive.read(n))) for n in names]
    labels = np.array([FER2013_LABELS.index(n.split("/")[1]) for n in names])
    with torch.no_grad():
        predictions = model(**processor(images, return_tensors="pt")).logits.argmax(-1).numpy()
    accuracy = (predictions == labels).mean()
    assert accuracy > 0.62, accuracy


def test_pipeline_with_fer_hf_installed():
    classifier = pipeline("image-classification", model=str(DEFAULT_MODEL_DIR))
    happy_faces = sorted((CKPLUS / "happy").glob("*.png"))[::20]
    results = classifier([str(p) for p in happy_faces])
    top = [r[0]["label"] for r in results]
    assert len(top) == len(happy_faces)
    assert top.count("happy") >= 0.8 * len(top), top
    assert abs(sum(r["score"] for r in classifier(str(happy_faces[0]), top_k=7)) - 1) < 1e-4
