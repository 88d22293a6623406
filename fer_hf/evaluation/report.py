"""The evaluation report of a trained fer_hf model on one split of a FER dataset: ``fer-hf evaluate``.

    fer-hf evaluate --model model_cards/fer-vgg-fer2013 --dataset fer2013 \
        --data_dir ../shared/data/fer2013/fer2013_images.zip --split test --output_dir runs/eval-vgg [--tta flip]

writes into the output folder:

- ``metrics.json``: accuracy, balanced accuracy (mean per-class recall; on muxspace over the classes with at
  least 50 images in the test split or 25 in the validation split, listed), macro-F1, the share of answers per class, per-class precision /
  recall / F1 / support, confusion matrix,
  top-2 accuracy, NLL, expected calibration error (ECE) before and after temperature scaling, the
  temperature and the split it was fitted on, one-vs-rest ROC AUC per class and macro, the TTA mode,
  model, dataset, split, label mapping, number of images and the command;
- ``confusion_matrix.png``, ``roc.png`` (one-vs-rest ROC curves, AUCs in the legend),
  ``reliability_diagram.png`` (before / after temperature scaling) and ``confident_mistakes.png`` (the
  most confident wrong predictions with their true / predicted labels and probability).

Protocol (``/work/shared/GUIDE.md`` section 4): the temperature is fitted on the dataset's validation
split (FER2013 PublicTest, FER+ Valid; SFEW has only Train / Val, so for Val it is fitted on Train, which
fer_hf models never train on), never on the reported split; where there is no such split (CK+, JAFFE,
an image folder, FER2013 validation itself, whose only other split is the training data) no temperature
is fitted and the "after" numbers are null.

Label mapping between the model's labels and the dataset's is by name (``angry`` = ``anger``,
``sad`` = ``sadness``, ...; see `canonical_label_name`):

- dataset classes the model does not know (``contempt`` of FER+ / CK+ for a 7-class model) are left out:
  their images are not evaluated and their number is reported (``label_mapping.images_left_out``);
- model classes the dataset does not have (``contempt`` of an 8-class model on FER2013): the argmax is
  **restricted to the shared labels**, i.e. the probabilities are renormalised over the labels the
  dataset has (``label_mapping.policy = "restrict_to_shared_labels"``), so every metric is over the same
  K shared classes; how often the unrestricted argmax picked an unshared class is reported
  (``label_mapping.unrestricted_predictions_outside_shared_labels``).
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from .. import data as data_module
from ..data.common import DroppedRows, inspect_image_bytes, problem_category, read_file_bytes
from ..data.registry import load_corpus
from ..image_io import IMAGE_EXTENSIONS
from ..image_processing_fer import FerImageProcessor
from ..inference.tta import TTA_MODES, black_pixel_value, tta_log_probs
from ..labels import FER2013_LABELS, canonical_label
from ..models import load_fer_model
from .calibration import (DEFAULT_N_BINS, fit_temperature, log_softmax, negative_log_likelihood,
                          reliability_diagram_data, softmax)
from .metrics import MIN_CLASS_FACES, classification_metrics, expected_calibration_error, min_class_faces, top_k_accuracy

logger = logging.getLogger(__name__)

#: Dataset names accepted by `load_evaluation_split` / ``fer-hf evaluate --dataset``.
EVALUATION_DATASETS = ("fer2013", "ferplus", "ckplus", "jaffe", "sfew", "muxspace", "tfeid", "imagefolder")
#: Real-photo corpora whose images show more than the face: each image is replaced by the recognizer's crop
#: of its most confident face (`fer_hf.evaluation.face_crops.recognizer_face_crops`) before evaluation.
DETECTED_DATASETS = ("muxspace", "tfeid")
#: dataset -> {reported split: split the temperature is fitted on}; anything else: no temperature.
CALIBRATION_SPLITS = {
    "fer2013": {"test": "validation"},
    "ferplus": {"test": "validation"},
    "sfew": {"validation": "train"},
    "muxspace": {"test": "validation"},
    "tfeid": {"test": "validation"},
}
LABEL_POLICY = "restrict_to_shared_labels"
_SPLIT_ALIASES = {
    "train": ("train", "training", "Training", "Train"),
    "validation": ("validation", "valid", "val", "Valid", "Val", "PublicTest"),
    "test": ("test", "Test", "PrivateTest"),
}
_EXTRA_LABEL_NAMES = {"contempt": "contempt", "contemptuous": "contempt", "7": "contempt"}


# --------------------------------------------------------------------------------------------- labels
def canonical_label_name(name) -> str:
    """The canonical name of a label (``"Anger"`` -> ``"angry"``, ``"sadness"`` -> ``"sad"``,
    ``"contempt"`` -> ``"contempt"``), by the aliases of `fer_hf.data` (FER2013 names and ids 0..6) plus
    contempt (FER+ / CK+ id 7); an unknown name is returned lower-cased and stripped."""
    key = str(name).strip().lower()
    if key in _EXTRA_LABEL_NAMES:
        return _EXTRA_LABEL_NAMES[key]
    index = canonical_label(key)
    if index is not None and 0 <= index < len(FER2013_LABELS):
        return FER2013_LABELS[index]
    return key


def map_labels(model_labels: list, dataset_labels: list, label_mapping: Optional[dict] = None) -> dict:
    """Match a model's label set with a dataset's, by canonical name.

    Args:
        model_labels: the model's label names in id order.
        dataset_labels: the dataset's label names in id order.
        label_mapping: optional ``{dataset label name: model label name}`` overrides, applied before the
            match by name (e.g. ``{"contempt": "disgust"}``).
    Returns:
        dict: ``policy``, ``model_labels``, ``dataset_labels``, ``evaluated_labels`` (the shared labels, in
        the model's order, named as the model names them), ``model_columns`` (their model ids),
        ``dataset_to_evaluated`` ({dataset id: evaluated index}), ``dataset_labels_not_in_model``,
        ``model_labels_not_in_dataset`` and ``overrides``.
    Raises:
        ValueError: when the two label sets share no label.
    """
    overrides = {canonical_label_name(k): canonical_label_name(v) for k, v in (label_mapping or {}).items()}
    model_canonical = [canonical_label_name(n) for n in model_labels]
    dataset_canonical = [overrides.get(canonical_label_name(n), canonical_label_name(n)) for n in dataset_labels]
    present = set(dataset_canonical)
    model_columns = [i for i, name in enumerate(model_canonical) if name in present]
    if not model_columns:
        raise ValueError(f"The model's labels {list(model_labels)} and the dataset's {list(dataset_labels)} "
                         "share no label (matched by name)")
    evaluated_canonical = [model_canonical[i] for i in model_columns]
    dataset_to_evaluated = {d: evaluated_canonical.index(name) for d, name in enumerate(dataset_canonical)
                            if name in evaluated_canonical}
    return {
        "policy": LABEL_POLICY,
        "model_labels": list(model_labels),
        "dataset_labels": list(dataset_labels),
        "evaluated_labels": [model_labels[i] for i in model_columns],
        "model_columns": model_columns,
        "dataset_to_evaluated": dataset_to_evaluated,
        "dataset_labels_not_in_model": [n for n, c in zip(dataset_labels, dataset_canonical)
                                        if c not in evaluated_canonical],
        "model_labels_not_in_dataset": [n for n, c in zip(model_labels, model_canonical) if c not in present],
        "overrides": dict(label_mapping or {}),
    }


# ---------------------------------------------------------------------------------------------- data
def load_image_folder(root, split: Optional[str] = None):
    """An image folder ``<root>/<class>/*.<ext>`` (or ``<root>/<split>/<class>/...`` when that folder
    exists) as a `datasets.Dataset` (``image``, ``label`` `ClassLabel`, ``image_id``).

    Class folder names are mapped by name (`canonical_label_name`: ``anger`` -> ``angry``, ``sadness`` ->
    ``sad``, ...); folders whose names map to the same label are merged. Label set: the 7 FER2013 classes
    in FER2013 order (also those without a folder: they stay empty, as in `fer_hf.data`, so that a folder
    holding a few classes does not shrink the task), then any other class (e.g. ``contempt``) alphabetically.

    Every file is decoded once (`fer_hf.data.common.inspect_image_bytes`): files that are not usable images
    (empty, not an image, truncated or corrupt, over ``FER_HF_MAX_IMAGE_PIXELS``, NaN pixels, unreadable) are
    left out and reported (`fer_hf.data.InvalidRowsWarning`, and ``dataset.dropped`` on the result), so that
    one bad file never stops an evaluation.

    Raises:
        FileNotFoundError: for a missing folder; ValueError: when no image is found.
    """
    from datasets import ClassLabel, Dataset, Features, Image as ImageFeature, Value

    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"Image folder {root} not found")
    if split and (root / split).is_dir():
        root = root / split
    files, dropped, n_found = [], DroppedRows(), 0
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(class_dir.rglob("*")):
            if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
                n_found += 1
                data, problem = read_file_bytes(path.read_bytes)
                problem = problem or inspect_image_bytes(data)[0]
                if problem:
                    dropped.add(path.relative_to(root).as_posix(), problem, problem_category(problem))
                    continue
                files.append((path, canonical_label_name(class_dir.name)))
    dropped.report(str(root))
    if not files:
        raise ValueError(f"No images found in {root} (expected <root>/<class>/*.jpg)" if not n_found else
                         f"None of the {n_found} image files in {root} is a usable image: {dropped.counts()}")
    present = {name for _, name in files}
    names = list(FER2013_LABELS) + sorted(present - set(FER2013_LABELS))
    features = Features({"image": ImageFeature(), "label": ClassLabel(names=names), "image_id": Value("string")})
    dataset = Dataset.from_dict({"image": [{"path": str(p), "bytes": None} for p, _ in files],
                                 "label": [names.index(n) for _, n in files],
                                 "image_id": [p.relative_to(root).as_posix() for p, _ in files]}, features=features)
    dataset.dropped = dropped  # type: ignore[attr-defined]
    return dataset


def _canonical_split(split: str) -> str:
    """``train`` / ``validation`` / ``test`` for a split name or one of its aliases (``val``, ``PublicTest``...)."""
    return next((name for name, aliases in _SPLIT_ALIASES.items() if split == name or split in aliases), split)


def _pick_split(loaded, split: str, dataset: str):
    from datasets import Dataset, concatenate_datasets

    if isinstance(loaded, Dataset):
        if split != "all":
            raise ValueError(f"{dataset} is loaded as a single set without splits: use split 'all'")
        return loaded
    keys = list(loaded.keys())
    if split == "all":
        return concatenate_datasets([loaded[k] for k in keys if len(loaded[k])])
    for candidate in (split, *_SPLIT_ALIASES.get(split, ())):
        if candidate in loaded:
            return loaded[candidate]
    raise ValueError(f"{dataset} has no split {split!r}; its splits: {keys} (or 'all')")


def load_evaluation_split(dataset: str, data_dir, split: str = "test", max_samples: Optional[int] = None):
    """One split of an evaluation dataset as a `datasets.Dataset` with an ``image`` and a ``label``
    (`datasets.ClassLabel`) column.

    Args:
        dataset: ``fer2013`` (`fer_hf.data.load_fer2013`: validation = PublicTest, test = PrivateTest),
            ``ferplus`` / ``ckplus`` / ``jaffe`` / ``sfew`` (``fer_hf.data.load_<name>``), ``muxspace`` /
            ``tfeid`` (person-disjoint splits of real photos, each image replaced by the recognizer's crop of
            its face: `DETECTED_DATASETS`) or ``imagefolder`` (`load_image_folder`).
        data_dir: the dataset's file / folder (or Hub id for FER2013).
        split: ``train``, ``validation``, ``test`` (aliases such as ``PublicTest``, ``Val`` accepted) or
            ``all`` (every split concatenated, e.g. for a cross-dataset evaluation on CK+ or JAFFE).
        max_samples: a fixed random subset of this many rows (`random_subset`), taken before faces are cropped.
    Raises:
        NotImplementedError: when ``fer_hf.data`` has no loader for the dataset (yet).
        ValueError: for an unknown dataset or split.
    """
    if dataset not in EVALUATION_DATASETS:
        raise ValueError(f"Unknown dataset {dataset!r}; choose one of {EVALUATION_DATASETS}")
    if dataset == "imagefolder":
        return random_subset(load_image_folder(data_dir, split), max_samples)
    picked = random_subset(_pick_split(load_evaluation_corpus(dataset, data_dir), split, dataset), max_samples)
    if dataset in DETECTED_DATASETS:
        from .face_crops import recognizer_face_crops

        picked = recognizer_face_crops(picked)
    return picked


def load_evaluation_corpus(dataset: str, data_dir):
    """Every split of a corpus as `fer-hf evaluate` and `fer-hf data-quality` load it (`load_evaluation_split`
    picks one split of this), kept as one `datasets.DatasetDict` so that duplicates across splits can be found.

    ``fer2013`` / ``ferplus`` / ``ckplus`` / ``jaffe`` / ``sfew``: ``fer_hf.data.load_<dataset>(data_dir)``,
    the loader's own splits (each split is the Dataset ``evaluate --split <split>`` reports on).
    ``imagefolder``: `load_image_folder` per split folder when ``data_dir`` holds split
    folders (``train``, ``val``, ``test``, ``PublicTest``, ... as ``evaluate --split`` accepts them; each keyed by
    its folder name, in train / validation / test order), else one split ``all``; the rows each folder dropped
    are merged into ``result.dropped`` with ids ``<split folder>/<path>``.

    Returns:
        `datasets.DatasetDict`, with the loader's ``dropped`` / ``label_report`` / ``face_report`` attributes.
    Raises:
        ValueError: for an unknown dataset, or a folder without images; FileNotFoundError: for a
            ``data_dir`` that does not exist (and is not a Hub id the loader accepts); NotImplementedError:
            for a dataset ``fer_hf.data`` has no loader for.
    """
    from pathlib import Path

    from datasets import DatasetDict

    if dataset not in EVALUATION_DATASETS:
        raise ValueError(f"Unknown dataset {dataset!r}; choose one of {EVALUATION_DATASETS}")
    if dataset != "imagefolder":
        loaded = load_corpus(dataset, data_dir)
        return loaded if isinstance(loaded, DatasetDict) else DatasetDict(all=loaded)
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"Image folder {root} not found")
    order = {alias: rank for rank, aliases in enumerate(_SPLIT_ALIASES.values()) for alias in aliases}
    folders = sorted((p.name for p in root.iterdir() if p.is_dir() and p.name in order), key=lambda n: (order[n], n))
    out, dropped = DatasetDict(), DroppedRows()
    for split in folders or ["all"]:
        ds = load_image_folder(root, split if folders else None)
        out[split] = ds
        for row_id, reason in getattr(ds, "dropped", DroppedRows()).reasons.items():
            key = f"{split}/{row_id}" if folders else row_id
            dropped.add(key, reason, ds.dropped.categories.get(row_id))
    out.dropped = dropped  # type: ignore[attr-defined]
    return out


def random_subset(ds, max_samples: Optional[int], seed: int = 0):
    """A fixed random subset of ``max_samples`` rows of a `datasets.Dataset` (seed 0), so that every class
    can appear (FER2013 image folders are sorted by class: the first rows are all "angry"). None or a
    number >= ``len(ds)``: ``ds`` itself. Also used by the ensemble builder's ``max_eval_samples``."""
    if max_samples is None or max_samples >= len(ds):
        return ds
    return ds.shuffle(seed=seed).select(range(max_samples))


# ------------------------------------------------------------------------------------------ inference
@torch.no_grad()
def predict_log_probabilities(model, image_processor, images_uint8: torch.Tensor, tta: str = "none",
                              batch_size: int = 256, padding: int = 4, device=None) -> np.ndarray:
    """(N, num_labels) float64 log-probabilities of ``model`` on uint8 faces (N, C, H, W) decoded by
    ``image_processor.convert_and_resize`` (`fer_hf.data.dataset_to_uint8`): ``log_softmax`` of the
    logits for ``tta="none"``, else the log of the TTA-averaged probabilities (`fer_hf.inference.tta`)."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = model.to(device).eval()
    pad_value = black_pixel_value(image_processor)
    chunks = []
    for start in range(0, len(images_uint8), batch_size):
        pixel_values = image_processor.rescale_and_normalize(images_uint8[start:start + batch_size]).to(device)
        chunks.append(tta_log_probs(model, pixel_values, tta, padding=padding, pad_value=pad_value).double().cpu())
    if not chunks:
        return np.zeros((0, model.config.num_labels))
    return torch.cat(chunks).numpy()


def _predict_split(model, processor, ds, mapping: dict, tta: str, batch_size: int, padding: int, desc: str):
    """(shared-label log-probabilities (N, K), labels in evaluated ids (N,), uint8 images, left-out counts,
    unrestricted predictions outside the shared labels) for a dataset split."""
    dataset_names = ds.features["label"].names
    raw_labels = np.asarray(ds["label"], dtype=np.int64)
    keep = np.array([int(l) in mapping["dataset_to_evaluated"] for l in raw_labels], dtype=bool)
    left_out = {}
    for label in raw_labels[~keep]:
        left_out[dataset_names[label]] = left_out.get(dataset_names[label], 0) + 1
    ds = ds.select(np.flatnonzero(keep).tolist()) if not keep.all() else ds
    labels = np.array([mapping["dataset_to_evaluated"][int(l)] for l in raw_labels[keep]], dtype=np.int64)
    images, _ = data_module.dataset_to_uint8(ds, processor, desc=desc)
    full = predict_log_probabilities(model, processor, images, tta, batch_size, padding)
    shared = log_softmax(full[:, mapping["model_columns"]]) if len(full) else full[:, mapping["model_columns"]]
    outside = int((~np.isin(full.argmax(1), mapping["model_columns"])).sum()) if len(full) else 0
    return shared, labels, images, left_out, outside


# ------------------------------------------------------------------------------------------- metrics
def roc_auc_one_vs_rest(labels, probabilities, label_names) -> dict:
    """One-vs-rest ROC curves and AUCs (`sklearn.metrics.roc_curve`, `sklearn.metrics.auc`).

    Returns ``{"per_class": {name: AUC or None}, "macro": mean of the defined AUCs or None, "curves":
    {name: (fpr, tpr)}}``; a class with no positive or no negative sample has no ROC curve (None).
    """
    from sklearn.metrics import auc, roc_curve

    labels = np.asarray(labels)
    per_class, curves = {}, {}
    for index, name in enumerate(label_names):
        positives = labels == index
        if positives.all() or not positives.any():
            per_class[name] = None
            continue
        fpr, tpr, _ = roc_curve(positives, probabilities[:, index])
        per_class[name] = float(auc(fpr, tpr))
        curves[name] = (fpr, tpr)
    defined = [v for v in per_class.values() if v is not None]
    return {"per_class": per_class, "macro": float(np.mean(defined)) if defined else None, "curves": curves}


# --------------------------------------------------------------------------------------------- plots
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion_matrix(matrix, label_names, path, title: str) -> None:
    """Counts annotated on a row-normalised colour scale (rows = true, columns = predicted)."""
    plt = _plt()
    matrix = np.asarray(matrix)
    rows = matrix.sum(axis=1, keepdims=True)
    fractions = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
    size = 1.0 + 0.75 * len(label_names)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, f"{matrix[i, j]}\n{fractions[i, j]:.0%}", ha="center", va="center", fontsize=7,
                    color="white" if fractions[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(label_names)), label_names, rotation=45, ha="right")
    ax.set_yticks(range(len(label_names)), label_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label="fraction of the true class")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_roc(roc: dict, path, title: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 5.5))
    for name, (fpr, tpr) in roc["curves"].items():
        ax.plot(fpr, tpr, lw=1.5, label=f"{name} (AUC {roc['per_class'][name]:.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="chance")
    macro = "n/a" if roc["macro"] is None else f"{roc['macro']:.3f}"
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01),
           title=f"{title}\none-vs-rest ROC, macro AUC {macro}")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_reliability(before: dict, after: Optional[dict], temperature: Optional[float], path, title: str) -> None:
    """Reliability diagrams (accuracy vs. confidence per equal-width bin) before / after temperature
    scaling; the gap to the diagonal is shaded, the ECE is in each panel's title."""
    plt = _plt()
    panels = [("before temperature scaling", before)]
    panels.append((f"after temperature scaling (T = {temperature:.3f})", after) if after is not None
                  else ("after: no temperature (no calibration split)", None))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8))
    for ax, (name, data) in zip(axes, panels):
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top-label probability)", ylabel="accuracy")
        if data is None:
            ax.text(0.5, 0.5, "no validation split to fit\na temperature on", ha="center", va="center")
            ax.set_title(name, fontsize=9)
            continue
        edges = np.asarray(data["bin_edges"])
        width = edges[1] - edges[0]
        acc = [a if a is not None else 0.0 for a in data["bin_accuracy"]]
        conf = [c if c is not None else 0.0 for c in data["bin_confidence"]]
        filled = [n > 0 for n in data["bin_counts"]]
        ax.bar(edges[:-1], acc, width=width, align="edge", edgecolor="black", color="tab:blue", alpha=0.8,
               label="accuracy")
        ax.bar([e for e, f in zip(edges[:-1], filled) if f], [c - a for c, a, f in zip(conf, acc, filled) if f],
               bottom=[a for a, f in zip(acc, filled) if f], width=width, align="edge", fill=False, hatch="//",
               edgecolor="tab:red", lw=1.0, label="gap to mean confidence")
        ax.plot([e + width / 2 for e, f in zip(edges[:-1], filled) if f], [c for c, f in zip(conf, filled) if f],
                "o", color="tab:red", ms=3, label="mean confidence")
        ax.set_title(f"{name}\nECE {data['expected_calibration_error']:.4f} ({data['n_bins']} bins)", fontsize=9)
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(title.replace("\n", ": "), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_confident_mistakes(images_uint8, labels, probabilities, label_names, path, title: str,
                            count: int = 24) -> list:
    """A grid of the ``count`` most confident wrong predictions (true / predicted label, probability).
    Returns ``[{"index", "true", "predicted", "probability"}]`` of the faces shown."""
    plt = _plt()
    predictions = probabilities.argmax(1)
    confidence = probabilities.max(1)
    wrong = np.flatnonzero(predictions != labels)
    chosen = wrong[np.argsort(-confidence[wrong], kind="stable")][:count]
    columns = 6
    rows = max(1, int(np.ceil(len(chosen) / columns)))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.7, rows * 2.0 + 0.5), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    shown = []
    for ax, index in zip(axes.ravel(), chosen):
        face = images_uint8[index].permute(1, 2, 0).numpy()
        ax.imshow(face[..., 0] if face.shape[-1] == 1 else face, cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"true: {label_names[labels[index]]}\npred: {label_names[predictions[index]]} "
                     f"{confidence[index]:.2f}", fontsize=7)
        shown.append({"index": int(index), "true": label_names[labels[index]],
                      "predicted": label_names[predictions[index]], "probability": float(confidence[index])})
    if not len(chosen):
        axes[0, 0].text(0, 0.5, "no wrong prediction", fontsize=10)
    fig.suptitle(f"{title.replace(chr(10), ': ')}\nmost confident mistakes ({len(wrong)} wrong of {len(labels)})",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return shown


# -------------------------------------------------------------------------------------------- report
def evaluate_model(model_name_or_path, dataset: str, data_dir, split: str = "test", output_dir=None,
                   tta: str = "none", batch_size: int = 256, label_mapping: Optional[dict] = None,
                   calibration_split: Optional[str] = "auto", max_samples: Optional[int] = None,
                   n_bins: int = DEFAULT_N_BINS, tta_padding: int = 4, command: Optional[str] = None) -> dict:
    """Evaluate a trained fer_hf model on one split of a dataset and write the report (module docstring).

    Args:
        model_name_or_path: a fer_hf model folder or Hub id, loaded with `fer_hf.models.load_fer_model`
            (fer_hf model types only, safetensors only, never remote code) and its `AutoImageProcessor`.
        dataset: one of `EVALUATION_DATASETS`; ``data_dir``: its file / folder (`load_evaluation_split`).
        split: the reported split (``test`` = FER2013 PrivateTest).
        output_dir: where ``metrics.json`` and the 4 PNGs go (None: nothing is written).
        tta: ``none``, ``flip`` or ``ten_crop`` (`fer_hf.inference.tta`); ``tta_padding``: ten-crop padding.
        batch_size: faces per forward pass.
        label_mapping: optional ``{dataset label name: model label name}`` overrides of the match by name
            (`map_labels`). Policy for model labels the dataset lacks: argmax restricted to the shared labels.
        calibration_split: the split the temperature is fitted on: ``"auto"`` (`CALIBRATION_SPLITS`:
            FER2013 / FER+ test -> validation, SFEW validation -> train, otherwise none), ``None`` /
            ``"none"`` (no temperature scaling) or a split name (never the reported split).
        max_samples: evaluate a fixed random subset (seed 0) of this many images of the reported split and
            of the calibration split (for tests and quick looks: not a result to publish).
        n_bins: equal-width bins of the ECE and the reliability diagram.
        command: the command recorded in ``metrics.json`` (default: this process's command line).
    Returns:
        the dict written to ``metrics.json``.
    Raises:
        ValueError: for a model that is not a fer_hf model type, an unknown dataset / split / TTA mode,
            a calibration split equal to the reported split, or label sets that share no label.
        NotImplementedError: for a dataset whose loader ``fer_hf.data`` does not have (yet).
    """
    from transformers import AutoImageProcessor

    if tta not in TTA_MODES:
        raise ValueError(f"Unknown TTA mode {tta!r}; choose one of {TTA_MODES}")
    if dataset not in EVALUATION_DATASETS:
        raise ValueError(f"Unknown dataset {dataset!r}; choose one of {EVALUATION_DATASETS}")
    if calibration_split == "auto":
        calibration_split = CALIBRATION_SPLITS.get(dataset, {}).get(split)
    elif calibration_split in (None, "none", ""):
        calibration_split = None
    if calibration_split is not None and calibration_split == split:
        raise ValueError(f"The temperature cannot be fitted on the reported split {split!r}")
    model = load_fer_model(model_name_or_path)
    processor = AutoImageProcessor.from_pretrained(str(model_name_or_path), trust_remote_code=False)
    if not isinstance(processor, FerImageProcessor):
        raise ValueError(f"{model_name_or_path}: expected a FerImageProcessor, got {type(processor).__name__}")
    model_labels = [model.config.id2label[i] for i in range(model.config.num_labels)]

    ds = load_evaluation_split(dataset, data_dir, split, max_samples)
    dataset_labels = list(ds.features["label"].names)
    mapping = map_labels(model_labels, dataset_labels, label_mapping)
    names = mapping["evaluated_labels"]
    log_probs, labels, images, left_out, outside = _predict_split(
        model, processor, ds, mapping, tta, batch_size, tta_padding, desc=f"decode {split}")
    if not len(labels):
        raise ValueError(f"No image of {dataset}/{split} has a label the model knows ({model_labels})")
    probabilities = softmax(log_probs)
    predictions = probabilities.argmax(1)

    results = {"model": str(model_name_or_path), "model_type": model.config.model_type, "dataset": dataset,
               "data_dir": str(data_dir), "split": split, "tta": tta, "num_images": int(len(labels)),
               "max_samples": max_samples}
    results.update(classification_metrics(labels, predictions, names, min_class_faces(f"{dataset}/{_canonical_split(split)}")))
    if dataset in DETECTED_DATASETS:
        report = getattr(ds, "face_report", {})
        results["face_crops"] = {key: report.get(key) for key in ("detector", "settings", "faces_found", "images")}
        results["face_crops"]["no_face"] = len(report.get("no_face", []))
    results["labels"] = names
    # A class the split has no image of (neutral in CK+) has F1 0 as soon as it is predicted once; the
    # macro-F1 over the classes that have images is given beside the macro-F1 over every evaluated label.
    present = [name for name in names if results["per_class"][name]["support"] > 0]
    results["classes_without_images"] = [name for name in names if name not in present]
    results["macro_f1_over_classes_with_images"] = float(np.mean([results["per_class"][n]["f1"] for n in present]))
    results["top_2_accuracy"] = top_k_accuracy(labels, probabilities, k=2) if len(names) > 2 else None
    results["nll"] = negative_log_likelihood(log_probs, labels)
    before = reliability_diagram_data(probabilities, labels, n_bins)
    results["expected_calibration_error"] = expected_calibration_error(labels, probabilities, n_bins)
    results["ece_n_bins"] = n_bins

    after = None
    calibration = {"split": calibration_split, "method": "temperature scaling (Guo et al., 2017): T minimises "
                   "the NLL of softmax(logits / T) on the calibration split", "temperature": None}
    if calibration_split is not None:
        cal_ds = load_evaluation_split(dataset, data_dir, calibration_split, max_samples)
        cal_log_probs, cal_labels, _, cal_left_out, _ = _predict_split(
            model, processor, cal_ds, mapping, tta, batch_size, tta_padding, desc=f"decode {calibration_split}")
        temperature = fit_temperature(cal_log_probs, cal_labels)
        scaled = softmax(log_probs, temperature)
        after = reliability_diagram_data(scaled, labels, n_bins)
        calibration.update({
            "temperature": temperature, "num_images": int(len(cal_labels)), "images_left_out": cal_left_out,
            "nll_before": negative_log_likelihood(cal_log_probs, cal_labels),
            "nll_after": negative_log_likelihood(cal_log_probs, cal_labels, temperature)})
        results["nll_after_temperature_scaling"] = negative_log_likelihood(log_probs, labels, temperature)
        results["expected_calibration_error_after_temperature_scaling"] = expected_calibration_error(
            labels, scaled, n_bins)
        results["argmax_unchanged_by_temperature"] = bool((scaled.argmax(1) == predictions).all())
    else:
        calibration["note"] = (f"no temperature: no calibration split for {dataset} {split!r} (the temperature is "
                               "fitted on a held-out validation split only, never on the reported split or on "
                               "training data; --calibration_split chooses one)")
        results["nll_after_temperature_scaling"] = None
        results["expected_calibration_error_after_temperature_scaling"] = None
    results["temperature"] = calibration["temperature"]
    results["calibration_split"] = calibration_split
    results["calibration"] = calibration
    results["reliability_diagram"] = {"before": before, "after": after}

    roc = roc_auc_one_vs_rest(labels, probabilities, names)
    results["roc_auc"] = {"per_class": roc["per_class"], "macro": roc["macro"],
                          "method": "one-vs-rest, sklearn roc_curve + auc on the (unscaled) probabilities; "
                                    "null for a class without positives or negatives in the split"}
    results["label_mapping"] = {
        "policy": LABEL_POLICY,
        "policy_description": "matched by name; images of dataset classes the model does not know are left "
                              "out; model classes the dataset lacks are removed from the argmax (probabilities "
                              "renormalised over the shared labels)",
        "model_labels": mapping["model_labels"], "dataset_labels": mapping["dataset_labels"],
        "evaluated_labels": names, "dataset_labels_not_in_model": mapping["dataset_labels_not_in_model"],
        "model_labels_not_in_dataset": mapping["model_labels_not_in_dataset"], "overrides": mapping["overrides"],
        "images_left_out": int(sum(left_out.values())), "images_left_out_per_class": left_out,
        "unrestricted_predictions_outside_shared_labels": outside,
    }
    results["command"] = command or "fer-hf " + " ".join(shlex.quote(a) for a in sys.argv[1:])

    if output_dir is not None:
        output = Path(output_dir)
        output.mkdir(parents=True, exist_ok=True)
        model_name = Path(str(model_name_or_path).rstrip("/")).name
        title = (f"{model_name} on {dataset} {split} ({len(labels)} images, TTA {tta})\n"
                 f"accuracy {results['accuracy']:.4f}, macro-F1 {results['macro_f1']:.4f}")
        plot_confusion_matrix(results["confusion_matrix"], names, output / "confusion_matrix.png", title)
        plot_roc(roc, output / "roc.png", title)
        plot_reliability(before, after, calibration["temperature"], output / "reliability_diagram.png", title)
        results["confident_mistakes"] = plot_confident_mistakes(
            images, labels, probabilities, names, output / "confident_mistakes.png", title)
        results["files"] = ["metrics.json", "confusion_matrix.png", "roc.png", "reliability_diagram.png",
                            "confident_mistakes.png"]
        (output / "metrics.json").write_text(json.dumps(results, indent=1))
    return results


__all__ = ["CALIBRATION_SPLITS", "DETECTED_DATASETS", "EVALUATION_DATASETS", "MIN_CLASS_FACES", "LABEL_POLICY", "canonical_label_name", "evaluate_model",
           "load_evaluation_split", "load_image_folder", "map_labels", "predict_log_probabilities",
           "roc_auc_one_vs_rest"]
