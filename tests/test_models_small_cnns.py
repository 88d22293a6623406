"""Family-specific tests, on real CK+ faces, of the small architectures: the 1x1-convolution CNN
(``fer_conv1x1``), the classic LRN network (``fer_lrn``) and ACNN-ALSTM with its ablations
(``fer_acnn_alstm``). The zoo-wide behaviour (save/load, pipeline, remote code) is in test_model_zoo.py."""

import pytest
import torch
from conftest import CKPLUS
from PIL import Image
from torch import nn

from fer_hf.image_processing_fer import FerImageProcessor
from fer_hf.models import FER_MODEL_PRESETS, build_model
from fer_hf.models.acnn_alstm import (
    FER_ACNN_ALSTM_PRESETS,
    FerACNNALSTMConfig,
    FerACNNALSTMForImageClassification,
)
from fer_hf.models.conv1x1 import FerConv1x1Config, FerConv1x1ForImageClassification
from fer_hf.models.lrn import FerLRNConfig, FerLRNForImageClassification

LABELS = torch.tensor([3, 3, 5, 5, 0, 0, 4, 4])  # happy, surprise, angry, sad (FER2013 ids)


@pytest.fixture(scope="module")
def faces():
    """(8, 1, 48, 48) float pixel_values of real CK+ faces, 2 per class of `LABELS`."""
    paths = [p for name in ["happy", "surprise", "anger", "sadness"] for p in sorted((CKPLUS / name).glob("*.png"))[:2]]
    return FerImageProcessor()([Image.open(p) for p in paths], return_tensors="pt")["pixel_values"]


def executed_modules(model, pixel_values, kinds):
    """The modules of the given types in the order a forward pass runs them."""
    order = []
    hooks = [m.register_forward_hook(lambda mod, _i, _o: order.append(mod)) for m in model.modules()
             if isinstance(m, kinds)]
    with torch.no_grad():
        model(pixel_values)
    for hook in hooks:
        hook.remove()
    return order


def fc_share(model):
    total = sum(p.numel() for p in model.parameters())
    linear = sum(p.numel() for m in model.modules() if isinstance(m, nn.Linear) for p in m.parameters())
    return linear / total


def train_step(model, pixel_values):
    """Forward + backward with hard labels; returns the loss. Every parameter must get a non-zero gradient."""
    model.train()
    model.zero_grad()
    out = model(pixel_values=pixel_values, labels=LABELS)
    assert out.logits.shape == (len(LABELS), 7) and out.logits.dtype == torch.float32
    assert torch.isfinite(out.loss)
    out.loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    return out.loss


@pytest.mark.parametrize("model_type", ["fer_conv1x1", "fer_lrn", "fer_acnn_alstm"])
def test_default_configs_give_seven_logits_on_real_faces(model_type, faces):
    torch.manual_seed(0)
    model = build_model(model_type).eval()
    assert model.config.num_channels == 1 and model.config.image_size == 48 and model.config.num_labels == 7
    with torch.no_grad():
        out = model(pixel_values=faces, labels=LABELS)
    assert out.logits.shape == (8, 7) and torch.isfinite(out.logits).all()
    # an untrained model is near chance: cross-entropy close to log(7), not degenerate
    assert 1.0 < float(out.loss) < 4.0
    with pytest.raises(ValueError, match="pixel_values"):
        model(pixel_values=faces[:, :, :40, :40])
    with pytest.raises(ValueError, match="pixel_values"):
        model(pixel_values=faces.repeat(1, 3, 1, 1))


def test_soft_targets_loss_matches_hard_labels_for_one_hot(faces):
    torch.manual_seed(0)
    model = FerLRNForImageClassification(FerLRNConfig()).eval()
    with torch.no_grad():
        hard = model(pixel_values=faces, labels=LABELS).loss
        soft = model(pixel_values=faces, labels=nn.functional.one_hot(LABELS, 7).float()).loss
        uniform = model(pixel_values=faces, labels=torch.full((8, 7), 1 / 7)).loss
    assert torch.allclose(hard, soft, atol=1e-6)
    assert not torch.allclose(hard, uniform)


# --- fer_conv1x1 -----------------------------------------------------------------------------------


def test_conv1x1_first_layer_is_a_1x1_convolution(faces):
    model = FerConv1x1ForImageClassification(FerConv1x1Config())
    convs = executed_modules(model, faces, nn.Conv2d)
    assert convs[0].kernel_size == (1, 1) and convs[0].in_channels == 1 and convs[0].out_channels == 32
    assert [c.kernel_size for c in convs[1:]] == [(3, 3)] * 3
    assert [c.out_channels for c in convs[1:]] == [32, 64, 128]
    # the 1x1 layer is followed by a non-linearity: its ReLU output is non-negative and has zeros
    hidden = model.fer_conv1x1(faces, output_hidden_states=True).hidden_states[0]
    assert hidden.shape == (8, 32, 48, 48) and hidden.min() == 0


