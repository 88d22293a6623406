"""PyTorch FER 1x1-convolution CNN, in the layout of `transformers/models/<name>/modeling_<name>.py`."""

from typing import ClassVar

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import (
    BaseModelOutputWithPoolingAndNoAttention,
    ImageClassifierOutputWithNoAttention,
)

from .configuration_fer_conv1x1 import FerConv1x1Config


class FerConv1x1Stage(nn.Module):
    """3x3 conv [+ BatchNorm] + ReLU, then 2x2 max-pool (stride 2); halves height and width."""

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool, eps: float):
        super().__init__()
        blocks = [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=not batch_norm)]
        if batch_norm:
            blocks.append(nn.BatchNorm2d(out_channels, eps=eps))
        blocks += [nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        self.layers = nn.Sequential(*blocks)

    def forward(self, hidden_state: torch.Tensor) -> torch.Tensor:
        return self.layers(hidden_state)


class FerConv1x1PreTrainedModel(PreTrainedModel):
    """Weight init and loading for the 1x1-convolution CNN: Kaiming normal convolutions, normal(0,
    ``initializer_range``) linear layers, unit BatchNorm."""

    config_class = FerConv1x1Config
    base_model_prefix = "fer_conv1x1"
    main_input_name = "pixel_values"
    _no_split_modules: ClassVar[list[str]] = ["FerConv1x1Stage"]

    def _init_weights(self, module):
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=self.config.initializer_range)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
            module.running_mean.zero_()
            module.running_var.fill_(1.0)
            module.num_batches_tracked.zero_()
            return
        else:
            return
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class FerConv1x1Model(FerConv1x1PreTrainedModel):
    """The convolutional trunk: 1x1 conv (``num_channels`` -> ``pointwise_channels``) + ReLU, then the 3x3
    stages.

    ``forward(pixel_values)``: float tensor (batch, num_channels, image_size, image_size).
    Output ``last_hidden_state``: (batch, hidden_sizes[-1], s, s) with ``s = image_size / 2**len(hidden_sizes)``;
    ``pooler_output``: the same map flattened, (batch, hidden_sizes[-1] * s * s); ``hidden_states`` (if asked):
    the output of the 1x1 layer, (batch, pointwise_channels, image_size, image_size), then of every stage.
    """

    def __init__(self, config: FerConv1x1Config):
        super().__init__(config)
        self.pointwise = nn.Sequential(nn.Conv2d(config.num_channels, config.pointwise_channels, 1),
                                       nn.ReLU(inplace=True))
        channels = [config.pointwise_channels] + list(config.hidden_sizes)
        self.stages = nn.ModuleList(
            FerConv1x1Stage(channels[i], channels[i + 1], config.use_batch_norm, config.batch_norm_eps)
            for i in range(len(config.hidden_sizes))
        )
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
        size = self.config.image_size
        if pixel_values is None or pixel_values.ndim != 4 or tuple(pixel_values.shape[1:]) != (
                self.config.num_channels, size, size):
            got = None if pixel_values is None else tuple(pixel_values.shape)
            raise ValueError(f"pixel_values must be (batch, {self.config.num_channels}, {size}, {size}); got {got}")
        hidden = self.pointwise(pixel_values)
        hidden_states = (hidden,) if output_hidden_states else None
        for stage in self.stages:
            hidden = stage(hidden)
            if output_hidden_states:
                hidden_states = hidden_states + (hidden,)
        pooled = torch.flatten(hidden, 1)
        if not return_dict:
            return (hidden, pooled) + ((hidden_states,) if output_hidden_states else ())
        return BaseModelOutputWithPoolingAndNoAttention(
            last_hidden_state=hidden, pooler_output=pooled, hidden_states=hidden_states
        )


class FerConv1x1ForImageClassification(FerConv1x1PreTrainedModel):
    """The first fer_hf system: 1x1 conv + shallow 3x3 conv stack + a wide fully connected head (most of
    the parameters), after Szegedy et al., 2015, "Going Deeper with Convolutions" (1x1 convolutions) and
    CVPR 2018 facial-expression work.

    ``forward(pixel_values, labels=None)``:
        pixel_values: float tensor (batch, num_channels, image_size, image_size), as produced by
            [`FerImageProcessor`] (grayscale rescaled to [0, 1] then normalized).
        labels: optional long tensor (batch,) of label ids, or float tensor (batch, num_labels) of soft
            targets (probabilities summing to 1: distillation, FER+ vote distributions); when given,
            ``loss`` is the mean cross-entropy (no label smoothing; the training script applies its own).
    Returns [`ImageClassifierOutputWithNoAttention`] with ``logits`` (batch, num_labels), float32
    unnormalised scores.
    """

    def __init__(self, config: FerConv1x1Config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.fer_conv1x1 = FerConv1x1Model(config)
        side = config.image_size // (2 ** len(config.hidden_sizes))
        widths = [config.hidden_sizes[-1] * side * side] + list(config.classifier_hidden_sizes)
        head = []
        for i in range(len(config.classifier_hidden_sizes)):
            head += [nn.Dropout(config.dropout_rate), nn.Linear(widths[i], widths[i + 1]), nn.ReLU(inplace=True)]
        head += [nn.Dropout(config.dropout_rate), nn.Linear(widths[-1], config.num_labels)]
        self.classifier = nn.Sequential(*head)
        self.post_init()

    # Copied from fer_hf.models.resnet.modeling_fer_resnet.FerResNetForImageClassification.forward with fer_resnet->fer_conv1x1
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> tuple | ImageClassifierOutputWithNoAttention:
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.fer_conv1x1(pixel_values, output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.classifier(outputs.pooler_output)
        loss = None
        if labels is not None:
            labels = labels.to(logits.device)
            loss = nn.functional.cross_entropy(logits, labels if labels.is_floating_point() else labels.long())
        if not return_dict:
            output = (logits,) + ((outputs.hidden_states,) if output_hidden_states else ())
            return ((loss,) + output) if loss is not None else output
        return ImageClassifierOutputWithNoAttention(loss=loss, logits=logits, hidden_states=outputs.hidden_states)
