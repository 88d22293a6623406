"""Build a released ensemble from trained fer_hf models: member weights fitted on a selection split only
(FER2013 / FER+: PublicTest; SFEW: held-out SFEW Train movies), the reported split evaluated once
(PrivateTest; SFEW Val).

    python -m fer_hf ensemble --members model_cards/a model_cards/b --output_dir model_cards/fer-ensemble \
        --data_dir ../shared/data/fer2013/fer2013_images.zip
    python -m fer_hf ensemble --dataset sfew --data_dir ../shared/data/sfew --members runs/a runs/b \
        --output_dir model_cards/sfew-ensemble
"""

from __future__ import annotations

import itertools
import json
import math
import shlex
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from .. import data
from ..data.registry import load_corpus, protocol_splits
from ..atomic import RELEASE_STAGING, publish_files, recover_release
from ..evaluation.metrics import classification_metrics
from ..evaluation.profiling import count_parameters, gflops_per_face
from ..evaluation.report import random_subset
from ..image_processing_fer import FerImageProcessor
from ..inference.tta import TTA_MODES, black_pixel_value, tta_log_probs
from ..models import load_fer_model
from ..models.ensemble import FerEnsembleForImageClassification
from .modelcard import write_ensemble_card


@torch.no_grad()
def predict_probabilities(model, image_processor, images_uint8: torch.Tensor, tta: str = "none",
                          batch_size: int = 256, padding: int = 4, desc: Optional[str] = None,
                          device=None) -> torch.Tensor:
    """Probabilities (N, num_labels) float32 (on the CPU) of ``model`` on uint8 faces (N, C, H, W) decoded by
    ``image_processor.convert_and_resize`` (see `fer_hf.data.dataset_to_uint8`), with a TTA mode. With
    ``desc``, a progress bar (tqdm, one step per batch) under that name. ``device`` (e.g. ``"cuda"``): move the
    model there and run each batch there (default: where the model is)."""
    from tqdm.auto import tqdm

    model.eval()
    if device is not None:
        model.to(device)
    device = next(model.parameters()).device
    pad_value = black_pixel_value(image_processor)
    chunks = []
    for start in tqdm(range(0, len(images_uint8), batch_size), desc=desc, disable=desc is None, unit="batch"):
        pixel_values = image_processor.rescale_and_normalize(images_uint8[start:start + batch_size].to(device))
        chunks.append(tta_log_probs(model, pixel_values, tta, padding=padding, pad_value=pad_value).exp().cpu())
    return torch.cat(chunks)


def fit_member_weights(member_probabilities, labels, step: float = 0.05, criterion: str = "nll") -> tuple:
    """Averaging weights for an ensemble, by exhaustive search on a grid of the simplex.

    Args:
        member_probabilities: (M, N, K) array-like, each member's probabilities on the selection split
            (FER2013 PublicTest: never the split that is reported).
        labels: (N,) int label ids of that split.
        step: grid step (0.05: weights in multiples of 5%, as the 0.45 / 0.55 of the EfficientNet system).
        criterion: ``nll`` (default): the lowest negative log-likelihood of the averaged probabilities, a
            smooth proper score that a few lucky argmax flips cannot sway; ``accuracy``: the highest
            accuracy, ties to the lower NLL. Remaining ties go to the weights closest to uniform.
    Returns:
        (weights list of M floats summing to 1, accuracy on the selection split with those weights).
    Raises:
        ValueError: for an unknown criterion, or a grid of more than `MAX_WEIGHT_GRID` weight vectors.
    """
    if criterion not in ("nll", "accuracy"):
        raise ValueError(f"criterion must be 'nll' or 'accuracy', got {criterion!r}")
    probs = torch.as_tensor(np.asarray(member_probabilities), dtype=torch.float64)
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    members = probs.shape[0]
    units = round(1 / step)
    size = math.comb(units + members - 1, members - 1)
    if size > MAX_WEIGHT_GRID:
        raise ValueError(f"{members} members on a grid of step {step} make {size:,} weight vectors (more than "
                         f"{MAX_WEIGHT_GRID:,}): use a coarser step or fewer candidates")
    true_probs = probs[:, torch.arange(len(labels)), labels]  # (M, N): all the log-likelihood needs
    best = None
    for grid in _simplex_grid(units, members):
        weights = torch.from_numpy(grid).double() / units  # (C, M), each row sums to 1
        nll = -torch.log((weights @ true_probs).clamp_min(1e-12)).mean(1)  # (C,)
        spread = ((weights - 1 / members) ** 2).sum(1)
        if criterion == "nll":
            keys = torch.stack([nll, spread], 1)
            accuracy = None
        else:
            mixed = torch.einsum("cm,mnk->cnk", weights, probs)
            accuracy = (mixed.argmax(-1) == labels).double().mean(1)
            keys = torch.stack([-accuracy, nll, spread], 1)
        row = _lexicographic_argmin(keys)
        if best is None or tuple(keys[row].tolist()) < best[0]:
            if accuracy is None:
                mixed_row = torch.einsum("m,mnk->nk", weights[row], probs)
                row_accuracy = (mixed_row.argmax(-1) == labels).double().mean().item()
            else:
                row_accuracy = accuracy[row].item()
            best = (tuple(keys[row].tolist()), weights[row].tolist(), row_accuracy)
    return best[1], best[2]


