#!/usr/bin/env python
"""Every released model on every corpus: FER2013 PrivateTest, FER+ test (FER2013Test, majority vote),
CK+48 (all images), JAFFE (all images, faces detected and cropped by fer_hf), SFEW 2.0 Val, and real photos:
muxspace test people and tfeid test performers (person-disjoint splits; each photo's face cropped by the
recognizer's own detection, framing and alignment). Balanced accuracy (mean per-class recall; on muxspace over
the classes with at least 50 test faces), plain accuracy, macro-F1 and the most frequent answer of each
model (a model that answers one class for most faces shows there).

Each cell is `fer_hf.evaluation.report.evaluate_model` (the `fer-hf evaluate` report, no TTA) of a model folder
under ``model_cards/`` as released (no fine-tuning on the corpus: cross-dataset where the model was not
trained on it). Labels are matched by name: images of classes a model does not have (contempt for the
7-class models) are left out and counted; a model's classes that a corpus lacks (neutral on CK+48) are
removed from its argmax. Writes ``benchmarks/results/cross_dataset.md`` and ``.json``, each
cell with the command and the date that measured it, and each full report under ``--reports_dir``.

``--models`` / ``--corpora`` measure only those rows / columns (e.g. a model released again): every other
cell of the existing ``--json`` is kept as it was, with its own command and date; rows of models no longer
under ``model_cards/`` are dropped.

    python benchmarks/cross_dataset.py --data ../shared/data
    python benchmarks/cross_dataset.py --data ../shared/data --models fer-ensemble
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

from common import DATA, REPO, command_line, result_path, write_json, write_text

#: column -> (dataset, path under the data folder, reported split)
CORPORA = {
    "FER2013 PrivateTest": ("fer2013", "fer2013/fer2013_images.zip", "test"),
    "FER+ test (majority)": ("ferplus", "ferplus/ferplus_images.zip", "test"),
    "CK+48 (all)": ("ckplus", "ckplus/CK+48", "train"),
    "JAFFE (all)": ("jaffe", "jaffe", "train"),
    "SFEW 2.0 Val": ("sfew", "sfew", "validation"),
    "muxspace test (real photos)": ("muxspace", "muxspace", "test"),
    "tfeid test (posed, colour)": ("tfeid", "tfeid", "test"),
}


def load_table(path) -> dict:
    """The ``table`` of an existing cross_dataset.json ({} when there is none), every cell with its
    ``command`` (files written before cells carried one: the file's command) and ``date`` (None if unknown)."""
    path = Path(path)
    if not path.is_file():
        return {}
    doc = json.loads(path.read_text())
    table = doc.get("table", {})
    for row in table.values():
        for cell in row.values():
            cell.setdefault("command", doc.get("command"))
            cell.setdefault("date", None)
    return table


def training_corpora(model_dir) -> set:
    """The corpora a multi-corpus model trained on: the ``mix`` of its ``mix_settings.json``, or for an ensemble
    of multi-corpus models the union of its members' ``<member>.mix_settings.json``; empty otherwise."""
    files = [Path(model_dir) / "mix_settings.json", *sorted(Path(model_dir).glob("*.mix_settings.json"))]
    return {corpus for f in files if f.is_file() for corpus in json.loads(f.read_text())["mix"]}


def _cell_text(cell: dict, what: str) -> str:
    if "not_scored" in cell:
        return cell["not_scored"]
    if what == "balanced":
        if cell.get("balanced_accuracy") is None:
            return "not measured"
        return f"{cell['balanced_accuracy'] * 100:.1f}% (F1 {cell['macro_f1']:.3f})"
    if what == "accuracy":
        return f"{cell['accuracy'] * 100:.2f}%"
    shares = cell.get("answer_share")
    if not shares:
        return "not measured"
    top = max(shares, key=shares.get)
    return f"{top} {shares[top] * 100:.0f}%"


def render_markdown(table: dict) -> str:
    """cross_dataset.md for ``table`` (model -> column -> cell): balanced accuracy (macro-F1), accuracy and
    the most frequent answer per cell (a cell never measured: "not measured"), then the commands that
    measured the cells, with their rows and dates."""
    header = ["| model | " + " | ".join(CORPORA) + " |", "| --- |" + " --- |" * len(CORPORA)]
    tables = {what: list(header) for what in ("balanced", "accuracy", "answers")}
    provenance = {}
    for model in sorted(table):
        row = table[model]
        for what, lines in tables.items():
            cells = [_cell_text(row[c], what) if c in row else "not measured" for c in CORPORA]
            lines.append(f"| `{model}` | " + " | ".join(cells) + " |")
        for column in CORPORA:
            if column in row:
                cell = row[column]
                provenance.setdefault((cell["command"], cell["date"] or "date not recorded"), {}).setdefault(
                    model, []).append(column)
    measured = []
    for (command, date), rows in provenance.items():
        what = "; ".join(f"`{model}`" + ("" if len(columns) == len(CORPORA) else " (" + ", ".join(columns) + ")")
                         for model, columns in rows.items())
        measured.append(f"- `{command}` ({date}): {what}")
    return f"""# Cross-dataset results of the released models

Each released model as it is, no TTA; labels matched by name (images of classes a model lacks are left out, a
model's classes that a corpus lacks are removed from its argmax; counts in `cross_dataset.json` and each
report). Where a model was trained on a corpus, its column is that corpus's own test protocol; elsewhere it is
cross-dataset. muxspace and tfeid are split by person (`fer_hf.data.protocols.identity_disjoint_splits`);
their photos go through the recognizer's face detection, framing and alignment (MTCNN), so a face the
detector misses is scored on the photo's centred square. A multi-corpus model is not scored on CK+ and JAFFE,
which it trained on whole ("trained on all of it").

## Balanced accuracy (macro-F1)

Mean per-class recall over the classes the split has; on muxspace test over the classes with at least 50 test
faces (happy, surprise, neutral: the others have 3 to 40), as listed in each report's
`balanced_accuracy_over`.

{chr(10).join(tables["balanced"])}

## Accuracy

{chr(10).join(tables["accuracy"])}

## Most frequent answer (share of all answers)

{chr(10).join(tables["answers"])}

Measured by (`benchmarks/cross_dataset.py`; each cell's command and date are also in `cross_dataset.json`):

{chr(10).join(measured)}
"""


def main(argv=None) -> dict:
    from fer_hf.evaluation.report import evaluate_model
    from fer_hf.models.hub import available_models

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DATA), help="The shared data folder.")
    parser.add_argument("--models", nargs="+", default=None,
                        help="Released model names to measure (default: all); the other rows are kept.")
    parser.add_argument("--corpora", nargs="+", default=None, choices=list(CORPORA),
                        help="Columns to measure (default: all); the other cells are kept.")
    parser.add_argument("--reports_dir", default="runs/cross_dataset")
    parser.add_argument("--output", default=str(result_path("cross_dataset")))
    parser.add_argument("--json", default=str(result_path("cross_dataset", ".json")),
                        help="The table, read first (its cells that are not measured again are kept) and rewritten.")
    args = parser.parse_args(argv)
    command = command_line("cross_dataset", argv)
    released = available_models()
    unknown = sorted(set(args.models or []) - set(released))
    if unknown:
        parser.error(f"not released under model_cards/: {unknown} (released: {released})")
    table = {model: row for model, row in load_table(args.json).items() if model in released}
    today = datetime.date.today().isoformat()
    for model in args.models or released:
        trained_on = training_corpora(REPO / "model_cards" / model)
        for column in args.corpora or CORPORA:
            dataset, path, split = CORPORA[column]
            if dataset in trained_on and split == "train":  # CK+ and JAFFE: every image was training data
                table.setdefault(model, {})[column] = {"not_scored": "trained on all of it", "command": command,
                                                       "date": today}
                continue
            out = Path(args.reports_dir) / model / dataset
            report = evaluate_model(str(REPO / "model_cards" / model), dataset, str(Path(args.data) / path),
                                    split=split, output_dir=str(out), calibration_split="none", command=command)
            table.setdefault(model, {})[column] = {
                "accuracy": report["accuracy"], "balanced_accuracy": report["balanced_accuracy"],
                "balanced_accuracy_over": report["balanced_accuracy_over"], "macro_f1": report["macro_f1"],
                "answer_share": report["answer_share"], "per_class_recall": {
                    name: values["recall"] for name, values in report["per_class"].items()},
                "num_images": report["num_images"], "images_left_out": report["label_mapping"]["images_left_out"],
                "report": str(out / "metrics.json"), "command": command, "date": today}
            print(model, column, f"accuracy {report['accuracy']:.4f}, balanced {report['balanced_accuracy']:.4f}",
                  flush=True)
    table = {model: {c: table[model][c] for c in CORPORA if c in table[model]} for model in sorted(table)}
    write_json(args.json, {"table": table})
    text = render_markdown(table)
    write_text(args.output, text)
    print(text)
    return table


if __name__ == "__main__":
    main()
