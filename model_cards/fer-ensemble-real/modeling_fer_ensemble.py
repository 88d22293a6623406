# Generated from fer_hf/models/ensemble/modeling_fer_ensemble.py by `python utils/fix_copies.py`: do not edit this copy;
# edit fer_hf/models/ensemble/modeling_fer_ensemble.py and rerun the command (`--check` tells whether the copies are current).
"""PyTorch fer_hf ensemble: the weighted average of several fer_hf models' softmax outputs."""

import inspect
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import ImageClassifierOutputWithNoAttention

from .configuration_fer_ensemble import FerEnsembleConfig


@dataclass
class FerEnsembleOutput(ImageClassifierOutputWithNoAttention):
    """``logits``: (batch, num_labels) log of the weighted average of the members' probabilities (so
    ``softmax(logits)`` is that average), plus ``config.logit_adjustment`` when set; ``member_logits``: (batch,
    num_members, num_labels), each member's own logits, when ``output_member_logits=True``."""

    member_logits: Optional[torch.FloatTensor] = None


def _member_classes(member_config: dict, name_or_path: str):
    """(config class, model class) of a member's model_type: from fer_hf's registry when this module is
    the package's, or, when it runs as remote code (``trust_remote_code=True`` without fer_hf), from the
    member family's code saved in the ensemble's own folder."""
    model_type = member_config["model_type"]
    if not __name__.startswith("transformers_modules"):
        import importlib

        # imported by name so that transformers' remote-code import check does not require fer_hf
        FER_MODEL_TYPES = importlib.import_module("fer_hf.models").FER_MODEL_TYPES
        if model_type not in FER_MODEL_TYPES:
            raise ValueError(f"ensemble member of unknown model_type {model_type!r}")
        return FER_MODEL_TYPES[model_type]
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    auto_map = member_config.get("auto_map") or {}
    if "AutoConfig" not in auto_map or "AutoModelForImageClassification" not in auto_map:
        raise ValueError(f"ensemble member {model_type!r} has no auto_map to load its code from")
    return (get_class_from_dynamic_module(auto_map["AutoConfig"], name_or_path),
            get_class_from_dynamic_module(auto_map["AutoModelForImageClassification"], name_or_path))


class FerEnsemblePreTrainedModel(PreTrainedModel):
    config_class = FerEnsembleConfig
    base_model_prefix = "fer_ensemble"
    main_input_name = "pixel_values"

    def _init_weights(self, module):
        """Members are trained models whose weights come from the checkpoint; nothing to initialise here."""


