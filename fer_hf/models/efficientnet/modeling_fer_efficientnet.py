"""PyTorch FER EfficientNet-B0 (Tan & Le, 2019) on torchvision's EfficientNet, in the layout of
`transformers/models/<name>/modeling_<name>.py`.

Self-contained for ``trust_remote_code``: imports only this folder, torch, torchvision, transformers,
safetensors and huggingface_hub.
"""

from functools import partial

import torch
from torch import nn
from torchvision.models import EfficientNet
from torchvision.models.efficientnet import MBConvConfig
from transformers import PreTrainedModel
from transformers.modeling_outputs import (
    BaseModelOutputWithPoolingAndNoAttention,
    ImageClassifierOutputWithNoAttention,
)
from transformers.utils import logging

from .configuration_fer_efficientnet import FerEfficientNetConfig

logger = logging.get_logger(__name__)

#: Key prefixes of the ImageNet checkpoint that the fer_hf model has no use for (torchvision's 1000-class classifier).
IMAGENET_HEAD_PREFIXES = ("classifier.",)


def efficientnet_b0_blocks(width_mult: float = 1.0, depth_mult: float = 1.0) -> list:
    """The MBConv stages of EfficientNet-B0 (Table 1 of Tan & Le, 2019; torchvision's ``efficientnet_b0``
    table): (expand ratio, kernel, stride, input channels, output channels, blocks) per stage, scaled by
    ``width_mult`` (channels, rounded to multiples of 8) and ``depth_mult`` (blocks, rounded up)."""
    stage = partial(MBConvConfig, width_mult=width_mult, depth_mult=depth_mult)
    return [
        stage(1, 3, 1, 32, 16, 1),
        stage(6, 3, 2, 16, 24, 2),
        stage(6, 5, 2, 24, 40, 2),
        stage(6, 3, 2, 40, 80, 3),
        stage(6, 5, 1, 80, 112, 3),
        stage(6, 5, 2, 112, 192, 4),
        stage(6, 3, 1, 192, 320, 1),
    ]


class FerEfficientNetPreTrainedModel(PreTrainedModel):
    #: keys of an ImageNet checkpoint that fer_hf replaces with its own head (see `fer_hf.backbones`)
    imagenet_head_prefixes = IMAGENET_HEAD_PREFIXES
    config_class = FerEfficientNetConfig
    base_model_prefix = "fer_efficientnet"
    main_input_name = "pixel_values"

    def _init_weights(self, module):
        """torchvision's EfficientNet init for the backbone (Kaiming-normal fan-out convolutions, BatchNorm
        1 / 0, fresh running statistics); normal(0, ``initializer_range``) for the classifier."""
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=self.config.initializer_range)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
            nn.init.zeros_(module.running_mean)
            nn.init.ones_(module.running_var)
            nn.init.zeros_(module.num_batches_tracked)



class FerEfficientNetModel(FerEfficientNetPreTrainedModel):
    """torchvision's EfficientNet trunk (``features``, ``avgpool``: the module names of
    ``torchvision.models.efficientnet_b0``) with a ``num_channels``-input stem of stride ``first_stride``.

    ``features[0]`` is the stem (3x3 conv + BatchNorm + SiLU), ``features[1..7]`` the MBConv stages,
    ``features[8]`` the 1x1 conv to ``num_features`` (1280 for B0) channels.

    Output ``last_hidden_state``: float (batch, num_features, s, s) with ``s = ceil(image_size / 32)``
    for ``first_stride=2``, ``/ 16`` for 1 (2 and 3 at 48x48); ``pooler_output``: its global average,
    (batch, num_features); ``hidden_states`` (optional): the output of each of the 9 ``features``.
    """

    def __init__(self, config: FerEfficientNetConfig):
        super().__init__(config)
        network = EfficientNet(efficientnet_b0_blocks(config.width_mult, config.depth_mult),
                               dropout=config.dropout_rate, stochastic_depth_prob=config.stochastic_depth_prob)
        stem = network.features[0]
        stem[0] = nn.Conv2d(config.num_channels, stem[0].out_channels, 3, config.first_stride, 1, bias=False)
        self.features = network.features
        self.avgpool = network.avgpool
        self.num_features = network.classifier[-1].in_features
        self.post_init()

    # Copied from fer_hf.models.mobilenet.modeling_fer_mobilenet.FerMobileNetModel.forward
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
        hidden_states = () if output_hidden_states else None
        hidden = pixel_values
        for block in self.features:
            hidden = block(hidden)
            if output_hidden_states:
                hidden_states = hidden_states + (hidden,)
        pooled = torch.flatten(self.avgpool(hidden), 1)
        if not return_dict:
            return (hidden, pooled) + ((hidden_states,) if output_hidden_states else ())
        return BaseModelOutputWithPoolingAndNoAttention(
            last_hidden_state=hidden, pooler_output=pooled, hidden_states=hidden_states
        )


class FerEfficientNetForImageClassification(FerEfficientNetPreTrainedModel):
    """EfficientNet-B0 for FER: [`FerEfficientNetModel`] + classifier dropout(``dropout_rate``) -> linear
    (num_features -> ``num_labels``) (``self.classifier``, as torchvision's).

    ``forward(pixel_values, labels=None)``:
        pixel_values: float tensor (batch, num_channels, image_size, image_size), as produced by
            [`FerImageProcessor`] (grayscale rescaled to [0, 1] then normalized).
        labels: optional long tensor (batch,) of label ids, or float tensor (batch, num_labels) of soft
            targets (probabilities summing to 1: distillation, FER+ vote distributions); when given,
            ``loss`` is the mean cross-entropy (no label smoothing; the training script applies its own).
    Returns [`ImageClassifierOutputWithNoAttention`] with ``logits`` (batch, num_labels), float32.
    """

    # Copied from fer_hf.models.mobilenet.modeling_fer_mobilenet.FerMobileNetForImageClassification.__init__ with FerMobileNet->FerEfficientNet, fer_mobilenet->fer_efficientnet
    def __init__(self, config: FerEfficientNetConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.fer_efficientnet = FerEfficientNetModel(config)
        self.classifier = nn.Sequential(
            nn.Dropout(config.dropout_rate),
            nn.Linear(self.fer_efficientnet.num_features, config.num_labels),
        )
        self.post_init()

    # Copied from fer_hf.models.resnet.modeling_fer_resnet.FerResNetForImageClassification.forward with fer_resnet->fer_efficientnet
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> tuple | ImageClassifierOutputWithNoAttention:
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.fer_efficientnet(pixel_values, output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.classifier(outputs.pooler_output)
        loss = None
        if labels is not None:
            labels = labels.to(logits.device)
            loss = nn.functional.cross_entropy(logits, labels if labels.is_floating_point() else labels.long())
        if not return_dict:
            output = (logits,) + ((outputs.hidden_states,) if output_hidden_states else ())
            return ((loss,) + output) if loss is not None else output
        return ImageClassifierOutputWithNoAttention(loss=loss, logits=logits, hidden_states=outputs.hidden_states)
