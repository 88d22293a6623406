"""Every fer_hf architecture family, one sub-package each (``models/<family>/configuration_*.py`` +
``modeling_*.py``, as in ``transformers/models/<name>/``), and the one place that registers them all
with the Auto classes.

Registration makes ``AutoConfig`` / ``AutoModelForImageClassification`` / ``AutoImageProcessor`` /
``pipeline("image-classification")`` know every fer_hf ``model_type`` once ``fer_hf`` is imported, and
``register_for_auto_class`` makes ``save_pretrained`` copy each family's code into the saved folder so
that ``from_pretrained(folder, trust_remote_code=True)`` works where fer_hf is not installed.

To add a family: create ``models/<family>/`` with its config (a unique ``model_type`` and a
``<FAMILY>_PRESETS`` dict of named configurations) and model, then add one line to `MODEL_FAMILIES`.
"""

from __future__ import annotations

from typing import Optional

from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

from ..image_processing_fer import FerImageProcessor
from .acnn_alstm import FER_ACNN_ALSTM_PRESETS, FerACNNALSTMConfig, FerACNNALSTMForImageClassification
from .conv1x1 import FER_CONV1X1_PRESETS, FerConv1x1Config, FerConv1x1ForImageClassification
from .efficientnet import FER_EFFICIENTNET_PRESETS, FerEfficientNetConfig, FerEfficientNetForImageClassification
from .ensemble import FerEnsembleConfig, FerEnsembleForImageClassification
from .mobilenet import FER_MOBILENET_PRESETS, FerMobileNetConfig, FerMobileNetForImageClassification
from .lrn import FER_LRN_PRESETS, FerLRNConfig, FerLRNForImageClassification
from .resnet import FER_RESNET_PRESETS, FerResNetConfig, FerResNetForImageClassification
from .vgg import FER2013_LABELS, FerVGGConfig, FerVGGForImageClassification
from .vgg.configuration_fer_vgg import FER_VGG_PRESETS

#: (config class, image-classification model class, named presets) of every family.
MODEL_FAMILIES = [
    (FerVGGConfig, FerVGGForImageClassification, FER_VGG_PRESETS),
    (FerConv1x1Config, FerConv1x1ForImageClassification, FER_CONV1X1_PRESETS),
    (FerLRNConfig, FerLRNForImageClassification, FER_LRN_PRESETS),
    (FerACNNALSTMConfig, FerACNNALSTMForImageClassification, FER_ACNN_ALSTM_PRESETS),
    (FerEfficientNetConfig, FerEfficientNetForImageClassification, FER_EFFICIENTNET_PRESETS),
    (FerResNetConfig, FerResNetForImageClassification, FER_RESNET_PRESETS),
    (FerMobileNetConfig, FerMobileNetForImageClassification, FER_MOBILENET_PRESETS),
]

#: ``model_type`` -> (config class, model class) of the trainable families (``train_accelerate.py --model_type``).
TRAINABLE_MODEL_TYPES = {config.model_type: (config, model) for config, model, _ in MODEL_FAMILIES}
#: ``model_type`` -> (config class, model class): every fer_hf type, the ensemble included; the only
#: model types the app and CLI will load.
FER_MODEL_TYPES = {**TRAINABLE_MODEL_TYPES,
                   FerEnsembleConfig.model_type: (FerEnsembleConfig, FerEnsembleForImageClassification)}
#: ``model_type`` -> {preset name: config keyword arguments}.
FER_MODEL_PRESETS = {config.model_type: presets for config, _, presets in MODEL_FAMILIES}


def _register_all() -> None:
    for config_class, model_class in FER_MODEL_TYPES.values():
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        AutoModelForImageClassification.register(config_class, model_class, exist_ok=True)
        # One implementation (PIL + numpy, deterministic) serves whichever backend transformers asks for.
        AutoImageProcessor.register(config_class, image_processor_classes={"pil": FerImageProcessor,
                                                                           "torchvision": FerImageProcessor},
                                    exist_ok=True)
        config_class.register_for_auto_class()
        model_class.register_for_auto_class("AutoModelForImageClassification")
    FerImageProcessor.register_for_auto_class("AutoImageProcessor")


_register_all()


def parse_config_overrides(text: Optional[str]) -> dict:
    """``"hidden_sizes=[32,64],dropout_rate=0.3,use_batch_norm=false"`` -> a dict of Python values.

    Values are parsed as JSON (numbers, ``true``/``false``, lists, quoted strings); anything that is not
    JSON is kept as a string. Commas inside ``[...]`` do not split. Never evaluates code.

    Raises:
        ValueError: for an entry without ``=``.
    """
    import json

    if not text:
        return {}
    entries, depth, current = [], 0, ""
    for char in text:
        depth += char in "[{"
        depth -= char in "]}"
        if char == "," and depth == 0:
            entries.append(current)
            current = ""
        else:
            current += char
    entries.append(current)
    overrides = {}
    for entry in filter(None, (e.strip() for e in entries)):
        if "=" not in entry:
            raise ValueError(f"config override {entry!r} is not key=value")
        key, value = (part.strip() for part in entry.split("=", 1))
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


