#!/usr/bin/env python
"""Development-split probe: what a probability blend of the real-photo default with another model would read.

    python benchmarks/real_photo_blend.py --base fer-mobilenet-real-2 --others fer-vgg-44-distilled-ft fer-ensemble

For each other model and each weight w, the blend ``(1 - w) * p_base + w * p_other`` (softmax probabilities, each
model fed by its own processor) is scored on the development splits only: muxspace validation people (balanced
over the classes with >= 25 faces) and tfeid validation performers (each photo cropped by the recognizer, as
`fer-hf evaluate` reads them), and FER2013 PublicTest. No test split is read
(`fer_hf.training.prior_correction.development_log_probabilities` refuses one). A probe, not a release: a blend is
two networks on the webcam path. Writes ``benchmarks/results/real_photo_blend.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from common import DATA, command_line, machine, result_path, write_json, write_text

SPLITS = (("muxspace", "validation"), ("tfeid", "validation"), ("fer2013", "validation"))
WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)


def main(argv=None) -> dict:
    from fer_hf.evaluation.metrics import balanced_accuracy, min_class_faces
    from fer_hf.models.hub import resolve_model
    from fer_hf.training.prior_correction import development_log_probabilities

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="fer-mobilenet-real-2", help="Released name or model folder.")
    parser.add_argument("--others", nargs="+", required=True, help="Models blended into --base, one at a time.")
    parser.add_argument("--weights", type=float, nargs="+", default=list(WEIGHTS), help="Blend weights w of the other.")
    parser.add_argument("--data", default=str(DATA))
    args = parser.parse_args(argv)
    started = time.time()
    probabilities = {name: {key: (np.exp(log_p), labels) for key, (log_p, labels) in
                            development_log_probabilities(resolve_model(name), args.data, splits=SPLITS).items()}
                     for name in [args.base, *args.others]}
    rows = []
    for other in args.others:
        for w in args.weights:
            row = {"other": other, "weight": w}
            for key, (base, labels) in probabilities[args.base].items():
                blend = (1 - w) * base + w * probabilities[other][key][0]
                predictions = blend.argmax(1)
                row[key] = {"balanced_accuracy": balanced_accuracy(labels, predictions, blend.shape[1],
                                                                   min_class_faces(key))[0],
                            "accuracy": float((predictions == labels).mean())}
            row["real_photo_mean"] = (row["muxspace/validation"]["balanced_accuracy"]
                                      + row["tfeid/validation"]["balanced_accuracy"]) / 2
            rows.append(row)
    result = {"command": command_line("real_photo_blend", argv), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": machine(), "run_time_s": round(time.time() - started, 1), "base": args.base, "rows": rows}
    write_json(result_path("real_photo_blend", ".json"), result)
    lines = ["| blended with | w | mean balanced accuracy (muxspace val + tfeid val) | muxspace val | tfeid val | "
             "FER2013 PublicTest balanced / accuracy |", "| --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        public = row["fer2013/validation"]
        lines.append(f"| `{row['other']}` | {row['weight']:g} | {row['real_photo_mean'] * 100:.1f}% | "
                     f"{row['muxspace/validation']['balanced_accuracy'] * 100:.1f}% | "
                     f"{row['tfeid/validation']['balanced_accuracy'] * 100:.1f}% | "
                     f"{public['balanced_accuracy'] * 100:.1f}% / {public['accuracy'] * 100:.1f}% |")
    write_text(result_path("real_photo_blend"), f"""# Probability blends of `{args.base}` with other models (development splits)

`(1 - w) * p({args.base}) + w * p(other)`, each model fed by its own processor; w = 0 is `{args.base}` alone.
Development splits only (muxspace and tfeid photos cropped by the recognizer); no test split is read. A probe
that informs a training run, not a released model.

{chr(10).join(lines)}

Command: `{result['command']}`  
Date: {result['date']}  
Machine: {json.dumps(result["machine"])}
""")
    return result


if __name__ == "__main__":
    main()
