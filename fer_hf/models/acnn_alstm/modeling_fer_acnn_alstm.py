"""PyTorch FER ACNN-ALSTM (CNN-LSTM with local-feature and global attention), in the layout of
`transformers/models/<name>/modeling_<name>.py`."""

from typing import ClassVar

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import (
    BaseModelOutputWithPoolingAndNoAttention,
    ImageClassifierOutputWithNoAttention,
)

from .configuration_fer_acnn_alstm import FerACNNALSTMConfig


class FerACNNALSTMStage(nn.Module):
    """``layers`` x (3x3 conv [+ BatchNorm] + ReLU), then 2x2 max-pool; halves height and width."""

    def __init__(self, in_channels: int, out_channels: int, layers: int, batch_norm: bool, eps: float):
        super().__init__()
        blocks = []
        for i in range(layers):
            blocks.append(nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, padding=1,
                                    bias=not batch_norm))
            if batch_norm:
                blocks.append(nn.BatchNorm2d(out_channels, eps=eps))
            blocks.append(nn.ReLU(inplace=True))
        blocks.append(nn.MaxPool2d(2))
        self.layers = nn.Sequential(*blocks)

    def forward(self, hidden_state: torch.Tensor) -> torch.Tensor:
        return self.layers(hidden_state)


class FerACNNALSTMLocalAttention(nn.Module):
    """Local-feature attention on a CNN map (CBAM-style: channel attention, then spatial attention).

    ``forward(features)``: float (batch, C, h, w). Returns ``(attended, spatial_weights)``: the map
    re-weighted per channel and per position, (batch, C, h, w), and the spatial weights in (0, 1),
    (batch, 1, h, w).
    """

    def __init__(self, channels: int, reduction: int, kernel_size: int):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.channel_mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True),
                                         nn.Linear(hidden, channels))
        self.spatial_conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, features: torch.Tensor) -> tuple:
        scores = self.channel_mlp(features.mean(dim=(2, 3))) + self.channel_mlp(features.amax(dim=(2, 3)))
        features = features * torch.sigmoid(scores)[:, :, None, None]
        summary = torch.cat([features.mean(dim=1, keepdim=True), features.amax(dim=1, keepdim=True)], dim=1)
        spatial_weights = torch.sigmoid(self.spatial_conv(summary))
        return features * spatial_weights, spatial_weights


class FerACNNALSTMGlobalAttention(nn.Module):
    """Global (additive) attention pooling over a sequence: ``a = softmax_t(v . tanh(W h_t + b))``,
    ``context = sum_t a_t h_t``.

    ``forward(sequence)``: float (batch, steps, features). Returns ``(context, weights)``: (batch, features)
    and the attention weights (batch, steps), non-negative, summing to 1 over the steps.
    """

    def __init__(self, features: int, attention_size: int):
        super().__init__()
        self.projection = nn.Linear(features, attention_size)
        self.score = nn.Linear(attention_size, 1, bias=False)

    def forward(self, sequence: torch.Tensor) -> tuple:
        weights = torch.softmax(self.score(torch.tanh(self.projection(sequence))).squeeze(-1), dim=1)
        return torch.bmm(weights.unsqueeze(1), sequence).squeeze(1), weights


class FerACNNALSTMPreTrainedModel(PreTrainedModel):
    """Weight init and loading for ACNN-ALSTM: Kaiming normal convolutions, normal(0, ``initializer_range``)
    linear layers, unit BatchNorm, LSTM with Xavier-uniform input and orthogonal recurrent weights."""

    config_class = FerACNNALSTMConfig
    base_model_prefix = "fer_acnn_alstm"
    main_input_name = "pixel_values"
    _no_split_modules: ClassVar[list[str]] = ["FerACNNALSTMStage"]

    def _init_weights(self, module):
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=self.config.initializer_range)
        elif isinstance(module, nn.LSTM):
            for name, param in module.named_parameters():
                if name.startswith("weight_ih"):
                    nn.init.xavier_uniform_(param)
                elif name.startswith("weight_hh"):
                    nn.init.orthogonal_(param)
                else:
                    nn.init.zeros_(param)
            return
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


