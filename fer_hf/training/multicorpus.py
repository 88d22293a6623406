"""Multi-corpus training for faces in real photos: corpora mixed with sampling weights, class- and
corpus-balanced sampling, FER+ vote distributions as soft labels, augmentation for real photos, frozen
early blocks while the head warms up, checkpoints every epoch, selection on real-photo development splits.

Run through ``train_accelerate.py --corpus_mix ...`` (see `add_arguments`).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..evaluation.metrics import MIN_CLASS_FACES, min_class_faces, split_report
from ..evaluation.report import load_evaluation_split, predict_log_probabilities
from ..image_processing_fer import FerImageProcessor
from ..labels import FER2013_LABELS
from ..models import build_model, load_fer_model, parse_config_overrides
from .backbones import load_backbone_weights
from .face_cache import CORPORA, build_face_caches, load_cache
from .losses import distillation_loss
from .real_photo_augmentation import RealPhotoAugmentation, augment_batch, centre_frame, luma

logger = logging.getLogger(__name__)

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

#: Development splits whose mean balanced accuracy selects the checkpoint (written before the first run):
#: two real-photo splits (identity-disjoint) and FER2013 PublicTest. SFEW Val, the test splits and
#: PrivateTest are reported, never used for selection.
SELECTION_SPLITS = ("muxspace/validation", "tfeid/validation", "fer2013/validation")


def parse_mix(text: str) -> dict:
    """``"fer2013=1,muxspace=2,tfeid=1"`` -> {corpus: weight}. Raises ValueError for an unknown corpus or a
    weight that is not a positive number."""
    mix = {}
    for entry in filter(None, (e.strip() for e in text.split(","))):
        name, _, weight = entry.partition("=")
        name = name.strip()
        if name not in CORPORA:
            raise ValueError(f"unknown corpus {name!r} in --corpus_mix; known: {sorted(CORPORA)}")
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"weight of {name!r} must be a number; got {weight!r}") from None
        if not value > 0:
            raise ValueError(f"weight of {name!r} must be > 0; got {value}")
        mix[name] = value
    if not mix:
        raise ValueError("--corpus_mix names no corpus")
    return mix


class MixingSampler:
    """Draws (corpus, index) pairs: first a class, with probability proportional to
    ``count(class) ** class_power`` over the mix (0: every class equally often, the prior of a
    class-balanced test set; 1: as often as in the data), then a corpus holding that class, with probability
    proportional to ``weight(corpus) * count(corpus, class) ** corpus_power``, then an image of that class
    in that corpus, uniformly.

    Args:
        labels: {corpus: int array (N,) of label ids}.
        weights: {corpus: sampling weight}.
        num_labels: number of classes.
        class_power / corpus_power: see above.
        seed: of the ``numpy.random.Generator``; its state is saved in checkpoints (`state_dict`).
    """

    def __init__(self, labels: dict, weights: dict, num_labels: int, class_power: float = 0.0,
                 corpus_power: float = 1.0, seed: int = 0):
        self.corpora = [c for c in weights if c in labels and len(labels[c])]
        self.members = {(c, k): np.flatnonzero(labels[c] == k) for c in self.corpora for k in range(num_labels)}
        counts = np.array([[len(self.members[c, k]) for k in range(num_labels)] for c in self.corpora], float)
        totals = counts.sum(0)
        present = totals > 0
        class_p = np.where(present, np.power(np.maximum(totals, 1), class_power), 0.0)
        self.class_probabilities = class_p / class_p.sum()
        corpus_w = np.array([weights[c] for c in self.corpora])[:, None] * np.power(counts, corpus_power)
        corpus_w[counts == 0] = 0
        self.corpus_probabilities = corpus_w / np.maximum(corpus_w.sum(0, keepdims=True), 1e-12)
        self.rng = np.random.default_rng(seed)

    def expected_shares(self) -> dict:
        """{corpus: expected share of draws}, {class: expected share}."""
        joint = self.corpus_probabilities * self.class_probabilities[None, :]
        return ({c: float(joint[i].sum()) for i, c in enumerate(self.corpora)},
                {FER2013_LABELS[k]: float(p) for k, p in enumerate(self.class_probabilities)})

    def draw(self, n: int) -> list:
        """n (corpus, index) pairs."""
        classes = self.rng.choice(len(self.class_probabilities), size=n, p=self.class_probabilities)
        out = []
        for k in classes:
            c = self.rng.choice(len(self.corpora), p=self.corpus_probabilities[:, k])
            members = self.members[self.corpora[c], k]
            out.append((self.corpora[c], int(members[self.rng.integers(len(members))])))
        return out

    def state_dict(self) -> dict:
        return {"bit_generator": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["bit_generator"]


def new_model_processor(config) -> FerImageProcessor:
    """The processor a new model is trained with: for a 3-channel model (`fer_mobilenet` and the other
    ImageNet-initialised families) colour at ``config.image_size`` px with ImageNet mean / std; for a 1-channel one
    (`fer_vgg` ...) gray with fer_hf's default mean / std."""
    size = {"height": config.image_size, "width": config.image_size}
    if config.num_channels == 3:
        return FerImageProcessor(num_channels=3, do_grayscale=False, size=size, image_mean=IMAGENET_MEAN,
                                 image_std=IMAGENET_STD)
    return FerImageProcessor(num_channels=config.num_channels, size=size)