def test_conv1x1_most_parameters_are_in_the_fully_connected_layers(faces):
    model = FerConv1x1ForImageClassification(FerConv1x1Config())
    assert fc_share(model) > 0.95
    linears = [m for m in model.classifier if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(128 * 6 * 6, 1024), (1024, 512), (512, 7)]
    small = FerConv1x1ForImageClassification(FerConv1x1Config(classifier_hidden_sizes=[], pointwise_channels=8))
    assert len([m for m in small.classifier if isinstance(m, nn.Linear)]) == 1
    train_step(small, faces)


def test_conv1x1_config_validation():
    with pytest.raises(ValueError, match="image_size"):
        FerConv1x1Config(image_size=50)
    with pytest.raises(ValueError, match="dropout_rate"):
        FerConv1x1Config(dropout_rate=1.0)
    with pytest.raises(ValueError, match="hidden_sizes"):
        FerConv1x1Config(hidden_sizes=[])


# --- fer_lrn ---------------------------------------------------------------------------------------


def test_lrn_default_layers_match_the_classic_net(faces):
    model = FerLRNForImageClassification(FerLRNConfig())
    kinds = (nn.Conv2d, nn.MaxPool2d, nn.LocalResponseNorm, nn.Linear)
    order = executed_modules(model, faces, kinds)
    assert [type(m).__name__ for m in order] == [
        "Conv2d", "MaxPool2d", "LocalResponseNorm", "Conv2d", "LocalResponseNorm", "MaxPool2d",
        "Linear", "Linear", "Linear"]
    conv1, conv2 = order[0], order[3]
    assert (conv1.in_channels, conv1.out_channels, conv1.kernel_size) == (1, 64, (5, 5))
    assert (conv2.in_channels, conv2.out_channels, conv2.kernel_size) == (64, 64, (3, 3))
    assert all(m.kernel_size == 3 and m.stride == 2 for m in order if isinstance(m, nn.MaxPool2d))
    lrn = [m for m in order if isinstance(m, nn.LocalResponseNorm)]
    assert all((m.size, m.alpha, m.beta, m.k) == (9, 0.001, 0.75, 1.0) for m in lrn)
    assert [(m.in_features, m.out_features) for m in order[-3:]] == [(64 * 12 * 12, 384), (384, 192), (192, 7)]
    assert not any(isinstance(m, nn.Dropout) for m in model.modules())  # dropout defaults to 0
    shapes = [h.shape for h in model.fer_lrn(faces, output_hidden_states=True).hidden_states]
    assert shapes == [(8, 64, 24, 24), (8, 64, 12, 12)]


def test_lrn_normalises_across_channels_like_tensorflow(faces):
    """The LRN layer equals the TF tutorial's tf.nn.lrn(depth_radius=4, bias=1, alpha=0.001/9, beta=0.75)."""
    model = FerLRNForImageClassification(FerLRNConfig())
    stage = model.fer_lrn.stages[0].layers
    with torch.no_grad():
        pooled = stage[2](stage[1](stage[0](faces)))
        normalised = stage[3](pooled)
    squares = nn.functional.pad(pooled ** 2, (0, 0, 0, 0, 4, 4))
    window = torch.stack([squares[:, c:c + 9].sum(1) for c in range(64)], dim=1)
    expected = pooled / (1.0 + 0.001 / 9 * window) ** 0.75
    assert torch.allclose(normalised, expected, atol=1e-5)
    assert not torch.allclose(normalised, pooled)


def test_lrn_presets_and_options(faces):
    tutorial = build_model("fer_lrn", "cifar10-tutorial")
    assert tutorial.fer_lrn.stages[1].layers[0].kernel_size == (5, 5)
    small = FerLRNForImageClassification(FerLRNConfig(hidden_sizes=[8, 8, 8], kernel_sizes=[5, 3, 3],
                                                      lrn_before_pool=[False, True, True], pool_kernel_size=2,
                                                      classifier_hidden_sizes=[16], dropout_rate=0.2))
    assert sum(isinstance(m, nn.LocalResponseNorm) for m in small.modules()) == 3
    assert sum(isinstance(m, nn.Dropout) for m in small.modules()) == 2
    assert small.classifier[1].in_features == 8 * 6 * 6
    train_step(small, faces)
    with pytest.raises(ValueError, match="kernel_sizes"):
        FerLRNConfig(kernel_sizes=[5])
    with pytest.raises(ValueError, match="odd"):
        FerLRNConfig(kernel_sizes=[4, 3])


