"""MobileNetV2 family on torchvision's MobileNetV2, ImageNet-initialisable (`model_type="fer_mobilenet"`)."""

from .configuration_fer_mobilenet import FER_MOBILENET_PRESETS, FerMobileNetConfig
from .modeling_fer_mobilenet import (
    FerMobileNetForImageClassification,
    FerMobileNetModel,
    FerMobileNetPreTrainedModel,
)

__all__ = ["FER_MOBILENET_PRESETS", "FerMobileNetConfig", "FerMobileNetForImageClassification",
           "FerMobileNetModel", "FerMobileNetPreTrainedModel"]