def model_input(x: torch.Tensor, processor: FerImageProcessor) -> torch.Tensor:
    """float RGB (batch, 3, H, W) in [0, 1] -> what ``processor`` gives its model from the same face: gray by the
    luma transform for a 1-channel processor (3 equal channels for a 3-channel one with ``do_grayscale``), then
    normalized with its ``image_mean`` / ``image_std``. float (batch, processor.num_channels, H, W)."""
    if processor.num_channels == 1:
        x = luma(x)
    elif getattr(processor, "do_grayscale", False):
        x = luma(x).expand(-1, 3, -1, -1)
    mean = torch.tensor(processor.image_mean, dtype=x.dtype).view(1, -1, 1, 1)
    std = torch.tensor(processor.image_std, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - mean) / std


@torch.no_grad()
def evaluate_cache(model, cache: dict, processor: FerImageProcessor, batch_size: int = 256) -> np.ndarray:
    """Logits (N, num_labels) float32 of the recognizer frame of every cached face, as ``processor`` feeds it."""
    model.eval()
    out = []
    for start in range(0, len(cache["labels"]), batch_size):
        images = torch.from_numpy(cache["images"][start:start + batch_size]).permute(0, 3, 1, 2).float() / 255.0
        x = model_input(centre_frame(images, processor.size["height"]), processor)
        x = x.contiguous(memory_format=torch.channels_last)
        out.append(model(pixel_values=x).logits.float().numpy())
    return np.concatenate(out)


def recognizer_dev_sets(splits, data_root, processor) -> dict:
    """Development splits as ``fer-hf evaluate`` reads them (`fer_hf.evaluation.report.load_evaluation_split`:
    muxspace / tfeid photos replaced by the recognizer's crop of their face, cached by
    `fer_hf.evaluation.face_crops`), decoded once through ``processor`` (`fer_hf.data.dataset_to_uint8`); scored
    with `fer_hf.evaluation.report.predict_log_probabilities`, as ``fer-hf evaluate`` scores them.

    Args:
        splits: ``corpus/split`` names (corpora of `CORPORA`); data_root: the shared data folder.
        processor: the `FerImageProcessor` the trained model is saved with.
    Returns:
        {split: {"images": uint8 tensor (N, C, H, W), "labels": int64 (N,) in FER2013 label ids}}.
    Raises:
        ValueError: for an unknown corpus or split, or a split whose labels are not FER2013's seven.
    """
    from ..data import dataset_to_uint8

    out = {}
    for key in splits:
        corpus, split = key.split("/")
        if corpus not in CORPORA:
            raise ValueError(f"unknown corpus {corpus!r} in {key}; known: {sorted(CORPORA)}")
        ds = load_evaluation_split(corpus, str(Path(data_root) / CORPORA[corpus].default_path), split)
        if list(ds.features["label"].names) != list(FER2013_LABELS):
            raise ValueError(f"{key} labels {ds.features['label'].names} are not FER2013's {list(FER2013_LABELS)}")
        images, labels = dataset_to_uint8(ds, processor, desc=f"decode {key}")
        out[key] = {"images": images, "labels": labels.numpy()}
    return out


