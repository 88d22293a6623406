"""The ``fer-hf`` command line (also ``python -m fer_hf``).

Subcommands:
    ensemble   build a released ensemble from trained fer_hf models, member weights fitted on PublicTest
    evaluate   the evaluation report of a trained model on a dataset split (metrics.json + plots)
    train-classical   the classical baseline (Haar, LBP + Gabor, SVM; fer_hf.training.classical) with the evaluation protocols
    export-onnx   ONNX export (dynamic batch axis, optional int8) of a fer_hf model (fer_hf.inference.onnx)
    predict    expressions of every face in images, folders and videos -> CSV / JSON / JSONL (fer_hf.cli.predict;
               data parallel under ``accelerate launch -m fer_hf predict``)
    benchmark  speed on this machine: classifier faces/s at batch 1 and 64, the live path, one photo
    data-quality   a corpus's data-quality report (fer_hf.data.data_quality_report): dropped rows, duplicate
               images within / across splits, conflicting labels, class balance -> summary + JSON
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from .flags import dash_flags

# Each subcommand imports what it runs inside its handler: ``fer-hf --help`` and a mistyped flag answer at once,
# without loading torch, transformers, datasets or onnxruntime for subcommands that are not run.


def _command_line(args) -> str:
    """The command as run (``python -m fer_hf`` and the arguments, shell-quoted), recorded in results."""
    return "python -m fer_hf " + " ".join(shlex.quote(a) for a in args.argv)


def _subcommand(commands, name: str, handler, **kwargs) -> argparse.ArgumentParser:
    """The ``name`` subparser of ``commands`` (``kwargs``: help, description); `main` calls ``handler`` with
    its parsed arguments."""
    parser = commands.add_parser(name, **kwargs)
    parser.set_defaults(handler=handler)
    return parser


def _ensemble(args) -> int:
    from ..training.ensembling import build_ensemble

    command = _command_line(args)
    results = build_ensemble(args.members, args.data_dir, args.output_dir, model_name=args.model_name,
                             step=args.weight_step, command=command, max_eval_samples=args.max_eval_samples,
                             criterion=args.weight_criterion, dataset=args.dataset, weights=args.weights,
                             validation_fraction=args.validation_fraction, seed=args.seed,
                             weights_dtype=args.weights_dtype, member_names=args.member_names, device=args.device,
                             max_megabytes=args.max_megabytes)
    summary = {"protocol": results["protocol"], "members": [m["name"] for m in results["members"]],
               "member_weights": results["member_weights"],
               "left_out_members (weight 0)": [m["name"] for m in results["left_out_members"]
                                               if m.get("left_out_because") != "size"],
               "dropped_for_size": results["dropped_for_size"],
               "selection_accuracy (validation)": results["validation"]["accuracy"],
               "reported_accuracy (test)": results["test"]["accuracy"],
               "reported_accuracy_flip_tta": results["test_flip_tta"]["accuracy"]}
    print(json.dumps(summary, indent=1))
    return 0


def _evaluate(args) -> int:
    from ..evaluation.report import evaluate_model

    command = _command_line(args)
    label_mapping = json.loads(args.label_mapping) if args.label_mapping else None
    try:
        results = evaluate_model(args.model, args.dataset, args.data_dir, split=args.split,
                                 output_dir=args.output_dir, tta=args.tta, batch_size=args.batch_size,
                                 label_mapping=label_mapping, calibration_split=args.calibration_split,
                                 max_samples=args.max_samples, n_bins=args.num_bins, tta_padding=args.tta_padding,
                                 command=command)
    except (ValueError, NotImplementedError, FileNotFoundError, OSError) as error:
        print(f"fer-hf evaluate: error: {error}", file=sys.stderr)
        return 2
    keys = ("model", "dataset", "split", "tta", "num_images", "accuracy", "balanced_accuracy",
            "balanced_accuracy_over", "macro_f1", "answer_share", "top_2_accuracy",
            "expected_calibration_error", "temperature", "expected_calibration_error_after_temperature_scaling")
    summary = {key: results[key] for key in keys}
    summary["roc_auc_macro"] = results["roc_auc"]["macro"]
    summary["images_left_out"] = results["label_mapping"]["images_left_out"]
    print(json.dumps(summary, indent=1))
    return 0


def _train_classical(args) -> int:
    from ..training.classical import train_classical

    command = _command_line(args)
    grid = None
    if args.C or args.gamma_factor:
        from ..training.classical import DEFAULT_GRID

        grid = {"C": args.C or DEFAULT_GRID["C"], "gamma_factor": args.gamma_factor or DEFAULT_GRID["gamma_factor"]}
    pca = args.pca_components
    if pca is not None:
        pca = float(pca) if "." in pca else int(pca)
    try:
        results = train_classical(args.dataset, args.data_dir, args.output_dir, cv=args.cv, folds=args.folds,
                                  max_train_samples=args.max_train_samples, seed=args.seed,
                                  max_eval_samples=args.max_eval_samples, grid=grid, inner_folds=args.inner_folds,
                                  model_name=args.model_name, command=command, image_size=args.image_size,
                                  denoise=args.denoise, pca_components=pca)
    except (ValueError, FileNotFoundError) as error:
        print(f"fer-hf train-classical: error: {error}", file=sys.stderr)
        return 2
    if args.cv == "none":
        summary = {"chosen": results["chosen"], "PublicTest_accuracy": results["validation"]["accuracy"],
                   "PrivateTest_accuracy": results["test"]["accuracy"],
                   "PrivateTest_macro_f1": results["test"]["macro_f1"], "split_sizes": results["split_sizes"]}
    else:
        summary = {key: results[key] for key in ("protocol", "folds", "accuracy_mean", "accuracy_std", "macro_f1_mean",
                                                 "macro_f1_std", "pooled_accuracy")}
    summary["timings"] = results["timings"]
    print(json.dumps(summary, indent=1))
    return 0


def _predict(args) -> int:
    from .predict import main_predict

    return main_predict(args)


def _export_onnx(args) -> int:
    from ..inference.onnx import OnnxImageClassifier, export_onnx

    try:
        path = export_onnx(args.model, args.output, opset=args.opset, quantize=args.quantize,
                           calibration_data=args.calibration_data, calibration_samples=args.calibration_samples,
                           exporter=args.exporter)
    except (ValueError, FileNotFoundError, OSError) as error:
        print(f"fer-hf export-onnx: error: {error}", file=sys.stderr)
        return 2
    classifier = OnnxImageClassifier(path)
    print(json.dumps({"output": str(path), "size_bytes": path.stat().st_size, "opset": args.opset,
                      "exporter": classifier.exporter, "quantization": classifier.quantization,
                      "input": {"name": "pixel_values", "shape": ["batch", *classifier.input_shape[1:]]},
                      "id2label": {str(k): v for k, v in classifier.config.id2label.items()}}, indent=1))
    return 0


def quality_summary(report: dict) -> str:
    """A few human-readable lines of a `fer_hf.data.data_quality_report` result: rows per split, dropped rows
    by reason, duplicate groups within / across splits, conflicting-label groups, class-balance imbalance
    ratio per split.

    Returns:
        the text (lines joined by newlines, no trailing newline).
    """
    rows = report["rows"]
    lines = ["rows: " + ", ".join(f"{s} {n:,}" for s, n in rows.items()) + f" (total {sum(rows.values()):,})"]
    dropped = report.get("dropped")
    if dropped is None:
        lines.append("dropped by the loader: not reported")
    else:
        reasons = "; ".join(f"{reason}: {n:,}" for reason, n in dropped["by_reason"].items())
        lines.append(f"dropped by the loader: {dropped['total']:,}" + (f" ({reasons})" if reasons else ""))
    duplicates = report["duplicates"]
    lines.append("duplicate groups within a split (identical pixels): " + ", ".join(
        f"{s} {w['groups']:,} ({w['redundant']:,} redundant images)" for s, w in duplicates["within_split"].items()))
    cross = duplicates["cross_split"]
    line = f"duplicate groups across splits: {cross['groups']:,} ({cross['images']:,} images"
    if cross["groups"]:
        line += "; " + ", ".join(f"{s} {n:,}" for s, n in cross["images_per_split"].items())
        line += "; groups per split pair: " + ", ".join(f"{p} {n:,}" for p, n in cross["split_pairs"].items())
    lines.append(line + ")")
    conflicts = report["conflicting_labels"]
    lines.append(f"duplicate groups with conflicting labels: {conflicts['groups']:,} "
                 f"({conflicts['within_split_groups']:,} within a split, {conflicts['cross_split_groups']:,} across)")
    balance = []
    for split, entry in report["class_balance"].items():
        text = f"{split} {entry['imbalance_ratio']}"
        if entry["empty_classes"]:
            text += f" (empty: {', '.join(entry['empty_classes'])})"
        balance.append(text)
    if balance:
        lines.append("class imbalance (largest / smallest non-empty class): " + ", ".join(balance))
    return "\n".join(lines)


def _data_quality(args) -> int:
    """Load the corpus (`fer_hf.evaluation.report.load_evaluation_corpus`), print `quality_summary` of its `fer_hf.data.data_quality_report`
    and, with ``--output``, write the report (plus ``command``, ``dataset``, ``data_dir``) as JSON, atomically.

    Returns:
        0, or 2 (message on stderr, no traceback) when the corpus cannot be loaded or the JSON not written.
    """
    from pathlib import Path

    from ..atomic import atomic_write_text
    from ..data import data_quality_report

    command = _command_line(args)
    try:
        from ..evaluation.report import load_evaluation_corpus

        corpus = load_evaluation_corpus(args.dataset, args.data_dir)
    except (ValueError, NotImplementedError, FileNotFoundError, OSError) as error:
        missing = "" if Path(args.data_dir).expanduser().exists() else f" ({args.data_dir}: no such file or folder)"
        print(f"fer-hf data-quality: error: {error}{missing}", file=sys.stderr)
        return 2
    report = data_quality_report(corpus, max_examples=args.max_examples)
    print(f"{args.dataset} ({args.data_dir})")
    print(quality_summary(report))
    if args.output:
        output = Path(args.output)
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(output, json.dumps({"command": command, "dataset": args.dataset,
                                                  "data_dir": str(args.data_dir), **report}, indent=1) + "\n")
        except OSError as error:
            print(f"fer-hf data-quality: error: cannot write {output}: {error}", file=sys.stderr)
            return 2
        print(f"report: {output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fer-hf", description="fer_hf: facial expression recognition")
    commands = parser.add_subparsers(dest="command", required=True)
    ensemble = _subcommand(
        commands, "ensemble", _ensemble,
        help="Build an ensemble of trained fer_hf models (weights fitted on FER2013 PublicTest, or on the selection "
             "split of --dataset).",
        description="Fit averaging weights on a selection split (FER2013 PublicTest by default; never the "
                    "reported split), or take fixed --weights, build one fer_ensemble PreTrainedModel holding "
                    "every member with a non-zero weight (members at weight 0 are left out and listed), "
                    "evaluate it on the selection and the reported split (no TTA, flip, ten-crop) and write a "
                    "released folder with its model card.")
    ensemble.add_argument("--members", nargs="+", required=True, help="Trained fer_hf model folders (or Hub ids). A released fer_ensemble "
                               "adds each of its members as a candidate (refit an ensemble with new candidates).")
    ensemble.add_argument("--dataset", default="fer2013", choices=["fer2013", "ferplus", "sfew"],
                          help="Corpus: fer2013 (fit on PublicTest, report PrivateTest), ferplus (FER2013Valid / "
                               "FER2013Test, majority vote) or sfew (held-out SFEW Train movies, as "
                               "train_accelerate.py selects on / SFEW Val).")
    ensemble.add_argument("--data_dir", required=True,
                          help="The corpus: FER2013 (fer2013.csv, image-folder zip/folder, Hub id), the FER+ layout "
                               "or the SFEW folder.")
    ensemble.add_argument("--output_dir", required=True)
    ensemble.add_argument("--model_name", default=None, help="Name in the model card (default: output folder name).")
    ensemble.add_argument("--weights", type=float, nargs="+", default=None,
                          help="Fixed member weights, one per member (normalised to sum 1), instead of a fit: "
                               "for weights chosen before looking at any split, e.g. uniform when the selection "
                               "split is too small to fit on.")
    ensemble.add_argument("--member_names", nargs="+", default=None,
                          help="One name per member for the config, the card and the app (default: folder names; "
                               "an ensemble's members keep their names).")
    ensemble.add_argument("--weights_dtype", default="float32", choices=["float32", "float16"],
                          help="Store the weights in float16 (half the size, loaded as float32); they are rounded "
                               "before the evaluation, so the reported numbers are of the stored weights.")
    ensemble.add_argument("--max_megabytes", type=float, default=None,
                          help="Size rule for model.safetensors (MB = 10^6 bytes): while the kept members' file "
                               "would be larger, drop the kept member with the smallest weight and fit again "
                               "(e.g. 24.1 to stay under a 25 MB limit on committed files). Default: no limit.")
    ensemble.add_argument("--device", default="cpu",
                          help="Where the members and the ensemble run for the fit and the evaluation: cpu (default) "
                               "or cuda.")
    ensemble.add_argument("--weight_step", type=float, default=0.05, help="Grid step of the member weights.")
    ensemble.add_argument("--weight_criterion", default="nll", choices=["nll", "accuracy"],
                          help="Fit the weights for the lowest selection-split log-loss (default) or the best "
                               "accuracy.")
    ensemble.add_argument("--validation_fraction", type=float, default=0.1,
                          help="sfew: share of SFEW Train movies held out for the fit (train_accelerate.py's "
                               "default, so the members never trained on them).")
    ensemble.add_argument("--seed", type=int, default=42,
                          help="sfew: seed of the held-out movies (train_accelerate.py's default).")
    ensemble.add_argument("--max_eval_samples", type=int, default=None,
                          help="Only a fixed random subset (seed 0) of N selection and of N reported images, "
                               "not the first N (the FER2013 zip is sorted by class); for tests, not results.")

    from ..evaluation.calibration import DEFAULT_N_BINS
    from ..evaluation.report import EVALUATION_DATASETS
    from ..inference.tta import TTA_MODES

    evaluate = _subcommand(
        commands, "evaluate", _evaluate,
        help="Evaluation report of a trained fer_hf model on a dataset split (metrics.json + plots).",
        description="Accuracy, macro-F1, per-class precision/recall/F1, confusion matrix, top-2 accuracy, "
                    "one-vs-rest ROC AUC, ECE before/after temperature scaling (temperature fitted on the "
                    "validation split, never the reported one); writes metrics.json, confusion_matrix.png, "
                    "roc.png, reliability_diagram.png and confident_mistakes.png. Labels are matched by name.")
    evaluate.add_argument("--model", required=True, help="A fer_hf model folder or Hub id (fer_hf model types only).")
    evaluate.add_argument("--dataset", required=True, choices=EVALUATION_DATASETS)
    evaluate.add_argument("--data_dir", required=True,
                          help="The dataset's file or folder (imagefolder: <root>/<class>/*.jpg).")
    evaluate.add_argument("--split", default="test",
                          help="train, validation, test (FER2013 test = PrivateTest) or all (default: test); "
                               "CK+ and JAFFE have one split: train or all; SFEW: train or validation.")
    evaluate.add_argument("--output_dir", required=True)
    evaluate.add_argument("--tta", default="none", choices=TTA_MODES, help="Test-time augmentation (default: none).")
    evaluate.add_argument("--tta_padding", type=int, default=4, help="Padding of the ten-crop views (default: 4).")
    evaluate.add_argument("--batch_size", type=int, default=256)
    evaluate.add_argument("--calibration_split", default="auto",
                          help="Split the temperature is fitted on: auto (FER2013/FER+ test -> validation, "
                               "SFEW validation -> train, else none), none, or a split name.")
    evaluate.add_argument("--num_bins", type=int, default=DEFAULT_N_BINS, help="ECE / reliability bins (default: 15).")
    evaluate.add_argument("--label_mapping", default=None,
                          help='JSON {dataset label: model label} overrides of the match by name, e.g. '
                               '\'{"contempt": "disgust"}\'.')
    evaluate.add_argument("--max_samples", type=int, default=None,
                          help="A fixed random subset (seed 0) of N images of the split and of the calibration "
                               "split (for tests; not a result).")

    classical = _subcommand(
        commands, "train-classical", _train_classical,
        help="Train and evaluate the classical baseline (Haar, LBP + Gabor, RBF SVM).",
        description="fer_hf.training.classical: grayscale face, bilateral denoising, LBP + Gabor features, StandardScaler, "
                    "optional PCA, RBF SVM with calibrated probabilities. fer2013: train on Training, choose C and "
                    "gamma on PublicTest only, report PrivateTest and PublicTest; writes the model "
                    "(config.json + model.safetensors, no pickle), eval_results.json and README.md. ckplus / jaffe: "
                    "cross-validation (--cv), C and gamma chosen per fold by an inner CV of its training part; "
                    "writes cv_results.json (mean +/- std over folds).")
    classical.add_argument("--dataset", required=True, choices=["fer2013", "ckplus", "jaffe"])
    classical.add_argument("--data_dir", required=True, help="fer2013.csv / image-folder zip, CK+48, JAFFE folder.")
    classical.add_argument("--output_dir", required=True)
    classical.add_argument("--cv", default="none", choices=["none", "subject", "loso", "stratified"],
                           help="none (fer2013), subject (subject-independent k-fold), loso (leave one subject out), "
                                "stratified (random stratified k-fold, NOT subject-independent).")
    classical.add_argument("--folds", type=int, default=10, help="Folds for --cv subject / stratified (default 10).")
    classical.add_argument("--inner_folds", type=int, default=3, help="Inner CV folds for C / gamma (CV only).")
    classical.add_argument("--max_train_samples", type=int, default=None,
                           help="fer2013: random subset (seed --seed) of Training (an RBF SVM on all 28,709 images "
                                "is slow); ckplus / jaffe: random subset of the corpus (tests only).")
    classical.add_argument("--max_eval_samples", type=int, default=None,
                           help="Random subsets of PublicTest / PrivateTest (tests only; not a FER2013 result).")
    classical.add_argument("--C", type=float, nargs="+", default=None, help="SVM C grid (default 1 10 100).")
    classical.add_argument("--gamma_factor", type=float, nargs="+", default=None,
                           help="RBF gamma grid as multiples of scikit-learn's 'scale' (default 0.3 1 2).")
    classical.add_argument("--pca_components", default=None,
                           help="PCA before the SVM: an int (components) or a float in (0, 1) (variance kept); "
                                "default none.")
    classical.add_argument("--image_size", type=int, default=48)
    classical.add_argument("--denoise", default="bilateral", choices=["bilateral", "nlmeans", "none"])
    classical.add_argument("--seed", type=int, default=42,
                           help="Seed of folds, subsets, calibration folds and PCA; 42 as in train_accelerate.py, "
                                "so --cv subject / stratified gives the CNN runs' folds.")
    classical.add_argument("--model_name", default=None, help="Name in the model card (default: output folder name).")

    from ..inference.onnx import DEFAULT_CALIBRATION_SAMPLES, DEFAULT_OPSET, EXPORTERS, QUANTIZE_MODES

    export = _subcommand(
        commands, "export-onnx", _export_onnx,
        help="Export a fer_hf model to ONNX (dynamic batch axis; optional int8 quantisation).",
        description="One self-contained .onnx file: input pixel_values (batch, C, H, W) float32, normalized as "
                    "the model's image processor does; output logits (batch, num_labels). The model config "
                    "(id2label) and image processor config are embedded in its metadata and written beside it "
                    "(config.json, preprocessor_config.json). Load it with fer_hf.inference.onnx.OnnxImageClassifier "
                    "or FaceExpressionRecognizer.from_pretrained(OUT.onnx, backend='onnx').")
    export.add_argument("model", help="A fer_hf model folder, released model name (model_cards/) or Hub id.")
    export.add_argument("output", help="The .onnx file to write.")
    export.add_argument("--quantize", default=None, choices=QUANTIZE_MODES,
                        help="int8: static QDQ int8, calibrated on real faces (--calibration_data; the faster one); "
                             "int8-dynamic: dynamic int8, no calibration data (slow for convolutions).")
    export.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET}).")
    export.add_argument("--calibration_data", default=None,
                        help="For --quantize int8: FER2013 (zip / csv / Hub id); a random subset of its training "
                             "faces calibrates the activation ranges.")
    export.add_argument("--calibration_samples", type=int, default=DEFAULT_CALIBRATION_SAMPLES,
                        help=f"Calibration faces (default {DEFAULT_CALIBRATION_SAMPLES}).")
    export.add_argument("--exporter", default="auto", choices=EXPORTERS,
                        help="auto (default): torch.onnx dynamo exporter, TorchScript exporter if that fails.")

    bench = _subcommand(
        commands, "benchmark", _benchmark,
        help="Speed on this machine: classifier faces/s, the live path, one photo (JSON).",
        description="Times the default (or --model) classifier at batch 1 and --batch-size on the face crops of "
                    "--image, the live path (the image letterboxed into 640x480: detect, crop, classify, annotate) "
                    "and recognizer.predict on the image; medians of --repeats runs. benchmarks/*.py measure more.")
    bench.add_argument("--model", default=None, help="Released name, folder or Hub id (default: the default model).")
    bench.add_argument("--image", required=True, help="A photo with at least one face.")
    bench.add_argument("--detector", default="blazeface-full", help="Face detector (default blazeface-full).")
    bench.add_argument("--backend", default="torch", choices=["torch", "onnx"])
    bench.add_argument("--batch-size", "--batch_size", type=int, default=64)
    bench.add_argument("--repeats", type=int, default=20)
    bench.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's).")
    bench.add_argument("--output", default=None, help="Also write the JSON here.")

    quality = _subcommand(
        commands, "data-quality", _data_quality,
        help="Data-quality report of a corpus: dropped rows, duplicates, conflicting labels, balance.",
        description="Loads the corpus as fer-hf evaluate does (same loaders, every split) and runs "
                    "fer_hf.data.data_quality_report: rows per split, rows the loader dropped (by reason), groups of "
                    "images with identical decoded pixels within a split and across splits, duplicate groups with "
                    "conflicting labels, class counts and imbalance ratio per split. Prints a summary; --output "
                    "writes the full report as JSON.")
    quality.add_argument("--dataset", required=True, choices=EVALUATION_DATASETS)
    quality.add_argument("--data_dir", required=True,
                         help="The dataset's file or folder (imagefolder: <root>/<class>/*.jpg or "
                              "<root>/<split>/<class>/*.jpg).")
    quality.add_argument("--output", default=None, help="Write the full report here as JSON (atomically).")
    quality.add_argument("--max_examples", type=int, default=5,
                         help="Example image ids kept per finding in the JSON (default 5).")

    from .predict import add_predict_arguments

    predict = _subcommand(
        commands, "predict", _predict,
        help="Expressions of every face in images, folders and videos, into one CSV / JSON / JSONL.",
        description="One row per face (the app's Batch columns; time_s, frame_index, track_id for videos); a file "
                    "without a face is one 'no face' row, an unreadable file one error row. Progress bar and a "
                    "summary at the end. Data parallel: accelerate launch -m fer_hf predict ... (each process "
                    "takes its share of the sorted files; one merged output, the same rows as one process). "
                    "Killed runs continue with --resume.")
    add_predict_arguments(predict)
    return dash_flags(parser)


def _benchmark(args) -> int:
    """Classifier faces/s (batch 1 and --batch-size, the photo's own face crops repeated), the live path (the
    photo letterboxed into 640x480, detection every frame) and ``recognizer.predict`` on the photo, as JSON.
    torch's thread count is restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return _run_benchmark(args, torch.get_num_threads())
    finally:
        torch.set_num_threads(threads)


