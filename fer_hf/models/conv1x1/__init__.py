"""1x1-convolution CNN family (`model_type="fer_conv1x1"`), the first system fer_hf grew from."""

from .configuration_fer_conv1x1 import FER_CONV1X1_PRESETS, FerConv1x1Config
from .modeling_fer_conv1x1 import (
    FerConv1x1ForImageClassification,
    FerConv1x1Model,
    FerConv1x1PreTrainedModel,
)

__all__ = ["FER_CONV1X1_PRESETS", "FerConv1x1Config", "FerConv1x1ForImageClassification", "FerConv1x1Model",
           "FerConv1x1PreTrainedModel"]
