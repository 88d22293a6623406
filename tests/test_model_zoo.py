"""Every registered fer_hf architecture family, on real faces: builds, runs forward and backward,
round-trips through save_pretrained / the Auto classes / pipeline, and loads with trust_remote_code
in a process where fer_hf cannot be imported."""


import pytest
import torch
from PIL import Image
from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification, pipeline

from fer_hf import FER2013_LABELS
from fer_hf.image_processing_fer import FerImageProcessor
from fer_hf.models import FER_MODEL_PRESETS, TRAINABLE_MODEL_TYPES, build_config, build_model, parse_config_overrides

from conftest import CKPLUS, run_without_fer_hf

#: A small configuration of every family (keeps the suite fast); every registered family must have one.
TINY_CONFIGS = {
    "fer_vgg": {"hidden_sizes": [8, 16], "classifier_hidden_size": 32},
    "fer_conv1x1": {"pointwise_channels": 4, "hidden_sizes": [8, 16], "classifier_hidden_sizes": [32]},
    "fer_lrn": {"hidden_sizes": [8, 8], "classifier_hidden_sizes": [16, 8]},
    "fer_acnn_alstm": {"hidden_sizes": [8, 16], "layers_per_stage": 1, "local_attention_reduction": 4,
                       "lstm_hidden_size": 16, "global_attention_size": 8, "classifier_hidden_size": 16},
    "fer_efficientnet": {"width_mult": 0.25, "depth_mult": 0.25, "image_size": 32},
    "fer_resnet": {"depths": [1, 1, 1, 1], "classifier_hidden_size": 16, "image_size": 32},
    "fer_mobilenet": {"width_mult": 0.25, "image_size": 32, "initializer_range": 0.5},  # logits far from ties
}


def real_faces(count=8):
    names = ["happy", "surprise", "anger", "sadness"]
    paths = [p for name in names for p in sorted((CKPLUS / name).glob("*.png"))[: count // len(names)]]
    return [Image.open(p) for p in paths]


def processor_for(config):
    return FerImageProcessor(num_channels=config.num_channels,
                             size={"height": config.image_size, "width": config.image_size})


def test_every_family_has_a_tiny_config_and_presets_build():
    assert set(TINY_CONFIGS) == set(TRAINABLE_MODEL_TYPES)
    for model_type, presets in FER_MODEL_PRESETS.items():
        for name in presets:
            config = build_config(model_type, name)
            assert config.model_type == model_type and config.num_labels == 7


@pytest.mark.parametrize("model_type", sorted(TRAINABLE_MODEL_TYPES))
def test_forward_backward_on_real_faces(model_type):
    torch.manual_seed(0)
    model = build_model(model_type, overrides=TINY_CONFIGS[model_type])
    processor = processor_for(model.config)
    inputs = processor(real_faces(), return_tensors="pt")
    labels = torch.tensor([3, 3, 5, 5, 0, 0, 4, 4])
    assert inputs["pixel_values"].shape[1] == model.config.num_channels
    out = model(**inputs, labels=labels)
    assert out.logits.shape == (8, 7) and out.logits.dtype == torch.float32
    assert torch.isfinite(out.loss) and out.loss > 0
    out.loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0
    soft = torch.full((8, 7), 1 / 7)
    assert torch.isfinite(model(**inputs, labels=soft).loss)  # soft targets (distillation, FER+ votes)


@pytest.mark.parametrize("model_type", sorted(TRAINABLE_MODEL_TYPES))
def test_save_load_auto_classes_and_pipeline(model_type, tmp_path):
    torch.manual_seed(0)
    model = build_model(model_type, overrides=TINY_CONFIGS[model_type]).eval()
    processor = processor_for(model.config)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    saved = {p.name for p in tmp_path.iterdir()}
    assert {"model.safetensors", "config.json", "preprocessor_config.json", "image_processing_fer.py"} <= saved
    assert isinstance(AutoConfig.from_pretrained(tmp_path), TRAINABLE_MODEL_TYPES[model_type][0])
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    assert type(loaded) is TRAINABLE_MODEL_TYPES[model_type][1]
    inputs = AutoImageProcessor.from_pretrained(tmp_path)(real_faces(), return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(model(**inputs).logits, loaded(**inputs).logits, rtol=1e-5, atol=1e-6)
    results = pipeline("image-classification", model=str(tmp_path))(real_faces(4)[:2], top_k=7)
    assert len(results) == 2 and {r["label"] for r in results[0]} == set(FER2013_LABELS)
    assert abs(sum(r["score"] for r in results[0]) - 1) < 1e-4


@pytest.mark.parametrize("model_type", sorted(TRAINABLE_MODEL_TYPES))
def test_trust_remote_code_without_fer_hf(model_type, tmp_path):
    torch.manual_seed(0)
    model = build_model(model_type, overrides=TINY_CONFIGS[model_type]).eval()
    processor = processor_for(model.config)
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    face = sorted((CKPLUS / "happy").glob("*.png"))[0]
    out = run_without_fer_hf(folder, face, tmp_path)
    assert out["module"].startswith("transformers_modules.")
    with torch.no_grad():
        expected = model(**processor(Image.open(face), return_tensors="pt")).logits[0]
    assert torch.allclose(torch.tensor(out["logits"]), expected, atol=1e-5)
    assert out["top"]["label"] == FER2013_LABELS[int(expected.argmax())]


def test_build_config_rejects_unknown_names():
    with pytest.raises(ValueError, match="Unknown model_type"):
        build_config("vit")
    with pytest.raises(ValueError, match="Unknown preset"):
        build_config("fer_vgg", "no-such-preset")
    with pytest.raises(ValueError, match="no argument"):
        build_config("fer_vgg", overrides={"hiden_sizes": [8]})


def test_parse_config_overrides():
    assert parse_config_overrides("hidden_sizes=[8, 16],dropout_rate=0.3,use_batch_norm=false,stem=cifar") == {
        "hidden_sizes": [8, 16], "dropout_rate": 0.3, "use_batch_norm": False, "stem": "cifar"}
    assert parse_config_overrides("") == {}
    with pytest.raises(ValueError):
        parse_config_overrides("dropout_rate")