def _run_benchmark(args, threads: int) -> int:
    from PIL import Image

    from ..inference.live import measure_live_path
    from ..evaluation.profiling import median_seconds
    from ..image_io import load_image
    from ..inference.recognizer import FaceExpressionRecognizer

    try:
        recognizer = FaceExpressionRecognizer.from_pretrained(args.model, detector=args.detector,
                                                              backend=args.backend)
        photo = load_image(args.image)
    except (OSError, ValueError) as error:
        print(f"fer-hf benchmark: {error}", file=sys.stderr)
        return 2
    _, _, crops = recognizer.crop_faces(photo)
    if not crops:
        print(f"fer-hf benchmark: no face found in {args.image} with {args.detector}", file=sys.stderr)
        return 2

    batch = (crops * (args.batch_size // len(crops) + 1))[:args.batch_size]
    frame = Image.new("RGB", (640, 480), (90, 90, 90))
    scale = min(640 / photo.width, 480 / photo.height)
    small = photo.convert("RGB").resize((max(1, round(photo.width * scale)), max(1, round(photo.height * scale))))
    frame.paste(small, ((640 - small.width) // 2, (480 - small.height) // 2))
    result = {
        "model": str(args.model or "default"), "backend": args.backend, "detector": args.detector,
        "torch_threads": threads, "image": str(args.image), "faces_in_image": len(crops),
        "classifier_faces_per_s_batch_1": 1 / median_seconds(lambda: recognizer.classify_faces(crops[:1]),
                                                             args.repeats),
        f"classifier_faces_per_s_batch_{args.batch_size}": args.batch_size / median_seconds(
            lambda: recognizer.classify_faces(batch), args.repeats),
        "photo_ms": 1000 * median_seconds(lambda: recognizer.predict(photo), args.repeats),
        "live_path_640x480": measure_live_path(recognizer, frame, frames=args.repeats, detect_every=1),
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.output:
        with open(args.output, "w") as handle:
            handle.write(text)
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
