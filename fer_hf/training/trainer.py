"""The single-corpus trainer behind ``train_accelerate.py``: the model and optimizer set-up, the epoch loop with
evaluation and checkpoint choice, resume, the final evaluation with and without TTA, the release of the chosen
checkpoint, and cross-validation folds."""

import json
import logging
import math
import os
import shlex
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import set_seed
from datasets import DatasetDict
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm
from transformers import AutoImageProcessor

from ..atomic import (RELEASE_JOURNAL, RELEASE_STAGING, append_line, atomic_write_text, crash_point, link_or_copy_tree,
                      publish_files, read_jsonl, recover_release, replace_dir, replacing, staging_dir)
from ..data import (dataset_to_uint8, drop_cross_split_duplicates, group_holdout, leave_one_subject_out,
                    load_fer2013, stratified_kfold, subject_kfold)
from ..data.registry import CORPORA, protocol_splits
from ..data.registry import load_corpus as load_registered_corpus
from ..evaluation.metrics import classification_metrics
from ..evaluation.profiling import count_parameters, gflops_per_face
from ..image_processing_fer import FerImageProcessor
from ..inference.tta import TTA_MODES, black_pixel_value, tta_log_probs
from ..labels import FER2013_LABELS
from ..models import build_model, load_fer_model, parse_config_overrides
from .augmentation import apply_preset
from .backbones import load_backbone_weights
from .checkpointing import better_checkpoint, complete_checkpoints, latest_checkpoint, publish_copy, recover_run_folder
from .losses import class_weights, classification_loss, distillation_loss
from .modelcard import save_training_plots, write_model_card

logger = get_logger(__name__)


def split_decay_parameters(model, weight_decay):
    """AdamW / SGD parameter groups: weight decay on weights of rank >= 2 only (not on norms and biases)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim <= 1 else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def select_subsets(dataset, max_train_samples=None, max_eval_samples=None, seed=42):
    """Seeded random subsets of train and of validation/test (same rows for the same seed)."""
    generator = torch.Generator().manual_seed(seed)
    if max_train_samples is not None:
        keep = torch.randperm(len(dataset["train"]), generator=generator)[:max_train_samples]
        dataset["train"] = dataset["train"].select(sorted(keep.tolist()))
    if max_eval_samples is not None:
        for split in [name for name in ("validation", "test") if name in dataset]:
            keep = torch.randperm(len(dataset[split]), generator=generator)[:max_eval_samples]
            dataset[split] = dataset[split].select(sorted(keep.tolist()))
    return dataset


def build_training_model(args, label_names):
    """(model, notes): a fresh model of --model_type / --config_preset / --config_overrides, or a trained one
    (--model_name_or_path), with --backbone_weights applied; notes say what initialised it."""
    if args.model_name_or_path:
        model = load_fer_model(args.model_name_or_path)
        old = [model.config.id2label[i] for i in range(model.config.num_labels)]
        note = f"fine-tuned from {args.model_name_or_path}"
        if old != list(label_names):
            transfer_classifier(model, old, list(label_names))
            note += (f" (classifier rows carried over by label name for {[n for n in label_names if n in old]}; "
                     f"new: {[n for n in label_names if n not in old]})")
        return model, {"initialisation": note}
    model = build_model(args.model_type, args.config_preset, parse_config_overrides(args.config_overrides),
                        label_names)
    notes = {"initialisation": "random (trained from scratch)"}
    if args.backbone_weights:
        if getattr(model, "imagenet_head_prefixes", None) is None:
            raise ValueError(f"{args.model_type} has no pretrained backbone to initialise")
        try:
            load_backbone_weights(model, args.backbone_weights)
            notes = {"initialisation": f"backbone initialised from --backbone_weights {args.backbone_weights}",
                     "imagenet_normalization": True}
        except (OSError, ValueError) as error:  # unreachable Hub id, missing file: train from scratch, say so
            logger.warning(f"Could not load backbone weights {args.backbone_weights}: {error}; training from scratch")
            notes = {"initialisation": f"random (trained from scratch): backbone weights {args.backbone_weights} "
                                       f"could not be loaded ({type(error).__name__}: {error})"}
    return model, notes


def transfer_classifier(model, old_names: list, new_names: list) -> None:
    """Give a trained model a new label set: its last linear layer (the one with ``len(old_names)``
    outputs) is replaced by one with ``len(new_names)`` outputs whose rows for labels the model already
    knew are copied by name (the others initialised like a fresh head), and the config's labels follow."""
    from torch import nn

    name, layer = None, None
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Linear) and module.out_features == len(old_names):
            name, layer = module_name, module
    if layer is None:
        raise ValueError(f"no classifier layer with {len(old_names)} outputs in {type(model).__name__}")
    new_layer = nn.Linear(layer.in_features, len(new_names), bias=layer.bias is not None)
    nn.init.normal_(new_layer.weight, std=getattr(model.config, "initializer_range", 0.02))
    with torch.no_grad():
        if new_layer.bias is not None:
            new_layer.bias.zero_()
        for row, label in enumerate(new_names):
            if label in old_names:
                new_layer.weight[row] = layer.weight[old_names.index(label)]
                if new_layer.bias is not None:
                    new_layer.bias[row] = layer.bias[old_names.index(label)]
    parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
    setattr(parent, name.rsplit(".", 1)[-1], new_layer)
    model.config.id2label = dict(enumerate(new_names))
    model.config.label2id = {label: i for i, label in enumerate(new_names)}
    if hasattr(model, "num_labels"):
        model.num_labels = len(new_names)


