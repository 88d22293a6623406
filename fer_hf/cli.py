"""The ``fer-hf`` command line (also ``python -m fer_hf``).

Subcommands:
    ensemble   build a released ensemble from trained fer_hf models, member weights fitted on PublicTest
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys


def _ensemble(args) -> int:
    from .ensembling import build_ensemble

    command = "python -m fer_hf " + " ".join(shlex.quote(a) for a in args.argv)
    results = build_ensemble(args.members, args.data_dir, args.output_dir, model_name=args.model_name,
                             step=args.weight_step, command=command, max_eval_samples=args.max_eval_samples,
                             criterion=args.weight_criterion)
    summary = {"member_weights": results["member_weights"],
               "PublicTest_accuracy": results["validation"]["accuracy"],
               "PrivateTest_accuracy": results["test"]["accuracy"],
               "PrivateTest_accuracy_flip_tta": results["test_flip_tta"]["accuracy"]}
    print(json.dumps(summary, indent=1))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fer-hf", description="fer_hf: facial expression recognition")
    commands = parser.add_subparsers(dest="command", required=True)
    ensemble = commands.add_parser(
        "ensemble", help="Build an ensemble of trained fer_hf models (weights fitted on FER2013 PublicTest).",
        description="Fit averaging weights on FER2013 PublicTest (never PrivateTest), build one "
                    "fer_ensemble PreTrainedModel holding every member, evaluate it on PublicTest and "
                    "PrivateTest (no TTA, flip, ten-crop) and write a released folder with its model card.")
    ensemble.add_argument("--members", nargs="+", required=True, help="Trained fer_hf model folders (or Hub ids).")
    ensemble.add_argument("--data_dir", required=True, help="FER2013 (fer2013.csv, image-folder zip/folder, Hub id).")
    ensemble.add_argument("--output_dir", required=True)
    ensemble.add_argument("--model_name", default=None, help="Name in the model card (default: output folder name).")
    ensemble.add_argument("--weight_step", type=float, default=0.05, help="Grid step of the member weights.")
    ensemble.add_argument("--weight_criterion", default="nll", choices=["nll", "accuracy"],
                          help="Fit the weights for the lowest PublicTest log-loss (default) or the best accuracy.")
    ensemble.add_argument("--max_eval_samples", type=int, default=None,
                          help="Only the first N PublicTest / PrivateTest images (for tests; not FER2013 results).")
    ensemble.set_defaults(handler=_ensemble)
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
