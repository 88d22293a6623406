"""Model cards (Hub `README.md` with YAML `model-index`) and training plots for trained fer_hf models."""

import json
from pathlib import Path

CARD_FIGURES = ("training_curves.png", "confusion_matrix.png")


def save_training_plots(history, confusion, label_names, output_dir) -> None:
    """Write ``training_curves.png`` (loss and accuracy per epoch, train vs PublicTest) and
    ``confusion_matrix.png`` (PrivateTest, row-normalized) into ``output_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from sklearn.metrics import ConfusionMatrixDisplay

    output_dir = Path(output_dir)
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], label="train (augmented, smoothed)")
    ax_loss.plot(epochs, [h["validation_loss"] for h in history], label="PublicTest")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="Loss")
    ax_acc.plot(epochs, [h["train_accuracy"] for h in history], label="train (augmented)")
    ax_acc.plot(epochs, [h["validation_accuracy"] for h in history], label="PublicTest")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    for ax in (ax_loss, ax_acc):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(output_dir / "training_curves.png", dpi=100)
    plt.close(fig)

    matrix = np.asarray(confusion, dtype=float)
    normalized = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    ConfusionMatrixDisplay(normalized, display_labels=label_names).plot(ax=ax, values_format=".2f", cmap="Blues",
                                                                        colorbar=False)
    ax.set_title("PrivateTest confusion matrix (row-normalized)")
    plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
    fig.tight_layout()
    fig.savefig(output_dir / "confusion_matrix.png", dpi=100)
    plt.close(fig)


def _per_class_table(metrics: dict) -> str:
    lines = ["| class | precision | recall | F1 | support |", "| --- | --- | --- | --- | --- |"]
    for name, m in metrics["per_class"].items():
        lines.append(f"| {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |")
    return "\n".join(lines)


def write_model_card(output_dir, results: dict, history: list, args: dict, command: str, model_name: str,
                     num_parameters: int, dropped_rows: int = 0, split_sizes: dict = None) -> Path:
    """Write ``README.md`` (a Hub model card) into ``output_dir`` from the results of a training run.

    ``results`` is the dict written to ``eval_results.json`` by ``train_accelerate.py`` (keys
    ``validation``, ``test``, ``validation_flip_tta``, ``test_flip_tta``, ``best_epoch``).
    Every number in the card comes from ``results`` / ``history``; none is typed by hand.
    """
    output_dir = Path(output_dir)
    test, val = results["test"], results["validation"]
    test_tta, val_tta = results["test_flip_tta"], results["validation_flip_tta"]
    split_sizes = split_sizes or {}
    full = split_sizes.get("train") == 28709 and split_sizes.get("test") == 3589
    subset_note = "" if full else (
        f"\n> **Note:** this run used a subset (train {split_sizes.get('train')}, PublicTest "
        f"{split_sizes.get('validation')}, PrivateTest {split_sizes.get('test')} images); its numbers are not "
        "FER2013 results.\n")
    front = f"""---
license: other
license_name: fer2013-research-non-commercial
license_link: https://www.kaggle.com/c/challenges-in-representation-learning-facial-expression-recognition-challenge
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
metrics:
- accuracy
- f1
model-index:
- name: {model_name}
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
      value: {test['accuracy']:.4f}
      name: PrivateTest accuracy (checkpoint chosen on PublicTest, no TTA)
    - type: f1
      value: {test['macro_f1']:.4f}
      name: PrivateTest macro-F1 (no TTA)
    - type: accuracy
      value: {test_tta['accuracy']:.4f}
      name: PrivateTest accuracy with horizontal-flip TTA
  - task:
      type: image-classification
      name: Facial expression recognition
    dataset:
      type: fer2013
      name: FER2013
      split: PublicTest
    metrics:
    - type: accuracy
      value: {val['accuracy']:.4f}
      name: PublicTest accuracy (used for checkpoint selection, no TTA)
---
"""
    hyper = {k: args[k] for k in ("hidden_sizes", "layers_per_stage", "classifier_hidden_size", "dropout_rate",
                                  "num_train_epochs", "per_device_train_batch_size", "learning_rate",
                                  "weight_decay", "warmup_ratio", "label_smoothing", "max_grad_norm",
                                  "crop_padding", "max_rotation_degrees", "max_translation", "seed") if k in args}
    best = next((h for h in history if h["epoch"] == results["best_epoch"]), {})
    speed = [h["train_images_per_second"] for h in history]
    body = f"""