def processor_for(config, imagenet_normalization=False) -> FerImageProcessor:
    """The image processor matching a model config (channels, size; ImageNet mean/std for an ImageNet
    backbone; grayscale faces replicated to 3 channels for 3-channel models)."""
    kwargs = {}
    if imagenet_normalization and config.num_channels == 3:
        kwargs = {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
    return FerImageProcessor(num_channels=config.num_channels,
                             size={"height": config.image_size, "width": config.image_size}, **kwargs)


@torch.no_grad()
def predict(model, loader, processor, accelerator, channels_last, tta="none", padding=4):
    """Return (log-probabilities (N, num_labels) float32, labels (N,)) gathered over all processes, once per
    image; ``tta`` is a mode of `fer_hf.inference.tta` (``none``: log-softmax of the logits)."""
    model.eval()
    pad_value = black_pixel_value(processor)
    all_scores, all_labels = [], []
    for images, labels, _ in loader:
        pixel_values = processor.rescale_and_normalize(images)
        if channels_last:
            pixel_values = pixel_values.contiguous(memory_format=torch.channels_last)
        scores = tta_log_probs(model, pixel_values, tta, padding=padding, pad_value=pad_value)
        scores, labels = accelerator.gather_for_metrics((scores, labels))
        all_scores.append(scores.float().cpu())
        all_labels.append(labels.cpu())
    return torch.cat(all_scores), torch.cat(all_labels)


def teacher_summary(teacher_path) -> dict:
    """What the student's card says about its teacher, read from the teacher's ``eval_results.json`` (written
    by train_accelerate.py or `fer-hf ensemble`): model type, its selection / reported accuracy (no TTA) and, for
    an ensemble, the members and weights. Empty for a teacher without that file (e.g. a Hub model)."""
    path = Path(teacher_path) / "eval_results.json"
    if not path.is_file():
        return {}
    results = json.loads(path.read_text())
    summary = {key: results[key] for key in ("model_type", "dataset", "num_parameters", "gflops_per_face")
               if key in results}
    for split in ("validation", "test"):
        if isinstance(results.get(split), dict) and "accuracy" in results[split]:
            summary[f"{split}_accuracy"] = results[split]["accuracy"]
    if results.get("members"):
        summary["members"] = [{"name": m["name"], "weight": w}
                              for m, w in zip(results["members"], results["member_weights"])]
    return summary


@torch.no_grad()
def teacher_soft_targets(teacher_path, dataset, temperature, batch_size=256, device="cpu"):
    """softmax(teacher logits / T) on the un-augmented training faces, (N, K) float32, in dataset order, with no
    autograd graph (constants of the loss: a graph here would tie every batch to the teacher's forward pass).
    The teacher decodes the faces with its own processor (its channels and size) and runs on ``device``."""
    teacher = load_fer_model(teacher_path).eval().to(device)
    teacher_processor = AutoImageProcessor.from_pretrained(teacher_path)
    images, _ = dataset_to_uint8(dataset, teacher_processor, desc="teacher: decode train")
    chunks = []
    for start in tqdm(range(0, len(images), batch_size), desc="teacher soft targets", mininterval=5):
        pixel_values = teacher_processor.rescale_and_normalize(images[start:start + batch_size].to(device))
        chunks.append((teacher(pixel_values=pixel_values).logits.float() / temperature).softmax(-1).cpu())
    return torch.cat(chunks)


def write_card_and_plots(output_dir: Path, results: dict, history: list, args: dict, command: str,
                         num_parameters: int, default_name: str | None = None) -> None:
    save_training_plots(history, results["test"]["confusion_matrix"], results.get("label_names") or FER2013_LABELS,
                        output_dir, dataset=args.get("dataset") or "fer2013")
    write_model_card(output_dir, results, history, args, command,
                     model_name=args.get("model_name") or default_name or output_dir.name,
                     num_parameters=num_parameters, dropped_rows=results.get("dropped_rows", 0),
                     split_sizes=results.get("split_sizes"))


def rewrite_model_card(output_dir: Path, parse_args) -> None:
    """Rewrite the card and plots of a finished run from the files it wrote. Runs that predate the
    ``split_sizes`` / ``args`` keys of eval_results.json have them recomputed from their command, parsed with
    ``parse_args`` (``train_accelerate.parse_args``: the script owns its command line)."""
    recover_release(output_dir)
    results = json.loads((output_dir / "eval_results.json").read_text())
    history = read_jsonl(output_dir / "train_log.jsonl", key="epoch")  # skips a line truncated by a kill
    command = results["command"]
    run_args = results.get("args") or vars(parse_args(shlex.split(command)[3:]))
    if "split_sizes" not in results:
        dataset = select_subsets(load_fer2013(run_args["data_dir"]), run_args["max_train_samples"],
                                 run_args["max_eval_samples"], run_args["seed"])
        results["split_sizes"] = {split: len(dataset[split]) for split in ("train", "validation", "test")}
        results["dropped_rows"] = len(dataset.dropped)
    model = load_fer_model(output_dir)
    write_card_and_plots(output_dir, results, history, run_args, command, count_parameters(model))


def make_scheduler(args, optimizer, steps_per_epoch, num_processes):
    """(scheduler, per_step): OneCycle / cosine / constant step per optimiser step (and are prepared by
    Accelerate, which steps them once per process); ReduceLROnPlateau steps once per epoch."""
    total = steps_per_epoch * args.num_train_epochs * num_processes
    if args.lr_scheduler == "onecycle":
        # OneCycle needs at least 2 steps in each phase (only very short test runs come near that)
        pct_start = min(max(args.warmup_ratio, 2.0 / total), 1 - 2.0 / total) if total > 4 else 0.5
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.learning_rate, pct_start=pct_start,
                                                   total_steps=max(total, 4)), True
    if args.lr_scheduler == "cosine":
        from transformers import get_cosine_schedule_with_warmup

        return get_cosine_schedule_with_warmup(optimizer, int(args.warmup_ratio * total), total), True
    if args.lr_scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=args.plateau_factor,
                                                          patience=args.plateau_patience), False
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0), True


def hardware_description(accelerator) -> str:
    import platform

    if accelerator.device.type == "cuda":
        return f"{torch.cuda.get_device_name(0)} x{accelerator.num_processes}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU ({cpu}), {os.cpu_count()} cores, {accelerator.num_processes} process(es), {torch.get_num_threads()} threads each"


FER2013_PROTOCOL = "checkpoint chosen on PublicTest (validation) accuracy; PrivateTest (test) reported"


