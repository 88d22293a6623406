#!/usr/bin/env python
"""Apply the default-model rule of docs/real_photos_rules.md (written before the runs) to candidate models.

    python benchmarks/real_photo_default.py --models fer-vgg-44-distilled-ft runs/real/mobilenet-112-mix1/best ...

For each candidate (a released name or a model folder), on the real-photo development splits only (muxspace
validation people, tfeid validation performers; each photo cropped by the recognizer):
- the score: the mean of the two balanced accuracies (muxspace over the classes with >= 25 faces in the split);
- gate (b): recall >= 0.20 on every class with >= 20 faces in the two splits pooled;
- gate (a): webcam path >= 30 frames/s at the webcam tab's defaults (blazeface-full, detection every 3rd frame,
  torch, 1 thread), read from benchmarks/results/live_path_side_by_side.json, where the candidates must have been measured
  side by side in one run (`benchmarks/live_path.py --model A B ...`); a candidate without a measurement fails.
The chosen default is the best score among the candidates that pass both gates; with ``--incumbent NAME
--margin M`` the incumbent stays unless that best score is at least M points above its own, or (with
``--fer2013_bar A``, run 6's clause B) a candidate scores at least the incumbent's score and reaches accuracy A (%)
on FER2013 PublicTest (the validation split, read through `fer-hf evaluate`), or (with ``--speed_ratio R``, run 8's
clause C) a candidate scores at most ``--speed_tolerance`` points below the incumbent at >= R times its webcam rate. Writes
``benchmarks/results/real_photo_default.md`` and ``.json``. No test split is read.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import DATA, REPO, command_line, machine, result_path, write_json, write_text
from fer_hf.models.hub import resolve_model  # noqa: E402  (common puts this checkout on sys.path)

#: muxspace validation counts the classes with >= 25 faces (`fer_hf.evaluation.metrics.MIN_CLASS_FACES`)
DEV_SPLITS = ("muxspace/validation", "tfeid/validation")
MIN_POOLED_FACES, MIN_RECALL, MIN_FPS = 20, 0.20, 30.0
WEBCAM = {"backend": "torch", "threads": 1, "detector": "blazeface-full", "detect_every": 3}


def webcam_fps(live: dict, name: str):
    """(frames/s at the webcam tab's defaults, the run's command) of a model in live_path.json, or (None, None)."""
    run = live.get(name) or live.get(resolve_model(name))
    if run is None:
        return None, None
    for row in run["live"]:
        if all(row[key] == value for key, value in WEBCAM.items()):
            return row["frames_per_second"], f"{run['command']} ({run['date']})"
    return None, f"{run['command']} ({run['date']})"


def judge(name: str, data: Path, live: dict, fer2013_bar=None) -> dict:
    from fer_hf.evaluation.report import evaluate_model

    splits, pooled = {}, {}
    for key in DEV_SPLITS:
        corpus, split = key.split("/")
        report = evaluate_model(resolve_model(name), corpus, str(data / corpus), split=split, calibration_split="none")
        per_class = report["per_class"]
        splits[key] = {"balanced_accuracy": report["balanced_accuracy"], "balanced_over": report["balanced_accuracy_over"],
                       "accuracy": report["accuracy"], "answer_share": report["answer_share"]}
        for label, m in per_class.items():
            hits, faces = pooled.get(label, (0, 0))
            pooled[label] = (hits + m["recall"] * m["support"], faces + m["support"])
    recall = {label: hits / faces for label, (hits, faces) in pooled.items() if faces >= MIN_POOLED_FACES}
    fps, measured = webcam_fps(live, name)
    public_test = public_test_balanced = None
    if fer2013_bar is not None:
        report = evaluate_model(resolve_model(name), "fer2013", str(data / "fer2013"), split="validation",
                                calibration_split="none")
        public_test, public_test_balanced = report["accuracy"], report["balanced_accuracy"]
    return {"fer2013_public_test_accuracy": public_test,
            "fer2013_public_test_balanced_accuracy": public_test_balanced, "score": sum(s["balanced_accuracy"] for s in splits.values()) / len(splits), "splits": splits,
            "pooled_recall": recall, "pooled_faces": {label: int(f) for label, (_, f) in pooled.items()},
            "recall_gate": all(r >= MIN_RECALL for r in recall.values()), "webcam_fps": fps,
            "webcam_measured": measured, "speed_gate": fps is not None and fps >= MIN_FPS}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", required=True, help="Released names or model folders.")
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--live_path", default=str(result_path("live_path_side_by_side", ".json")),
                        help="live_path.py results holding the candidates measured side by side.")
    parser.add_argument("--incumbent", default=None,
                        help="The default now (one of --models): another candidate replaces it only if its score is "
                             "at least --margin higher (a rule may ask for one, e.g. docs/real_photos_rules.md run 5).")
    parser.add_argument("--margin", type=float, default=0.0,
                        help="Points of mean balanced accuracy (0-100) a candidate must gain over --incumbent.")
    parser.add_argument("--fer2013_bar", type=float, default=None,
                        help="FER2013 PublicTest accuracy (%%) with which a candidate that scores at least the "
                             "--incumbent's replaces it inside the margin (docs/real_photos_rules.md run 6, clause B).")
    parser.add_argument("--speed_ratio", type=float, default=None,
                        help="Clause C (docs/real_photos_rules.md run 8): a candidate at most --speed_tolerance points "
                             "below the --incumbent whose webcam frames/s are at least this many times the "
                             "incumbent's (same live_path run) replaces it.")
    parser.add_argument("--speed_tolerance", type=float, default=0.5,
                        help="Points of mean balanced accuracy (0-100) clause C lets a faster candidate lose.")
    parser.add_argument("--output_name", default="real_photo_default",
                        help="Results go to benchmarks/results/<this>.md and .json (one file per decision).")
    args = parser.parse_args(argv)
    if args.incumbent is not None and args.incumbent not in args.models:
        parser.error(f"--incumbent {args.incumbent} is not one of --models")
    live = json.loads(Path(args.live_path).read_text()) if Path(args.live_path).is_file() else {}
    live = live.get("runs", live)
    started = time.time()
    if (args.fer2013_bar is not None or args.speed_ratio is not None) and args.incumbent is None:
        parser.error("--fer2013_bar and --speed_ratio need --incumbent")
    candidates = {name: judge(name, Path(args.data), live, args.fer2013_bar) for name in args.models}
    passing = [name for name, c in candidates.items() if c["recall_gate"] and c["speed_gate"]]
    chosen = max(passing, key=lambda name: candidates[name]["score"]) if passing else None
    if args.incumbent in passing and chosen != args.incumbent and (
            candidates[chosen]["score"] - candidates[args.incumbent]["score"]) * 100 < args.margin:
        chosen = args.incumbent  # the challenger's gain is inside the margin the rule asks for
    if args.incumbent in passing and chosen == args.incumbent:  # clauses B and C may still replace it
        incumbent = candidates[args.incumbent]
        clauses = []
        if args.fer2013_bar is not None:  # clause B: as good on real photos and near the FER2013 bar
            clauses += [name for name in passing if name != args.incumbent
                        and candidates[name]["score"] >= incumbent["score"]
                        and candidates[name]["fer2013_public_test_accuracy"] * 100 >= args.fer2013_bar]
        if args.speed_ratio is not None:  # clause C: as good within the noise, and much faster
            clauses += [name for name in passing if name != args.incumbent
                        and (incumbent["score"] - candidates[name]["score"]) * 100 <= args.speed_tolerance
                        and candidates[name]["webcam_fps"] >= args.speed_ratio * incumbent["webcam_fps"]]
        chosen = max(clauses, key=lambda name: candidates[name]["score"]) if clauses else chosen
    result = {"command": command_line("real_photo_default", argv), "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                                          time.gmtime()),
              "machine": machine(), "run_time_s": round(time.time() - started, 1), "rule": "docs/real_photos_rules.md",
              "incumbent": args.incumbent, "margin_points": args.margin, "fer2013_bar": args.fer2013_bar,
              "speed_ratio": args.speed_ratio, "speed_tolerance_points": args.speed_tolerance,
              "candidates": candidates, "chosen": chosen}
    write_json(result_path(args.output_name, ".json"), result)
    public = args.fer2013_bar is not None
    lines = ["| candidate | mean balanced accuracy | muxspace val | tfeid val | lowest pooled recall | "
             "webcam frames/s (1 thread) | gates passed |" + (" FER2013 PublicTest accuracy (balanced) |" if public else ""),
             "| --- | --- | --- | --- | --- | --- | --- |" + (" --- |" if public else "")]
    for name, c in sorted(candidates.items(), key=lambda item: -item[1]["score"]):
        low = min(c["pooled_recall"], key=c["pooled_recall"].get)
        fps = "not measured" if c["webcam_fps"] is None else f"{c['webcam_fps']:.1f}"
        gates = ", ".join(g for g, ok in (("recall", c["recall_gate"]), ("speed", c["speed_gate"])) if ok) or "none"
        lines.append(f"| `{name}` | {c['score'] * 100:.1f}% | {c['splits']['muxspace/validation']['balanced_accuracy'] * 100:.1f}% | "
                     f"{c['splits']['tfeid/validation']['balanced_accuracy'] * 100:.1f}% | {low} {c['pooled_recall'][low]:.2f} | "
                     f"{fps} | {gates} |" + (f" {c['fer2013_public_test_accuracy'] * 100:.2f}% ({c['fer2013_public_test_balanced_accuracy'] * 100:.1f}%) |"
                                         if public else ""))
    write_text(result_path(args.output_name), f"""# The default model, chosen on real photos

