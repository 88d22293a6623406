#!/usr/bin/env python
"""How much do FER2013's cross-split duplicates flatter a model? Accuracy on the PublicTest / PrivateTest
faces whose exact pixels also occur in Training ("with a Training twin") against the others, for models
trained with and without ``--drop_cross_split_duplicates``.

Duplicates are `fer_hf.data.image_hashes` matches (identical decoded pixels), as in
``benchmarks/results/data_quality.md``. Writes ``benchmarks/results/duplicate_effect.md`` and ``.json``
with the command; no TTA.

    python benchmarks/duplicate_effect.py --data_dir ../shared/data/fer2013/fer2013_images.zip \
        --models runs/ablation/crp runs/dedup/crp
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import command_line, result_path, write_json, write_text

SPLITS = {"validation": "PublicTest", "test": "PrivateTest"}


def main():
    import numpy as np
    from transformers import AutoImageProcessor

    from fer_hf.data import dataset_to_uint8, image_hashes, load_fer2013
    from fer_hf.training.ensembling import predict_probabilities
    from fer_hf.models import load_fer_model

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True, help="FER2013 (fer2013.csv, image-folder zip/folder).")
    parser.add_argument("--models", nargs="+", required=True, help="Trained fer_hf model folders.")
    parser.add_argument("--output", default=str(result_path("duplicate_effect")))
    args = parser.parse_args()
    command = command_line("duplicate_effect")

    corpus = load_fer2013(args.data_dir)
    train_hashes = image_hashes(corpus["train"])
    train_labels = {}
    for h, label in zip(train_hashes, corpus["train"]["label"]):
        train_labels.setdefault(h, set()).add(label)
    twins = {}
    for split in SPLITS:
        hashes = image_hashes(corpus[split])
        labels = corpus[split]["label"]
        has_twin = np.array([h in train_labels for h in hashes])
        same_label = np.array([h in train_labels and label in train_labels[h] for h, label in zip(hashes, labels)])
        twins[split] = {"has_twin": has_twin, "same_label": same_label}

    rows = {}
    for path in args.models:
        model = load_fer_model(path).eval()
        processor = AutoImageProcessor.from_pretrained(path)
        results = json.loads((Path(path) / "eval_results.json").read_text()) if (
            Path(path) / "eval_results.json").is_file() else {}
        row = {"drop_cross_split_duplicates": bool(results.get("args", {}).get("drop_cross_split_duplicates")),
               "train_images": results.get("split_sizes", {}).get("train")}
        for split, name in SPLITS.items():
            images, labels = dataset_to_uint8(corpus[split], processor, desc=f"decode {name}")
            correct = (predict_probabilities(model, processor, images).argmax(-1) == labels).numpy()
            has_twin, same_label = twins[split]["has_twin"], twins[split]["same_label"]
            row[name] = {"all": float(correct.mean()), "num_images": int(len(correct)),
                         "with_twin": float(correct[has_twin].mean()), "num_with_twin": int(has_twin.sum()),
                         "with_twin_same_label": float(correct[same_label].mean()),
                         "num_with_twin_same_label": int(same_label.sum()),
                         "without_twin": float(correct[~has_twin].mean()), "num_without_twin": int((~has_twin).sum())}
        rows[path] = row
        print(path, json.dumps(row), flush=True)

    write_json(Path(args.output).with_suffix(".json"), {"command": command, "models": rows})
    lines = ["| model | Training images | split | all | with a Training twin | twin with the same label | "
             "without a twin |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for path, row in rows.items():
        for name in SPLITS.values():
            m = row[name]
            lines.append(f"| `{path}`{' (duplicates dropped)' if row['drop_cross_split_duplicates'] else ''} | "
                         f"{row['train_images']} | {name} | {m['all'] * 100:.2f}% ({m['num_images']}) | "
                         f"{m['with_twin'] * 100:.2f}% ({m['num_with_twin']}) | "
                         f"{m['with_twin_same_label'] * 100:.2f}% ({m['num_with_twin_same_label']}) | "
                         f"{m['without_twin'] * 100:.2f}% ({m['num_without_twin']}) |")
    text = f"""# Cross-split duplicates and FER2013 accuracy

Written by `{command}`. Accuracy (no TTA; image counts in brackets) on the evaluation faces whose exact
pixels also occur in Training, on those whose Training twin carries the same label, and on the others.

{chr(10).join(lines)}
"""
    write_text(args.output, text)
    print(text)


if __name__ == "__main__":
    main()