def load_corpus(args):
    """(DatasetDict, label_names): the corpus of --dataset (`fer_hf.data.registry.load_corpus`) with --label_set,
    --drop_cross_split_duplicates and the test subsets applied. ``label_names`` are the label set's classes that
    have images in the corpus (CK+48 has no neutral), in canonical id order; they become the model's labels."""
    label_set = args.label_set or CORPORA[args.dataset].label_set
    corpus = load_registered_corpus(args.dataset, args.data_dir, label_set)
    if args.dataset == "ferplus" and args.ferplus_labels == "distribution":
        # train on the votes; select and report on majority labels
        votes = load_registered_corpus("ferplus", args.data_dir, label_set, labels="distribution")
        corpus = DatasetDict(train=votes["train"], validation=corpus["validation"], test=corpus["test"])
    names = corpus["train"].features["label"].names
    counts = np.zeros(len(names), dtype=np.int64)
    for split in corpus.values():
        counts += np.bincount(np.asarray(split["label"][:], dtype=np.int64), minlength=len(names))
    label_names = [name for name, count in zip(names, counts) if count > 0]
    if len(label_names) < len(names):
        logger.info(f"classes without images in {args.dataset}, left out of the model: "
                    f"{[n for n, c in zip(names, counts) if c == 0]}")
    if args.drop_cross_split_duplicates:
        corpus, report = drop_cross_split_duplicates(corpus)
        logger.info(f"dropped cross-split duplicates from train: {json.dumps(report)[:500]}")
    return select_subsets(corpus, args.max_train_samples, args.max_eval_samples, args.seed), label_names


def single_run_splits(args, corpus):
    """(DatasetDict train / validation / test, protocol) for a run without cross-validation: the corpus's fixed
    protocol (`fer_hf.data.registry.protocol_splits`)."""
    if args.dataset in ("fer2013", "ferplus"):
        return corpus, FER2013_PROTOCOL
    if args.dataset == "sfew":  # Val is the reported development set: select on held-out Train movies
        return (DatasetDict(protocol_splits("sfew", corpus, args.validation_fraction, args.seed)),
                "checkpoint chosen on held-out SFEW Train movies; SFEW Val (test) reported")
    raise ValueError(f"--dataset {args.dataset} has one split: use cross-validation (--cv subject|loso|stratified)")


def cross_validation_folds(args, dataset):
    if args.cv == "subject":
        return subject_kfold(dataset, n_folds=args.folds, group_column="subject", seed=args.seed)
    if args.cv == "loso":
        return leave_one_subject_out(dataset, group_column="subject")
    return stratified_kfold(dataset, n_folds=args.folds, seed=args.seed)


def fold_splits(args, dataset, train_index, test_index, seed):
    """train / validation / test of one fold: validation is held out of the fold's training part, by
    subject for subject-independent protocols (by image, stratified, for --cv stratified)."""
    train = dataset.select(sorted(train_index))
    if args.cv == "stratified":
        from sklearn.model_selection import train_test_split

        labels = np.asarray(train["label"][:])
        inner_train, inner_validation = train_test_split(np.arange(len(train)), test_size=args.validation_fraction,
                                                         random_state=seed, stratify=labels)
        inner = (train.select(sorted(inner_train)), train.select(sorted(inner_validation)))
    else:
        inner = group_holdout(train, "subject", args.validation_fraction, seed)
    return DatasetDict(train=inner[0], validation=inner[1], test=dataset.select(sorted(test_index)))


def decode_split(dataset, processor, label_names, desc):
    """(uint8 faces (N, C, H, W), label ids (N,) int64 in ``label_names`` order) of a split."""
    images, labels = dataset_to_uint8(dataset, processor, desc=desc)
    names = dataset.features["label"].names
    mapping = torch.tensor([label_names.index(n) if n in label_names else -1 for n in names])
    labels = mapping[labels]
    if (labels < 0).any():
        raise ValueError(f"{desc}: labels outside the model's label set {label_names}")
    return images, labels


def soft_label_tensor(dataset, label_names):
    """(N, K) float32 FER+ vote distributions, columns in ``label_names`` order."""
    names = dataset.features["label"].names
    soft = torch.tensor(np.asarray(dataset["soft_label"][:], dtype=np.float32))
    return soft[:, [names.index(n) for n in label_names]]


def summarize_folds(fold_results, folds, command, args) -> dict:
    """Mean and standard deviation (ddof=1) over folds of each fold's test accuracy and macro-F1, plus
    the pooled accuracy over every test image; every fold's numbers and sizes."""
    def stats(key, suffix=""):
        values = np.array([r["test" + suffix][key] for r in fold_results])
        return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0

    summary = {"dataset": args.dataset, "protocol": folds.protocol, "subject_independent": folds.subject_independent,
               "folds": len(fold_results), "command": command,
               "initialisation": fold_results[0].get("initialisation"), "label_names": fold_results[0]["label_names"]}
    summary["accuracy_mean"], summary["accuracy_std"] = stats("accuracy")
    summary["macro_f1_mean"], summary["macro_f1_std"] = stats("macro_f1")
    summary["accuracy_flip_tta_mean"], summary["accuracy_flip_tta_std"] = stats("accuracy", "_flip_tta")
    correct = sum(r["test"]["accuracy"] * r["test"]["num_samples"] for r in fold_results)
    total = sum(r["test"]["num_samples"] for r in fold_results)
    summary["pooled_accuracy"] = correct / total
    summary["per_fold"] = [{"fold": i, "test_images": r["test"]["num_samples"], "accuracy": r["test"]["accuracy"],
                            "macro_f1": r["test"]["macro_f1"], "accuracy_flip_tta": r["test_flip_tta"]["accuracy"],
                            "validation_accuracy": r["validation"]["accuracy"], "best_epoch": r["best_epoch"],
                            "split_sizes": r["split_sizes"]} for i, r in enumerate(fold_results)]
    return summary


