"""VGG-style CNN family (`model_type="fer_vgg"`)."""

from .configuration_fer_vgg import FER2013_LABELS, FerVGGConfig
from .modeling_fer_vgg import FerVGGForImageClassification, FerVGGModel, FerVGGPreTrainedModel

__all__ = ["FER2013_LABELS", "FerVGGConfig", "FerVGGForImageClassification", "FerVGGModel", "FerVGGPreTrainedModel"]