Rule (docs/real_photos_rules.md, written before the runs): the best mean balanced accuracy over muxspace
validation people (classes with >= 25 faces) and tfeid validation performers, among the candidates with recall
>= {MIN_RECALL:.2f} on every class with >= {MIN_POOLED_FACES} faces in the two splits pooled, and >= {MIN_FPS:.0f}
frames/s on the webcam path at the tab's defaults (BlazeFace full-range, detection every 3rd frame, torch, one
thread; from `{Path(args.live_path).relative_to(REPO) if Path(args.live_path).is_relative_to(REPO) else args.live_path}`, where the candidates were measured side by side). Photos go
through the recognizer's detection, framing and alignment. No test split is read here.

{chr(10).join(lines)}
{f"{chr(10)}Incumbent: `{args.incumbent}`; another candidate replaces it only with a score at least {args.margin:g} "
 f"points higher" + (f", or with a score at least the incumbent's and FER2013 PublicTest accuracy >= {args.fer2013_bar:g}%"
                     if public else "") + (f", or with a score at most {args.speed_tolerance:g} points below "
                                          f"it at >= {args.speed_ratio:g}x its webcam frames/s"
                                          if args.speed_ratio is not None else "") + f".{chr(10)}"
 if args.incumbent else ""}
**Chosen: {f'`{chosen}`' if chosen else 'none of the candidates passes both gates'}**

Command: `{result['command']}`  
Date: {result['date']}  
Machine: {json.dumps(result['machine'])}
""")
    print(json.dumps({name: {k: c[k] for k in ("score", "recall_gate", "speed_gate", "webcam_fps")}
                      for name, c in candidates.items()}, indent=1), "\nchosen:", chosen)
    return result


if __name__ == "__main__":
    main()
