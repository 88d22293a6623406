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
import json
import logging
import math
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import set_seed
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from fer_hf import FER2013_LABELS, FerImageProcessor, FerVGGConfig, FerVGGForImageClassification
from fer_hf.augmentation import augment_batch
from fer_hf.data import dataset_to_uint8, load_fer2013
from fer_hf.metrics import classification_metrics
from fer_hf.modelcard import save_training_plots, write_model_card

logger = get_logger(__name__)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="fer2013", choices=["fer2013"], help="Corpus to train on.")
    parser.add_argument("--data_dir", help="fer2013.csv, the image-folder layout (zip or folder), or a Hub dataset id.")
    parser.add_argument("--output_dir", required=True, help="Where the model, logs, plots and checkpoints go.")
    parser.add_argument("--rewrite_model_card", action="store_true",
                        help="Only rewrite README.md and the plots of a finished run in --output_dir from its "
                             "eval_results.json and train_log.jsonl (e.g. after the card template changed).")
    parser.add_argument("--model_name", default=None, help="Name used in the model card (default: output_dir name).")
    parser.add_argument("--hidden_sizes", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--layers_per_stage", type=int, default=2)
    parser.add_argument("--classifier_hidden_size", type=int, default=512)
    parser.add_argument("--dropout_rate", type=float, default=0.4)
    parser.add_argument("--stage_dropout_rate", type=float, default=0.0)
    parser.add_argument("--num_train_epochs", type=int, default=24)
    parser.add_argument("--per_device_train_batch_size", type=int, default=64)
    parser.add_argument("--per_device_eval_batch_size", type=int, default=256)
    parser.add_argument("--gradient_accumulation_steps", type=int, default=1)
    parser.add_argument("--learning_rate", type=float, default=3e-3, help="Peak learning rate of OneCycle.")
    parser.add_argument("--weight_decay", type=float, default=0.05, help="AdamW weight decay (not on norms/biases).")
    parser.add_argument("--warmup_ratio", type=float, default=0.25, help="OneCycle pct_start.")
    parser.add_argument("--label_smoothing", type=float, default=0.1)
    parser.add_argument("--max_grad_norm", type=float, default=5.0)
    parser.add_argument("--crop_padding", type=int, default=4)
    parser.add_argument("--max_rotation_degrees", type=float, default=10.0)
    parser.add_argument("--max_translation", type=float, default=0.05)
    parser.add_argument("--max_train_samples", type=int, default=None, help="Random subset of train (for tests).")
    parser.add_argument("--max_eval_samples", type=int, default=None, help="Random subset of validation/test (for tests).")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--checkpoints_total_limit", type=int, default=2)
    parser.add_argument("--resume_from_checkpoint", default=None,
                        help="A checkpoint folder (output_dir/checkpoints/epoch_N) or 'latest'.")
    parser.add_argument("--stop_after_epochs", type=int, default=None,
                        help="Stop this invocation after N epochs (checkpointed); continue later with "
                             "--resume_from_checkpoint latest. The schedule still spans --num_train_epochs.")
    parser.add_argument("--cpu", action="store_true", help="Train on the CPU even if a GPU is available.")
    parser.add_argument("--num_threads", type=int, default=None, help="torch intra-op threads per process.")
    parser.add_argument("--no_channels_last", action="store_true", help="Disable channels_last memory format.")
    parser.add_argument("--with_tracking", action="store_true", help="Also log to Accelerate trackers.")
    parser.add_argument("--report_to", default="all")
    parser.add_argument("--push_to_hub", action="store_true")
    parser.add_argument("--hub_model_id", default=None)
    parser.add_argument("--hub_token", default=None)
    args = parser.parse_args(argv)
    if not args.data_dir and not args.rewrite_model_card:
        parser.error("--data_dir is required")
    if args.push_to_hub and not args.hub_model_id:
        parser.error("--push_to_hub needs --hub_model_id")
    return args


def split_decay_parameters(model, weight_decay):
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
        for split in ("validation", "test"):
            keep = torch.randperm(len(dataset[split]), generator=generator)[:max_eval_samples]
            dataset[split] = dataset[split].select(sorted(keep.tolist()))
    return dataset


def latest_checkpoint(output_dir: Path):
    checkpoints = sorted((output_dir / "checkpoints").glob("epoch_*"), key=lambda p: int(p.name.split("_")[1]))
    return checkpoints[-1] if checkpoints else None


@torch.no_grad()
def predict(model, loader, processor, accelerator, channels_last, flip_tta=False):
    """Return (logits (N, num_labels) float32, labels (N,)) gathered over all processes, once per image."""
    model.eval()
    all_logits, all_labels = [], []
    for images, labels in loader:
        pixel_values = processor.rescale_and_normalize(images)
        if channels_last:
            pixel_values = pixel_values.contiguous(memory_format=torch.channels_last)
        logits = model(pixel_values=pixel_values).logits
        if flip_tta:
            flipped = model(pixel_values=torch.flip(pixel_values, dims=[3])).logits
            logits = torch.log((logits.softmax(-1) + flipped.softmax(-1)) / 2)
        logits, labels = accelerator.gather_for_metrics((logits, labels))
        all_logits.append(logits.float().cpu())
        all_labels.append(labels.cpu())
    return torch.cat(all_logits), torch.cat(all_labels)


def write_card_and_plots(output_dir: Path, results: dict, history: list, args: dict, command: str,
                         num_parameters: int) -> None:
    save_training_plots(history, results["test"]["confusion_matrix"], FER2013_LABELS, output_dir)
    write_model_card(output_dir, results, history, args, command, model_name=args.get("model_name") or output_dir.name,
                     num_parameters=num_parameters, dropped_rows=results.get("dropped_rows", 0),
                     split_sizes=results.get("split_sizes"))


def rewrite_model_card(output_dir: Path) -> None:
    """Rewrite the card and plots of a finished run from the files it wrote. Runs that predate the
    ``split_sizes`` / ``args`` keys of eval_results.json have them recomputed from their command."""
    results = json.loads((output_dir / "eval_results.json").read_text())
    history = [json.loads(line) for line in (output_dir / "train_log.jsonl").read_text().splitlines() if line]
    command = results["command"]
    run_args = results.get("args") or vars(parse_args(shlex.split(command)[3:]))
    if "split_sizes" not in results:
        dataset = select_subsets(load_fer2013(run_args["data_dir"]), run_args["max_train_samples"],
                                 run_args["max_eval_samples"], run_args["seed"])
        results["split_sizes"] = {split: len(dataset[split]) for split in ("train", "validation", "test")}
        results["dropped_rows"] = len(dataset.dropped)
    model = FerVGGForImageClassification.from_pretrained(output_dir)
    write_card_and_plots(output_dir, results, history, run_args, command,
                         sum(p.numel() for p in model.parameters()))


def main(argv=None):
    args = parse_args(argv)
    if args.rewrite_model_card:
        return rewrite_model_card(Path(args.output_dir))
    given = list(argv or sys.argv[1:])
    if "--hub_token" in given:  # never write a token into logs, results or cards
        given[given.index("--hub_token") + 1: given.index("--hub_token") + 2] = ["***"]
    command = "accelerate launch train_accelerate.py " + " ".join(shlex.quote(a) for a in given)
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    # Several CPU processes (torchrun / accelerate launch --cpu) need cpu=True for Accelerate to pick gloo.
    cpu = args.cpu or (not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1)
    accelerator = Accelerator(cpu=cpu, gradient_accumulation_steps=args.gradient_accumulation_steps,
                              log_with=args.report_to if args.with_tracking else None,
                              project_dir=args.output_dir)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    logger.info(accelerator.state, main_process_only=False)
    set_seed(args.seed)
    output_dir = Path(args.output_dir)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()

    # ---------------------------------------------------------------- data
    processor = FerImageProcessor()
    with accelerator.main_process_first():
        dataset = load_fer2013(args.data_dir)
    dataset = select_subsets(dataset, args.max_train_samples, args.max_eval_samples, args.seed)
    train_x, train_y = dataset_to_uint8(dataset["train"], processor, desc="decode train")
    val_x, val_y = dataset_to_uint8(dataset["validation"], processor, desc="decode validation")
    test_x, test_y = dataset_to_uint8(dataset["test"], processor, desc="decode test")
    logger.info(f"train {len(train_y)}, validation (PublicTest) {len(val_y)}, test (PrivateTest) {len(test_y)}")

    train_loader = DataLoader(TensorDataset(train_x, train_y), batch_size=args.per_device_train_batch_size,
                              shuffle=True, drop_last=len(train_y) > args.per_device_train_batch_size)
    val_loader = DataLoader(TensorDataset(val_x, val_y), batch_size=args.per_device_eval_batch_size)
    test_loader = DataLoader(TensorDataset(test_x, test_y), batch_size=args.per_device_eval_batch_size)

    # ---------------------------------------------------------------- model
    config = FerVGGConfig(
        hidden_sizes=args.hidden_sizes, layers_per_stage=args.layers_per_stage,
        classifier_hidden_size=args.classifier_hidden_size, dropout_rate=args.dropout_rate,
        stage_dropout_rate=args.stage_dropout_rate,
        id2label=dict(enumerate(FER2013_LABELS)), label2id={n: i for i, n in enumerate(FER2013_LABELS)},
    )
    model = FerVGGForImageClassification(config)
    channels_last = not args.no_channels_last
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(split_decay_parameters(model, args.weight_decay), lr=args.learning_rate)
    train_loader, val_loader, test_loader = accelerator.prepare(train_loader, val_loader, test_loader)
    steps_per_epoch = math.ceil(len(train_loader) / args.gradient_accumulation_steps)
    # The prepared scheduler steps once per process per optimizer step (as in the transformers example).
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.learning_rate, pct_start=args.warmup_ratio,
        total_steps=steps_per_epoch * args.num_train_epochs * accelerator.num_processes,
    )
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)

    # ---------------------------------------------------------------- resume
    state = {"epoch": -1, "best_validation_accuracy": -1.0, "best_epoch": -1, "history": []}
    if args.resume_from_checkpoint:
        path = latest_checkpoint(output_dir) if args.resume_from_checkpoint == "latest" else Path(args.resume_from_checkpoint)
        if path is None or not path.exists():
            raise FileNotFoundError(f"No checkpoint to resume from: {args.resume_from_checkpoint}")
        accelerator.print(f"Resuming from {path}")
        accelerator.load_state(str(path))
        state = json.loads((path / "trainer_state.json").read_text())
    start_epoch = state["epoch"] + 1
    log_path = output_dir / "train_log.jsonl"

    # ---------------------------------------------------------------- train
    end_epoch = args.num_train_epochs
    if args.stop_after_epochs is not None:
        end_epoch = min(end_epoch, start_epoch + args.stop_after_epochs)
    progress = tqdm(total=args.num_train_epochs * len(train_loader), initial=start_epoch * len(train_loader),
                    disable=not accelerator.is_local_main_process, desc="train", unit="batch", mininterval=5)
    for epoch in range(start_epoch, end_epoch):
        model.train()
        started = time.time()
        loss_sum = torch.zeros((), dtype=torch.float64)
        correct = torch.zeros((), dtype=torch.long)
        seen = torch.zeros((), dtype=torch.long)
        for images, labels in train_loader:
            with accelerator.accumulate(model):
                augmented = augment_batch(images.float(), crop_padding=args.crop_padding,
                                          max_rotation_degrees=args.max_rotation_degrees,
                                          max_translation=args.max_translation)
                pixel_values = processor.rescale_and_normalize(augmented)
                if channels_last:
                    pixel_values = pixel_values.contiguous(memory_format=torch.channels_last)
                logits = model(pixel_values=pixel_values).logits
                loss = F.cross_entropy(logits, labels, label_smoothing=args.label_smoothing)
                accelerator.backward(loss)
                if accelerator.sync_gradients and args.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            loss_sum += loss.detach().double() * len(labels)
            correct += (logits.argmax(-1) == labels).sum().cpu()
            seen += len(labels)
            progress.update(1)
            progress.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}", refresh=False)
        train_seconds = time.time() - started
        totals = accelerator.reduce(torch.stack([loss_sum, correct.double(), seen.double()]).to(accelerator.device), "sum")
        logits_val, labels_val = predict(model, val_loader, processor, accelerator, channels_last)
        val_loss = F.cross_entropy(logits_val, labels_val).item()
        val_acc = (logits_val.argmax(-1) == labels_val).float().mean().item()
        record = {
            "epoch": epoch + 1, "train_loss": totals[0].item() / totals[2].item(),
            "train_accuracy": totals[1].item() / totals[2].item(), "validation_loss": val_loss,
            "validation_accuracy": val_acc, "learning_rate": scheduler.get_last_lr()[0],
            "train_seconds": round(train_seconds, 1),
            "train_images_per_second": round(totals[2].item() / train_seconds, 1),
        }
        state["history"].append(record)
        state["epoch"] = epoch
        improved = val_acc > state["best_validation_accuracy"]
        if improved:
            state["best_validation_accuracy"], state["best_epoch"] = val_acc, epoch + 1
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            with open(log_path, "a") as handle:
                handle.write(json.dumps(record) + "\n")
            if improved:
                accelerator.unwrap_model(model).save_pretrained(output_dir / "best_model")
        accelerator.print(json.dumps(record) + ("  <- best on PublicTest" if improved else ""))
        checkpoint = output_dir / "checkpoints" / f"epoch_{epoch}"
        accelerator.save_state(str(checkpoint))
        if accelerator.is_main_process:
            (checkpoint / "trainer_state.json").write_text(json.dumps(state, indent=1))
            old = sorted((output_dir / "checkpoints").glob("epoch_*"), key=lambda p: int(p.name.split("_")[1]))
            for stale in old[: max(0, len(old) - args.checkpoints_total_limit)]:
                shutil.rmtree(stale, ignore_errors=True)
        accelerator.wait_for_everyone()
    progress.close()
    if end_epoch < args.num_train_epochs:
        accelerator.print(f"Stopped after epoch {end_epoch} of {args.num_train_epochs}; resume with "
                          "--resume_from_checkpoint latest")
        accelerator.end_training()
        return None

    # ---------------------------------------------------------------- final evaluation of the chosen checkpoint
    accelerator.wait_for_everyone()
    best = FerVGGForImageClassification.from_pretrained(output_dir / "best_model")
    accelerator.unwrap_model(model).load_state_dict(best.state_dict())
    results = {"protocol": "checkpoint chosen on PublicTest (validation) accuracy; PrivateTest (test) reported",
               "best_epoch": state["best_epoch"], "epochs_trained": state["epoch"] + 1, "command": command,
               "args": {k: v for k, v in vars(args).items() if k != "hub_token"}, "dropped_rows": len(getattr(dataset, "dropped", [])),
               "split_sizes": {"train": len(train_y), "validation": len(val_y), "test": len(test_y)}}
    for split, loader in (("validation", val_loader), ("test", test_loader)):
        for tta in (False, True):
            logits, labels = predict(model, loader, processor, accelerator, channels_last, flip_tta=tta)
            metrics = classification_metrics(labels.numpy(), logits.argmax(-1).numpy(), FER2013_LABELS)
            results[f"{split}{'_flip_tta' if tta else ''}"] = metrics
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        unwrapped.save_pretrained(output_dir, safe_serialization=True)
        processor.save_pretrained(output_dir)
        (output_dir / "eval_results.json").write_text(json.dumps(results, indent=1))
        write_card_and_plots(output_dir, results, state["history"], vars(args), command,
                             sum(p.numel() for p in unwrapped.parameters()))
        logger.info(f"PrivateTest accuracy {results['test']['accuracy']:.4f} "
                    f"(PublicTest {results['validation']['accuracy']:.4f}, best epoch {state['best_epoch']})")
        if args.push_to_hub:
            from huggingface_hub import HfApi

            api = HfApi(token=args.hub_token)
            api.create_repo(args.hub_model_id, exist_ok=True)
            api.upload_folder(repo_id=args.hub_model_id, folder_path=str(output_dir),
                              ignore_patterns=["checkpoints/*", "best_model/*"])
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return results


if __name__ == "__main__":
    main()