#: largest number of weight vectors `fit_member_weights` searches (e.g. 9 members at step 0.05: 3.1M)
MAX_WEIGHT_GRID = 20_000_000


def _simplex_grid(units: int, members: int, chunk: int = 2048):
    """Every vector of ``members`` non-negative integers summing to ``units`` (stars and bars), as int64 arrays
    of at most ``chunk`` rows, in lexicographic order of the bar positions."""
    combos = itertools.combinations(range(units + members - 1), members - 1)
    edges = np.array([[-1], [units + members - 1]])
    while True:
        rows = list(itertools.islice(combos, chunk))
        if not rows:
            return
        bars = np.array(rows, dtype=np.int64).reshape(len(rows), members - 1)
        positions = np.concatenate([np.broadcast_to(edges[0], (len(bars), 1)), bars,
                                    np.broadcast_to(edges[1], (len(bars), 1))], axis=1)
        yield np.diff(positions, axis=1) - 1


def _lexicographic_argmin(keys: torch.Tensor) -> int:
    """Row index of the lexicographically smallest row of ``keys`` (C, k); the first such row on full ties."""
    candidates = torch.arange(len(keys))
    for column in range(keys.shape[1]):
        values = keys[candidates, column]
        candidates = candidates[values == values.min()]
    return int(candidates[0])


#: dataset -> how `ensemble_splits` builds the selection (``validation``) and reported (``test``) splits
ENSEMBLE_PROTOCOLS = {
    "fer2013": "member weights fitted on PublicTest (validation); PrivateTest (test) reported",
    "ferplus": "member weights fitted on FER2013Valid (validation, majority vote); FER2013Test (test) reported",
    "sfew": "member weights fitted on held-out SFEW Train movies (validation: the movies train_accelerate.py "
            "selects checkpoints on); SFEW Val (test) reported",
}


def ensemble_splits(dataset: str, data_dir, validation_fraction: float = 0.1, seed: int = 42):
    """``{"validation": selection split, "test": reported split}`` of a corpus for `build_ensemble`.

    ``fer2013`` (`fer_hf.data.load_fer2013`: PublicTest / PrivateTest), ``ferplus`` (`fer_hf.data.load_ferplus`,
    majority vote: FER2013Valid / FER2013Test), ``sfew`` (`fer_hf.data.load_sfew`: the Train movies
    `fer_hf.data.group_holdout` holds out with ``validation_fraction`` and ``seed``, as ``train_accelerate.py
    --dataset sfew`` does with its defaults 0.1 and 42 / SFEW Val).
    Raises:
        ValueError: for a corpus without a fixed selection split (CK+, JAFFE: cross-validation only).
    """
    if dataset in ENSEMBLE_PROTOCOLS:
        splits = protocol_splits(dataset, load_corpus(dataset, data_dir), validation_fraction, seed)
        return {"validation": splits["validation"], "test": splits["test"]}
    raise ValueError(f"An ensemble needs a corpus with a fixed selection split: one of {sorted(ENSEMBLE_PROTOCOLS)}, "
                     f"got {dataset!r} (CK+ and JAFFE are evaluated by cross-validation only)")