@dataclass
class TrainingRun:
    """What `setup_training` builds for one `train_one` call, handed to the later steps.

    ``model``, ``optimizer``, the three loaders and (when ``per_step_scheduler``) ``scheduler`` are prepared
    by the Accelerator. The loaders yield ``(uint8 faces (B, C, H, W), label ids (B,) int64, soft targets
    (B, S) float32)``: for training S is 0, or K (FER+ vote distributions) and/or K more (teacher
    probabilities), K = ``num_labels``; the evaluation loaders carry S = 0."""

    model: torch.nn.Module
    processor: FerImageProcessor
    optimizer: torch.optim.Optimizer
    scheduler: object
    per_step_scheduler: bool  # False for ReduceLROnPlateau, stepped once per epoch on validation accuracy
    ema: object  # torch.optim.swa_utils.AveragedModel of the model, or None without --ema_decay
    train_loader: DataLoader
    val_loader: DataLoader
    test_loader: DataLoader
    loss_weights: object  # (K,) float32 loss weights on the accelerator's device, or None
    init_notes: dict  # what initialised the model (and its teacher), copied into the results
    split_sizes: dict  # {"train" | "validation" | "test": number of faces}
    num_labels: int
    soft_labels: bool  # the training targets are FER+ vote distributions, not label ids
    channels_last: bool
    steps_per_epoch: int  # optimiser steps per epoch (batches / gradient accumulation steps)

    def eval_model(self, accelerator):
        """The weights that are evaluated, selected and released: the EMA if on, else the model; float32."""
        return self.ema.module if self.ema is not None else accelerator.unwrap_model(self.model)


def training_soft_targets(args, accelerator, train, label_names, output_dir: Path, init_notes: dict):
    """(N, S) float32 soft targets that travel with each training face through the loader (so that mixup /
    CutMix mixes them with the labels): FER+ vote distributions (S = K) with --ferplus_labels distribution,
    then teacher probabilities (S = K more) with --teacher_model, or an empty (N, 0) placeholder; N =
    ``len(train)``, K = ``len(label_names)``.

    The teacher's targets are cached in ``output_dir/teacher_soft_targets.pt`` (a resume reuses them), and
    ``init_notes`` gains the teacher and its summary."""
    soft = torch.zeros(len(train), 0)
    if args.dataset == "ferplus" and args.ferplus_labels == "distribution":
        soft = soft_label_tensor(train, label_names)
    if args.teacher_model:
        cache = output_dir / "teacher_soft_targets.pt"
        if not cache.is_file():
            with accelerator.main_process_first():
                teacher = teacher_soft_targets(args.teacher_model, train, args.distillation_temperature,
                                               device=accelerator.device)
                if accelerator.is_main_process:
                    with replacing(cache) as tmp:  # a kill mid-write must not leave a truncated cache
                        torch.save(teacher, tmp)
        else:
            teacher = torch.load(cache, weights_only=True)
        soft = torch.cat([soft, teacher], 1)
        init_notes["teacher"] = args.teacher_model
        init_notes["teacher_summary"] = teacher_summary(args.teacher_model)
    return soft


def make_optimizer(args, model) -> torch.optim.Optimizer:
    """AdamW, or SGD with Nesterov momentum, at --learning_rate over `split_decay_parameters` groups."""
    groups = split_decay_parameters(model, args.weight_decay)
    if args.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=args.learning_rate)
    return torch.optim.SGD(groups, lr=args.learning_rate, momentum=args.momentum, nesterov=True)


def make_ema(args, accelerator, model):
    """The exponential moving average of the (prepared) model's weights and buffers at --ema_decay, or None
    when it is 0. The average runs in float32 whatever --mixed_precision says (see `run_training`)."""
    if args.ema_decay <= 0:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    ema = AveragedModel(accelerator.unwrap_model(model), multi_avg_fn=get_ema_multi_avg_fn(args.ema_decay),
                        use_buffers=True)
    # the average runs in float32 (see `run_training`): drop the autocast patch of forward that Accelerate
    # put on the model and that the copy carries
    for patched in ("forward", "_original_forward"):
        ema.module.__dict__.pop(patched, None)
    return ema


def setup_training(args, accelerator, dataset, label_names, output_dir: Path) -> TrainingRun:
    """Step 1 of `train_one`: seed, build the model (`build_training_model`) and its processor, decode the
    three splits to uint8 faces, compute the soft targets and class weights, and build and prepare the
    loaders, optimizer, scheduler and EMA. The order of these calls is fixed: it decides the seeded random
    state that initialises the model and shuffles the data.

    Raises:
        ValueError: if a split has labels outside ``label_names``, or the model cannot be built as asked.
    """
    set_seed(args.seed)
    model, init_notes = build_training_model(args, label_names)
    processor = processor_for(model.config, init_notes.get("imagenet_normalization", False))
    train_x, train_y = decode_split(dataset["train"], processor, label_names, "decode train")
    val_x, val_y = decode_split(dataset["validation"], processor, label_names, "decode validation")
    test_x, test_y = decode_split(dataset["test"], processor, label_names, "decode test")
    logger.info(f"train {len(train_y)}, validation {len(val_y)}, test {len(test_y)}")
    num_labels = len(label_names)
    train_soft = training_soft_targets(args, accelerator, dataset["train"], label_names, output_dir, init_notes)
    weights = class_weights(train_y, num_labels, args.class_weighting)

    train_loader = DataLoader(TensorDataset(train_x, train_y, train_soft), batch_size=args.per_device_train_batch_size,
                              shuffle=True, drop_last=len(train_y) > args.per_device_train_batch_size)
    val_loader = DataLoader(TensorDataset(val_x, val_y, torch.zeros(len(val_y), 0)), batch_size=args.per_device_eval_batch_size)
    test_loader = DataLoader(TensorDataset(test_x, test_y, torch.zeros(len(test_y), 0)), batch_size=args.per_device_eval_batch_size)

    channels_last = not args.no_channels_last
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(args, model)
    train_loader, val_loader, test_loader = accelerator.prepare(train_loader, val_loader, test_loader)
    steps_per_epoch = math.ceil(len(train_loader) / args.gradient_accumulation_steps)
    scheduler, per_step_scheduler = make_scheduler(args, optimizer, steps_per_epoch, accelerator.num_processes)
    if per_step_scheduler:
        model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    else:
        model, optimizer = accelerator.prepare(model, optimizer)  # its state is saved beside each checkpoint
    ema = make_ema(args, accelerator, model)
    if weights is not None:
        weights = weights.to(accelerator.device)
    return TrainingRun(model=model, processor=processor, optimizer=optimizer, scheduler=scheduler,
                       per_step_scheduler=per_step_scheduler, ema=ema, train_loader=train_loader,
                       val_loader=val_loader, test_loader=test_loader, loss_weights=weights, init_notes=init_notes,
                       split_sizes={"train": len(train_y), "validation": len(val_y), "test": len(test_y)},
                       num_labels=num_labels, soft_labels=args.dataset == "ferplus" and args.ferplus_labels == "distribution",
                       channels_last=channels_last, steps_per_epoch=steps_per_epoch)


