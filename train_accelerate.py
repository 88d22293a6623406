#!/usr/bin/env python
"""Train a fer_hf model on a FER corpus with 🤗 Accelerate.

Shaped like transformers' ``examples/pytorch/image-classification/run_image_classification_no_trainer.py``.

    accelerate launch train_accelerate.py --dataset fer2013 \
        --data_dir ../shared/data/fer2013/fer2013_images.zip --output_dir runs/fer-vgg

Protocol (see GUIDE.md §4): train on Training, choose the checkpoint on PublicTest (``validation``)
only, report PrivateTest (``test``) and PublicTest once at the end, with and without flip TTA.
Runs on 1 process or several (``accelerate launch --num_processes 2 --cpu`` / ``torchrun``);
evaluation uses ``gather_for_metrics`` so that metrics cover each image exactly once.
"""

import argparse
import logging
import shlex
import sys
from pathlib import Path

from fer_hf.cli.flags import dash_flags
from fer_hf.models import FER_MODEL_PRESETS, TRAINABLE_MODEL_TYPES
from fer_hf.training import multicorpus
from fer_hf.training.augmentation import AUGMENTATION_PRESETS
from fer_hf.training.losses import CLASS_WEIGHTINGS
from fer_hf.data.registry import CORPORA
from fer_hf.training.trainer import rewrite_model_card, run_training


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", default="fer2013", choices=list(CORPORA),
                      help="Corpus to train on (loaders in fer_hf.data). fer2013 / ferplus: train on Training, select "
                           "on PublicTest (FER2013Valid), report PrivateTest (FER2013Test). sfew: train on Train, "
                           "select on held-out Train movies (--validation_fraction), report Val. ckplus / jaffe: "
                           "cross-validation (--cv).")
    data.add_argument("--data_dir", help="The corpus: fer2013.csv / image-folder zip or folder (fer2013), "
                                         "ferplus_images.zip or its unpacked folder (ferplus), CK+48, the JAFFE "
                                         "folder, the SFEW folder; or a Hub dataset id.")
    data.add_argument("--label_set", default=None, choices=["fer2013", "ferplus"],
                      help="fer2013: 7 classes; ferplus: + contempt. Default: ferplus for ferplus and ckplus, "
                           "fer2013 otherwise. Classes without any image in the corpus are left out of the model "
                           "(CK+48 has no neutral).")
    data.add_argument("--ferplus_labels", default="majority", choices=["majority", "distribution"],
                      help="FER+: majority vote (unknown / not-a-face majorities dropped), or train on the vote "
                           "distribution (soft-target cross-entropy; evaluation still on the majority label).")
    data.add_argument("--cv", default="none", choices=["none", "subject", "loso", "stratified"],
                      help="Cross-validation: subject (subject-independent k-fold), loso (leave one subject out), "
                           "stratified (random stratified k-fold: NOT subject-independent, as the original systems "
                           "did). Each fold's model is chosen on held-out training subjects and evaluated on its "
                           "own test fold only; mean +/- std over folds in cv_results.json.")
    data.add_argument("--folds", type=int, default=10, help="Number of folds for --cv subject / stratified.")
    data.add_argument("--validation_fraction", type=float, default=0.1,
                      help="Share of training subjects (CV) or SFEW Train movies held out for checkpoint selection.")
    data.add_argument("--drop_cross_split_duplicates", action="store_true",
                      help="Drop from Training every image whose pixels also occur in the validation or test split.")
    data.add_argument("--output_dir", required=True, help="Where the model, logs, plots and checkpoints go.")
    data.add_argument("--max_train_samples", type=int, default=None, help="Random subset of train (for tests).")
    data.add_argument("--max_eval_samples", type=int, default=None, help="Random subset of validation/test (for tests).")

    model = parser.add_argument_group("model")
    model.add_argument("--model_type", default="fer_vgg", choices=sorted(TRAINABLE_MODEL_TYPES),
                       help="Architecture family (fer_hf/models/<family>/).")
    model.add_argument("--config_preset", default=None,
                       help="A named configuration of the family, e.g. fer_vgg: " + ", ".join(FER_MODEL_PRESETS["fer_vgg"])
                            + " (see each family's *_PRESETS).")
    model.add_argument("--config_overrides", default=None,
                       help='Config arguments over the preset, e.g. "hidden_sizes=[32,64,128],dropout_rate=0.3" '
                            "(values parsed as JSON).")
    model.add_argument("--model_name_or_path", default=None,
                       help="Start from a trained fer_hf model (folder or Hub id; safetensors only) instead of a "
                            "fresh one: fine-tuning. --model_type/--config_* are then ignored.")
    model.add_argument("--backbone_weights", default=None,
                       help="ImageNet initialisation for families with a torchvision backbone (fer_efficientnet, "
                            "fer_resnet): a local .safetensors/.pth file or a Hub id. If it cannot be loaded the "
                            "run trains from scratch and the model card says so.")
    model.add_argument("--model_name", default=None, help="Name used in the model card (default: output_dir name).")

    aug = parser.add_argument_group("augmentation (batched, on tensors)")
    aug.add_argument("--augmentation", default="crp", choices=AUGMENTATION_PRESETS,
                     help="none | crp: random crop (padding --crop_padding), rotation +/- --max_rotation_degrees, "
                          "horizontal flip | crp+color: + brightness/contrast 0.2 | crp+cutout: + random erasing "
                          "(p=0.5, area 1-11%%) | mixup+cutmix: crp + mixup or CutMix per batch (soft targets).")
    aug.add_argument("--crop_padding", type=int, default=4)
    aug.add_argument("--max_rotation_degrees", type=float, default=10.0)
    aug.add_argument("--max_translation", type=float, default=0.0,
                     help="Extra random translation (fraction of the face size) on top of the crop.")
    aug.add_argument("--max_scale_change", type=float, default=0.0, help="Random zoom in 1 +/- this.")

    loss = parser.add_argument_group("loss")
    loss.add_argument("--label_smoothing", type=float, default=0.1, help="Cross-entropy label smoothing.")
    loss.add_argument("--class_weighting", default="none", choices=CLASS_WEIGHTINGS,
                      help="Class-weighted cross-entropy from the training label counts (inverse or 1/sqrt).")
    loss.add_argument("--teacher_model", default=None,
                      help="Knowledge distillation (Hinton et al., 2015): a trained fer_hf model or ensemble "
                           "(folder; safetensors) whose soft targets on the un-augmented training faces are "
                           "computed once and mixed with the labels; with --corpus_mix the teacher reads every "
                           "augmented batch as the student sees it (resized and normalized as its own processor "
                           "would), so an ensemble or a gray 48 px model can teach a colour 112 px student.")
    loss.add_argument("--distillation_alpha", type=float, default=0.7,
                      help="Weight of the soft-target term (1 - alpha on the label cross-entropy).")
    loss.add_argument("--distillation_temperature", type=float, default=4.0)

    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--optimizer", default="adamw", choices=["adamw", "sgd"],
                     help="AdamW (no weight decay on norms and biases) or SGD with Nesterov momentum.")
    opt.add_argument("--learning_rate", type=float, default=3e-3, help="Peak learning rate.")
    opt.add_argument("--weight_decay", type=float, default=0.05,
                     help="Weight decay / L2 regularisation (not applied to norms and biases).")
    opt.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (Nesterov).")
    opt.add_argument("--lr_scheduler", default="onecycle", choices=["onecycle", "cosine", "plateau", "constant"],
                     help="OneCycle, cosine with linear warm-up, ReduceLROnPlateau on PublicTest accuracy, or constant.")
    opt.add_argument("--warmup_ratio", type=float, default=0.25,
                     help="Share of the steps spent warming up (OneCycle pct_start; cosine warm-up).")
    opt.add_argument("--plateau_factor", type=float, default=0.5, help="ReduceLROnPlateau factor.")
    opt.add_argument("--plateau_patience", type=int, default=3, help="ReduceLROnPlateau patience (epochs).")
    opt.add_argument("--early_stopping_patience", type=int, default=0,
                     help="Stop after this many epochs without a better PublicTest accuracy (0: never).")
    opt.add_argument("--max_grad_norm", type=float, default=5.0, help="Gradient clipping (0: off).")
    opt.add_argument("--ema_decay", type=float, default=0.0,
                     help="Keep an exponential moving average of the weights with this decay per step (e.g. "
                          "0.999; 0: off). Evaluation, selection and the released model then use the average.")
    opt.add_argument("--num_train_epochs", type=int, default=24)
    opt.add_argument("--per_device_train_batch_size", type=int, default=64)
    opt.add_argument("--per_device_eval_batch_size", type=int, default=256)
    opt.add_argument("--gradient_accumulation_steps", type=int, default=1)
    opt.add_argument("--seed", type=int, default=42)

    run = parser.add_argument_group("runtime")
    run.add_argument("--mixed_precision", default=None, choices=["no", "bf16", "fp16"],
                     help="Autocast for training (bf16 roughly doubles CPU training speed on CPUs with AVX512-BF16 "
                          "or AMX); evaluation always runs in float32. Default: accelerate's config.")
    run.add_argument("--no_channels_last", action="store_true", help="Disable channels_last memory format.")
    run.add_argument("--cpu", action="store_true", help="Train on the CPU even if a GPU is available.")
    run.add_argument("--num_threads", type=int, default=None, help="torch intra-op threads per process.")
    run.add_argument("--checkpoints_total_limit", type=int, default=2)
    run.add_argument("--resume_from_checkpoint", default=None,
                     help="A checkpoint folder (output_dir/checkpoints/epoch_N) or 'latest'.")
    run.add_argument("--stop_after_epochs", type=int, default=None,
                     help="Stop this invocation after N epochs (checkpointed); continue later with "
                          "--resume_from_checkpoint latest. The schedule still spans --num_train_epochs.")
    run.add_argument("--stop_after_minutes", type=float, default=None,
                     help="Stop this invocation (checkpointed) after the first epoch that ends past this many "
                          "minutes of wall-clock time; continue later with --resume_from_checkpoint latest.")
    run.add_argument("--rewrite_model_card", action="store_true",
                     help="Only rewrite README.md and the plots of a finished run in --output_dir from its "
                          "eval_results.json and train_log.jsonl (e.g. after the card template changed).")
    run.add_argument("--with_tracking", action="store_true", help="Also log to Accelerate trackers.")
    run.add_argument("--report_to", default="all")
    run.add_argument("--push_to_hub", action="store_true")
    run.add_argument("--hub_model_id", default=None)
    run.add_argument("--hub_token", default=None)
    multicorpus.add_arguments(parser)
    args = dash_flags(parser).parse_args(argv)
    if not args.data_dir and not args.rewrite_model_card and not args.corpus_mix:
        parser.error("--data_dir is required")
    if args.push_to_hub and not args.hub_model_id:
        parser.error("--push_to_hub needs --hub_model_id")
    if not 0.0 <= args.distillation_alpha <= 1.0 or args.distillation_temperature <= 0:
        parser.error("--distillation_alpha must be in [0, 1] and --distillation_temperature > 0")
    if args.config_preset and args.config_preset not in FER_MODEL_PRESETS[args.model_type]:
        parser.error(f"--config_preset {args.config_preset} is not a preset of {args.model_type}: "
                     f"{sorted(FER_MODEL_PRESETS[args.model_type])}")
    return args


