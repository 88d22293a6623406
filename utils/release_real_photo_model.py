#!/usr/bin/env python
"""Release a multi-corpus model (``train_accelerate.py --corpus_mix ...``) under ``model_cards/NAME``: the
selected checkpoint (``RUN/best``), with the prior correction when its adoption test passed, measured on every
development and reported split through `fer_hf.evaluation.report.evaluate_model` (real photos cropped by the
recognizer), with ``eval_results.json``, the training log and settings, and a model card.

    python utils/release_real_photo_model.py --run_dir runs/real/mobilenet-112-mix2 --name fer-mobilenet-real \\
        [--prior_correction runs/real/mobilenet-112-mix2/best/prior_correction.json] \\
        --trained_on "CPU: 2-core AMD EPYC (AVX2), 2 threads"
    PYTHONPATH=. python utils/fix_copies.py

Splits (docs/real_photos_rules.md): development = muxspace validation people, tfeid validation performers and
FER2013 PublicTest (the checkpoint was selected on their mean balanced accuracy); reported only = muxspace test,
tfeid test, SFEW 2.0 Val, FER2013 PrivateTest, FER+ test (FER2013Test, majority vote).
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

#: key -> (corpus, path under the data folder, split, title, role)
SPLITS = {
    "muxspace/validation": ("muxspace", "muxspace", "validation", "muxspace validation people", "development"),
    "tfeid/validation": ("tfeid", "tfeid", "validation", "tfeid validation performers", "development"),
    "fer2013/validation": ("fer2013", "fer2013/fer2013_images.zip", "validation", "FER2013 PublicTest", "development"),
    "muxspace/test": ("muxspace", "muxspace", "test", "muxspace test people (real photos)", "reported"),
    "tfeid/test": ("tfeid", "tfeid", "test", "tfeid test performers (posed, colour)", "reported"),
    "sfew/validation": ("sfew", "sfew", "validation", "SFEW 2.0 Val (film stills)", "reported"),
    "fer2013/test": ("fer2013", "fer2013/fer2013_images.zip", "test", "FER2013 PrivateTest", "reported"),
    "ferplus/test": ("ferplus", "ferplus/ferplus_images.zip", "test", "FER+ test (majority vote)", "reported"),
}
SUMMARY_KEYS = ("num_images", "accuracy", "balanced_accuracy", "balanced_accuracy_over", "macro_f1", "answer_share")


def summary(report: dict) -> dict:
    out = {key: report[key] for key in SUMMARY_KEYS}
    out["recall"] = {name: values["recall"] for name, values in report["per_class"].items()}
    out["support"] = {name: values["support"] for name, values in report["per_class"].items()}
    out["images_left_out"] = report["label_mapping"]["images_left_out"]
    return out


def results_table(splits: dict) -> str:
    lines = ["| split | role | faces | balanced accuracy (classes) | accuracy | macro-F1 | most frequent answer |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for key, (_, _, _, title, role) in SPLITS.items():
        s = splits[key]
        top = max(s["answer_share"], key=s["answer_share"].get)
        over = len(s["balanced_accuracy_over"])
        bold = "**" if key == "fer2013/test" else ""
        lines.append(f"| {title} | {role} | {s['num_images']} | {s['balanced_accuracy'] * 100:.1f}% ({over}) | "
                     f"{bold}{s['accuracy'] * 100:.2f}%{bold} | {s['macro_f1']:.3f} | "
                     f"{top} {s['answer_share'][top] * 100:.0f}% |")
    return "\n".join(lines)


def recall_table(splits: dict, keys) -> str:
    names = list(splits[keys[0]]["recall"])
    lines = ["| split | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for key in keys:
        s = splits[key]
        cells = [f"{s['recall'][n]:.2f} ({s['support'][n]})" if s["support"][n] else "-" for n in names]
        lines.append(f"| {SPLITS[key][3]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    from transformers import AutoImageProcessor

    from fer_hf.evaluation.report import evaluate_model
    from fer_hf.models import load_fer_model

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run_dir", required=True, help="The multi-corpus run (its best/ is released).")
    parser.add_argument("--name", required=True, help="The released name (folder under model_cards/).")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--prior_correction", default=None,
                        help="prior_correction.json of `python -m fer_hf.training.prior_correction`: its pooled "
                             "biases are applied when its adoption test passed.")
    parser.add_argument("--trained_on", required=True,
                        help="Where the model was trained, for the card (e.g. \"2-core AMD EPYC CPU, no GPU\").")
    parser.add_argument("--limitation", action="append", default=[],
                        help="An extra bullet for the card's 'Limitations and bias' (repeatable): what was seen "
                             "while judging this model (weak classes, misread sample photos, how it compares with "
                             "the default before it).")
    parser.add_argument("--reports_dir", default="runs/release")
    parser.add_argument("--reuse_reports", action="store_true",
                        help="Read each split's metrics.json from --reports_dir where an earlier run of this command "
                             "on the same model wrote it, instead of measuring again.")
    args = parser.parse_args(argv)
    command = "python utils/release_real_photo_model.py " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    run, out = Path(args.run_dir), REPO / "model_cards" / args.name
    out.mkdir(parents=True, exist_ok=True)
    model = load_fer_model(run / "best")
    correction = json.loads(Path(args.prior_correction).read_text()) if args.prior_correction else None
    model.config.logit_adjustment = [float(v) for v in correction["bias"]] if correction and correction["adopt"] else None
    model.config.backbone_weights = Path(model.config.backbone_weights or "").name or None
    model.save_pretrained(out)
    AutoImageProcessor.from_pretrained(str(run / "best")).save_pretrained(out)
    for name in ("train_log.jsonl", "mix_settings.json"):
        shutil.copy(run / name, out / name)

    splits = {}
    for key, (corpus, path, split, title, _) in SPLITS.items():
        folder = Path(args.reports_dir) / args.name / key.replace("/", "-")
        if args.reuse_reports and (folder / "metrics.json").is_file():
            report = json.loads((folder / "metrics.json").read_text())
            command = report["command"]
        else:
            report = evaluate_model(str(out), corpus, str(Path(args.data) / path), split=split,
                                    calibration_split="none", output_dir=str(folder), command=command)
        splits[key] = summary(report)
        print(key, f"balanced {report['balanced_accuracy']:.4f}, accuracy {report['accuracy']:.4f}", flush=True)
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    settings = json.loads((run / "mix_settings.json").read_text())
    best = max(log, key=lambda entry: entry["selection_score"])
    results = {
        "protocol": "multi-corpus training; checkpoint chosen on the mean balanced accuracy over muxspace validation "
                    "people, tfeid validation performers and FER2013 PublicTest (docs/real_photos_rules.md); test "
                    "splits, SFEW Val and FER+ test reported once",
        "dataset": "fer2013", "command": command, "training_command": settings["command"],
        "date": datetime.date.today().isoformat(), "trained_on": args.trained_on,
        "best_epoch": best["epoch"], "epochs_trained": len(log), "selection_score": best["selection_score"],
        "prior_correction": correction, "test": splits["fer2013/test"], "validation": splits["fer2013/validation"],
        "splits": splits, "limitations": list(args.limitation)}
    (out / "eval_results.json").write_text(json.dumps(results, indent=1))
    (out / "README.md").write_text(model_card(args.name, {**results, "log": log}, settings, model))
    print(f"released {out}; now run: PYTHONPATH=. python utils/fix_copies.py")
    return results


def model_card(name: str, results: dict, settings: dict, model) -> str:
    splits = results["splits"]
    config = model.config
    parameters = sum(p.numel() for p in model.parameters())
    mix = ", ".join(f"{corpus} {weight:g}" for corpus, weight in settings["mix"].items())
    shares = ", ".join(f"{corpus} {share * 100:.0f}%" for corpus, share in settings["expected_corpus_shares"].items())
    correction = results["prior_correction"]
    if correction is None:
        prior = "No prior correction was tested for this release: the logits are the network's own."
    else:
        verdict = "adopted" if correction["adopt"] else "not adopted"
        prior = (f"Tested under the rule (`{correction['command']}`): biases fitted on one development split and "
                 f"scored on the other gave a mean balanced accuracy of {correction['cross_fitted_mean'] * 100:.1f}% "
                 f"against {correction['uncorrected_mean'] * 100:.1f}% without: **{verdict}**.")
        if correction["adopt"]:
            biases = ", ".join(f"{label} {bias:+.2f}" for label, bias in zip(correction["labels"], correction["bias"]))
            prior += (f" The biases fitted on both development splits pooled are in `config.logit_adjustment` and "
                      f"added to the logits in `forward`: {biases}. Every figure above includes them.")
    fer_test = splits["fer2013/test"]
    start = settings.get("model_name_or_path")
    if start:  # a fine-tune of a released model (docs/real_photos_rules.md, run 3)
        origin = (f"**fine-tuned from `{Path(start).name}`** (fer_hf's real-photo model, itself initialised from "
                  f"torchvision's ImageNet-1k weights `{config.backbone_weights}`, see the weights' terms below)")
    else:
        origin = (f"**initialised from torchvision's ImageNet-1k weights** (`{config.backbone_weights}`, see the "
                  "weights' terms below)")
    weight = settings.get("original_label_weight") or 0.0
    fer_targets = ("with FER+ vote distributions as soft labels" if not weight else
                   f"targets: {1 - weight:g} x its FER+ vote distribution + {weight:g} x its own FER2013 label")
    frozen = [entry["epoch"] for entry in results["log"] if entry.get("frozen_blocks")]
    extra = "".join(f"- {text}\n" for text in results.get("limitations", []))
    selection_frame = ("each read as `fer-hf evaluate` reads it (muxspace and tfeid photos cropped by the recognizer)"
                       if settings.get("selection_crops") == "recognizer" else
                       "read on the training face cache's centre frames (the figures below go through the "
                       "recognizer)")
    freezing = (f"Epoch{'s' if len(frozen) > 1 else ''} {', '.join(map(str, frozen))} trained the head with the early "
                "blocks frozen; " if frozen else "No blocks were frozen; ")
    return f"""---
