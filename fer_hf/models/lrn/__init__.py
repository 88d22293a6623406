""""Classic DNN" family with local response normalisation (`model_type="fer_lrn"`)."""

from .configuration_fer_lrn import FER_LRN_PRESETS, FerLRNConfig
from .modeling_fer_lrn import (
    FerLRNForImageClassification,
    FerLRNModel,
    FerLRNPreTrainedModel,
)

__all__ = ["FER_LRN_PRESETS", "FerLRNConfig", "FerLRNForImageClassification", "FerLRNModel", "FerLRNPreTrainedModel"]
