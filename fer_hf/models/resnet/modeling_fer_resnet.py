"""PyTorch FER ResNet-18 transfer model (He et al., 2016) on torchvision's ResNet, in the layout of
`transformers/models/<name>/modeling_<name>.py`.

Self-contained for ``trust_remote_code``: imports only this folder, torch, torchvision, transformers,
safetensors and huggingface_hub.
"""

from pathlib import Path

import torch
from torch import nn
from torchvision.models import ResNet
from torchvision.models.resnet import BasicBlock
from transformers import PreTrainedModel
from transformers.modeling_outputs import (
    BaseModelOutputWithPoolingAndNoAttention,
    ImageClassifierOutputWithNoAttention,
)
from transformers.utils import logging

from .configuration_fer_resnet import FER_RESNET_STEMS, FerResNetConfig

logger = logging.get_logger(__name__)

#: Key prefixes of the ImageNet checkpoint that the fer_hf model has no use for (torchvision's 1000-class fc).
IMAGENET_HEAD_PREFIXES = ("fc.",)


def read_state_dict(source: str) -> dict:
    """The tensors of ``source``: a ``.safetensors`` file, a ``.pth`` / ``.pt`` / ``.bin`` state dict
    (read with ``torch.load(weights_only=True)``, never unpickling code), a folder holding
    ``model.safetensors``, or a Hub repo id (``owner/name``) whose ``model.safetensors`` is downloaded.

    Raises:
        FileNotFoundError: for a local path that does not exist.
        OSError: when the Hub file cannot be fetched (no network, unknown repo, offline mode).
        ValueError: for an unsupported file type or a file that is not a flat dict of tensors.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        path = path / "model.safetensors"
    if not path.is_file():
        looks_local = (source.startswith((".", "/", "~")) or source.count("/") > 1
                       or path.suffix in (".safetensors", ".pth", ".pt", ".bin"))
        if looks_local:
            raise FileNotFoundError(f"backbone weights file {str(path)!r} does not exist")
        from huggingface_hub import hf_hub_download

        try:
            path = Path(hf_hub_download(repo_id=source, filename="model.safetensors"))
        except Exception as error:  # offline, no network, unknown repo: all mean "cannot initialise from it"
            raise OSError(f"could not fetch model.safetensors of Hub repo {source!r} ({type(error).__name__}: "
                          f"{error}); without network pass a local .safetensors / .pth file, or train from "
                          "scratch with backbone_weights=None") from error
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    elif path.suffix in (".pth", ".pt", ".bin"):
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
    else:
        raise ValueError(f"unsupported backbone weights file {str(path)!r}: use .safetensors, .pth or .pt")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{str(path)!r} is not a flat state dict of tensors")
    return state


def load_backbone_weights(model: "FerResNetPreTrainedModel", source: str | None = None) -> dict:
    """Initialise the backbone of a freshly built ``model`` from torchvision-layout weights (e.g. ImageNet).

    Call it only on a new model before training (from the training script); ``from_pretrained`` of a
    trained fer_hf model restores every weight from its folder and never calls this.

    Keys are matched by name against torchvision's ResNet layout (``conv1.weight``, ``bn1.*``,
    ``layer1.0.conv1.weight``, ...; a ``module.`` or ``fer_resnet.`` prefix is stripped). ImageNet's
    ``fc.*`` is skipped, so the fer_hf head keeps its own init. A 3-channel stem kernel loaded into a
    1-channel stem is summed over its RGB axis (on a gray image that equals the RGB kernel on the gray
    image replicated to RGB). Tensors whose shape does not fit (e.g. the 7x7 ImageNet stem with
    ``stem_type="small"``) are left as initialised and reported. BatchNorm running statistics are loaded too.

    Args:
        model: a [`FerResNetForImageClassification`] or [`FerResNetModel`].
        source: see `read_state_dict`; defaults to ``model.config.backbone_weights``. Recorded in
            ``model.config.backbone_weights`` after loading.
    Returns:
        ``{"source", "loaded", "adapted", "mismatched", "missing", "unexpected", "skipped"}``: the
        source and lists of backbone key names (adapted = summed stem; missing = backbone keys left as
        initialised; unexpected = source keys with no place; skipped = the ImageNet head).
    Raises:
        ValueError: without a source, or when no tensor of the source fits the backbone.
        FileNotFoundError / OSError: when the source cannot be read (see `read_state_dict`).
    """
    source = source or model.config.backbone_weights
    if not source:
        raise ValueError("no backbone weights source: pass source= or set config.backbone_weights")
    backbone = model.base_model
    state = {}
    for key, value in read_state_dict(source).items():
        for prefix in ("module.", backbone.base_model_prefix + "."):
            key = key.removeprefix(prefix)
        state[key] = value
    own = backbone.state_dict()
    report = {"source": source, "loaded": [], "adapted": [], "mismatched": [], "unexpected": [], "skipped": []}
    fitting = {}
    for key, value in state.items():
        if key.startswith(IMAGENET_HEAD_PREFIXES):
            report["skipped"].append(key)
            continue
        if key not in own:
            report["unexpected"].append(key)
            continue
        target = own[key]
        if (value.ndim == 4 and target.ndim == 4 and value.shape[1] == 3 and target.shape[1] == 1
                and value.shape[0] == target.shape[0] and value.shape[2:] == target.shape[2:]):
            value = value.sum(dim=1, keepdim=True)
            report["adapted"].append(key)
        if value.shape != target.shape:
            report["mismatched"].append(f"{key}: {tuple(value.shape)} vs {tuple(target.shape)}")
            continue
        fitting[key] = value.to(target.dtype)
    if not fitting:
        raise ValueError(f"no tensor of {source!r} fits the ResNet backbone (expected torchvision key names "
                         f"such as 'conv1.weight', 'layer1.0.conv1.weight'; got e.g. {sorted(state)[:3]})")
    backbone.load_state_dict(fitting, strict=False)
    report["loaded"] = sorted(fitting)
    report["missing"] = sorted(set(own) - set(fitting))
    model.config.backbone_weights = source
    logger.info(f"Loaded {len(fitting)} backbone tensors from {source}")
    if report["missing"] or report["unexpected"] or report["mismatched"]:
        logger.warning(f"Backbone weights {source}: left as initialised {report['missing']}; "
                       f"unexpected {report['unexpected']}; mismatched {report['mismatched']}")
    return report


class FerResNetPreTrainedModel(PreTrainedModel):
    config_class = FerResNetConfig
    base_model_prefix = "fer_resnet"
    main_input_name = "pixel_values"

    def _init_weights(self, module):
        """torchvision's ResNet init for the backbone (Kaiming-normal fan-out convolutions, BatchNorm 1 / 0,
        fresh running statistics); normal(0, ``initializer_range``) for the head's linear layers."""
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=self.config.initializer_range)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
            nn.init.zeros_(module.running_mean)
            nn.init.ones_(module.running_var)
            nn.init.zeros_(module.num_batches_tracked)

    def load_backbone_weights(self, source: str | None = None) -> dict:
        """Initialise the backbone from torchvision-layout weights; see the module function `load_backbone_weights`."""
        return load_backbone_weights(self, source)


