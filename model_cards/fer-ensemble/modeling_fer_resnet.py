"""PyTorch FER ResNet-18 transfer model (He et al., 2016) on torchvision's ResNet, in the layout of
`transformers/models/<name>/modeling_<name>.py`.

Self-contained for ``trust_remote_code``: imports only this folder, torch, torchvision, transformers,
safetensors and huggingface_hub.
"""


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


class FerResNetPreTrainedModel(PreTrainedModel):
    #: keys of an ImageNet checkpoint that fer_hf replaces with its own head (see `fer_hf.backbones`)
    imagenet_head_prefixes = IMAGENET_HEAD_PREFIXES
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
