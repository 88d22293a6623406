"""Model cards (Hub `README.md` with YAML `model-index`) and training plots for trained fer_hf models."""

import json
from pathlib import Path

from ..atomic import atomic_write_text, replacing

CARD_FIGURES = ("training_curves.png", "confusion_matrix.png")


def save_training_plots(history, confusion, label_names, output_dir, dataset: str = "fer2013") -> None:
    """Write ``training_curves.png`` (loss and accuracy per epoch, train vs the selection split: PublicTest
    for FER2013) and ``confusion_matrix.png`` (the reported split: PrivateTest, row-normalized) into
    ``output_dir``; split names from `DATASETS` [``dataset``]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from sklearn.metrics import ConfusionMatrixDisplay

    output_dir = Path(output_dir)
    data = DATASETS.get(dataset, {"validation": "validation (selection)", "test": "held-out test"})
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], label="train (augmented, smoothed)")
    ax_loss.plot(epochs, [h["validation_loss"] for h in history], label=data["validation"])
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="Loss")
    ax_acc.plot(epochs, [h["train_accuracy"] for h in history], label="train (augmented)")
    ax_acc.plot(epochs, [h["validation_accuracy"] for h in history], label=data["validation"])
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    for ax in (ax_loss, ax_acc):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with replacing(output_dir / "training_curves.png") as tmp:  # atomic: a kill leaves the old or the new plot
        fig.savefig(tmp, dpi=100)
    plt.close(fig)

    matrix = np.asarray(confusion, dtype=float)
    normalized = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    ConfusionMatrixDisplay(normalized, display_labels=label_names).plot(ax=ax, values_format=".2f", cmap="Blues",
                                                                        colorbar=False)
    ax.set_title(f"{data['test']} confusion matrix (row-normalized)")
    plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
    fig.tight_layout()
    with replacing(output_dir / "confusion_matrix.png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def _per_class_table(metrics: dict) -> str:
    lines = ["| class | precision | recall | F1 | support |", "| --- | --- | --- | --- | --- |"]
    for name, m in metrics["per_class"].items():
        lines.append(f"| {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |")
    return "\n".join(lines)


#: One line per family for the card's first paragraph (the config docstrings give the details).
ARCHITECTURES = {
    "fer_vgg": "a VGG-style CNN (stages of 3x3 convolutions + BatchNorm + ReLU + max-pool, then an MLP head)",
    "fer_conv1x1": "a CNN with a 1x1 convolution right after the input, a shallow conv stack and most "
                   "parameters in its fully connected layers",
    "fer_lrn": "the classic DNN (5x5 and 3x3 convolutions with local response normalisation, FC 384 and 192)",
    "fer_acnn_alstm": "ACNN-ALSTM (CNN local features, local attention, an LSTM over the feature sequence and "
                      "global attention; Computational Intelligence and Neuroscience 2022, 7450637)",
    "fer_efficientnet": "EfficientNet-B0 (Tan & Le, 2019; torchvision) with a 1-channel stem",
    "fer_resnet": "a ResNet-18 (He et al., 2016; torchvision) backbone with an FC 512-256 + BatchNorm + ReLU + "
                  "Dropout head, on grayscale faces replicated to 3 channels",
    "fer_ensemble": "an ensemble: the weighted average of the softmax outputs of several fer_hf models",
}

#: What the card says about the corpus a model was trained on (``train_accelerate.py --dataset``).
DATASETS = {
    "fer2013": {
        "name": "FER2013", "tag": "fer2013", "train": "FER2013 Training", "validation": "PublicTest",
        "test": "PrivateTest", "full_sizes": {"train": 28709, "test": 3589},
        "classes": "7 expressions: angry, disgust, fear, happy, sad, surprise, neutral (canonical FER2013 ids 0-6)",
        "data": "the FER2013 image-folder copy (JPEG re-encodings of the original CSV pixels, mean absolute "
                "difference about 1.3 grey levels)",
    },
    "ferplus": {
        "name": "FER+", "tag": "ferplus", "train": "FER+ FER2013Train", "validation": "PublicTest (FER2013Valid)",
        "test": "PrivateTest (FER2013Test)", "full_sizes": {},
        "classes": "8 expressions: angry, disgust, fear, happy, sad, surprise, neutral, contempt (FER2013's 7 "
                   "in canonical order, then contempt)",
        "data": "FER+ (Barsoum et al., 2016): the FER2013 faces relabelled by 10 annotators each, in the official "
                "FER+ layout; evaluation on the majority vote, images whose majority is unknown or not-a-face "
                "dropped (the FER+ paper's protocol)",
    },
    "sfew": {
        "name": "SFEW 2.0", "tag": "sfew", "train": "SFEW 2.0 Train (the movies not held out)",
        "validation": "held-out SFEW Train movies", "test": "SFEW Val", "full_sizes": {"test": 405},
        "classes": "7 expressions: angry, disgust, fear, happy, sad, surprise, neutral (canonical FER2013 ids 0-6)",
        "data": "SFEW 2.0 (Dhall et al., 2011): aligned face crops from movie frames, the 31 unusable files of its "
                "data card skipped; Train and Val share no movie, and selection uses whole held-out Train movies",
    },
}

_SFEW_SECTIONS = """
SFEW 2.0 is distributed by its authors for research use only, under their end-user licence agreement; the
weights fine-tuned on it inherit that restriction.

