"""ImageNet (or any torchvision-layout) initialisation of the fer_hf families built on torchvision
backbones (`fer_efficientnet`, `fer_resnet`). Used by ``train_accelerate.py --backbone_weights`` on a
freshly built model; never by ``from_pretrained`` (a trained model restores every weight from its own
folder, and this module does not travel with remote code)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

logger = logging.getLogger(__name__)


def read_state_dict(source: str) -> dict:
    """The tensors of ``source``: a ``.safetensors`` file, a ``.pth`` / ``.pt`` / ``.bin`` state dict
    (read with ``torch.load(weights_only=True)``, never unpickling code), a folder holding
    ``model.safetensors``, or a Hub repo id (``owner/name``) whose ``model.safetensors`` is downloaded.

    Raises:
        FileNotFoundError: for a local path that does not exist.
        OSError: when the Hub file cannot be fetched (no network, unknown repo, offline mode).
        ValueError: for an unsupported file type or a file that is not a flat dict of tensors.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        path = path / "model.safetensors"
    if not path.is_file():
        looks_local = (source.startswith((".", "/", "~")) or source.count("/") > 1
                       or path.suffix in (".safetensors", ".pth", ".pt", ".bin"))
        if looks_local:
            raise FileNotFoundError(f"backbone weights file {str(path)!r} does not exist")
        from huggingface_hub import hf_hub_download

        try:
            path = Path(hf_hub_download(repo_id=source, filename="model.safetensors"))
        except Exception as error:  # offline, no network, unknown repo: all mean "cannot initialise from it"
            raise OSError(f"could not fetch model.safetensors of Hub repo {source!r} ({type(error).__name__}: "
                          f"{error}); without network pass a local .safetensors / .pth file, or train from "
                          "scratch with backbone_weights=None") from error
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    elif path.suffix in (".pth", ".pt", ".bin"):
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
    else:
        raise ValueError(f"unsupported backbone weights file {str(path)!r}: use .safetensors, .pth or .pt")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{str(path)!r} is not a flat state dict of tensors")
    return state


def load_backbone_weights(model, source: str | None = None) -> dict:
    """Initialise the backbone of a freshly built ``model`` from torchvision-layout weights (e.g. ImageNet).

    Call it only on a new model before training (from the training script); ``from_pretrained`` of a
    trained fer_hf model restores every weight from its folder and never calls this.

    Keys are matched by name against the torchvision layout of the family's backbone (EfficientNet:
    ``features.0.0.weight``, ``features.1.0.block.0.0.weight``, ...; ResNet: ``conv1.weight``,
    ``layer1.0.conv1.weight``, ...; a ``module.`` or ``<base_model_prefix>.`` prefix is stripped). The
    ImageNet classifier (the model class's ``imagenet_head_prefixes``: ``classifier.*`` / ``fc.*``) is
    skipped, so the fer_hf head keeps its own init. A 3-channel stem kernel loaded into a 1-channel stem
    is summed over its RGB axis (on a gray image that equals the RGB kernel on the gray image replicated
    to RGB). Tensors whose shape does not fit (e.g. another ``width_mult``, or the 7x7 ImageNet ResNet
    stem with ``stem_type="small"``) are left as initialised and reported. BatchNorm running statistics
    are loaded too.

    Args:
        model: a fer_hf model with a torchvision backbone (`FerEfficientNetForImageClassification`,
            `FerResNetForImageClassification`, or their base models).
        source: see `read_state_dict`; defaults to ``model.config.backbone_weights``. Recorded in
            ``model.config.backbone_weights`` after loading.
    Returns:
        ``{"source", "loaded", "adapted", "mismatched", "missing", "unexpected", "skipped"}``: the
        source and lists of backbone key names (adapted = summed stem; missing = backbone keys left as
        initialised; unexpected = source keys with no place; skipped = the ImageNet head).
    Raises:
        ValueError: without a source, or when no tensor of the source fits the backbone.
        FileNotFoundError / OSError: when the source cannot be read (see `read_state_dict`).
    """
    source = source or model.config.backbone_weights
    if not source:
        raise ValueError("no backbone weights source: pass source= or set config.backbone_weights")
    head_prefixes = getattr(model, "imagenet_head_prefixes", None)
    if head_prefixes is None:
        raise ValueError(f"{type(model).__name__} has no torchvision backbone to initialise")
    backbone = model.base_model
    state = {}
    for key, value in read_state_dict(source).items():
        for prefix in ("module.", backbone.base_model_prefix + "."):
            key = key.removeprefix(prefix)
        state[key] = value
    own = backbone.state_dict()
    report = {"source": source, "loaded": [], "adapted": [], "mismatched": [], "unexpected": [], "skipped": []}
    fitting = {}
    for key, value in state.items():
        if key.startswith(head_prefixes):
            report["skipped"].append(key)
            continue
        if key not in own:
            report["unexpected"].append(key)
            continue
        target = own[key]
        if (value.ndim == 4 and target.ndim == 4 and value.shape[1] == 3 and target.shape[1] == 1
                and value.shape[0] == target.shape[0] and value.shape[2:] == target.shape[2:]):
            value = value.sum(dim=1, keepdim=True)
            report["adapted"].append(key)
        if value.shape != target.shape:
            report["mismatched"].append(f"{key}: {tuple(value.shape)} vs {tuple(target.shape)}")
            continue
        fitting[key] = value.to(target.dtype)
    if not fitting:
        raise ValueError(f"no tensor of {source!r} fits the {type(backbone).__name__} backbone (expected "
                         f"torchvision key names such as {sorted(own)[:2]}; got e.g. {sorted(state)[:3]})")
    backbone.load_state_dict(fitting, strict=False)
    report["loaded"] = sorted(fitting)
    report["missing"] = sorted(set(own) - set(fitting))
    model.config.backbone_weights = source
    logger.info(f"Loaded {len(fitting)} backbone tensors from {source}")
    if report["missing"] or report["unexpected"] or report["mismatched"]:
        logger.warning(f"Backbone weights {source}: left as initialised {report['missing']}; "
                       f"unexpected {report['unexpected']}; mismatched {report['mismatched']}")
    return report
