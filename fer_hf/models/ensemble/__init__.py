"""Ensemble of fer_hf models (`model_type="fer_ensemble"`)."""

from .configuration_fer_ensemble import FerEnsembleConfig
from .modeling_fer_ensemble import FerEnsembleForImageClassification, FerEnsembleOutput, FerEnsemblePreTrainedModel

__all__ = ["FerEnsembleConfig", "FerEnsembleForImageClassification", "FerEnsembleOutput", "FerEnsemblePreTrainedModel"]