license: other
license_name: research-non-commercial
library_name: transformers
pipeline_tag: image-classification
tags:
- facial-expression-recognition
- emotion-recognition
- fer2013
- image-classification
- fer_hf
- custom_code
datasets:
- fer2013
- ferplus
- sfew
- ckplus
- jaffe
metrics:
- accuracy
- balanced_accuracy
- f1
model-index:
- name: {name}
  results:
  - task:
      type: image-classification
      name: Facial expression recognition
    dataset:
      type: fer2013
      name: FER2013
      split: PrivateTest
    metrics:
    - type: accuracy
      value: {fer_test['accuracy']:.4f}
      name: PrivateTest accuracy (no TTA; checkpoint chosen on real-photo and PublicTest development splits)
---

# {name}: facial expression recognition for faces in real photos

A MobileNetV2 (`model_type="fer_mobilenet"`, width {config.width_mult:g}, {config.image_size}x{config.image_size} RGB
input, {parameters / 1e6:.2f}M parameters) {origin} and trained with fer_hf on a mix of corpora:
FER2013 ({fer_targets}), muxspace (news photos and film stills), tfeid (posed,
colour), SFEW 2.0 Train, CK+48 and JAFFE. Grayscale faces are fed as three equal channels. Trained on
{results['trained_on']}. It classifies a cropped face into 7 expressions: angry, disgust, fear,
happy, sad, surprise, neutral; `fer_hf.FaceExpressionRecognizer` finds and crops the faces first, and this
model was trained on faces framed exactly as the recognizer frames them.