def backbone_blocks(model):
    """The ordered blocks ``--freeze_blocks`` counts: ``features`` of the torchvision-based families
    (`fer_mobilenet`, `fer_efficientnet`), ``stages`` of the fer_hf CNNs (`fer_vgg`, `fer_conv1x1`, `fer_lrn`,
    `fer_acnn_alstm`); None for a model with neither."""
    base = model.base_model
    return getattr(base, "features", None) if hasattr(base, "features") else getattr(base, "stages", None)


def set_frozen(model, blocks: int) -> None:
    """Freeze the first ``blocks`` of `backbone_blocks` (weights and BatchNorm statistics)."""
    for i, block in enumerate(backbone_blocks(model)):
        frozen = i < blocks
        for p in block.parameters():
            p.requires_grad = not frozen
        block.train(not frozen and model.training)


def add_arguments(parser) -> None:
    group = parser.add_argument_group("multi-corpus training (real photos)")
    group.add_argument("--corpus_mix", "--corpus-mix", default=None,
                       help="Train on a mix of corpora with sampling weights, e.g. "
                            "'fer2013=1,muxspace=2,tfeid=1,ckplus=0.5,jaffe=0.5,sfew=1' (train splits only; "
                            "muxspace/tfeid validation, FER2013 PublicTest and SFEW Val are development splits).")
    group.add_argument("--shared_data_dir", "--shared-data-dir", default="../shared/data",
                       help="Folder holding the corpora (their default sub-paths).")
    group.add_argument("--face_cache_dir", "--face-cache-dir", default="runs/face_cache",
                       help="Where the framed face crops of every corpus are cached (built once).")
    group.add_argument("--face_cache_size", "--face-cache-size", type=int, default=128,
                       help="Side of each cached context crop in pixels; the face (the recognizer's frame) fills "
                            "1 / CONTEXT_SCALE of it (128: 80 px faces, 192: 120 px faces, so that a 112 px model "
                            "sees large real-photo faces at their own resolution, as the recognizer gives them).")
    group.add_argument("--face_detector", "--face-detector", default="mtcnn",
                       help="Detector that frames corpus faces like the recognizer (none: whole images; tests).")
    group.add_argument("--class_power", "--class-power", type=float, default=0.0,
                       help="Class sampling probability ~ count ** this (0: class-balanced).")
    group.add_argument("--corpus_power", "--corpus-power", type=float, default=0.5,
                       help="Within a class, corpus probability ~ weight * count ** this.")
    group.add_argument("--sample_by", "--sample-by", default="label", choices=["label", "target"],
                       help="Which class a face counts as for class-balanced sampling: its corpus label, or the "
                            "majority class of its training target (for FER2013 the FER+ vote distribution, "
                            "which moves many FER2013 fear and disgust faces to other classes).")
    group.add_argument("--original_label_weight", "--original-label-weight", type=float, default=0.0,
                       help="For faces with FER+ votes (FER2013), the training target is (1 - w) * votes + w * "
                            "one-hot(FER2013's own label): 0 trains on FER+'s labels only, 1 on FER2013's.")
    group.add_argument("--samples_per_epoch", "--samples-per-epoch", type=int, default=20000)
    group.add_argument("--freeze_blocks", "--freeze-blocks", type=int, default=7,
                       help="Freeze the stem and first N feature blocks during --freeze_epochs.")
    group.add_argument("--freeze_epochs", "--freeze-epochs", type=int, default=1)
    group.add_argument("--selection_splits", "--selection-splits", nargs="+", default=list(SELECTION_SPLITS),
                       help="corpus/split pairs whose mean balanced accuracy selects the checkpoint.")
    group.add_argument("--report_splits", "--report-splits", nargs="*", default=["sfew/validation"],
                       help="corpus/split pairs also evaluated after every epoch, never used for selection.")
    group.add_argument("--selection_crops", "--selection-crops", default="cache", choices=["cache", "recognizer"],
                       help="How the development faces are framed: 'cache' = the training face cache's centre "
                            "frame (fast; a loose proxy of what users' photos give the model); 'recognizer' = as "
                            "`fer-hf evaluate` reads the split (muxspace / tfeid photos cropped by the recognizer's "
                            "detection, margin and eye alignment; FER2013 and SFEW through the saved image "
                            "processor), decoded once before the first epoch.")


