"""The torchvision-backed families (`fer_efficientnet`: EfficientNet-B0, `fer_resnet`: ResNet-18 transfer
model) on real CK+ faces: stems, head, feature-map sizes, and initialisation from torchvision-layout
backbone weights (files made here: there is no network)."""

import pytest
import torch
import torchvision
from conftest import CKPLUS
from PIL import Image
from safetensors.torch import save_file
from torch import nn
from transformers import AutoModelForImageClassification

from fer_hf.training import backbones
from fer_hf.training.backbones import load_backbone_weights
from fer_hf.image_processing_fer import FerImageProcessor
from fer_hf.models import build_config, build_model
from fer_hf.models.efficientnet import (
    FerEfficientNetConfig,
    FerEfficientNetForImageClassification,
)
from fer_hf.models.resnet import FerResNetConfig, FerResNetForImageClassification

TINY = {"fer_efficientnet": {"width_mult": 0.25, "depth_mult": 0.25},
        "fer_resnet": {"depths": [1, 1, 1, 1], "classifier_hidden_size": 16}}


def faces(count=4):
    names = ["happy", "surprise", "anger", "sadness"]
    return [Image.open(sorted((CKPLUS / names[i % 4]).glob("*.png"))[i // 4]) for i in range(count)]


def pixels(config, count=4):
    processor = FerImageProcessor(num_channels=config.num_channels,
                                  size={"height": config.image_size, "width": config.image_size})
    return processor(faces(count), return_tensors="pt")["pixel_values"]


@pytest.mark.parametrize("model_type", ["fer_efficientnet", "fer_resnet"])
def test_default_config_gives_logits_on_real_faces(model_type):
    torch.manual_seed(0)
    model = build_model(model_type).eval()
    assert model.config.image_size == 48 and model.config.id2label[3] == "happy"
    with torch.no_grad():
        logits = model(pixel_values=pixels(model.config)).logits
    assert logits.shape == (4, 7) and logits.dtype == torch.float32 and torch.isfinite(logits).all()
    assert logits.std() > 0


def test_efficientnet_stem_takes_one_grayscale_channel():
    config = build_config("fer_efficientnet")
    assert config.num_channels == 1 and config.first_stride == 2
    model = FerEfficientNetForImageClassification(config).eval()
    stem = model.fer_efficientnet.features[0][0]
    assert isinstance(stem, nn.Conv2d) and stem.in_channels == 1 and stem.stride == (2, 2)
    assert stem.kernel_size == (3, 3) and stem.out_channels == 32
    values = pixels(config, 2)
    assert values.shape == (2, 1, 48, 48)
    with pytest.raises(ValueError, match=r"pixel_values must be \(batch, 1, height, width\)"):
        model(pixel_values=values.repeat(1, 3, 1, 1))
    assert FerEfficientNetForImageClassification(FerEfficientNetConfig(first_stride=1)).fer_efficientnet \
        .features[0][0].stride == (1, 1)


def test_efficientnet_backbone_is_torchvision_b0():
    """Same modules and shapes as torchvision's efficientnet_b0 but for the 1-channel stem; classifier to 7."""
    model = FerEfficientNetForImageClassification(FerEfficientNetConfig())
    ours = {k: tuple(v.shape) for k, v in model.fer_efficientnet.state_dict().items()}
    reference = {k: tuple(v.shape) for k, v in torchvision.models.efficientnet_b0(weights=None).state_dict().items()
                 if not k.startswith("classifier.")}
    assert ours.keys() == reference.keys()
    assert {k for k in ours if ours[k] != reference[k]} == {"features.0.0.weight"}
    assert ours["features.0.0.weight"] == (32, 1, 3, 3)
    dropout, linear = model.classifier
    assert dropout.p == 0.2 and (linear.in_features, linear.out_features) == (1280, 7)
    assert 3.9e6 < model.num_parameters() < 4.1e6


def test_resnet_head_and_backbone():
    model = FerResNetForImageClassification(FerResNetConfig())
    assert model.config.num_channels == 3 and model.config.stem_type == "imagenet"
    layers = list(model.classifier)
    assert [type(layer) for layer in layers] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Dropout, nn.Linear]
    assert (layers[0].in_features, layers[0].out_features) == (512, 256)
    assert layers[1].num_features == 256 and layers[3].p == 0.5
    assert (layers[4].in_features, layers[4].out_features) == (256, 7)
    ours = {k: tuple(v.shape) for k, v in model.fer_resnet.state_dict().items()}
    reference = {k: tuple(v.shape) for k, v in torchvision.models.resnet18(weights=None).state_dict().items()
                 if not k.startswith("fc.")}
    assert ours == reference


@pytest.mark.parametrize("model_type,overrides,side", [
    ("fer_resnet", {"stem_type": "imagenet"}, 2),
    ("fer_resnet", {"stem_type": "small"}, 3),
    ("fer_resnet", {"stem_type": "cifar"}, 6),
    ("fer_resnet", {"stem_type": "imagenet", "image_size": 112}, 4),
    ("fer_efficientnet", {"first_stride": 2}, 2),
    ("fer_efficientnet", {"first_stride": 1}, 3),
    ("fer_efficientnet", {"image_size": 96}, 3),
])
def test_feature_map_size(model_type, overrides, side):
    torch.manual_seed(0)
    model = build_model(model_type, overrides={**TINY[model_type], **overrides}).eval()
    with torch.no_grad():
        out = model.base_model(pixels(model.config, 2), output_hidden_states=True)
    channels = 512 if model_type == "fer_resnet" else model.base_model.num_features
    assert out.last_hidden_state.shape == (2, channels, side, side)
    assert out.pooler_output.shape == (2, channels)
    assert len(out.hidden_states) == (5 if model_type == "fer_resnet" else 9)


@pytest.mark.parametrize("model_type", ["fer_efficientnet", "fer_resnet"])
def test_trained_batch_norm_statistics_survive_save_and_load(model_type, tmp_path):
    torch.manual_seed(0)
    model = build_model(model_type, overrides=TINY[model_type])
    values = pixels(model.config, 8)
    model.train()
    model(pixel_values=values)  # updates every BatchNorm's running statistics
    model.eval()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    assert not torch.equal(loaded.classifier[-1].weight, torch.zeros_like(loaded.classifier[-1].weight))
    with torch.no_grad():
        assert torch.allclose(model(pixel_values=values).logits, loaded(pixel_values=values).logits, rtol=1e-5, atol=1e-6)


def torchvision_state(name, seed):
    """A torchvision model's state dict with known random weights and non-trivial BatchNorm statistics."""
    torch.manual_seed(seed)
    network = getattr(torchvision.models, name)(weights=None)
    for module in network.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.normal_()
            module.num_batches_tracked.fill_(7)
    return {k: v.clone() for k, v in network.state_dict().items()}


def save_state(state, tmp_path, suffix):
    path = tmp_path / f"backbone{suffix}"
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
@pytest.mark.parametrize("model_type,torchvision_name,stem_key,imagenet_head", [
    ("fer_resnet", "resnet18", "conv1.weight", ["fc.bias", "fc.weight"]),
    ("fer_efficientnet", "efficientnet_b0", "features.0.0.weight", ["classifier.1.bias", "classifier.1.weight"]),
])
def test_loads_torchvision_backbone_weights(tmp_path, suffix, model_type, torchvision_name, stem_key, imagenet_head):
    """Default configs (ResNet: 3-channel stem, loaded as is; EfficientNet: 1-channel stem, RGB kernels summed)."""
    state = torchvision_state(torchvision_name, seed=123)
    path = save_state(state, tmp_path, suffix)
    torch.manual_seed(0)
    model = build_model(model_type)
    head = {k: v.clone() for k, v in model.classifier.state_dict().items()}
    report = load_backbone_weights(model, str(path))
    backbone = model.base_model.state_dict()
    assert backbone.keys() == set(state) - set(imagenet_head)
    gray = model.config.num_channels == 1
    assert torch.allclose(backbone[stem_key], state[stem_key].sum(dim=1, keepdim=True) if gray else state[stem_key])
    for key, value in backbone.items():
        if key != stem_key:
            assert torch.equal(value, state[key]), key
    for key, value in model.classifier.state_dict().items():
        assert torch.equal(value, head[key]), key  # the ImageNet classifier is not the fer_hf head
    assert sorted(report["skipped"]) == imagenet_head and report["adapted"] == ([stem_key] if gray else [])
    assert report["missing"] == [] and report["unexpected"] == [] and report["mismatched"] == []
    assert model.config.backbone_weights == str(path)
    values = pixels(model.config, 2)
    model.eval()
    with torch.no_grad():
        assert model(pixel_values=values).logits.shape == (2, 7)
        if gray:  # on a gray face the summed stem equals the RGB stem on the face replicated to RGB
            stem = model.get_submodule("fer_efficientnet.features.0.0")
            rgb = nn.functional.conv2d(values.repeat(1, 3, 1, 1), state[stem_key], stride=2, padding=1)
            assert torch.allclose(stem(values), rgb, atol=1e-4)


def test_resnet_grayscale_and_small_stems_adapt_or_skip_the_imagenet_stem(tmp_path):
    state = torchvision_state("resnet18", seed=5)
    path = save_state(state, tmp_path, ".safetensors")
    gray = FerResNetForImageClassification(FerResNetConfig(num_channels=1))
    report = load_backbone_weights(gray, str(path))
    assert report["adapted"] == ["conv1.weight"]
    assert torch.allclose(gray.fer_resnet.conv1.weight, state["conv1.weight"].sum(dim=1, keepdim=True))
    small = FerResNetForImageClassification(FerResNetConfig(stem_type="small"))
    stem_before = small.fer_resnet.conv1.weight.clone()
    report = load_backbone_weights(small, str(path))
    assert report["mismatched"] == ["conv1.weight: (64, 3, 7, 7) vs (64, 3, 3, 3)"]
    assert report["missing"] == ["conv1.weight"]
    assert torch.equal(small.fer_resnet.conv1.weight, stem_before)
    assert torch.equal(small.fer_resnet.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])


@pytest.mark.parametrize("model_class,config_class", [
    (FerResNetForImageClassification, FerResNetConfig),
    (FerEfficientNetForImageClassification, FerEfficientNetConfig),
])
def test_backbone_weight_errors(tmp_path, model_class, config_class):
    model = model_class(config_class(**TINY[config_class.model_type]))
    with pytest.raises(ValueError, match="no backbone weights source"):
        load_backbone_weights(model)
    with pytest.raises(FileNotFoundError):
        load_backbone_weights(model, str(tmp_path / "missing.safetensors"))
    with pytest.raises(OSError, match="backbone_weights=None"):  # HF_HUB_OFFLINE=1 (conftest): no network
        load_backbone_weights(model, "no-such-owner/no-such-weights")
    unrelated = save_state({"encoder.weight": torch.ones(2, 2)}, tmp_path, ".safetensors")
    with pytest.raises(ValueError, match="no tensor of"):
        load_backbone_weights(model, str(unrelated))
    (tmp_path / "weights.npz").write_bytes(b"0")
    with pytest.raises(ValueError, match="unsupported"):
        load_backbone_weights(model, str(tmp_path / "weights.npz"))
    assert model.config.backbone_weights is None


@pytest.mark.parametrize("model_type", ["fer_resnet", "fer_efficientnet"])
def test_from_pretrained_never_reads_backbone_weights(tmp_path, monkeypatch, model_type):
    torch.manual_seed(0)
    source = "no-such-owner/imagenet-weights"
    model = build_model(model_type, overrides={**TINY[model_type], "backbone_weights": source}).eval()
    model.save_pretrained(tmp_path)

    def refuse(*args, **kwargs):
        raise AssertionError("from_pretrained must not read backbone weights")

    monkeypatch.setattr(backbones, "read_state_dict", refuse)
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    assert loaded.config.backbone_weights == source
    values = pixels(model.config, 2)
    with torch.no_grad():
        assert torch.allclose(model(pixel_values=values).logits, loaded(pixel_values=values).logits, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("config_class,kwargs,message", [
    (FerResNetConfig, {"stem_type": "tiny"}, "stem_type"),
    (FerResNetConfig, {"depths": [2, 2, 2]}, "depths"),
    (FerResNetConfig, {"dropout_rate": 1.0}, "dropout_rate"),
    (FerResNetConfig, {"image_size": 4}, "image_size"),
    (FerResNetConfig, {"backbone_weights": 3}, "backbone_weights"),
    (FerEfficientNetConfig, {"first_stride": 4}, "first_stride"),
    (FerEfficientNetConfig, {"width_mult": 0}, "width_mult"),
    (FerEfficientNetConfig, {"stochastic_depth_prob": -0.1}, "stochastic_depth_prob"),
    (FerEfficientNetConfig, {"num_channels": 0}, "num_channels"),
])
def test_configs_reject_bad_arguments(config_class, kwargs, message):
    with pytest.raises(ValueError, match=message):
        config_class(**kwargs)