def build_config(model_type: str, preset: Optional[str] = None, overrides: Optional[dict] = None,
                 label_names: Optional[list] = None):
    """A fresh config of a fer_hf family.

    Args:
        model_type: a key of `FER_MODEL_TYPES` (``"fer_vgg"``, ...).
        preset: optional name from that family's presets (`FER_MODEL_PRESETS[model_type]`).
        overrides: config keyword arguments applied after the preset.
        label_names: class names in id order (default: the 7 canonical FER2013 labels).
    Raises:
        ValueError: for an unknown model type, preset or config argument.
    """
    if model_type not in TRAINABLE_MODEL_TYPES:
        raise ValueError(f"Unknown model_type {model_type!r}; trainable fer_hf model types: "
                         f"{sorted(TRAINABLE_MODEL_TYPES)}")
    config_class, _ = TRAINABLE_MODEL_TYPES[model_type]
    presets = FER_MODEL_PRESETS[model_type]
    if preset is not None and preset not in presets:
        raise ValueError(f"Unknown preset {preset!r} for {model_type}; choose one of {sorted(presets)}")
    kwargs = dict(presets.get(preset, {}))
    kwargs.update(overrides or {})
    names = list(label_names or FER2013_LABELS)
    config = config_class(id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)}, **kwargs)
    known = set(config_class().to_dict())
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ValueError(f"{config_class.__name__} has no argument(s) {unknown}")
    return config


def build_model(model_type: str, preset: Optional[str] = None, overrides: Optional[dict] = None,
                label_names: Optional[list] = None):
    """A freshly initialised ``<Family>ForImageClassification`` (see `build_config` for the arguments)."""
    config = build_config(model_type, preset, overrides, label_names)
    return TRAINABLE_MODEL_TYPES[model_type][1](config)


#: Weight files that are pickles (``torch.save``): loading one can run any code it names.
PICKLE_WEIGHT_SUFFIXES = (".bin", ".pth", ".pt", ".ckpt", ".pkl", ".pickle")
SAFETENSORS_ONLY = (
    "fer_hf loads weights from safetensors only; a .bin/.pth file is a pickle that can run code when loaded. "
    "Convert it with safetensors where you trust the file, e.g. `import torch; from safetensors.torch import "
    "save_file; save_file(torch.load('pytorch_model.bin', weights_only=True), 'model.safetensors')` (or "
    "`AutoModelForImageClassification.from_pretrained(folder).save_pretrained(folder)`, which writes "
    "model.safetensors), or with the Hub's https://huggingface.co/spaces/safetensors/convert")


def _pickle_weights(name_or_path) -> list:
    """Names of the pickle weight files of a folder / Hub repo that has no ``*.safetensors`` file
    (``[]`` if it has safetensors or no pickle; a Hub repo is listed without downloading anything, and
    not at all offline)."""
    from pathlib import Path

    folder = Path(str(name_or_path))
    if folder.is_dir():
        names = [p.name for p in folder.iterdir() if p.is_file()]
    else:
        try:
            from huggingface_hub import list_repo_files

            names = list_repo_files(str(name_or_path))
        except Exception:  # noqa: BLE001 - offline, private or missing: transformers reports it
            return []
    if any(n.endswith((".safetensors", ".safetensors.index.json")) for n in names):
        return []
    return sorted(n for n in names if n.lower().endswith(PICKLE_WEIGHT_SUFFIXES))


def load_fer_model(name_or_path, **kwargs):
    """Load a trained fer_hf model (folder or Hub id) safely: fer_hf model types only, weights from
    safetensors only (never unpickled: a folder with only ``pytorch_model.bin`` / ``model.pth`` is refused
    before any weight file is opened), never the folder's own code (``trust_remote_code`` stays off).

    Raises:
        ValueError: for a model that is not a fer_hf model type (its code would have to be trusted).
        OSError: for a missing folder / unreachable Hub id, or a folder without ``model.safetensors``; for
            one with only pickle weights (.bin / .pth / .pt / .ckpt) the message explains why and how to
            convert them (`SAFETENSORS_ONLY`).
    """
    config = AutoConfig.from_pretrained(name_or_path, trust_remote_code=False) if _is_fer_config(name_or_path) else None
    if config is None or config.model_type not in FER_MODEL_TYPES:
        raise ValueError(f"{name_or_path} is not a fer_hf model (model types {sorted(FER_MODEL_TYPES)}); "
                         "fer_hf does not run other repositories' code")
    from pathlib import Path

    local = Path(str(name_or_path)).is_dir()
    pickles = _pickle_weights(name_or_path) if local else []  # a folder: refused before any weight file is opened
    if not pickles:
        try:  # use_safetensors=True: transformers never opens (or downloads) a .bin either
            return AutoModelForImageClassification.from_pretrained(name_or_path, use_safetensors=True,
                                                                   trust_remote_code=False, **kwargs)
        except OSError:
            pickles = [] if local else _pickle_weights(name_or_path)  # a Hub repo: explain why
            if not pickles:
                raise
    raise OSError(f"{name_or_path} has no model.safetensors, only {', '.join(pickles)}. {SAFETENSORS_ONLY}.")


def _is_fer_config(name_or_path) -> bool:
    """Whether the config.json of a folder / Hub id names a fer_hf model_type (read as plain JSON first,
    so that no code is ever involved in deciding)."""
    import json
    from pathlib import Path

    from transformers.utils import cached_file

    path = Path(str(name_or_path)) / "config.json"
    if not path.is_file():
        path = cached_file(str(name_or_path), "config.json")
    if path is None:  # a local folder without config.json (cached_file gives None rather than raising)
        raise OSError(f"{name_or_path} has no config.json: not a saved model folder")
    return json.loads(Path(path).read_text()).get("model_type") in FER_MODEL_TYPES


__all__ = ["FER2013_LABELS", "FER_MODEL_PRESETS", "FER_MODEL_TYPES", "MODEL_FAMILIES", "PICKLE_WEIGHT_SUFFIXES",
           "SAFETENSORS_ONLY", "TRAINABLE_MODEL_TYPES", "build_config", "load_fer_model",
           "build_model", "parse_config_overrides"]