@dataclass
class _Batch:
    pixel_values: torch.Tensor
    targets: torch.Tensor
    labels: torch.Tensor
    faces: torch.Tensor  # the augmented faces before normalization: float RGB (batch, 3, H, W) in [0, 1]


def training_targets(soft: np.ndarray, labels: np.ndarray, num_labels: int, original_label_weight: float = 0.0,
                     smoothing: float = 0.0) -> torch.Tensor:
    """Training targets (batch, num_labels) float32 that sum to 1.

    Args:
        soft: float32 (batch, >= num_labels): the cache's ``soft_labels`` (FER+ vote distributions for FER2013
            faces with votes, one-hot corpus labels elsewhere).
        labels: int (batch,): the corpus's own labels (FER2013's original label for FER2013 faces).
        original_label_weight: w in ``(1 - w) * votes + w * one-hot(label)``; on one-hot rows it changes nothing.
        smoothing: label smoothing, ``target * (1 - smoothing) + smoothing / num_labels``.
    """
    targets = torch.from_numpy(np.asarray(soft, np.float32))[:, :num_labels]
    targets = targets / targets.sum(1, keepdim=True)
    if original_label_weight:
        one_hot = F.one_hot(torch.as_tensor(labels, dtype=torch.long), num_labels).float()
        targets = (1 - original_label_weight) * targets + original_label_weight * one_hot
    return targets * (1 - smoothing) + smoothing / num_labels


def _gather(caches: dict, pairs: list, processor: FerImageProcessor, augmentation, generator, num_labels,
            smoothing, original_label_weight: float = 0.0) -> _Batch:
    images = np.stack([caches[c]["images"][i] for c, i in pairs])
    soft = np.stack([caches[c]["soft_labels"][i] for c, i in pairs])
    gray = torch.tensor([bool(caches[c]["is_gray"][i]) for c, i in pairs])
    labels = torch.tensor([int(caches[c]["labels"][i]) for c, i in pairs])
    x = augment_batch(torch.from_numpy(images).permute(0, 3, 1, 2), processor.size["height"], augmentation,
                      generator, gray)
    targets = training_targets(soft, labels.numpy(), num_labels, original_label_weight, smoothing)
    return _Batch(model_input(x, processor).contiguous(memory_format=torch.channels_last), targets, labels, x)


def load_teacher(path) -> tuple:
    """A trained fer_hf model or ensemble (folder) and its saved `FerImageProcessor`, in eval mode with
    gradients off, for online distillation (`teacher_probabilities`).

    Raises:
        ValueError: if the folder holds no fer_hf model or processor, or the teacher's classes are not
            FER2013's seven in their order (its probabilities would be matched to the wrong classes).
    """
    try:
        teacher = load_fer_model(path)
        processor = FerImageProcessor.from_pretrained(path)
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"--teacher_model {path}: not a trained fer_hf model with its image processor "
                         f"({error})") from None
    labels = [teacher.config.id2label[i] for i in range(teacher.config.num_labels)]
    if labels != list(FER2013_LABELS):
        raise ValueError(f"--teacher_model {path} predicts {labels}; distillation needs FER2013's classes in "
                         f"their order {list(FER2013_LABELS)}")
    return teacher.eval().requires_grad_(False), processor