class FerResNetModel(FerResNetPreTrainedModel):
    """torchvision's ResNet trunk (``conv1``, ``bn1``, ``relu``, ``maxpool``, ``layer1``..``layer4``,
    ``avgpool``: the same module names as ``torchvision.models.resnet18``) with the stem of
    ``config.stem_type``.

    Output ``last_hidden_state``: float (batch, 512, s, s) with ``s = ceil(image_size / 32)`` for the
    ImageNet stem, ``/ 16`` for ``"small"``, ``/ 8`` for ``"cifar"`` (2, 3, 6 at 48x48);
    ``pooler_output``: its global average, (batch, 512); ``hidden_states`` (optional): the stem output
    and the output of each of the four stages.
    """

    def __init__(self, config: FerResNetConfig):
        super().__init__(config)
        resnet = ResNet(BasicBlock, list(config.depths))  # depths [2, 2, 2, 2] = torchvision.models.resnet18()
        kernel, stride, max_pool = FER_RESNET_STEMS[config.stem_type]
        self.conv1 = nn.Conv2d(config.num_channels, resnet.bn1.num_features, kernel, stride, kernel // 2, bias=False)
        self.bn1, self.relu = resnet.bn1, resnet.relu
        self.maxpool = resnet.maxpool if max_pool else nn.Identity()
        self.layer1, self.layer2, self.layer3, self.layer4 = resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4
        self.avgpool = resnet.avgpool
        self.num_features = resnet.fc.in_features
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> tuple | BaseModelOutputWithPoolingAndNoAttention:
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if pixel_values is None or pixel_values.ndim != 4 or pixel_values.shape[1] != self.config.num_channels:
            shape = None if pixel_values is None else tuple(pixel_values.shape)
            raise ValueError(f"pixel_values must be (batch, {self.config.num_channels}, height, width); got {shape}")
        hidden = self.maxpool(self.relu(self.bn1(self.conv1(pixel_values))))
        hidden_states = (hidden,)
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            hidden = stage(hidden)
            hidden_states = hidden_states + (hidden,)
        hidden_states = hidden_states if output_hidden_states else None
        pooled = torch.flatten(self.avgpool(hidden), 1)
        if not return_dict:
            return (hidden, pooled) + ((hidden_states,) if output_hidden_states else ())
        return BaseModelOutputWithPoolingAndNoAttention(
            last_hidden_state=hidden, pooler_output=pooled, hidden_states=hidden_states
        )


class FerResNetForImageClassification(FerResNetPreTrainedModel):
    """ResNet-18 transfer model: [`FerResNetModel`] + head linear 512 -> ``classifier_hidden_size`` ->
    BatchNorm1d -> ReLU -> Dropout(``dropout_rate``) -> linear ``num_labels`` (``self.classifier``, in
    place of torchvision's ``fc``).

    ``forward(pixel_values, labels=None)``:
        pixel_values: float tensor (batch, num_channels, image_size, image_size), as produced by
            [`FerImageProcessor`] with ``num_channels=3, do_grayscale=True`` (grayscale replicated to RGB,
            rescaled to [0, 1] then normalized; ImageNet mean/std when the backbone has ImageNet weights).
        labels: optional long tensor (batch,) of label ids, or float tensor (batch, num_labels) of soft
            targets (probabilities summing to 1: distillation, FER+ vote distributions); when given,
            ``loss`` is the mean cross-entropy (no label smoothing; the training script applies its own).
    Returns [`ImageClassifierOutputWithNoAttention`] with ``logits`` (batch, num_labels), float32.
    The head's BatchNorm1d needs batches of at least 2 faces in training mode.
    """

    def __init__(self, config: FerResNetConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.fer_resnet = FerResNetModel(config)
        hidden = config.classifier_hidden_size
        self.classifier = nn.Sequential(
            nn.Linear(self.fer_resnet.num_features, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(config.dropout_rate),
            nn.Linear(hidden, config.num_labels),
        )
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> tuple | ImageClassifierOutputWithNoAttention:
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.fer_resnet(pixel_values, output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.classifier(outputs.pooler_output)
        loss = None
        if labels is not None:
            labels = labels.to(logits.device)
            loss = nn.functional.cross_entropy(logits, labels if labels.is_floating_point() else labels.long())
        if not return_dict:
            output = (logits,) + ((outputs.hidden_states,) if output_hidden_states else ())
            return ((loss,) + output) if loss is not None else output
        return ImageClassifierOutputWithNoAttention(loss=loss, logits=logits, hidden_states=outputs.hidden_states)
