"""fer_hf: facial expression recognition the Hugging Face way.

Models are `transformers.PreTrainedModel`s registered with the Auto classes, so that both
``AutoModelForImageClassification.from_pretrained(folder)`` (with fer_hf installed) and
``AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True)`` (without it) work.
"""

from .image_processing_fer import FerImageProcessor
from .inference.recognizer import FaceExpressionRecognizer
from .labels import FER2013_LABELS
from .models import FER_MODEL_TYPES  # noqa: F401  (registers every family with the Auto classes)
from .models.hub import DEFAULT_MODEL_DIR
from .models.vgg import FerVGGConfig, FerVGGForImageClassification, FerVGGModel, FerVGGPreTrainedModel

__version__ = "0.1.0"

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