@torch.no_grad()
def teacher_probabilities(teacher, processor: FerImageProcessor, faces: torch.Tensor, temperature: float,
                          autocast: bool = False) -> torch.Tensor:
    """softmax(teacher logits / T) of the faces the student trains on, float32 (batch, num_labels).

    Args:
        faces: float RGB (batch, 3, H, W) in [0, 1], the augmented training faces (`_Batch.faces`): the teacher
            sees each face as the student does this step (framing, flip, blur, JPEG ...), resized with
            antialiasing to its own input size and turned gray / normalized as its own processor does
            (`model_input`), so an ensemble or a gray 48 px teacher can teach a colour 112 px student.
        temperature: T > 0 (Hinton et al., 2015).
        autocast: run the teacher under bf16 autocast (the probabilities are returned in float32).
    """
    size = processor.size["height"]
    if faces.shape[-1] != size:
        faces = F.interpolate(faces, size=(size, size), mode="bilinear", antialias=True,
                              align_corners=False).clamp(0, 1)
    x = model_input(faces, processor).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        logits = teacher(pixel_values=x).logits
    return (logits.float() / temperature).softmax(-1)


def train_multicorpus(args, command: str) -> dict:
    """Train a fer_hf model on ``args.corpus_mix`` (see `add_arguments`; the usual model, optimisation and
    runtime flags of ``train_accelerate.py`` apply). Writes to ``args.output_dir``: ``checkpoints/epoch_N``
    (model + optimizer + scheduler + sampler state), ``train_log.jsonl`` (one line per epoch with every
    development split's report), the selected model (``save_pretrained`` + processor) and
    ``eval_results.json``. Resumes from the newest complete checkpoint with ``--resume_from_checkpoint latest``.

    Raises:
        ValueError: for a bad ``--corpus_mix`` or a model without `backbone_blocks` to freeze.
    """
    from transformers import set_seed

    mix = parse_mix(args.corpus_mix)
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    set_seed(args.seed)
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    selection = list(args.selection_splits)
    monitored = selection + [s for s in args.report_splits if s not in selection]
    # with recognizer crops the development splits are read as `fer-hf evaluate` reads them (below), so only the
    # training corpora need a face cache
    recognizer_crops = args.selection_crops == "recognizer"
    corpora = sorted(set(mix) | (set() if recognizer_crops else {s.split("/")[0] for s in monitored}))
    files = build_face_caches(corpora, args.shared_data_dir, args.face_cache_dir, size=args.face_cache_size,
                              detector_name=args.face_detector)
    train = {c: load_cache(files[c]["train"]) for c in mix}
    if not recognizer_crops:
        try:
            monitor = {s: load_cache(files[s.split("/")[0]][s.split("/")[1]]) for s in monitored}
        except KeyError as error:
            raise ValueError(f"unknown development split {error}; corpora and their splits: "
                             f"{ {c: sorted(spec.splits) for c, spec in CORPORA.items()} }") from None
    leaks = [s for s in monitored if s.endswith("/train") and s.split("/")[0] in mix]
    if leaks:
        raise ValueError(f"{leaks} are training data of this mix; choose validation splits")
    num_labels = len(FER2013_LABELS)

    if args.model_name_or_path and args.backbone_weights:
        raise ValueError("--model_name_or_path starts from a trained model (its backbone included); "
                         "--backbone_weights is for a new one: give one of them")
    if args.model_name_or_path:  # fine-tuning a trained fer_hf model (e.g. a released real-photo model)
        model = load_fer_model(args.model_name_or_path)
        if backbone_blocks(model) is None:
            raise ValueError(f"{args.model_name_or_path} ({model.config.model_type}) has no backbone blocks "
                             "to freeze; multi-corpus training needs one (fer_mobilenet, fer_efficientnet, fer_vgg, ...)")
    else:
        model = build_model(args.model_type, args.config_preset, parse_config_overrides(args.config_overrides))
    # a warm start is fed as its saved processor feeds it (a gray 48 px FER2013 VGG stays gray at 48 px)
    processor = (FerImageProcessor.from_pretrained(args.model_name_or_path) if args.model_name_or_path
                 else new_model_processor(model.config))
    if recognizer_crops:
        monitor = recognizer_dev_sets(monitored, args.shared_data_dir, processor)
    # online distillation (Hinton et al., 2015): the teacher reads each augmented batch as the student sees it
    teacher, teacher_processor = load_teacher(args.teacher_model) if args.teacher_model else (None, None)
    alpha, temperature = args.distillation_alpha, args.distillation_temperature
    if args.backbone_weights:
        report = load_backbone_weights(model, args.backbone_weights)
        logger.info("backbone: %d tensors loaded from %s", len(report["loaded"]), args.backbone_weights)
    model = model.to(memory_format=torch.channels_last)
    sampling_labels = {c: (d["soft_labels"].argmax(1) if args.sample_by == "target" else d["labels"])
                       for c, d in train.items()}
    sampler = MixingSampler(sampling_labels, mix, num_labels, args.class_power, args.corpus_power, args.seed)
    corpus_shares, class_shares = sampler.expected_shares()
    steps_per_epoch = args.samples_per_epoch // args.per_device_train_batch_size
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=args.learning_rate)
    total_steps = steps_per_epoch * args.num_train_epochs
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.learning_rate, total_steps=total_steps,
                                                    pct_start=args.warmup_ratio, anneal_strategy="cos")
    augmentation = RealPhotoAugmentation()
    generator = torch.Generator().manual_seed(args.seed)
    start_epoch, best, history = 0, None, []
    checkpoints = output_dir / "checkpoints"
    log_file = output_dir / "train_log.jsonl"
    if args.resume_from_checkpoint:
        done = sorted((p for p in checkpoints.glob("epoch_*") if (p / "state.pt").is_file()),
                      key=lambda p: int(p.name.split("_")[1]))
        chosen = done[-1] if args.resume_from_checkpoint == "latest" and done else (
            Path(args.resume_from_checkpoint) if args.resume_from_checkpoint != "latest" else None)
        if chosen is not None:
            state = torch.load(chosen / "state.pt", weights_only=False)
            if state["scheduler"].get("total_steps") != total_steps:
                raise ValueError(f"{chosen} was trained with a schedule of {state['scheduler'].get('total_steps')} "
                                 f"steps, this run asks for {total_steps}: resume with the same "
                                 "--num_train_epochs, --samples_per_epoch and batch size")
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            sampler.load_state_dict(state["sampler"])
            generator.set_state(state["generator"])
            start_epoch, best = state["epoch"], state["best"]
            history = [json.loads(line) for line in log_file.read_text().splitlines()][:start_epoch]
            logger.info("resumed from %s (epoch %d)", chosen, start_epoch)
    settings = {"command": command, "mix": mix, "sample_by": args.sample_by, "class_power": args.class_power,
                "corpus_power": args.corpus_power,
                "expected_corpus_shares": corpus_shares, "expected_class_shares": class_shares,
                "augmentation": augmentation.to_dict(), "selection_splits": selection,
                "min_class_faces": MIN_CLASS_FACES, "train_faces": {c: int(len(d["labels"])) for c, d in train.items()},
                "backbone_weights": args.backbone_weights, "model_name_or_path": args.model_name_or_path,
                "original_label_weight": args.original_label_weight, "label_smoothing": args.label_smoothing,
                "mixed_precision": args.mixed_precision,
                "selection_crops": args.selection_crops, "face_cache_size": args.face_cache_size,
                "teacher_model": args.teacher_model,
                "distillation_alpha": alpha if teacher is not None else None,
                "distillation_temperature": temperature if teacher is not None else None}
    (output_dir / "mix_settings.json").write_text(json.dumps(settings, indent=1))
    # bf16 autocast for the training forward only (the loss and every development report stay float32)
    autocast = args.mixed_precision == "bf16"
    started = time.time()
    for epoch in range(start_epoch, args.num_train_epochs):
        model.train()
        frozen = args.freeze_blocks if epoch < args.freeze_epochs else 0
        set_frozen(model, frozen)
        t0, losses, seen = time.time(), [], 0
        from tqdm.auto import tqdm

        for _ in tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}", mininterval=30):
            batch = _gather(train, sampler.draw(args.per_device_train_batch_size), processor, augmentation,
                            generator, num_labels, args.label_smoothing, args.original_label_weight)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                logits = model(pixel_values=batch.pixel_values).logits
            loss = -(batch.targets * F.log_softmax(logits.float(), 1)).sum(1).mean()
            if teacher is not None:
                soft_targets = teacher_probabilities(teacher, teacher_processor, batch.faces, temperature, autocast)
                loss = (1 - alpha) * loss + alpha * distillation_loss(logits.float(), soft_targets, temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if args.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            seen += len(batch.labels)
        train_seconds = time.time() - t0
        reports = {}
        for split, cache in monitor.items():
            logits = (predict_log_probabilities(model, processor, cache["images"], device="cpu") if recognizer_crops
                      else evaluate_cache(model, cache, processor))
            minimum = min_class_faces(split)
            reports[split] = split_report(cache["labels"], logits, num_labels, minimum)
        score = float(np.mean([reports[s]["balanced_accuracy"] for s in selection]))
        entry = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "frozen_blocks": frozen,
                 "images_per_second": seen / train_seconds, "epoch_seconds": train_seconds,
                 "learning_rate": scheduler.get_last_lr()[0], "selection_score": score, "splits": reports}
        history.append(entry)
        improved = best is None or score > best["selection_score"]
        if improved:
            best = {"epoch": epoch + 1, "selection_score": score}
            model.save_pretrained(output_dir / "best")
        with open(log_file, "w") as handle:
            handle.writelines(json.dumps(h) + "\n" for h in history)
        target = checkpoints / f"epoch_{epoch + 1}"
        target.mkdir(parents=True, exist_ok=True)
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "sampler": sampler.state_dict(),
                    "generator": generator.get_state(), "epoch": epoch + 1, "best": best}, target / "state.tmp")
        (target / "state.tmp").replace(target / "state.pt")
        for old in checkpoints.glob("epoch_*"):
            if old != target and int(old.name.split("_")[1]) < epoch + 1 - (args.checkpoints_total_limit - 1):
                for f in old.iterdir():
                    f.unlink()
                old.rmdir()
        logger.info("epoch %d: loss %.4f, selection %.4f (%s), %.1f img/s", epoch + 1, entry["train_loss"], score,
                    ", ".join(f"{s} {reports[s]['balanced_accuracy']:.3f}" for s in monitored),
                    entry["images_per_second"])
        print(json.dumps({"epoch": epoch + 1, "loss": round(entry["train_loss"], 4), "selection": round(score, 4),
                          **{s: round(reports[s]["balanced_accuracy"], 4) for s in monitored},
                          "img_s": round(entry["images_per_second"], 1)}), flush=True)
        out_of_time = args.stop_after_minutes and (time.time() - started) / 60 >= args.stop_after_minutes
        enough_epochs = args.stop_after_epochs and epoch + 1 - start_epoch >= args.stop_after_epochs
        if (out_of_time or enough_epochs) and epoch + 1 < args.num_train_epochs:
            logger.info("stopping after epoch %d, %.1f minutes (resume with --resume_from_checkpoint latest)",
                        epoch + 1, (time.time() - started) / 60)
            return {"stopped_early": True, "epoch": epoch + 1, "best": best}
    processor.save_pretrained(output_dir / "best")
    result = {"stopped_early": False, "best": best, "epochs": len(history)}
    (output_dir / "train_result.json").write_text(json.dumps(result, indent=1))
    return result
