#!/usr/bin/env python
"""Every released model on every corpus: FER2013 PrivateTest, FER+ test (FER2013Test, majority vote),
CK+48 (all images), JAFFE (all images, faces detected and cropped by fer_hf) and SFEW 2.0 Val.

Each cell is `fer_hf.evaluation.evaluate_model` (the `fer-hf evaluate` report, no TTA) of a model folder
under ``model_cards/`` as released (no fine-tuning on the corpus: cross-dataset where the model was not
trained on it). Labels are matched by name: images of classes a model does not have (contempt for the
7-class models) are left out and counted; a model's classes that a corpus lacks (neutral on CK+48) are
removed from its argmax. Writes ``benchmarks/CROSS_DATASET.md`` and ``benchmarks/cross_dataset.json`` with
the command, and each full report under ``--reports_dir``.

    python benchmarks/cross_dataset.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

#: column -> (dataset, path under the data folder, reported split)
CORPORA = {
    "FER2013 PrivateTest": ("fer2013", "fer2013/fer2013_images.zip", "test"),
    "FER+ test (majority)": ("ferplus", "ferplus/ferplus_images.zip", "test"),
    "CK+48 (all)": ("ckplus", "ckplus/CK+48", "train"),
    "JAFFE (all)": ("jaffe", "jaffe", "train"),
    "SFEW 2.0 Val": ("sfew", "sfew", "validation"),
}


def main():
    from fer_hf.evaluation import evaluate_model
    from fer_hf.recognizer import available_models

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"), help="The shared data folder.")
    parser.add_argument("--models", nargs="+", default=None, help="Released model names (default: all).")
    parser.add_argument("--reports_dir", default="runs/cross_dataset")
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "CROSS_DATASET.md"))
    args = parser.parse_args()
    command = "python benchmarks/cross_dataset.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    models = args.models or available_models()
    table = {}
    for model in models:
        for column, (dataset, path, split) in CORPORA.items():
            out = Path(args.reports_dir) / model / dataset
            report = evaluate_model(str(REPO / "model_cards" / model), dataset, str(Path(args.data) / path),
                                    split=split, output_dir=str(out), calibration_split="none", command=command)
            table.setdefault(model, {})[column] = {
                "accuracy": report["accuracy"], "macro_f1": report["macro_f1"],
                "num_images": report["num_images"], "images_left_out": report["label_mapping"]["images_left_out"],
                "report": str(out / "metrics.json")}
            print(model, column, f"{report['accuracy']:.4f}", flush=True)
    (REPO / "benchmarks" / "cross_dataset.json").write_text(json.dumps({"command": command, "table": table}, indent=1))
    header = "| model | " + " | ".join(CORPORA) + " |"
    lines = [header, "| --- |" + " --- |" * len(CORPORA)]
    for model, row in table.items():
        cells = [f"{row[c]['accuracy'] * 100:.2f}% (F1 {row[c]['macro_f1']:.3f})" for c in CORPORA]
        lines.append(f"| `{model}` | " + " | ".join(cells) + " |")
    text = f"""# Cross-dataset accuracy of the released models

Written by `{command}`. Accuracy (macro-F1) of each released model as it is, no TTA; labels matched by
name (images of classes a model lacks are left out, a model's classes that a corpus lacks are removed from
its argmax; counts in `cross_dataset.json` and each report). Where a model was trained on a corpus, its
column is that corpus's own test protocol; elsewhere it is cross-dataset.

{chr(10).join(lines)}
"""
    Path(args.output).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
