"""EfficientNet-B0 family on torchvision's EfficientNet (`model_type="fer_efficientnet"`)."""

from .configuration_fer_efficientnet import (
    FER_EFFICIENTNET_PRESETS,
    FerEfficientNetConfig,
)
from .modeling_fer_efficientnet import (
    FerEfficientNetForImageClassification,
    FerEfficientNetModel,
    FerEfficientNetPreTrainedModel,
)

__all__ = ["FER_EFFICIENTNET_PRESETS", "FerEfficientNetConfig", "FerEfficientNetForImageClassification",
           "FerEfficientNetModel", "FerEfficientNetPreTrainedModel"]