def resume_training(args, accelerator, run: TrainingRun, output_dir: Path):
    """Step 2 of `train_one`: the trainer state to continue from, and the checkpoint folder it comes from
    (None for a fresh start). With --resume_from_checkpoint (a folder, or ``latest``: the newest complete
    checkpoint of ``output_dir``, a fresh start when there is none) the Accelerator state, the EMA, the
    plateau scheduler and ``best_model/`` are restored. ``output_dir/train_log.jsonl`` is rewritten from
    the state's history.

    The state is ``{"epoch": last finished epoch, 0-based (-1: none), "best_validation_accuracy": fraction,
    "best_epoch": 1-based, "global_step": optimiser steps taken, "history": one record per epoch}``
    (plus ``"stopped_early": True`` once early stopping has triggered).

    Raises:
        FileNotFoundError: if --resume_from_checkpoint names a folder that does not exist.
    """
    # global_step counts optimiser steps taken (not skipped by the fp16 scaler); it survives resumes
    state = {"epoch": -1, "best_validation_accuracy": -1.0, "best_epoch": -1, "global_step": 0, "history": []}
    last_checkpoint = None  # the checkpoint this invocation continues from (its best_model/ carries over)
    if args.resume_from_checkpoint:
        path = latest_checkpoint(output_dir) if args.resume_from_checkpoint == "latest" else Path(args.resume_from_checkpoint)
        if path is None and args.resume_from_checkpoint == "latest":
            accelerator.print(f"No checkpoint in {output_dir} yet: starting from the beginning")
        elif path is None or not path.exists():
            raise FileNotFoundError(f"No checkpoint to resume from: {args.resume_from_checkpoint}")
        else:
            accelerator.print(f"Resuming from {path}")
            accelerator.load_state(str(path))
            last_checkpoint = path
            state = json.loads((path / "trainer_state.json").read_text())
            # checkpoints written before the counter existed
            state.setdefault("global_step", (state["epoch"] + 1) * run.steps_per_epoch)
            if accelerator.is_main_process and (path / "best_model").is_dir():
                # the selected model as of this checkpoint: a later epoch's best_model may have been
                # published by the killed invocation before it could write its own checkpoint
                publish_copy(path / "best_model", output_dir / "best_model")
            if run.ema is not None:
                run.ema.load_state_dict(torch.load(path / "ema.pt", weights_only=True))
            if not run.per_step_scheduler:
                run.scheduler.load_state_dict(torch.load(path / "plateau_scheduler.pt", weights_only=True))
    if accelerator.is_main_process:
        # the log restarts from the resumed state: epochs logged after the last checkpoint by a killed
        # invocation, and a line truncated by the kill, would otherwise stay in it
        atomic_write_text(output_dir / "train_log.jsonl",
                          "".join(json.dumps(record) + "\n" for record in state["history"]))
    accelerator.wait_for_everyone()
    return state, last_checkpoint


def train_epochs(args, accelerator, run: TrainingRun, output_dir: Path, state: dict, last_checkpoint,
                 precision: str) -> bool:
    """Step 3 of `train_one`: the epochs from ``state["epoch"] + 1`` on, each a `run_epoch` and a
    `save_checkpoint` (``state`` is updated in place). Stops at --num_train_epochs, at early stopping,
    after --stop_after_epochs epochs or once --stop_after_minutes (wall clock, as any process sees it)
    have passed at the start of an epoch.

    Returns:
        True when training is over (last epoch done or stopped early), False when it stopped to be resumed.
    """
    start_epoch = state["epoch"] + 1
    end_epoch = args.num_train_epochs
    if args.stop_after_epochs is not None:
        end_epoch = min(end_epoch, start_epoch + args.stop_after_epochs)
    batches = len(run.train_loader)
    progress = tqdm(total=args.num_train_epochs * batches, initial=start_epoch * batches,
                    disable=not accelerator.is_local_main_process, desc="train", unit="batch", mininterval=5)
    stopped_early = state.get("stopped_early", False)
    invocation_started = time.time()
    for epoch in range(start_epoch, end_epoch):
        if stopped_early:
            break
        if args.stop_after_minutes is not None:
            over = torch.tensor(float(time.time() - invocation_started > args.stop_after_minutes * 60))
            if accelerator.reduce(over.to(accelerator.device), "sum").item() > 0:  # all processes agree
                break
        record, improved = run_epoch(args, accelerator, run, state, epoch, progress, precision)
        if args.early_stopping_patience and epoch + 1 - state["best_epoch"] >= args.early_stopping_patience:
            state["stopped_early"] = stopped_early = True
        accelerator.print(json.dumps(record) + ("  <- best on PublicTest" if improved else ""))
        last_checkpoint = save_checkpoint(args, accelerator, run, output_dir, state, epoch, record, improved,
                                          last_checkpoint)
        if stopped_early:
            accelerator.print(f"Early stopping: no better PublicTest accuracy for {args.early_stopping_patience} "
                              f"epochs (best epoch {state['best_epoch']})")
    progress.close()
    return state["epoch"] + 1 >= args.num_train_epochs or stopped_early