# --- fer_acnn_alstm --------------------------------------------------------------------------------


def test_acnn_alstm_presets_are_the_paper_ablations():
    assert set(FER_MODEL_PRESETS["fer_acnn_alstm"]) == {"acnn-alstm", "cnn-alstm", "cnn-lstm"}
    models = {name: build_model("fer_acnn_alstm", name) for name in FER_ACNN_ALSTM_PRESETS}
    switches = {name: (m.config.use_local_attention, m.config.use_global_attention) for name, m in models.items()}
    assert switches == {"acnn-alstm": (True, True), "cnn-alstm": (False, True), "cnn-lstm": (False, False)}
    for name, model in models.items():
        local, glob = switches[name]
        names = [n for n, _ in model.named_parameters()]
        assert any("local_attention" in n for n in names) == local
        assert any("global_attention" in n for n in names) == glob
        assert (model.fer_acnn_alstm.local_attention is not None) == local
        assert (model.fer_acnn_alstm.global_attention is not None) == glob
        assert isinstance(model.fer_acnn_alstm.lstm, nn.LSTM)
    sizes = [sum(p.numel() for p in models[n].parameters()) for n in ["acnn-alstm", "cnn-alstm", "cnn-lstm"]]
    assert sizes[0] > sizes[1] > sizes[2]


@pytest.mark.parametrize("preset", sorted(FER_ACNN_ALSTM_PRESETS))
def test_acnn_alstm_presets_train_on_real_faces(preset, faces):
    torch.manual_seed(0)
    model = build_model("fer_acnn_alstm", preset, overrides={"hidden_sizes": [16, 32, 64], "layers_per_stage": 1})
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        loss = train_step(model, faces)
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]  # it learns: 8 steps on 8 faces lower the loss


def test_acnn_alstm_attention_semantics(faces):
    torch.manual_seed(0)
    model = FerACNNALSTMForImageClassification(FerACNNALSTMConfig()).eval()
    trunk = model.fer_acnn_alstm
    with torch.no_grad():
        out = trunk(faces, output_hidden_states=True)
        features, attended = out.hidden_states[-2], out.hidden_states[-1]
        context, weights = trunk.global_attention(out.last_hidden_state)
    # local attention: the 128x6x6 map is rescaled by weights in (0, 1), not copied
    assert features.shape == attended.shape == (8, 128, 6, 6)
    assert (attended.abs() <= features.abs() + 1e-6).all() and not torch.allclose(attended, features)
    # the LSTM reads the 36 positions; global attention is a convex combination of its outputs
    assert out.last_hidden_state.shape == (8, 36, 128)
    assert weights.shape == (8, 36) and (weights >= 0).all()
    assert torch.allclose(weights.sum(1), torch.ones(8))
    assert torch.allclose(context, (weights[..., None] * out.last_hidden_state).sum(1), atol=1e-6)
    assert torch.allclose(out.pooler_output, context)
    assert not torch.allclose(out.pooler_output, out.last_hidden_state[:, -1])


def test_cnn_lstm_uses_the_final_hidden_state_and_options(faces):
    torch.manual_seed(0)
    plain = FerACNNALSTMForImageClassification(FerACNNALSTMConfig(use_local_attention=False,
                                                                  use_global_attention=False)).eval()
    with torch.no_grad():
        out = plain.fer_acnn_alstm(faces, output_hidden_states=True)
    assert torch.allclose(out.pooler_output, out.last_hidden_state[:, -1])
    assert len(out.hidden_states) == 3  # the CNN stages only: no attended map
    rows = FerACNNALSTMForImageClassification(FerACNNALSTMConfig(sequence_mode="rows", bidirectional=True,
                                                                 classifier_hidden_size=0)).eval()
    assert rows.fer_acnn_alstm.lstm.input_size == 128 * 6
    with torch.no_grad():
        out = rows.fer_acnn_alstm(faces)
    assert out.last_hidden_state.shape == (8, 6, 256) and out.pooler_output.shape == (8, 256)
    assert [type(m).__name__ for m in rows.classifier] == ["Dropout", "Linear"]
    with pytest.raises(ValueError, match="sequence_mode"):
        FerACNNALSTMConfig(sequence_mode="columns")
    with pytest.raises(ValueError, match="image_size"):
        FerACNNALSTMConfig(image_size=44)
