# Generated from fer_hf/models/vgg/modeling_fer_vgg.py by `python utils/fix_copies.py`: do not edit this copy;
# edit fer_hf/models/vgg/modeling_fer_vgg.py and rerun the command (`--check` tells whether the copies are current).
"""PyTorch FER VGG-style CNN, in the layout of `transformers/models/<name>/modeling_<name>.py`."""

from typing import Optional, Union

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPoolingAndNoAttention, ImageClassifierOutputWithNoAttention

from .configuration_fer_vgg import FerVGGConfig


class FerVGGStage(nn.Module):
    """``layers`` x (3x3 conv [+ BatchNorm] + ReLU), then 2x2 max-pool [+ Dropout2d]; halves height and width."""

    def __init__(self, in_channels: int, out_channels: int, layers: int, eps: float, dropout: float,
                 batch_norm: bool = True):
        super().__init__()
        blocks = []
        for i in range(layers):
            blocks.append(nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, padding=1,
                                    bias=not batch_norm))
            if batch_norm:
                blocks.append(nn.BatchNorm2d(out_channels, eps=eps))
            blocks.append(nn.ReLU(inplace=True))
        blocks.append(nn.MaxPool2d(2))
        if dropout > 0:
            blocks.append(nn.Dropout2d(dropout))
        self.layers = nn.Sequential(*blocks)

    def forward(self, hidden_state: torch.Tensor) -> torch.Tensor:
        return self.layers(hidden_state)


class FerVGGPreTrainedModel(PreTrainedModel):
    config_class = FerVGGConfig
    base_model_prefix = "fer_vgg"
    main_input_name = "pixel_values"
    _no_split_modules = ["FerVGGStage"]

    def _init_weights(self, module):
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
            if getattr(module, "running_mean", None) is not None:
                module.running_mean.zero_()
                module.running_var.fill_(1.0)
                module.num_batches_tracked.zero_()


class FerVGGModel(FerVGGPreTrainedModel):
    """The convolutional trunk. Output ``last_hidden_state``: (batch, hidden_sizes[-1], s, s) with
    ``s = image_size / 2**len(hidden_sizes)``; ``pooler_output``: the same map flattened,
    (batch, hidden_sizes[-1] * s * s)."""

    def __init__(self, config: FerVGGConfig):
        super().__init__(config)
        channels = [config.num_channels] + list(config.hidden_sizes)
        dropout = config.stage_dropout_rate
        dropout = list(dropout) if isinstance(dropout, (list, tuple)) else [dropout] * len(config.hidden_sizes)
        batch_norm = getattr(config, "use_batch_norm", True)
        self.stages = nn.ModuleList(
            FerVGGStage(channels[i], channels[i + 1], config.layers_per_stage, config.batch_norm_eps,
                        dropout[i], batch_norm)
            for i in range(len(config.hidden_sizes))
        )
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
    ) -> Union[tuple, BaseModelOutputWithPoolingAndNoAttention]:
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if pixel_values.ndim != 4 or pixel_values.shape[1] != self.config.num_channels:
            raise ValueError(
                f"pixel_values must be (batch, {self.config.num_channels}, height, width); got {tuple(pixel_values.shape)}"
            )
        hidden_states = () if output_hidden_states else None
        hidden = pixel_values
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


class FerVGGForImageClassification(FerVGGPreTrainedModel):
    """FER VGG trunk + MLP head.

    ``forward(pixel_values, labels=None)``:
        pixel_values: float tensor (batch, num_channels, image_size, image_size), as produced by
            [`FerImageProcessor`] (grayscale rescaled to [0, 1] then normalized).
        labels: optional long tensor (batch,) of label ids, or float tensor (batch, num_labels) of soft
            targets (probabilities summing to 1: distillation, FER+ vote distributions); when given,
            ``loss`` is the mean cross-entropy (no label smoothing; the training script applies its own).
    Returns [`ImageClassifierOutputWithNoAttention`] with ``logits`` (batch, num_labels).
    """

    def __init__(self, config: FerVGGConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.fer_vgg = FerVGGModel(config)
        side = config.image_size // (2 ** len(config.hidden_sizes))
        features = config.hidden_sizes[-1] * side * side
        batch_norm = getattr(config, "use_batch_norm", True)
        head = [nn.Dropout(config.dropout_rate),
                nn.Linear(features, config.classifier_hidden_size, bias=not batch_norm)]
        if batch_norm:
            head.append(nn.BatchNorm1d(config.classifier_hidden_size, eps=config.batch_norm_eps))
        head += [nn.ReLU(inplace=True), nn.Dropout(config.dropout_rate),
                 nn.Linear(config.classifier_hidden_size, config.num_labels)]
        self.classifier = nn.Sequential(*head)
        self.post_init()

    def forward(
        self,
        pixel_values: Optional[torch.Tensor] = None,
        labels: Optional[torch.Tensor] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
        **kwargs,
    ) -> Union[tuple, ImageClassifierOutputWithNoAttention]:
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.fer_vgg(pixel_values, output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.classifier(outputs.pooler_output)
        loss = None
        if labels is not None:
            labels = labels.to(logits.device)
            loss = nn.functional.cross_entropy(logits, labels if labels.is_floating_point() else labels.long())
        if not return_dict:
            output = (logits,) + ((outputs.hidden_states,) if output_hidden_states else ())
            return ((loss,) + output) if loss is not None else output
        return ImageClassifierOutputWithNoAttention(loss=loss, logits=logits, hidden_states=outputs.hidden_states)
