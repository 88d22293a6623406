"""fer_hf: facial expression recognition the Hugging Face way.

Models are `transformers.PreTrainedModel`s registered with the Auto classes, so that both
``AutoModelForImageClassification.from_pretrained(folder)`` (with fer_hf installed) and
``AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True)`` (without it) work.
"""

from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

from .configuration_fer_vgg import FER2013_LABELS, FerVGGConfig
from .image_processing_fer import FerImageProcessor
from .modeling_fer_vgg import FerVGGForImageClassification, FerVGGModel, FerVGGPreTrainedModel

__version__ = "0.1.0"

AutoConfig.register(FerVGGConfig.model_type, FerVGGConfig, exist_ok=True)
AutoModelForImageClassification.register(FerVGGConfig, FerVGGForImageClassification, exist_ok=True)
# One implementation (PIL + numpy, deterministic) serves whichever backend transformers asks for.
AutoImageProcessor.register(FerVGGConfig, image_processor_classes={"pil": FerImageProcessor,
                                                                   "torchvision": FerImageProcessor}, exist_ok=True)
# Saved folders carry their own code so that trust_remote_code loading works without fer_hf.
FerVGGConfig.register_for_auto_class()
FerVGGForImageClassification.register_for_auto_class("AutoModelForImageClassification")
FerImageProcessor.register_for_auto_class("AutoImageProcessor")

from .recognizer import DEFAULT_MODEL_DIR, FaceExpressionRecognizer  # noqa: E402

__all__ = [
    "FER2013_LABELS",
    "FerVGGConfig",
    "FerVGGModel",
    "FerVGGPreTrainedModel",
    "FerVGGForImageClassification",
    "FerImageProcessor",
    "FaceExpressionRecognizer",
    "DEFAULT_MODEL_DIR",
]