```
@inproceedings{dhall2011static,
  title={Static facial expression analysis in tough conditions: Data, evaluation protocol and benchmark},
  author={Dhall, Abhinav and Goecke, Roland and Lucey, Simon and Gedeon, Tom},
  booktitle={ICCV Workshops}, year={2011}
}
```
"""

_FERPLUS_SECTIONS = """
FER+ labels: (c) Microsoft Corporation, MIT licence (github.com/microsoft/FERPlus). The images are FER2013's.

```
@inproceedings{barsoum2016training,
  title={Training deep networks for facial expression recognition with crowd-sourced label distribution},
  author={Barsoum, Emad and Zhang, Cha and Canton Ferrer, Cristian and Zhang, Zhengyou},
  booktitle={ICMI}, year={2016}
}
```
"""

def _corpus(dataset) -> dict:
    """`DATASETS` entry of a corpus name (FER2013's when it is missing or unknown)."""
    return DATASETS.get(dataset or "fer2013", DATASETS["fer2013"])


_EXTRA_SECTIONS = {"ferplus": _FERPLUS_SECTIONS, "sfew": _SFEW_SECTIONS}
_TTA_COLUMNS = (("", "no TTA"), ("_flip_tta", "flip TTA"), ("_ten_crop_tta", "ten-crop TTA"))


def _front_matter(model_name: str, results: dict) -> str:
    test, val = results["test"], results["validation"]
    data = _corpus(results.get("dataset"))
    tags = "- fer2013\n" + (f"- {data['tag']}\n" if data["tag"] != "fer2013" else "")
    test_name, val_name = data["test"], data["validation"]
    test_metrics = (_model_index_metric("accuracy", test["accuracy"],
                                        f"{test_name} accuracy (chosen on {val_name}, no TTA)")
                    + _model_index_metric("f1", test["macro_f1"], f"{test_name} macro-F1 (no TTA)"))
    for suffix, label in _TTA_COLUMNS[1:]:
        if f"test{suffix}" in results:
            test_metrics += _model_index_metric("accuracy", results[f"test{suffix}"]["accuracy"],
                                                f"{test_name} accuracy with {label}")
    val_metrics = _model_index_metric("accuracy", val["accuracy"], f"{val_name} accuracy (used for selection, no TTA)")
    return f"""---
license: other
license_name: fer2013-research-non-commercial
license_link: https://www.kaggle.com/c/challenges-in-representation-learning-facial-expression-recognition-challenge
library_name: transformers
pipeline_tag: image-classification
tags:
- facial-expression-recognition
- emotion-recognition
{tags}- image-classification
- fer_hf
- custom_code
datasets:
{tags}metrics:
- accuracy
- f1
model-index:
- name: {model_name}
  results:
{_model_index_result(data, test_name, test_metrics)}{_model_index_result(data, val_name, val_metrics)}---
"""


def _model_index_metric(kind: str, value: float, name: str) -> str:
    """One entry (three YAML lines) of a model-index result's ``metrics`` list; ``value`` a fraction."""
    return f"""    - type: {kind}
      value: {value:.4f}
      name: {name}
"""


def _model_index_result(data: dict, split: str, metrics: str) -> str:
    """One entry of the model-index ``results`` list: the task, the corpus (`DATASETS` entry ``data``) and
    split, then ``metrics`` (`_model_index_metric` entries)."""
    return f"""  - task:
      type: image-classification
      name: Facial expression recognition
    dataset:
      type: {data['tag']}
      name: {data['name']}
      split: {split}
    metrics:
{metrics}"""


def _results_table(results: dict) -> str:
    columns = [(suffix, label) for suffix, label in _TTA_COLUMNS if f"test{suffix}" in results]
    header = "| split | " + " | ".join(f"accuracy, {label} | macro-F1, {label}" for _, label in columns) + " |"
    lines = [header, "| --- |" + " --- | --- |" * len(columns)]
    data = _corpus(results.get("dataset"))
    for split, title in (("test", data["test"]), ("validation", f"{data['validation']} (selection split)")):
        cells = []
        for suffix, _ in columns:
            m = results[f"{split}{suffix}"]
            accuracy = f"{m['accuracy'] * 100:.2f}%"
            cells += [f"**{accuracy}**" if (split, suffix) == ("test", "") else accuracy, f"{m['macro_f1']:.4f}"]
        lines.append(f"| {title} ({results[split]['num_samples']} images) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


_USAGE = """## Usage

```python
from transformers import AutoModelForImageClassification, AutoImageProcessor, pipeline

model = AutoModelForImageClassification.from_pretrained("path/to/{name}", trust_remote_code=True)
processor = AutoImageProcessor.from_pretrained("path/to/{name}", trust_remote_code=True)
classifier = pipeline("image-classification", model="path/to/{name}", trust_remote_code=True)
classifier("face_crop.jpg")  # [{{'label': 'happy', 'score': ...}}, ...]

# whole photos, any number of faces (needs fer_hf installed; then trust_remote_code is not needed):
from fer_hf import FaceExpressionRecognizer
recognizer = FaceExpressionRecognizer.from_pretrained("path/to/{name}")
recognizer.predict("group.jpeg")  # [{{'box': [x, y, w, h], 'score': ..., 'emotions': {{...}}, 'top_emotion': ...}}]
```

The image processor converts any input (RGB, RGBA, palette, CMYK, 16-bit, ...) to a {size}x{size}
{channels} face, rescales to [0, 1] and normalizes with mean {mean} and std {std}.
"""

_COMMON_SECTIONS = """## Intended use

Research, teaching and demos of facial expression recognition; aggregate analysis of posed or
spontaneous expressions in photos and videos where the people shown have agreed to it.

## Out-of-scope uses

Do not use this model to infer a person's inner emotional state, personality, honesty, mental health,
or suitability for a job, a loan, insurance, education or any legal process; not for surveillance, for
emotion recognition in workplaces or schools (prohibited in the EU by the AI Act, Art. 5(1)(f)), or
for any decision about an individual. A facial expression is not an emotion.

## Limitations and bias

- FER2013 was gathered by web image search and labelled by one annotator per image; roughly one label
  in ten is estimated to be wrong (FER+, Barsoum et al. 2016, relabelled it with 10 annotators).
  Human accuracy on FER2013 is about 65±5% (Goodfellow et al., 2013).
- Classes are imbalanced (disgust is 1.5% of training data); see the per-class table: recall is lowest
  on the rarest and most confusable classes.
- The training faces are mostly frontal, cropped, 48x48 and grayscale; accuracy drops on profile
  faces, occlusions, strong lighting, and faces far from the demographic mix of web photos of 2013. The
  demographic composition of FER2013 is undocumented, and no per-group evaluation was possible: do
  not assume equal accuracy across age, gender or skin tone.
- Expressions are culturally dependent and the 7 categories (Ekman's basic emotions + neutral) are a
  simplification.

## Training data and licence

FER2013 (Goodfellow et al., 2013, "Challenges in Representation Learning: A report on three machine
learning contests") has no explicit licence; treat it, and therefore these weights, as research and
non-commercial (hence `license: other` above). The code of fer_hf is MIT licensed.

## Citation

```
@inproceedings{goodfellow2013challenges,
  title={Challenges in representation learning: A report on three machine learning contests},
  author={Goodfellow, Ian J and Erhan, Dumitru and Carrier, Pierre Luc and Courville, Aaron and others},
  booktitle={ICONIP}, year={2013}
}
```
"""


def _usage(model_name: str, output_dir: Path) -> str:
    config = json.loads((output_dir / "preprocessor_config.json").read_text()) if (
        output_dir / "preprocessor_config.json").is_file() else {}
    channels = "grayscale" if config.get("num_channels", 1) == 1 else "3-channel (grayscale replicated)"
    return _USAGE.format(name=model_name, size=config.get("size", {}).get("height", 48), channels=channels,
                         mean=config.get("image_mean", [0.5]), std=config.get("image_std", [0.25]))


def write_model_card(output_dir, results: dict, history: list, args: dict, command: str, model_name: str,
                     num_parameters: int, dropped_rows: int = 0, split_sizes: dict = None) -> Path:
    """Write ``README.md`` (a Hub model card) into ``output_dir`` from the results of a training run.

    ``results`` is the dict written to ``eval_results.json`` by ``train_accelerate.py`` (keys
    ``validation``, ``test`` and their ``_flip_tta`` / ``_ten_crop_tta`` variants, ``best_epoch``, ...).
    Every number in the card comes from ``results`` / ``history``; none is typed by hand.
    """
    output_dir = Path(output_dir)
    test = results["test"]
    split_sizes = split_sizes or {}
    data = _corpus(args.get("dataset") or results.get("dataset"))
    results = {**results, "dataset": data["tag"]}
    full = all(split_sizes.get(k) == v for k, v in data["full_sizes"].items())
    subset_note = "" if full else (
        f"\n> **Note:** this run used a subset (train {split_sizes.get('train')}, {data['validation']} "
        f"{split_sizes.get('validation')}, {data['test']} {split_sizes.get('test')} images); its numbers are not "
        f"{data['name']} results.\n")
    model_type = results.get("model_type", "fer_vgg")
    architecture = ARCHITECTURES.get(model_type, model_type)
    gflops = results.get("gflops_per_face")
    cost = f"{num_parameters / 1e6:.2f}M parameters" + (f", {gflops:.3f} GFLOPs per face" if gflops else "")
    initialisation = results.get("initialisation", "random (trained from scratch)")
    recipe = {k: args[k] for k in ("config_preset", "config_overrides", "model_name_or_path", "backbone_weights",
                                   "augmentation", "optimizer", "lr_scheduler", "learning_rate", "weight_decay",
                                   "label_smoothing", "class_weighting", "ema_decay", "num_train_epochs",
                                   "early_stopping_patience", "per_device_train_batch_size", "mixed_precision",
                                   "teacher_model", "distillation_alpha", "distillation_temperature", "seed")
              if args.get(k) not in (None, False)}
    if not args.get("teacher_model"):
        for key in ("distillation_alpha", "distillation_temperature"):
            recipe.pop(key, None)
    best = next((h for h in history if h["epoch"] == results["best_epoch"]), {})
    speed = [h["train_images_per_second"] for h in history]
    where = results.get("hardware", "the machine that trained it")
    hours = results.get("training_hours")
    timing = f"{hours:.2f} hours of training and per-epoch evaluation on {where}" if hours else f"trained on {where}"
    body = f"""
# {model_name}: facial expression recognition on face crops

{architecture[0].upper() + architecture[1:]} (`model_type="{model_type}"`, {cost}), trained with the
`fer_hf` package on {data['name']}; initialisation: {initialisation}. It classifies a **cropped, roughly
frontal face** into {data['classes']}. It does not detect faces: use `fer_hf.FaceExpressionRecognizer`, which runs a face detector first.
{subset_note}
## Results

Protocol: trained on {data['train']} ({split_sizes.get('train', '?')} images); the checkpoint was chosen
on **{data['validation']}** accuracy only (best epoch {results['best_epoch']} of {results['epochs_trained']}
trained{', stopped early' if results.get('stopped_early') else ''}); **{data['test']}** was evaluated once,
at the end. "flip TTA" averages the softmax of the face and its mirror image; "ten-crop TTA" averages
the centre and four corner crops of the face padded by 4 pixels, each with its mirror image.

{_results_table(results)}

Per-class metrics on {data['test']} (no TTA):

{_per_class_table(test)}

![training curves](training_curves.png)
![confusion matrix](confusion_matrix.png)

Produced by this command (from the root of the fer_hf repository; `eval_results.json` and
`train_log.jsonl` next to this card hold the raw numbers):

```bash
{command}
```

Recipe: {json.dumps(recipe)} (every flag is documented in `python train_accelerate.py --help`).
{_distillation(results, args, data)}Data: {data['data']}; {dropped_rows} rows were dropped as invalid by the loader.
Cost: {timing}; {min(speed) if speed else 0:.0f}-{max(speed) if speed else 0:.0f} training images/s.
At the chosen epoch, {data['validation']} loss was {best.get('validation_loss', float('nan')):.4f}.

{_usage(model_name, output_dir)}
{_COMMON_SECTIONS}{_EXTRA_SECTIONS.get(data['tag'], '')}"""
    path = output_dir / "README.md"
    atomic_write_text(path, _front_matter(model_name, results) + body)
    return path


def _distillation(results: dict, args: dict, data: dict) -> str:
    """The card's paragraph on knowledge distillation (Hinton et al., 2015, "Distilling the Knowledge in a
    Neural Network"): the teacher and what its own ``eval_results.json`` said about it; empty without one."""
    teacher = results.get("teacher") or args.get("teacher_model")
    if not teacher:
        return ""
    alpha, temperature = args.get("distillation_alpha"), args.get("distillation_temperature")
    text = (f"Distillation (Hinton et al., 2015): the loss was {alpha} x T^2 x KL(teacher || student) at temperature "
            f"T = {temperature}, on the teacher's softened probabilities of the un-augmented training faces, plus "
            f"{1 - alpha:.2f} x the label loss. Teacher: `{teacher}`")
    summary = results.get("teacher_summary") or {}
    if summary.get("model_type"):
        text += f" (`{summary['model_type']}`"
        if "validation_accuracy" in summary and "test_accuracy" in summary:
            text += (f"; {data['validation']} {summary['validation_accuracy'] * 100:.2f}%, "
                     f"{data['test']} {summary['test_accuracy'] * 100:.2f}%, no TTA")
        if summary.get("members"):
            text += "; members and weights: " + ", ".join(f"`{m['name']}` {m['weight']:.2f}" for m in summary["members"])
        text += ")"
    return text + ".\n"


def _left_out_members(results: dict) -> str:
    data = _corpus(results.get("dataset"))

    def listed(members):
        return ", ".join(f"`{m['name']}` ({data['validation']} {m['validation']['accuracy'] * 100:.2f}%, "
                         f"{data['test']} {m['test']['accuracy'] * 100:.2f}%)" for m in members)

    left_out = results.get("left_out_members") or []
    zero = [m for m in left_out if m.get("left_out_because") != "size"]
    text = ""
    if zero:
        reason = (f"the fit on {data['validation']} gave them" if results.get("weights_fitted", True)
                  else "the command gave them")
        text += f"\nAlso tried, and left out because {reason} weight 0: {listed(zero)}.\n"
    dropped = results.get("dropped_for_size") or []
    if dropped:
        steps = "; ".join(f"`{d['name']}` (weight {d['weight']:.2f} in a {d['ensemble_megabytes']:.1f} MB fit)"
                          for d in dropped)
        by_name = {m["name"]: m for m in left_out}
        text += (f"\nLeft out by the size rule (`--max_megabytes {results['max_megabytes']:g}`: while the file was "
                 f"larger, the kept member with the smallest weight was dropped and the weights fitted again on "
                 f"{data['validation']}): {steps}. Alone they scored "
                 f"{listed([by_name[d['name']] for d in dropped if d['name'] in by_name])}.\n")
    return text


def write_ensemble_card(output_dir, results: dict, model_name: str) -> Path:
    """Write ``README.md`` for an ensemble built by `fer_hf.training.ensembling.build_ensemble` from its results
    (member table with weights and each member's own numbers on the selection and the reported split)."""
    output_dir = Path(output_dir)
    data = _corpus(results.get("dataset"))
    val_name, test_name = data["validation"], data["test"]
    rows = [f"| member | model type | weight | params | GFLOPs | {val_name} acc. | {test_name} acc. |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for member, weight in zip(results["members"], results["member_weights"]):
        rows.append(f"| `{member['name']}` | `{member['model_type']}` | {weight:.2f} | "
                    f"{member['num_parameters'] / 1e6:.2f}M | {member['gflops_per_face']:.3f} | "
                    f"{member['validation']['accuracy'] * 100:.2f}% | {member['test']['accuracy'] * 100:.2f}% |")
    if results.get("weights_fitted", True):
        weighting = (f"the averaging weights were fitted on **{val_name}** only (grid of step "
                     f"{results['weight_grid_step']}, criterion: {results.get('weight_criterion', 'accuracy')})")
    else:
        weighting = ("the averaging weights were given on the command line, not fitted on any split (the "
                     f"{val_name} split is too small to fit them on)")
    trained = f"trained on {data['train']} and chosen on {val_name}"
    stored = ("\nThe weights are stored in float16 (half the size) and load as float32; they were rounded to float16 "
              "before the evaluation, so the numbers below are those of the stored weights."
              if results.get("weights_dtype") == "float16" else "")
    body = f"""
# {model_name}: an ensemble of fer_hf facial expression models

{ARCHITECTURES['fer_ensemble'][0].upper() + ARCHITECTURES['fer_ensemble'][1:]} (`model_type="fer_ensemble"`,
{results['num_parameters'] / 1e6:.2f}M parameters, {results['gflops_per_face']:.3f} GFLOPs per face in all).
One `PreTrainedModel`: its `model.safetensors` holds every member's weights, its config every member's
config and weight; `logits` are the log of the weighted average of the members' probabilities, and
`model(pixel_values, output_member_logits=True).member_logits` gives each member's own output.{stored}

## Results

Protocol: each member was {trained}; {weighting};
**{test_name}** was evaluated once, at the end.

{_results_table(results)}

Members (each evaluated alone, no TTA):

{chr(10).join(rows)}
{_left_out_members(results)}
Per-class metrics of the ensemble on {test_name} (no TTA):

{_per_class_table(results['test'])}

Produced by this command (from the root of the fer_hf repository; raw numbers in `eval_results.json`):

```bash
{results['command']}
```

{_usage(model_name, output_dir)}
{_COMMON_SECTIONS}{_EXTRA_SECTIONS.get(data['tag'], '')}"""
    path = output_dir / "README.md"
    atomic_write_text(path, _front_matter(model_name, results) + body)
    return path
