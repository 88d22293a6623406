#!/usr/bin/env python
"""Speed benchmark of fer_hf on this machine; writes benchmarks/results/benchmark.json and .md.

    python benchmarks/benchmark.py [--model fer-vgg-fer2013] [--data ../shared/data]

Measures: classifier faces/s at batch 1 and 64 (preprocessed 48x48 real FER2013 faces, eval mode,
no grad); milliseconds per real 640x480 photo for detection + classification with MTCNN and with
Haar (the sample photos resized to 640x480, all faces classified in one batch); training images/s
(batched augmentation + forward + backward + AdamW step, batch 64). Median over repeats after warm-up.
"""

import argparse
import io
import json
import statistics
import time
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from common import DATA, command_line, machine, result_path, write_json, write_text

from fer_hf import FaceExpressionRecognizer  # noqa: E402
from fer_hf.training.augmentation import augment_batch  # noqa: E402
from fer_hf.evaluation.profiling import median_seconds  # noqa: E402


def timed(fn, repeats, warmup=2):
    return median_seconds(fn, repeats, warmup)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="Released name, folder or Hub id (default: the default model).")
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--output", default=str(result_path("benchmark", ".json")))
    args = parser.parse_args()
    data = Path(args.data)
    recognizer = FaceExpressionRecognizer.from_pretrained(args.model)
    model, processor = recognizer.model, recognizer.image_processor
    results = {"command": command_line("benchmark"),
               "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine(),
               "model": recognizer.model_name, "num_parameters": sum(p.numel() for p in model.parameters())}

    with zipfile.ZipFile(data / "fer2013" / "fer2013_images.zip") as archive:
        names = sorted(n for n in archive.namelist() if "/PrivateTest_" in n)[:64]
        faces = [Image.open(io.BytesIO(archive.read(n))) for n in names]
    pixel_values = processor(faces, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        for batch in (1, 64):
            x = pixel_values[:batch]
            seconds = timed(lambda: model(pixel_values=x), args.repeats)
            results[f"classifier_faces_per_second_batch_{batch}"] = round(batch / seconds, 1)
        seconds = timed(lambda: processor(faces, return_tensors="pt"), 5)
        results["preprocess_faces_per_second_batch_64"] = round(64 / seconds, 1)

    photos = [Image.open(data / "samples" / n).convert("RGB").resize((640, 480), Image.BILINEAR)
              for n in ("group.jpeg", "happy-baby.jpeg", "surprised.jpeg", "image-2-women-on-phones.jpg")]
    for detector in ("mtcnn", "haar"):
        recognizer.set_options(detector=detector, min_face_size=20)
        per_photo, counts = [], []
        for photo in photos:
            per_photo.append(timed(lambda: recognizer.predict(photo), max(3, args.repeats // 4), warmup=1))
            counts.append(len(recognizer.predict(photo)))
        results[f"ms_per_640x480_photo_{detector}"] = round(1000 * statistics.median(per_photo), 1)
        results[f"faces_found_{detector}"] = counts

    train_model = type(model)(model.config).train().to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(train_model.parameters(), lr=1e-3)
    images = torch.from_numpy(np.stack([processor.convert_and_resize(f) for f in faces])).permute(0, 3, 1, 2)
    labels = torch.randint(0, 7, (64,))

    def train_step():
        x = processor.rescale_and_normalize(augment_batch(images.float()))
        loss = torch.nn.functional.cross_entropy(
            train_model(pixel_values=x.contiguous(memory_format=torch.channels_last)).logits, labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    results["training_images_per_second_batch_64"] = round(64 / timed(train_step, max(5, args.repeats // 2)), 1)

    write_json(args.output, results)
    lines = ["# fer_hf speed benchmark\n", f"Command: `{results['command']}`  ", f"Date: {results['date']}  ",
             f"Machine: {json.dumps(results['machine'])}  ",
             f"Model: {results['model']} ({results['num_parameters'] / 1e6:.2f}M parameters)\n",
             "| measure | value |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in results.items()
              if k not in ("command", "date", "machine", "model", "num_parameters")]
    write_text(Path(args.output).with_suffix(".md"), "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