def round_to_float16_(model) -> None:
    """Round every floating-point parameter and buffer of ``model`` to the nearest float16 value, in place
    (they stay float32 tensors): evaluate after this and the numbers are those of weights stored in float16."""
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(tensor.half().float())


def store_safetensors_as_float16(folder) -> None:
    """Rewrite ``folder/model*.safetensors`` with float16 tensors (half the size). The config keeps
    ``dtype: float32``, so ``from_pretrained`` loads the model in float32, as it runs fastest on a CPU."""
    from safetensors.torch import load_file, save_file

    for path in sorted(Path(folder).glob("model*.safetensors")):
        save_file(_as_stored(load_file(path), "float16"), path, metadata=_SAFETENSORS_METADATA)


#: the metadata ``save_pretrained`` (and `store_safetensors_as_float16`) write into model.safetensors
_SAFETENSORS_METADATA = {"format": "pt"}


def _as_stored(tensors: dict, weights_dtype: str) -> dict:
    """``tensors`` as `build_ensemble` stores them: floating-point ones in ``weights_dtype``, contiguous."""
    dtype = torch.float16 if weights_dtype == "float16" else torch.float32
    return {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in tensors.items()}


def safetensors_megabytes(model, weights_dtype: str = "float32") -> float:
    """Size in MB (10^6 bytes) of ``model.safetensors`` as `build_ensemble` writes it for ``model``: every
    tensor of the state dict (floating-point ones in ``weights_dtype``) serialised in memory by safetensors
    with the header ``save_pretrained`` writes, so the number is the file's size, not an estimate from the
    parameter count. Raises ValueError for an unknown ``weights_dtype``."""
    from safetensors.torch import save

    if weights_dtype not in ("float32", "float16"):
        raise ValueError(f"weights_dtype must be 'float32' or 'float16', got {weights_dtype!r}")
    return len(save(_as_stored(model.state_dict(), weights_dtype), metadata=_SAFETENSORS_METADATA)) / 1e6


def ensemble_processor(config) -> FerImageProcessor:
    """The image processor of an ensemble: its input channels (colour when a member reads colour, see
    `FerEnsembleForImageClassification.from_members`), size and normalization."""
    size = {"height": config.image_size, "width": config.image_size}
    return FerImageProcessor(num_channels=config.num_channels, do_grayscale=False, size=size,
                             image_mean=config.image_mean, image_std=config.image_std)


