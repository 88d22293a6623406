"""ACNN-ALSTM family (`model_type="fer_acnn_alstm"`): CNN-LSTM with local-feature and global attention, with
the CNN-ALSTM and CNN-LSTM ablations as presets."""

from .configuration_fer_acnn_alstm import FER_ACNN_ALSTM_PRESETS, FerACNNALSTMConfig
from .modeling_fer_acnn_alstm import (
    FerACNNALSTMForImageClassification,
    FerACNNALSTMModel,
    FerACNNALSTMPreTrainedModel,
)

__all__ = ["FER_ACNN_ALSTM_PRESETS", "FerACNNALSTMConfig", "FerACNNALSTMForImageClassification", "FerACNNALSTMModel",
           "FerACNNALSTMPreTrainedModel"]