class FerACNNALSTMModel(FerACNNALSTMPreTrainedModel):
    """CNN -> [local attention] -> LSTM -> [global attention]: the face's representation.

    ``forward(pixel_values)``: float tensor (batch, num_channels, image_size, image_size).
    Output ``last_hidden_state``: the LSTM outputs, (batch, steps, D) with ``D = lstm_hidden_size * (2 if
    bidirectional else 1)`` and ``steps = s * s`` (``sequence_mode="positions"``) or ``s`` (``"rows"``),
    ``s = image_size / 2**len(hidden_sizes)`` (36 steps by default); ``pooler_output``: (batch, D), the
    attention-weighted sum of the LSTM outputs, or the final hidden state(s) without global attention;
    ``hidden_states`` (if asked): the output of every CNN stage, then the attended map (with local attention).
    """

    def __init__(self, config: FerACNNALSTMConfig):
        super().__init__(config)
        channels = [config.num_channels] + list(config.hidden_sizes)
        self.stages = nn.ModuleList(
            FerACNNALSTMStage(channels[i], channels[i + 1], config.layers_per_stage, config.use_batch_norm,
                              config.batch_norm_eps)
            for i in range(len(config.hidden_sizes))
        )
        self.local_attention = (
            FerACNNALSTMLocalAttention(channels[-1], config.local_attention_reduction,
                                       config.local_attention_kernel_size)
            if config.use_local_attention else None
        )
        side = config.image_size // (2 ** len(config.hidden_sizes))
        step_features = channels[-1] * (side if config.sequence_mode == "rows" else 1)
        self.lstm = nn.LSTM(step_features, config.lstm_hidden_size, num_layers=config.lstm_num_layers,
                            batch_first=True, bidirectional=config.bidirectional)
        width = config.lstm_hidden_size * (2 if config.bidirectional else 1)
        self.global_attention = (FerACNNALSTMGlobalAttention(width, config.global_attention_size)
                                 if config.use_global_attention else None)
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
        if self.local_attention is not None:
            hidden, _ = self.local_attention(hidden)
            if output_hidden_states:
                hidden_states = hidden_states + (hidden,)
        if self.config.sequence_mode == "rows":  # (batch, C, h, w) -> (batch, h, C * w)
            sequence = hidden.permute(0, 2, 1, 3).flatten(2)
        else:  # (batch, C, h, w) -> (batch, h * w, C)
            sequence = hidden.flatten(2).transpose(1, 2)
        outputs, (last_hidden, _) = self.lstm(sequence)
        if self.global_attention is not None:
            pooled, _ = self.global_attention(outputs)
        else:  # final hidden state of each direction of the last layer: (directions, batch, H) -> (batch, D)
            directions = 2 if self.config.bidirectional else 1
            pooled = last_hidden[-directions:].transpose(0, 1).flatten(1)
        if not return_dict:
            return (outputs, pooled) + ((hidden_states,) if output_hidden_states else ())
        return BaseModelOutputWithPoolingAndNoAttention(
            last_hidden_state=outputs, pooler_output=pooled, hidden_states=hidden_states
        )


class FerACNNALSTMForImageClassification(FerACNNALSTMPreTrainedModel):
    """ACNN-ALSTM (Ming Ye, Qian Hu, Guangyuan Liu, 2022, Computational Intelligence and Neuroscience,
    article 7450637) and its ablations CNN-ALSTM and CNN-LSTM: the representation of [`FerACNNALSTMModel`]
    + an MLP head.

    ``forward(pixel_values, labels=None)``:
        pixel_values: float tensor (batch, num_channels, image_size, image_size), as produced by
            [`FerImageProcessor`] (grayscale rescaled to [0, 1] then normalized).
        labels: optional long tensor (batch,) of label ids, or float tensor (batch, num_labels) of soft
            targets (probabilities summing to 1: distillation, FER+ vote distributions); when given,
            ``loss`` is the mean cross-entropy (no label smoothing; the training script applies its own).
    Returns [`ImageClassifierOutputWithNoAttention`] with ``logits`` (batch, num_labels), float32
    unnormalised scores.
    """

    def __init__(self, config: FerACNNALSTMConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.fer_acnn_alstm = FerACNNALSTMModel(config)
        width = config.lstm_hidden_size * (2 if config.bidirectional else 1)
        head = []
        if config.classifier_hidden_size:
            head += [nn.Dropout(config.dropout_rate), nn.Linear(width, config.classifier_hidden_size),
                     nn.ReLU(inplace=True)]
            width = config.classifier_hidden_size
        head += [nn.Dropout(config.dropout_rate), nn.Linear(width, config.num_labels)]
        self.classifier = nn.Sequential(*head)
        self.post_init()

    # Copied from fer_hf.models.resnet.modeling_fer_resnet.FerResNetForImageClassification.forward with fer_resnet->fer_acnn_alstm
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> tuple | ImageClassifierOutputWithNoAttention:
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.fer_acnn_alstm(pixel_values, output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.classifier(outputs.pooler_output)
        loss = None
        if labels is not None:
            labels = labels.to(logits.device)
            loss = nn.functional.cross_entropy(logits, labels if labels.is_floating_point() else labels.long())
        if not return_dict:
            output = (logits,) + ((outputs.hidden_states,) if output_hidden_states else ())
            return ((loss,) + output) if loss is not None else output
        return ImageClassifierOutputWithNoAttention(loss=loss, logits=logits, hidden_states=outputs.hidden_states)