def _underscored(argument: str) -> str:
    """``--hub-token`` -> ``--hub_token`` (``--a-b=value`` -> ``--a_b=value``); anything else unchanged."""
    if not argument.startswith("--"):
        return argument
    flag, sep, value = argument.partition("=")
    return "--" + flag[2:].replace("-", "_") + sep + value


def main(argv=None):
    args = parse_args(argv)
    if args.rewrite_model_card:
        return rewrite_model_card(Path(args.output_dir), parse_args)
    # flags compared in their underscore spelling: --hub-token and --hub_token are the same flag
    given = [_underscored(a) for a in (argv or sys.argv[1:])]
    if "--hub_token" in given:  # never write a token into logs, results or cards
        given[given.index("--hub_token") + 1: given.index("--hub_token") + 2] = ["***"]
    # the recorded command reproduces the run: flags that only split it into invocations are left out
    for control in ("--resume_from_checkpoint", "--stop_after_epochs", "--stop_after_minutes"):
        while control in given:
            del given[given.index(control): given.index(control) + 2]
    command = "accelerate launch train_accelerate.py " + " ".join(shlex.quote(a) for a in given)
    if args.corpus_mix:
        logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
        return multicorpus.train_multicorpus(args, command)
    return run_training(args, command)


if __name__ == "__main__":
    main()
