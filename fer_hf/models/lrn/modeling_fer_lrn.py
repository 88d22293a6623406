"""PyTorch FER "classic DNN" with local response normalisation (cuda-convnet / TensorFlow CIFAR-10 tutorial
style), in the layout of `transformers/models/<name>/modeling_<name>.py`."""

from typing import ClassVar

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import (
    BaseModelOutputWithPoolingAndNoAttention,
    ImageClassifierOutputWithNoAttention,
)

from .configuration_fer_lrn import FerLRNConfig


def pooled_side(config: FerLRNConfig) -> int:
    """Height (= width) of the trunk's output map, in pixels, for ``config.image_size`` inputs."""
    side, kernel, stride = config.image_size, config.pool_kernel_size, config.pool_stride
    for _ in config.hidden_sizes:
        side = (side + 2 * ((kernel - 1) // 2) - kernel) // stride + 1
    return side


class FerLRNStage(nn.Module):
    """``kernel`` x ``kernel`` conv ("same" padding) + ReLU, then max-pool and LocalResponseNorm in the order
    ``lrn_before_pool`` gives."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, lrn_before_pool: bool,
                 config: FerLRNConfig):
        super().__init__()
        pool = nn.MaxPool2d(config.pool_kernel_size, config.pool_stride, padding=(config.pool_kernel_size - 1) // 2)
        norm = nn.LocalResponseNorm(config.lrn_size, alpha=config.lrn_alpha, beta=config.lrn_beta, k=config.lrn_k)
        self.layers = nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2),
                                    nn.ReLU(inplace=True), *((norm, pool) if lrn_before_pool else (pool, norm)))

    def forward(self, hidden_state: torch.Tensor) -> torch.Tensor:
        return self.layers(hidden_state)


class FerLRNPreTrainedModel(PreTrainedModel):
    """Weight init and loading for the LRN network: Kaiming normal convolutions, normal(0,
    ``initializer_range``) linear layers, zero biases."""

    config_class = FerLRNConfig
    base_model_prefix = "fer_lrn"
    main_input_name = "pixel_values"
    _no_split_modules: ClassVar[list[str]] = ["FerLRNStage"]

    def _init_weights(self, module):
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=self.config.initializer_range)
        else:
            return
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class FerLRNModel(FerLRNPreTrainedModel):
    """The convolutional trunk (conv + ReLU + max-pool + LRN stages).

    ``forward(pixel_values)``: float tensor (batch, num_channels, image_size, image_size).
    Output ``last_hidden_state``: (batch, hidden_sizes[-1], s, s), s = 12 for the default 48x48 input
    (each 3x3 stride-2 pooling halves the side); ``pooler_output``: the same map flattened,
    (batch, hidden_sizes[-1] * s * s); ``hidden_states`` (if asked): the output of every stage.
    """

    def __init__(self, config: FerLRNConfig):
        super().__init__(config)
        channels = [config.num_channels] + list(config.hidden_sizes)
        self.stages = nn.ModuleList(
            FerLRNStage(channels[i], channels[i + 1], config.kernel_sizes[i], config.lrn_before_pool[i], config)
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


class FerLRNForImageClassification(FerLRNPreTrainedModel):
    """"The classic DNN": Krizhevsky's cuda-convnet CIFAR-10 net (as in the TensorFlow CIFAR-10 tutorial) on
    faces: two conv + ReLU + max-pool + LRN stages, FC 384, FC 192, linear output.

    ``forward(pixel_values, labels=None)``:
        pixel_values: float tensor (batch, num_channels, image_size, image_size), as produced by
            [`FerImageProcessor`] (grayscale rescaled to [0, 1] then normalized).
        labels: optional long tensor (batch,) of label ids, or float tensor (batch, num_labels) of soft
            targets (probabilities summing to 1: distillation, FER+ vote distributions); when given,
            ``loss`` is the mean cross-entropy (no label smoothing; the training script applies its own).
    Returns [`ImageClassifierOutputWithNoAttention`] with ``logits`` (batch, num_labels), float32
    unnormalised scores.
    """

    def __init__(self, config: FerLRNConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.fer_lrn = FerLRNModel(config)
        widths = [config.hidden_sizes[-1] * pooled_side(config) ** 2] + list(config.classifier_hidden_sizes)
        head = []
        for i in range(len(widths)):
            if config.dropout_rate > 0:
                head.append(nn.Dropout(config.dropout_rate))
            last = i == len(widths) - 1
            head.append(nn.Linear(widths[i], config.num_labels if last else widths[i + 1]))
            if not last:
                head.append(nn.ReLU(inplace=True))
        self.classifier = nn.Sequential(*head)
        self.post_init()

    # Copied from fer_hf.models.resnet.modeling_fer_resnet.FerResNetForImageClassification.forward with fer_resnet->fer_lrn
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> tuple | ImageClassifierOutputWithNoAttention:
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.fer_lrn(pixel_values, output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.classifier(outputs.pooler_output)
        loss = None
        if labels is not None:
            labels = labels.to(logits.device)
            loss = nn.functional.cross_entropy(logits, labels if labels.is_floating_point() else labels.long())
        if not return_dict:
            output = (logits,) + ((outputs.hidden_states,) if output_hidden_states else ())
            return ((loss,) + output) if loss is not None else output
        return ImageClassifierOutputWithNoAttention(loss=loss, logits=logits, hidden_states=outputs.hidden_states)