def training_targets(run: TrainingRun, labels, soft):
    """The loss targets of a batch, as one tensor so that mixup / CutMix mixes labels, votes and teacher
    probabilities alike: the label ids (B,) int64 without soft targets, the votes (B, K) with FER+
    distributions, else one-hot labels then the soft targets (B, K + S) float32."""
    if not soft.shape[1]:
        return labels
    return soft if run.soft_labels else torch.cat([F.one_hot(labels, run.num_labels).float(), soft], 1)


def training_loss(args, run: TrainingRun, logits, targets):
    """Scalar loss of a batch: label-smoothed (weighted) cross-entropy, mixed with the distillation loss
    (weight --distillation_alpha) on the teacher's columns of ``targets`` with --teacher_model."""
    if args.teacher_model:
        hard, teacher = targets[:, :run.num_labels], targets[:, run.num_labels:]
        return (1 - args.distillation_alpha) * classification_loss(
            logits, hard, args.label_smoothing, run.loss_weights) + args.distillation_alpha * distillation_loss(
            logits, teacher, args.distillation_temperature)
    return classification_loss(logits, targets, args.label_smoothing, run.loss_weights)


def run_epoch(args, accelerator, run: TrainingRun, state: dict, epoch: int, progress, precision: str):
    """One epoch (``epoch`` 0-based): a pass over the training loader (augmentation, bf16 autocast with
    --mixed_precision bf16, clipping, optimiser, scheduler and EMA steps), then the evaluation of
    `TrainingRun.eval_model` on validation and the plateau scheduler's step. Appends the epoch's record
    to ``state["history"]`` and updates ``state``'s epoch and best epoch.

    Returns:
        ``(record, improved)``: the record (losses: mean per face; accuracies: fractions; seconds; faces
        per second; the learning rate after the epoch) and whether this epoch is the new best checkpoint
        (`better_checkpoint`).
    """
    model, optimizer = run.model, run.optimizer
    model.train()
    started = time.time()
    loss_sum = torch.zeros((), dtype=torch.float64)
    correct = torch.zeros((), dtype=torch.long)
    seen = torch.zeros((), dtype=torch.long)
    for images, labels, soft in run.train_loader:
        with accelerator.accumulate(model):
            targets = training_targets(run, labels, soft)
            augmented, targets = apply_preset(args.augmentation, images.float(), targets, run.num_labels,
                                              crop_padding=args.crop_padding,
                                              max_rotation_degrees=args.max_rotation_degrees,
                                              max_translation=args.max_translation,
                                              scale_range=(1 - args.max_scale_change, 1 + args.max_scale_change))
            pixel_values = run.processor.rescale_and_normalize(augmented)
            if run.channels_last:
                pixel_values = pixel_values.contiguous(memory_format=torch.channels_last)
            with torch.autocast(accelerator.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                logits = model(pixel_values=pixel_values).logits
            loss = training_loss(args, run, logits, targets)
            accelerator.backward(loss)
            if accelerator.sync_gradients and args.max_grad_norm:
                accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            optimizer.step()
            if accelerator.sync_gradients and not accelerator.optimizer_step_was_skipped:
                state["global_step"] += 1
            if run.per_step_scheduler:
                run.scheduler.step()
            optimizer.zero_grad()
            if run.ema is not None and accelerator.sync_gradients:
                run.ema.update_parameters(accelerator.unwrap_model(model))
        loss_sum += loss.detach().double().cpu() * len(labels)
        correct += (logits.argmax(-1) == labels).sum().cpu()
        seen += len(labels)
        progress.update(1)
        progress.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}", refresh=False)
    train_seconds = time.time() - started
    totals = accelerator.reduce(torch.stack([loss_sum, correct.double(), seen.double()]).to(accelerator.device), "sum")
    eval_started = time.time()
    logits_val, labels_val = predict(run.eval_model(accelerator), run.val_loader, run.processor, accelerator,
                                     run.channels_last)
    val_loss = F.nll_loss(logits_val, labels_val).item()
    val_acc = (logits_val.argmax(-1) == labels_val).float().mean().item()
    if not run.per_step_scheduler:
        run.scheduler.step(val_acc)
    record = {
        "epoch": epoch + 1, "train_loss": totals[0].item() / totals[2].item(),
        "train_accuracy": totals[1].item() / totals[2].item(), "validation_loss": val_loss,
        "validation_accuracy": val_acc, "learning_rate": optimizer.param_groups[0]["lr"],
        "train_seconds": round(train_seconds, 1), "eval_seconds": round(time.time() - eval_started, 1),
        "train_images_per_second": round(totals[2].item() / train_seconds, 1),
        "global_step": state["global_step"],
    }
    state["history"].append(record)
    state["epoch"] = epoch
    # the best epoch's loss comes from the history, which every checkpoint (and resume) carries
    best_loss = next((r["validation_loss"] for r in state["history"] if r["epoch"] == state["best_epoch"]),
                     float("inf"))
    improved = better_checkpoint(val_acc, val_loss, state["best_validation_accuracy"], best_loss)
    if improved:
        state["best_validation_accuracy"], state["best_epoch"] = val_acc, epoch + 1
    return record, improved


