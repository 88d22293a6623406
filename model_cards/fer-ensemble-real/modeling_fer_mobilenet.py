# Generated from fer_hf/models/mobilenet/modeling_fer_mobilenet.py by `python utils/fix_copies.py`: do not edit this copy;
# edit fer_hf/models/mobilenet/modeling_fer_mobilenet.py and rerun the command (`--check` tells whether the copies are current).
"""PyTorch FER MobileNetV2 (Sandler et al., 2018) on torchvision's MobileNetV2, in the layout of
`transformers/models/<name>/modeling_<name>.py`.

Self-contained for ``trust_remote_code``: imports only this folder, torch, torchvision and transformers.
"""

import torch
from torch import nn
from torchvision.models import MobileNetV2
from transformers import PreTrainedModel
from transformers.modeling_outputs import (
    BaseModelOutputWithPoolingAndNoAttention,
    ImageClassifierOutputWithNoAttention,
)

from .configuration_fer_mobilenet import FerMobileNetConfig

#: Key prefixes of the ImageNet checkpoint that the fer_hf model has no use for (torchvision's 1000-class classifier).
IMAGENET_HEAD_PREFIXES = ("classifier.",)


class FerMobileNetPreTrainedModel(PreTrainedModel):
    #: keys of an ImageNet checkpoint that fer_hf replaces with its own head (see `fer_hf.backbones`)
    imagenet_head_prefixes = IMAGENET_HEAD_PREFIXES
    config_class = FerMobileNetConfig
    base_model_prefix = "fer_mobilenet"
    main_input_name = "pixel_values"

    def _init_weights(self, module):
        """torchvision's MobileNetV2 init for the backbone (Kaiming-normal fan-out convolutions, BatchNorm
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


class FerMobileNetModel(FerMobileNetPreTrainedModel):
    """torchvision's MobileNetV2 trunk (``features``: the module names of ``torchvision.models.mobilenet_v2``)
    with a ``num_channels``-input stem.

    ``features[0]`` is the stem (3x3 stride-2 conv + BatchNorm + ReLU6), ``features[1..17]`` the inverted
    residual blocks, ``features[18]`` the 1x1 conv to ``num_features`` (1280 at width 1.0) channels.

    Output ``last_hidden_state``: float (batch, num_features, s, s) with ``s = ceil(image_size / 32)``;
    ``pooler_output``: its global average, (batch, num_features); ``hidden_states`` (optional): the output
    of each of the 19 ``features``.
    """

    def __init__(self, config: FerMobileNetConfig):
        super().__init__(config)
        network = MobileNetV2(width_mult=config.width_mult, dropout=config.dropout_rate)
        stem = network.features[0][0]
        if config.num_channels != stem.in_channels:
            network.features[0][0] = nn.Conv2d(config.num_channels, stem.out_channels, 3, 2, 1, bias=False)
        self.features = network.features
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = network.last_channel
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


class FerMobileNetForImageClassification(FerMobileNetPreTrainedModel):
    """MobileNetV2 for FER: [`FerMobileNetModel`] + classifier dropout(``dropout_rate``) -> linear
    (num_features -> ``num_labels``) (``self.classifier``, as torchvision's).

    ``forward(pixel_values, labels=None)``:
        pixel_values: float tensor (batch, num_channels, image_size, image_size), as produced by
            [`FerImageProcessor`] (RGB rescaled to [0, 1], normalized with ImageNet's mean and std).
        labels: optional long tensor (batch,) of label ids, or float tensor (batch, num_labels) of soft
            targets (probabilities summing to 1: FER+ vote distributions, distillation); when given,
            ``loss`` is the mean cross-entropy.
    Returns [`ImageClassifierOutputWithNoAttention`] with ``logits`` (batch, num_labels), float32, including the
    config's ``logit_adjustment`` biases when it has them.
    """

    def __init__(self, config: FerMobileNetConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.fer_mobilenet = FerMobileNetModel(config)
        self.classifier = nn.Sequential(
            nn.Dropout(config.dropout_rate),
            nn.Linear(self.fer_mobilenet.num_features, config.num_labels),
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
        outputs = self.fer_mobilenet(pixel_values, output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.classifier(outputs.pooler_output)
        if self.config.logit_adjustment is not None:
            logits = logits + torch.tensor(self.config.logit_adjustment, dtype=logits.dtype, device=logits.device)
        loss = None
        if labels is not None:
            labels = labels.to(logits.device)
            loss = nn.functional.cross_entropy(logits, labels if labels.is_floating_point() else labels.long())
        if not return_dict:
            output = (logits,) + ((outputs.hidden_states,) if output_hidden_states else ())
            return ((loss,) + output) if loss is not None else output
        return ImageClassifierOutputWithNoAttention(loss=loss, logits=logits, hidden_states=outputs.hidden_states)