## Results

Checkpoint: epoch {results['best_epoch']} of {results['epochs_trained']}, chosen on the mean balanced accuracy over the
three development splits (docs/real_photos_rules.md, written before the runs), {selection_frame}. The other splits were not used
to choose anything. muxspace and tfeid are split by person (nobody in a test split is in training); their
photos go through the recognizer's MTCNN detection, framing and alignment. Balanced accuracy is the mean
per-class recall over the classes of the split (on muxspace over the classes with at least 50 test or 25
validation faces; the number of classes counted is in brackets), no TTA. FER2013 **PrivateTest accuracy: {fer_test['accuracy'] * 100:.2f}%**.

{results_table(splits)}

Per-class recall (faces) on the real-photo and film splits:

{recall_table(splits, ["muxspace/test", "tfeid/test", "sfew/validation"])}

Measured by `{results['command']}` on {results['date']}; the full reports (confusion matrices, calibration,
ROC) are written by `fer-hf evaluate`. Trained by `{results['training_command']}`.

## Prior correction

{prior}

## Training

- Mix weights: {mix}; expected share of drawn faces per corpus: {shares}; classes drawn equally
  (by {"the FER2013 / corpus label" if settings.get("sample_by", "label") == "label" else "the target's majority class"}:
  `--sample_by {settings.get("sample_by", "label")}`), {results['epochs_trained']} epochs.
- Augmentation for the gap between corpora and real photos: random framing (scale, aspect, offset), rotation,
  flip, colour jitter, random grayscale, blur, downscale-upscale, JPEG quality, random erasing
  (`mix_settings.json` has every value).
- {freezing}`train_log.jsonl` has every epoch's development reports (balanced accuracy, per-class
  recall, answer shares).

## Limitations and bias

- muxspace's labels are weakest outside happy and neutral (its data card); its test split has few angry, sad,
  disgust and fear faces, so its balanced accuracy covers the classes with at least 50 faces only.
- Fear and disgust are rare in real-photo data; their recall on real photos is the least certain figure here.
{extra}- No AffectNet, RAF-DB or face-pretrained weights were available; the ImageNet start and 7 small corpora bound
  what this model can learn. Accuracy on profile faces, occlusions, children and faces far from the corpora's
  demographic mix is unmeasured: do not assume equal accuracy across age, gender or skin tone.

## Intended use and out-of-scope uses

Research, teaching and demos of facial expression recognition; aggregate analysis of expressions in photos and
videos whose subjects agreed to it. Do not use it to infer a person's inner state, personality, honesty or
health, for decisions about individuals, surveillance, or emotion recognition in workplaces or schools
(prohibited in the EU by the AI Act, Art. 5(1)(f)). A facial expression is not an emotion.

## Training data and licences

FER2013 / FER+ (research, no explicit licence), muxspace, tfeid, SFEW 2.0, CK+ and JAFFE are research corpora
with non-commercial terms; the ImageNet initialisation comes from torchvision's MobileNetV2 weights
(BSD-3-Clause code, trained on ImageNet-1k, whose terms restrict use to non-commercial research). Treat these
weights as research and non-commercial. The code of fer_hf is MIT licensed.

## Usage

```python
from fer_hf import FaceExpressionRecognizer

recognizer = FaceExpressionRecognizer.from_pretrained("{name}")
recognizer.predict("group.jpeg")  # [{{'box': [x, y, w, h], 'emotions': {{...}}, 'top_emotion': ...}}, ...]

from transformers import pipeline  # a face crop, without fer_hf installed:
pipeline("image-classification", model="path/to/{name}", trust_remote_code=True)("face.jpg")
```
"""


if __name__ == "__main__":
    main()