# {model_name}: facial expression recognition on 48x48 grayscale faces

A VGG-style CNN ({num_parameters / 1e6:.2f}M parameters; 4 stages of double 3x3 conv + BatchNorm + ReLU +
max-pool, then an MLP head) trained from scratch on FER2013 with the `fer_hf` package. It classifies a
**cropped, roughly frontal face** into 7 expressions: angry, disgust, fear, happy, sad, surprise, neutral
(canonical FER2013 ids 0-6). It does not detect faces: use `fer_hf.FaceExpressionRecognizer`, which runs
MTCNN first.
{subset_note}
## Results

Protocol: trained on FER2013 Training ({split_sizes.get('train', '?')} images); the checkpoint was chosen
on **PublicTest** accuracy only (best epoch {results['best_epoch']} of {results['epochs_trained']});
**PrivateTest** was evaluated once, at the end. "flip TTA" averages the softmax of the face and its
mirror image.

| split | accuracy | macro-F1 | accuracy, flip TTA | macro-F1, flip TTA |
| --- | --- | --- | --- | --- |
| PrivateTest ({test['num_samples']} images) | **{test['accuracy'] * 100:.2f}%** | {test['macro_f1']:.4f} | {test_tta['accuracy'] * 100:.2f}% | {test_tta['macro_f1']:.4f} |
| PublicTest ({val['num_samples']} images, selection split) | {val['accuracy'] * 100:.2f}% | {val['macro_f1']:.4f} | {val_tta['accuracy'] * 100:.2f}% | {val_tta['macro_f1']:.4f} |

Per-class metrics on PrivateTest (no TTA):

{_per_class_table(test)}

![training curves](training_curves.png)
![confusion matrix](confusion_matrix.png)

Produced by this command (from the root of the fer_hf repository; `eval_results.json` and
`train_log.jsonl` next to this card hold the raw numbers):

```bash
{command}
```

Training setup: {json.dumps(hyper)}. AdamW + OneCycle, label smoothing, gradient clipping, batched
on-tensor augmentation (random crop with padding, horizontal flip, rotation, scale, translation).
Data: the FER2013 image-folder copy (JPEG re-encodings of the original CSV pixels, mean absolute
difference about 1.3 grey levels); {dropped_rows} rows were dropped as invalid by the loader.
Speed: {min(speed) if speed else 0:.0f}-{max(speed) if speed else 0:.0f} training images/s on the machine
that trained it. At the chosen epoch, PublicTest loss was {best.get('validation_loss', float('nan')):.4f}.

## Usage

```python
from transformers import AutoModelForImageClassification, AutoImageProcessor, pipeline

model = AutoModelForImageClassification.from_pretrained("path/to/{model_name}", trust_remote_code=True)
processor = AutoImageProcessor.from_pretrained("path/to/{model_name}", trust_remote_code=True)
classifier = pipeline("image-classification", model="path/to/{model_name}", trust_remote_code=True)
classifier("face_crop.jpg")  # [{{'label': 'happy', 'score': ...}}, ...]

# whole photos, any number of faces (needs fer_hf installed):
from fer_hf import FaceExpressionRecognizer
recognizer = FaceExpressionRecognizer.from_pretrained("path/to/{model_name}")
recognizer.predict("group.jpeg")  # [{{'box': [x, y, w, h], 'score': ..., 'emotions': {{...}}, 'top_emotion': ...}}]
```

The image processor converts any input (RGB, RGBA, palette, CMYK, 16-bit, ...) to 48x48 grayscale,
rescales to [0, 1] and normalizes with mean 0.5 and std 0.25.

## Intended use

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
  on the rarest and most confusable classes (disgust, fear, sad).
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
@inproceedings{{goodfellow2013challenges,
  title={{Challenges in representation learning: A report on three machine learning contests}},
  author={{Goodfellow, Ian J and Erhan, Dumitru and Carrier, Pierre Luc and Courville, Aaron and others}},
  booktitle={{ICONIP}}, year={{2013}}
}}
```
"""
    path = output_dir / "README.md"
    path.write_text(front + body)
    return path