def save_checkpoint(args, accelerator, run: TrainingRun, output_dir: Path, state: dict, epoch: int, record: dict,
                    improved: bool, last_checkpoint):
    """Write ``output_dir/checkpoints/epoch_<epoch>`` atomically, then publish ``best_model/`` (when
    ``improved``) and the epoch's line of ``train_log.jsonl``, and prune old checkpoints beyond
    --checkpoints_total_limit. Every process takes part (Accelerate saves each one's RNG state).

    Everything is written into ``checkpoints/.tmp_epoch_N``, ``trainer_state.json`` (the completion
    marker) last, fsynced, then renamed to ``epoch_N`` (`fer_hf.atomic.replace_dir`). The checkpoint holds
    the selected model as of this epoch (``best_model/``: new weights if this epoch improved, else hard
    links to those of ``last_checkpoint``), so that a resume restores a best_model consistent with its state.

    Returns:
        the checkpoint the next epoch continues from (on other processes than the main one:
        ``last_checkpoint`` unchanged, as only the main process reads it).
    """
    checkpoint = output_dir / "checkpoints" / f"epoch_{epoch}"
    staged = staging_dir(checkpoint)
    if accelerator.is_main_process and staged.exists():
        shutil.rmtree(staged)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staged))
    accelerator.wait_for_everyone()  # every process has written its RNG state into the staging folder
    if accelerator.is_main_process:
        # EMA and ReduceLROnPlateau are saved here rather than registered with the Accelerator, whose
        # registrations would accumulate over the folds of a cross-validation run
        if run.ema is not None:
            torch.save(run.ema.state_dict(), staged / "ema.pt")
        if not run.per_step_scheduler:
            torch.save(run.scheduler.state_dict(), staged / "plateau_scheduler.pt")
        if improved:
            run.eval_model(accelerator).save_pretrained(staged / "best_model")
        elif last_checkpoint is not None and (last_checkpoint / "best_model").is_dir():
            link_or_copy_tree(last_checkpoint / "best_model", staged / "best_model")
        elif (output_dir / "best_model").is_dir():  # resumed from a checkpoint without best_model/
            shutil.copytree(output_dir / "best_model", staged / "best_model")
        crash_point("checkpoint", epoch + 1)  # test hook (FER_HF_TEST_CRASH_IN_SAVE): killed mid-write
        atomic_write_text(staged / "trainer_state.json", json.dumps(state, indent=1))
        replace_dir(staged, checkpoint, crash_stage="checkpoint", crash_epoch=epoch + 1)
        last_checkpoint = checkpoint
        if improved:
            publish_copy(checkpoint / "best_model", output_dir / "best_model")
        append_line(output_dir / "train_log.jsonl", json.dumps(record))
        # prune only complete checkpoints, and only now that the new one is complete
        old = complete_checkpoints(output_dir)
        for stale in old[: max(0, len(old) - args.checkpoints_total_limit)]:
            shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    return last_checkpoint


def final_evaluation(args, accelerator, run: TrainingRun, dataset, label_names, output_dir: Path, state: dict,
                     command: str, precision: str, protocol: str, dropped_rows: int):
    """Step 4 of `train_one`: load the chosen checkpoint (``output_dir/best_model``) onto the accelerator's
    device and evaluate it on validation and test with every TTA mode (`classification_metrics` of each,
    under ``"validation"`` / ``"test"`` and ``"<split>_<mode>_tta"``), every process taking its share.

    Returns:
        ``(model, results)``: the chosen model (eval mode) and the results dict that ``eval_results.json``
        holds (protocol, run facts, sizes, cost: ``training_hours`` in hours, ``gflops_per_face``, and the
        metrics).
    """
    accelerator.wait_for_everyone()
    best = load_fer_model(output_dir / "best_model").eval().to(accelerator.device)  # the loaders' batches are there
    if run.channels_last:
        best = best.to(memory_format=torch.channels_last)
    history = state["history"]
    results = {"protocol": protocol, "dataset": args.dataset, "label_names": label_names,
               "best_epoch": state["best_epoch"], "epochs_trained": state["epoch"] + 1,
               "stopped_early": bool(state.get("stopped_early")), "command": command,
               "args": {k: v for k, v in vars(args).items() if k != "hub_token"},
               "dropped_rows": dropped_rows, "split_sizes": dict(run.split_sizes),
               "model_type": best.config.model_type, "num_parameters": count_parameters(best),
               "gflops_per_face": round(gflops_per_face(best), 4), **run.init_notes,
               "training_hours": round(sum(h["train_seconds"] + h.get("eval_seconds", 0) for h in history) / 3600, 3),
               "hardware": hardware_description(accelerator), "mixed_precision": precision}
    for group in ("subject", "movie"):  # for audits: who is on which side of the protocol
        if all(group in dataset[split].column_names for split in ("train", "validation", "test")):
            results[f"{group}s"] = {split: sorted(set(dataset[split][group][:])) for split in ("train", "validation", "test")}
    final_runs = [(split, loader, tta) for split, loader in (("validation", run.val_loader), ("test", run.test_loader))
                  for tta in TTA_MODES]
    for split, loader, tta in tqdm(final_runs, desc="final evaluation (selection and test split x TTA modes)",
                                   disable=not accelerator.is_local_main_process):
        scores, labels = predict(best, loader, run.processor, accelerator, run.channels_last, tta=tta,
                                 padding=args.crop_padding)
        metrics = classification_metrics(labels.numpy(), scores.argmax(-1).numpy(), label_names)
        results[split + ("" if tta == "none" else f"_{tta}_tta")] = metrics
    return best, results


def release_model(args, output_dir: Path, best, processor, results: dict, history: list, command: str,
                  label_names: list, push: bool = True) -> None:
    """Step 5 of `train_one` (main process only): write the released folder — the chosen model
    (safetensors), its processor, ``eval_results.json``, the training plots and, for FER2013, FER+ and SFEW
    (the protocols the card templates describe), the model card — and with --push_to_hub and ``push``,
    upload it.

    Atomic release (`fer_hf.atomic.publish_files`): every file is written into ``.tmp_release`` first, then
    moved into ``output_dir`` one by one under a journal, ``eval_results.json`` last. A kill while writing
    leaves the previous release as it was; a kill while moving is rolled forward by the next run."""
    staged = output_dir / RELEASE_STAGING
    if staged.exists():
        shutil.rmtree(staged)
    staged.mkdir()
    best.save_pretrained(staged, safe_serialization=True)
    processor.save_pretrained(staged)
    crash_point("release")  # test hook (FER_HF_TEST_CRASH_IN_SAVE): killed while writing the release
    (staged / "eval_results.json").write_text(json.dumps(results, indent=1))
    if args.dataset in ("fer2013", "ferplus", "sfew"):  # the card templates describe these protocols
        write_card_and_plots(staged, results, history, vars(args), command, count_parameters(best),
                             default_name=output_dir.name)
    else:
        save_training_plots(history, results["test"]["confusion_matrix"], label_names, staged, dataset=args.dataset)
    publish_files(staged, output_dir, last=["eval_results.json"])
    logger.info(f"test accuracy {results['test']['accuracy']:.4f} "
                f"(validation {results['validation']['accuracy']:.4f}, best epoch {results['best_epoch']})")
    if args.push_to_hub and push:
        from huggingface_hub import HfApi

        api = HfApi(token=args.hub_token)
        api.create_repo(args.hub_model_id, exist_ok=True)
        api.upload_folder(repo_id=args.hub_model_id, folder_path=str(output_dir),
                          ignore_patterns=["checkpoints/*", "best_model/*", "teacher_soft_targets.pt",
                                           ".tmp_*", ".old_*", RELEASE_JOURNAL])


