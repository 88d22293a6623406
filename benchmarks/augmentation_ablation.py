#!/usr/bin/env python
"""Ablation of the augmentation presets of ``train_accelerate.py --augmentation`` on one architecture.

Trains one model per preset with everything else fixed, under the FER2013 protocol (checkpoint chosen on
PublicTest, PrivateTest reported once), then writes ``benchmarks/results/augmentation_ablation.md`` with the
table and the exact commands. Interrupted runs resume from their last checkpoint when the script is run
again; finished runs are not repeated.

    python benchmarks/augmentation_ablation.py --data_dir ../shared/data/fer2013/fer2013_images.zip \
        --epochs 12 --runs_dir runs/ablation
"""

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

from common import REPO, command_line, result_path, write_text

from fer_hf.training.augmentation import AUGMENTATION_PRESETS  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--runs_dir", default="runs/ablation")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--presets", nargs="+", default=list(AUGMENTATION_PRESETS), choices=AUGMENTATION_PRESETS)
    parser.add_argument("--train_args", default="--model_type fer_vgg --mixed_precision bf16 --num_threads 1",
                        help="Extra train_accelerate.py arguments shared by every run.")
    parser.add_argument("--output", default=str(result_path("augmentation_ablation")))
    parser.add_argument("--report_only", action="store_true", help="Only rewrite the table from finished runs.")
    args = parser.parse_args()
    runs = Path(args.runs_dir)
    commands = {}
    for preset in args.presets:
        out = runs / preset.replace("+", "_")
        command = [sys.executable, str(REPO / "train_accelerate.py"), "--dataset", "fer2013", "--data_dir",
                   args.data_dir, "--output_dir", str(out), "--num_train_epochs", str(args.epochs),
                   "--augmentation", preset, "--model_name", f"ablation-{preset}", *shlex.split(args.train_args)]
        commands[preset] = command
        if args.report_only or (out / "eval_results.json").is_file():
            continue
        resume = ["--resume_from_checkpoint", "latest"] if list((out / "checkpoints").glob("epoch_*")) else []
        print("running:", " ".join(shlex.quote(c) for c in command + resume), flush=True)
        subprocess.run(command + resume, check=True)
    rows = []
    for preset in args.presets:
        results_file = runs / preset.replace("+", "_") / "eval_results.json"
        if not results_file.is_file():
            rows.append(f"| `{preset}` | not run yet | | | | | | |")
            continue
        r = json.loads(results_file.read_text())
        rows.append(f"| `{preset}` | {r['validation']['accuracy'] * 100:.2f}% | **{r['test']['accuracy'] * 100:.2f}%** | "
                    f"{r['test']['macro_f1']:.4f} | {r['test_flip_tta']['accuracy'] * 100:.2f}% | "
                    f"{r['best_epoch']} / {r['epochs_trained']} | {r['training_hours']:.2f} | "
                    f"{r['args'].get('num_threads')} |")
    shown = command_line("augmentation_ablation")
    one = " ".join(shlex.quote(c) for c in ["accelerate", "launch", "train_accelerate.py",
                                            *commands[args.presets[0]][2:]])
    text = f"""# Augmentation ablation

Each row is one training run of the same model and recipe, only `--augmentation` differs (presets in
`fer_hf/training/augmentation.py`). FER2013 protocol: checkpoint chosen on PublicTest, PrivateTest reported once;
"flip TTA" averages the face and its mirror image. Written by:

```bash
{shown}
```

which runs, per preset (here the first), `{one}`. Each run's exact command is in its `eval_results.json`;
runs resumed in another session may have used another `--num_threads` (last column), which changes
nothing but speed and floating-point rounding.

| augmentation | PublicTest acc. (selection) | PrivateTest acc. | PrivateTest macro-F1 | PrivateTest acc., flip TTA | best epoch / epochs | training hours | torch threads |
| --- | --- | --- | --- | --- | --- | --- | --- |
""" + "\n".join(rows) + "\n"
    write_text(args.output, text)
    print(text)


if __name__ == "__main__":
    main()