def build_ensemble(member_paths: list, data_dir: str, output_dir: str, model_name: Optional[str] = None,
                   step: float = 0.05, command: Optional[str] = None, max_eval_samples: Optional[int] = None,
                   criterion: str = "nll", dataset: str = "fer2013", weights: Optional[list] = None,
                   validation_fraction: float = 0.1, seed: int = 42, weights_dtype: str = "float32",
                   member_names: Optional[list] = None, device: str = "cpu",
                   max_megabytes: Optional[float] = None) -> dict:
    """Fit member weights on the selection split of ``dataset`` (`ensemble_splits`: FER2013 PublicTest by
    default) or take fixed ``weights``, build the `FerEnsembleForImageClassification` from the members with a
    non-zero weight (the others are listed in ``left_out_members`` of the results), evaluate it on the
    selection and the reported split (no TTA, flip, ten-crop) and write a released folder (config,
    safetensors, processor, code, ``eval_results.json``, model card) to ``output_dir``; the model code
    (``configuration_*.py``, ``modeling_*.py``) of an earlier release in that folder that this one does not
    need is removed.

    ``weights``: one non-negative number per member, normalised to sum 1, used as given (no fit): for
    weights chosen before looking at any split, e.g. uniform weights for members trained the same way
    when the selection split is too small to fit on (SFEW: 100 images).

    ``member_paths``: trained fer_hf model folders or Hub ids. A released ``fer_ensemble`` among them
    contributes each of its members as a candidate of its own (with its member name and processor:
    `FerEnsembleForImageClassification.member_models`), so an ensemble can be refitted with new candidates
    when the members' training folders are gone.

    ``member_names``: one name per member for the config, the card and the app (default: each member's folder
    name, e.g. ``runs/ablation/crp`` -> ``crp``; a released ensemble's members keep their names).

    ``weights_dtype="float16"`` stores the weights in float16 (half the size; loaded as float32): they are
    rounded before the ensemble is evaluated, so every number in the results is of the stored weights.

    ``device``: where the members and the ensemble run for the fit and the evaluation (``"cuda"`` on a GPU
    machine; the released folder is the same, its numbers may differ from a CPU run by rounding).

    ``max_megabytes``: a size rule for the written ``model.safetensors`` (MB = 10^6 bytes, measured with
    `safetensors_megabytes`; e.g. 24.1 to stay under a 25 MB limit on committed files): while the kept
    members' file would be larger, the kept member with the smallest weight (on a tie, the later candidate)
    is dropped and the weights are fitted again on the remaining candidates. The dropped members are listed
    in ``left_out_members`` with ``"left_out_because": "size"`` and in ``dropped_for_size`` (the weight each
    had, the size of the fit that dropped it). With fixed ``weights`` nothing is refitted: an ensemble over
    the limit raises ValueError.

    ``max_eval_samples`` (for tests, not FER2013 results): fit and evaluate on a fixed random subset
    (seed 0, `fer_hf.evaluation.report.random_subset`, as ``fer-hf evaluate --max_samples``) of this many
    PublicTest and of this many PrivateTest images, not the first ones: the FER2013 image folders are
    sorted by class, so the first images are all "angry".

    Returns the results dict written to ``eval_results.json``.
    Raises:
        ValueError: for a member that is not a fer_hf model, a label-set mismatch, a corpus without a fixed
            selection split, or ``weights`` of the wrong length, negative or all zero, or an unknown
            ``weights_dtype``, or ``member_names`` of the wrong length or with repeats, or an ensemble that
            cannot meet ``max_megabytes`` (fixed weights over it, or a single member over it).
    """
    if weights_dtype not in ("float32", "float16"):
        raise ValueError(f"weights_dtype must be 'float32' or 'float16', got {weights_dtype!r}")
    from transformers import AutoImageProcessor

    models, processors, default_names = [], [], []
    for path in member_paths:
        model = load_fer_model(path)
        if isinstance(model, FerEnsembleForImageClassification):  # a released ensemble: its members are candidates
            for name, member, processor in model.member_models():
                models.append(member), processors.append(processor), default_names.append(name)
        else:
            models.append(model), processors.append(AutoImageProcessor.from_pretrained(path))
            default_names.append(Path(str(path).rstrip("/")).name)
    if weights is not None:
        weights = [float(w) for w in weights]
        if len(weights) != len(models) or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"weights must be {len(models)} numbers (one per member, an ensemble's members "
                             f"counted one by one), non-negative with a positive sum, got {weights}")
        weights = [w / sum(weights) for w in weights]
    names = list(member_names) if member_names else default_names
    if len(names) != len(models) or len(set(names)) != len(names):
        raise ValueError(f"member_names must be {len(models)} distinct names (one per member, an ensemble's "
                         f"members counted one by one), got {names}")
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    splits = ensemble_splits(dataset, data_dir, validation_fraction, seed)
    for split in ("validation", "test"):
        splits[split] = random_subset(splits[split], max_eval_samples, seed=0)
    label_names = [models[0].config.id2label[i] for i in range(models[0].config.num_labels)]
    if list(splits["test"].features["label"].names) != label_names:
        raise ValueError(f"The members' labels {label_names} are not the {dataset} label set "
                         f"{splits['test'].features['label'].names} in the same order")
    decoded = {}
    member_results = []
    member_val_probs = []
    for name, model, processor in zip(names, models, processors):
        row = {"name": name, "model_type": model.config.model_type, "num_parameters": count_parameters(model),
               "gflops_per_face": round(gflops_per_face(model), 4)}
        for split in ("validation", "test"):
            key = (split, processor.decode_settings())
            if key not in decoded:
                decoded[key] = data.dataset_to_uint8(splits[split], processor, desc=f"decode {split}")
            images, labels = decoded[key]
            probs = predict_probabilities(model, processor, images, desc=f"{name} on {split}", device=device)
            row[split] = classification_metrics(labels.numpy(), probs.argmax(-1).numpy(), label_names)
            if split == "validation":
                member_val_probs.append(probs)
                val_labels = labels
        member_results.append(row)
        model.cpu()
    fitted = weights is None
    candidates = list(range(len(models)))  # fitted again without a member the size rule drops
    dropped_for_size = []
    while True:
        if fitted:
            fit, _ = fit_member_weights(torch.stack([member_val_probs[i] for i in candidates]), val_labels, step,
                                        criterion)
            weights = [0.0] * len(models)
            for i, weight in zip(candidates, fit):
                weights[i] = float(weight)
        # a member the fit gave weight 0 changes no output: it is left out of the released model (smaller, faster)
        kept = [i for i in candidates if weights[i] > 0]
        ensemble = FerEnsembleForImageClassification.from_members(
            [models[i] for i in kept], [processors[i] for i in kept], [names[i] for i in kept],
            [weights[i] for i in kept])
        if max_megabytes is None:
            break
        megabytes = safetensors_megabytes(ensemble, weights_dtype)
        if megabytes <= max_megabytes:
            break
        if not fitted or len(kept) == 1:
            raise ValueError(f"The ensemble of {[names[i] for i in kept]} stores {megabytes:.2f} MB in "
                             f"{weights_dtype}, over max_megabytes={max_megabytes}"
                             + ("" if fitted else " (fixed --weights are not refitted; give fewer members)"))
        smallest = min(kept, key=lambda i: (weights[i], -i))
        dropped_for_size.append({"name": names[smallest], "weight": weights[smallest],
                                 "ensemble_megabytes": round(megabytes, 3)})
        candidates.remove(smallest)
    for i, (row, weight) in enumerate(zip(member_results, weights)):
        row["weight"] = weight
        if weight == 0:
            row["left_out_because"] = "size" if i not in candidates else "weight 0"
    if weights_dtype == "float16":
        round_to_float16_(ensemble)
    processor = ensemble_processor(ensemble.config)
    protocol = ENSEMBLE_PROTOCOLS[dataset]
    protocol = (protocol.replace("weights fitted on", "weights fitted (criterion " + criterion + ") on") if fitted
                else "fixed member weights given on the command line (no fit); " + protocol.split("; ", 1)[1])
    results = {"protocol": protocol, "dataset": dataset, "model_type": "fer_ensemble",
               "weights_fitted": fitted, "weights_dtype": weights_dtype, "members": [member_results[i] for i in kept],
               "member_weights": [weights[i] for i in kept],
               "left_out_members": [row for row in member_results if row["weight"] == 0],
               "weight_grid_step": step if fitted else None, "weight_criterion": criterion if fitted else None,
               "max_megabytes": max_megabytes, "dropped_for_size": dropped_for_size,
               "num_parameters": count_parameters(ensemble),
               "gflops_per_face": round(gflops_per_face(ensemble), 4),
               "command": command or "python -m fer_hf ensemble " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
               "split_sizes": {s: len(splits[s]) for s in ("validation", "test")}}
    for split in ("validation", "test"):
        key = (split, processor.decode_settings())  # the members' faces, when one decoded them the same way
        if key not in decoded:
            decoded[key] = data.dataset_to_uint8(splits[split], processor, desc=f"decode {split}")
        images, labels = decoded[key]
        for tta in TTA_MODES:
            probs = predict_probabilities(ensemble, processor, images, tta=tta, desc=f"ensemble on {split}, TTA {tta}",
                                          device=device)
            results[split + ("" if tta == "none" else f"_{tta}_tta")] = classification_metrics(
                labels.numpy(), probs.argmax(-1).numpy(), label_names)
    # atomic release (fer_hf.atomic.publish_files): written into .tmp_release, then moved in under a journal
    ensemble.cpu()
    recover_release(output)
    staged = output / RELEASE_STAGING
    staged.mkdir()
    ensemble.save_pretrained(staged)
    if weights_dtype == "float16":
        store_safetensors_as_float16(staged)
    processor.save_pretrained(staged)
    (staged / "eval_results.json").write_text(json.dumps(results, indent=1))
    write_ensemble_card(staged, results, model_name or output.name)
    # model code a previous release in this folder needed and this one does not (e.g. a member type dropped):
    # trust_remote_code never loads it, but it would tell a reader the folder holds that architecture
    stale = [path.name for pattern in ("configuration_*.py", "modeling_*.py") for path in output.glob(pattern)
             if not (staged / path.name).exists()]
    publish_files(staged, output, last=["eval_results.json"], remove=stale)
    return results