class FerEnsembleForImageClassification(FerEnsemblePreTrainedModel):
    """Weighted average of fer_hf models (Hansen & Salamon, 1990; the FER2013 ensembles of the systems
    fer_hf grew from).

    ``forward(pixel_values, labels=None, output_member_logits=False)``:
        pixel_values: float tensor (batch, config.num_channels, config.image_size, config.image_size)
            normalized with config.image_mean / image_std (the ensemble's image processor output).
        labels: optional long tensor (batch,) or soft targets (batch, num_labels); ``loss`` is then the
            negative log-likelihood (cross-entropy) of the averaged probabilities.
    Returns [`FerEnsembleOutput`]: ``logits`` (batch, num_labels) = log(sum_i w_i softmax(member_i logits)) (+ the
    config's ``logit_adjustment`` biases, when set).
    """

    def __init__(self, config: FerEnsembleConfig):
        super().__init__(config)
        if not config.members:
            raise ValueError("FerEnsembleConfig has no members")
        models = []
        for member in config.members:
            config_class, model_class = _member_classes(member["config"], config.name_or_path)
            member_kwargs = {k: v for k, v in member["config"].items() if k not in ("model_type", "auto_map")}
            models.append(model_class(config_class(**member_kwargs)))
        self.members = nn.ModuleList(models)
        self.post_init()

    @classmethod
    def from_members(cls, models, image_processors, names=None, member_weights=None, image_size=None):
        """Build an ensemble from trained fer_hf models (they are copied; the ensemble owns its members).

        Args:
            models: list of fer_hf image-classification models sharing one label set.
            image_processors: their `FerImageProcessor`s (for each member's input size and normalization).
            names: optional member names (e.g. the released folder names).
            member_weights: optional averaging weights (normalised to sum 1; default equal).
            image_size: the ensemble's input size; default the largest member input size.

        The ensemble's input is colour (3 channels) when a member reads colour (a 3-channel member whose processor
        has ``do_grayscale=False``), else gray; with fer_hf's default normalization (mean 0.5, std 0.25 per
        channel). `member_inputs` gives each member what its own processor would: a colour member the colour face,
        a gray one (1 channel, or 3 equal channels with ``do_grayscale``) the luma of it, renormalized.
        """
        import copy

        names = names or [f"member_{i}" for i in range(len(models))]
        members = []
        for name, model, processor in zip(names, models, image_processors):
            member_config = model.config.to_dict()
            # where remote code finds the member's classes (files saved beside the ensemble's own)
            member_config["auto_map"] = {
                "AutoConfig": f"{Path(inspect.getfile(type(model.config))).stem}.{type(model.config).__name__}",
                "AutoModelForImageClassification": f"{Path(inspect.getfile(type(model))).stem}.{type(model).__name__}"}
            # a 3-channel member whose processor turned faces gray (do_grayscale) was trained on gray faces
            gray = bool(getattr(processor, "do_grayscale", True)) if model.config.num_channels == 3 else True
            members.append({"name": name, "config": member_config, "image_mean": list(processor.image_mean),
                            "image_std": list(processor.image_std), "do_grayscale": gray})
        size = image_size or max(m.config.image_size for m in models)
        channels = 3 if any(not m["do_grayscale"] for m in members) else 1
        ensemble = cls(FerEnsembleConfig(members=members, member_weights=member_weights, image_size=size,
                                         num_channels=channels))
        for target, source in zip(ensemble.members, models):
            target.load_state_dict(copy.deepcopy(source.state_dict()))
        return ensemble.eval()

    def member_models(self) -> list:
        """The members as standalone models, each with the image processor it was trained with: a list of
        ``(name, model, processor)``, the models copies in eval mode (float32), the processors
        `FerImageProcessor`s with the member's channels, input size and normalization. For a new ensemble built
        from a released one's members (``fer-hf ensemble --members released-ensemble-folder other-model``)
        or to run one member alone. Needs fer_hf (not available as remote code)."""
        import copy
        import importlib

        FerImageProcessor = importlib.import_module("fer_hf.image_processing_fer").FerImageProcessor
        rows = []
        for member, spec in zip(self.members, self.config.members):
            size = member.config.image_size
            processor = FerImageProcessor(num_channels=member.config.num_channels, size={"height": size, "width": size},
                                          image_mean=list(spec["image_mean"]), image_std=list(spec["image_std"]),
                                          do_grayscale=spec.get("do_grayscale", True))
            rows.append((spec.get("name") or f"member_{len(rows)}", copy.deepcopy(member).float().eval(), processor))
        return rows

    def member_inputs(self, pixel_values: torch.Tensor) -> list:
        """The ensemble's input as each member expects it: (batch, C_i, S_i, S_i) float tensors."""
        mean = torch.tensor(self.config.image_mean, device=pixel_values.device).view(1, -1, 1, 1)
        std = torch.tensor(self.config.image_std, device=pixel_values.device).view(1, -1, 1, 1)
        unit = pixel_values * std + mean  # back to [0, 1]
        inputs = []
        for member, spec in zip(self.members, self.config.members):
            x = unit
            size = member.config.image_size
            if x.shape[-1] != size or x.shape[-2] != size:
                x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
            channels = member.config.num_channels
            if x.shape[1] == 3 and (channels == 1 or spec.get("do_grayscale", True)):
                # ITU-R 601-2 luma, PIL's convert("L"): how the member's own processor turns a colour face gray
                x = (x * x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
            if x.shape[1] == 1 and channels == 3:
                x = x.expand(-1, 3, -1, -1)
            m = torch.tensor(spec["image_mean"], device=x.device).view(1, -1, 1, 1)
            s = torch.tensor(spec["image_std"], device=x.device).view(1, -1, 1, 1)
            inputs.append((x - m) / s)
        return inputs

    def forward(self, pixel_values: Optional[torch.Tensor] = None, labels: Optional[torch.Tensor] = None,
                output_member_logits: Optional[bool] = None, return_dict: Optional[bool] = None,
                **kwargs) -> FerEnsembleOutput:
        if pixel_values is None or pixel_values.ndim != 4 or pixel_values.shape[1] != self.config.num_channels:
            shape = None if pixel_values is None else tuple(pixel_values.shape)
            raise ValueError(f"pixel_values must be (batch, {self.config.num_channels}, height, width); got {shape}")
        member_logits = torch.stack([member(pixel_values=x).logits.float()
                                     for member, x in zip(self.members, self.member_inputs(pixel_values))], 1)
        weights = torch.tensor(self.config.member_weights, device=member_logits.device).view(1, -1, 1)
        probabilities = (member_logits.softmax(-1) * weights).sum(1)
        logits = torch.log(probabilities.clamp_min(1e-12))
        if getattr(self.config, "logit_adjustment", None) is not None:
            logits = logits + torch.tensor(self.config.logit_adjustment, dtype=logits.dtype, device=logits.device)
        loss = None
        if labels is not None:
            labels = labels.to(logits.device)
            loss = F.cross_entropy(logits, labels if labels.is_floating_point() else labels.long())
        return FerEnsembleOutput(loss=loss, logits=logits,
                                 member_logits=member_logits if output_member_logits else None)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`, plus every member family's configuration and modeling code
        next to the ensemble's (so that ``trust_remote_code=True`` loading works without fer_hf)."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            for member in self.members:
                for obj in (type(member), type(member.config)):
                    source = Path(inspect.getfile(obj))
                    if source.parent.resolve() != Path(save_directory).resolve():
                        shutil.copy(source, Path(save_directory) / source.name)


__all__ = ["FerEnsembleOutput", "FerEnsemblePreTrainedModel", "FerEnsembleForImageClassification"]
