"""ResNet-18 transfer family on torchvision's ResNet (`model_type="fer_resnet"`)."""

from .configuration_fer_resnet import FER_RESNET_PRESETS, FerResNetConfig
from .modeling_fer_resnet import (
    FerResNetForImageClassification,
    FerResNetModel,
    FerResNetPreTrainedModel,
)

__all__ = ["FER_RESNET_PRESETS", "FerResNetConfig", "FerResNetForImageClassification", "FerResNetModel",
           "FerResNetPreTrainedModel"]