def train_one(args, accelerator, dataset, label_names, output_dir: Path, command: str, precision: str,
              protocol: str, dropped_rows: int = 0, release: bool = True):
    """Train one model on ``dataset`` (train / validation / test splits), choose its checkpoint on
    validation (highest accuracy; ties go to the lower validation loss), evaluate the chosen one on
    validation and test (no TTA, flip, ten-crop), and write the folder (model, processor,
    ``eval_results.json``, plots; the model card for FER2013, FER+ and SFEW); ``release=False`` (folds)
    never pushes to the Hub.

    The steps: `setup_training`, `resume_training`, `train_epochs` (`run_epoch` and `save_checkpoint` per
    epoch), `final_evaluation`, `release_model`.

    Returns:
        the results dict (what ``eval_results.json`` holds), or None when the run stopped before its last
        epoch (--stop_after_epochs / --stop_after_minutes) for a later resume.

    Raises:
        FileNotFoundError: if --resume_from_checkpoint names a checkpoint folder that does not exist.
        ValueError: if a split has labels outside ``label_names``, or the model cannot be built as asked.
    """
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        recover_run_folder(output_dir)  # what a killed earlier invocation may have left half-done
    accelerator.wait_for_everyone()
    run = setup_training(args, accelerator, dataset, label_names, output_dir)
    state, last_checkpoint = resume_training(args, accelerator, run, output_dir)
    if not train_epochs(args, accelerator, run, output_dir, state, last_checkpoint, precision):
        accelerator.print(f"Stopped after epoch {state['epoch'] + 1} of {args.num_train_epochs}; resume with "
                          "--resume_from_checkpoint latest")
        accelerator.free_memory()
        return None
    best, results = final_evaluation(args, accelerator, run, dataset, label_names, output_dir, state, command,
                                     precision, protocol, dropped_rows)
    if accelerator.is_main_process:
        release_model(args, output_dir, best, run.processor, results, state["history"], command, label_names,
                      push=release)
    accelerator.wait_for_everyone()
    accelerator.free_memory()  # the next fold prepares its own model, optimizer and data loaders
    return results


def run_training(args, command: str):
    """What ``train_accelerate.py`` runs for one corpus: one training run (``--cv none``) or one per fold, each
    resumable; returns the run's results (the cross-validation summary for folds), None when stopped early
    for a later resume. ``command`` is the command line recorded in the results and the card."""
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    # Several CPU processes (torchrun / accelerate launch --cpu) need cpu=True for Accelerate to pick gloo.
    cpu = args.cpu or (not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1)
    # bf16 autocast is applied around the training forward pass only (below), so that evaluation and the
    # EMA always see the float32 model: Accelerate's own mixed precision patches model.forward, and
    # unwrapping with keep_fp32_wrapper=False removes that patch for good (training silently went
    # back to float32 after the first evaluation). fp16 (GPU) needs Accelerate's gradient scaler.
    precision = args.mixed_precision or os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    accelerator = Accelerator(cpu=cpu, gradient_accumulation_steps=args.gradient_accumulation_steps,
                              mixed_precision="fp16" if precision == "fp16" else "no",
                              log_with=args.report_to if args.with_tracking else None,
                              project_dir=args.output_dir)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    logger.info(accelerator.state, main_process_only=False)
    output_dir = Path(args.output_dir)
    with accelerator.main_process_first():
        corpus, label_names = load_corpus(args)
    dropped_rows = len(getattr(corpus, "dropped", []))
    if args.cv == "none":
        dataset, protocol = single_run_splits(args, corpus)
        results = train_one(args, accelerator, dataset, label_names, output_dir, command, precision, protocol,
                            dropped_rows)
        accelerator.end_training()
        return results
    folds = cross_validation_folds(args, corpus["train"])
    fold_results = []
    for index, (train_index, test_index) in enumerate(folds):
        fold_dir = output_dir / f"fold_{index:02d}"
        if accelerator.is_main_process and fold_dir.is_dir():
            recover_release(fold_dir)  # a fold killed while publishing: finish it before judging it done
        accelerator.wait_for_everyone()
        if (fold_dir / "eval_results.json").is_file():
            fold_results.append(json.loads((fold_dir / "eval_results.json").read_text()))
            continue
        dataset = fold_splits(args, corpus["train"], train_index, test_index, seed=args.seed + index)
        results = train_one(args, accelerator, dataset, label_names, fold_dir, command, precision,
                            f"{folds.protocol}; fold {index + 1} of {len(folds)}: checkpoint chosen on held-out "
                            f"training {'images' if args.cv == 'stratified' else 'subjects'}, evaluated on the "
                            "fold's own test part only", dropped_rows,
                            release=False)
        if results is None:  # stopped for a later resume
            accelerator.end_training()
            return None
        fold_results.append(results)
        args.resume_from_checkpoint = None  # only the interrupted fold resumes
    summary = summarize_folds(fold_results, folds, command, args)
    if accelerator.is_main_process:
        atomic_write_text(output_dir / "cv_results.json", json.dumps(summary, indent=1))
        accelerator.print(json.dumps({k: summary[k] for k in ("protocol", "accuracy_mean", "accuracy_std",
                                                              "macro_f1_mean", "macro_f1_std")}, indent=1))
    accelerator.end_training()
    return summary
