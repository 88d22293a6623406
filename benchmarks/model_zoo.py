#!/usr/bin/env python
"""Cost (and, when trained, accuracy) of every fer_hf architecture, in one table.

For each architecture preset: parameters, GFLOPs per face (`torch.utils.flop_counter.FlopCounterMode`,
one forward on one face), CPU milliseconds per face at batch 1 and batch 64 (float32, eval mode,
``torch.inference_mode``, median of repeated timed runs after warm-up). With ``--runs_dir``, each
architecture's trained run (``RUNS_DIR/<name>/eval_results.json``, written by ``train_accelerate.py``)
adds its PublicTest / PrivateTest accuracy, macro-F1 and training time.

Writes ``benchmarks/results/model_zoo.md`` and ``.json``, each row with the command, date and
machine that measured it. ``--only`` measures those rows and keeps every other row of the existing
``--json`` as it was; a measured row whose run is not under ``--runs_dir`` keeps the accuracy columns it had
(they come from the training run in its ``train_command``). Run it on an otherwise idle machine: a
concurrent training run distorts every timing.

    python benchmarks/model_zoo.py --runs_dir runs/zoo
    python benchmarks/model_zoo.py --runs_dir runs/zoo --only fer-efficientnet-b0
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import time
from pathlib import Path

from common import command_line, cpu_model, result_path, write_json, write_text

import torch  # noqa: E402

from fer_hf.models import build_model  # noqa: E402
from fer_hf.evaluation.profiling import count_parameters, gflops_per_face  # noqa: E402

#: (row name, model_type, preset, what the original system claimed on FER2013)
ARCHITECTURES = [
    ("fer-conv1x1", "fer_conv1x1", "fer-conv1x1", "67% (the first system's CNN)"),
    ("ferplus-baseline", "fer_vgg", "ferplus-baseline", "not stated"),
    ("fer-vgg", "fer_vgg", "fer-vgg", "68.99% (fer_hf's first release)"),
    ("ferplus-vgg", "fer_vgg", "ferplus-vgg", "not stated"),
    ("fer-efficientnet-b0", "fer_efficientnet", "fer-efficientnet-b0", "68.74% (two-model ensemble)"),
    ("fer-resnet18", "fer_resnet", "fer-resnet18", '"75-85%" (no protocol stated)'),
    ("fer-lrn", "fer_lrn", "fer-lrn", "not stated"),
    ("acnn-alstm", "fer_acnn_alstm", "acnn-alstm", "not stated"),
    ("cnn-alstm", "fer_acnn_alstm", "cnn-alstm", "not stated"),
    ("cnn-lstm", "fer_acnn_alstm", "cnn-lstm", "not stated"),
]


@torch.inference_mode()
def ms_per_face(model, batch: int, repeats: int, channels: int, size: int) -> float:
    """Median wall-clock milliseconds per face of ``model(pixel_values)`` at this batch size."""
    pixel_values = torch.randn(batch, channels, size, size)
    for _ in range(3):
        model(pixel_values=pixel_values)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model(pixel_values=pixel_values)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000 / batch


ACCURACY_KEYS = ("public_test_accuracy", "private_test_accuracy", "private_test_macro_f1",
                 "private_test_accuracy_flip_tta", "training_hours", "epochs", "hardware", "train_command")


def load_rows(path) -> dict:
    """The rows of an existing model_zoo.json by name ({} when there is none), each with the ``command``,
    ``machine`` and ``date`` that measured its cost (rows written before rows carried them: the file's
    command and machine, date None)."""
    path = Path(path)
    if not path.is_file():
        return {}
    doc = json.loads(path.read_text())
    rows = {}
    for row in doc.get("rows", []):
        row.setdefault("command", doc.get("command"))
        row.setdefault("machine", doc.get("machine"))
        row.setdefault("date", None)
        rows[row["name"]] = row
    return rows


def accuracy_of_run(results_file: Path) -> dict:
    """The accuracy columns of one training run's ``eval_results.json`` (written by train_accelerate.py)."""
    results = json.loads(results_file.read_text())
    return {"public_test_accuracy": results["validation"]["accuracy"],
            "private_test_accuracy": results["test"]["accuracy"],
            "private_test_macro_f1": results["test"]["macro_f1"],
            "private_test_accuracy_flip_tta": results["test_flip_tta"]["accuracy"],
            "training_hours": results.get("training_hours"), "epochs": results.get("epochs_trained"),
            "hardware": results.get("hardware"), "train_command": results.get("command")}


def render_markdown(rows: list) -> str:
    """model_zoo.md for ``rows`` (in ARCHITECTURES order): the table, then the commands that measured the
    cost columns, with their rows, dates and machines."""

    def pct(row, key):
        return f"{row[key] * 100:.2f}%" if key in row else "not trained yet"

    lines = ["| architecture | `model_type` (preset) | params | GFLOPs / face | CPU ms / face, batch 1 | "
             "CPU ms / face, batch 64 | PublicTest acc. | PrivateTest acc. | PrivateTest macro-F1 | "
             "PrivateTest acc., flip TTA | training | original system's claim |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    provenance = {}
    for row in rows:
        training = (f"{row['epochs']} epochs, {row['training_hours']:.2f} h" if row.get("training_hours") is not None
                    else "")
        f1 = f"{row['private_test_macro_f1']:.4f}" if "private_test_macro_f1" in row else ""
        lines.append(f"| {row['name']} | `{row['model_type']}` ({row['preset']}) | {row['parameters'] / 1e6:.2f}M | "
                     f"{row['gflops_per_face']:.3f} | {row['ms_per_face_batch1']:.2f} | {row['ms_per_face_batch64']:.3f} | "
                     f"{pct(row, 'public_test_accuracy')} | {pct(row, 'private_test_accuracy')} | {f1} | "
                     f"{pct(row, 'private_test_accuracy_flip_tta')} | {training} | {row['claimed']} |")
        key = (row["command"], row["date"] or "date not recorded", row["machine"])
        provenance.setdefault(key, []).append(row["name"])
    measured = [f"- `{command}` ({date}; {machine}): " + ", ".join(names)
                for (command, date, machine), names in provenance.items()]
    return f"""# fer_hf model zoo: cost and accuracy

Timings: float32, eval mode, median of repeated runs after warm-up, on an otherwise idle machine. Accuracy
(FER2013, checkpoint chosen on PublicTest, PrivateTest reported once, no TTA unless stated) comes from each
architecture's training run (`benchmarks/train_zoo.py`); each row's training command is in
`model_zoo.json` (`train_command`) and in its run's `eval_results.json`.

{chr(10).join(lines)}

Cost columns measured by (`benchmarks/model_zoo.py`; each row's command, date and machine are also in
`model_zoo.json`):

{chr(10).join(measured)}
"""


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs_dir", default=None, help="Folder with one trained run per architecture name.")
    parser.add_argument("--repeats", type=int, default=30, help="Timed runs per measurement (batch 1).")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's).")
    parser.add_argument("--only", nargs="+", default=None, choices=[a[0] for a in ARCHITECTURES],
                        help="Measure only these architectures; every other row of --json is kept as it was.")
    parser.add_argument("--output", default=str(result_path("model_zoo")))
    parser.add_argument("--json", default=str(result_path("model_zoo", ".json")),
                        help="The table, read first (rows not measured again are kept) and rewritten.")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    command = command_line("model_zoo", argv)
    machine = f"{cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
    today = datetime.date.today().isoformat()
    kept = load_rows(args.json)
    rows = []
    for name, model_type, preset, claimed in ARCHITECTURES:
        if args.only and name not in args.only:
            if name in kept:
                rows.append(kept[name])
            continue
        model = build_model(model_type, preset).eval()
        config = model.config
        row = {"name": name, "model_type": model_type, "preset": preset, "claimed": claimed,
               "parameters": count_parameters(model), "gflops_per_face": round(gflops_per_face(model), 4),
               "ms_per_face_batch1": round(ms_per_face(model, 1, args.repeats, config.num_channels, config.image_size), 3),
               "ms_per_face_batch64": round(ms_per_face(model, 64, max(3, args.repeats // 5), config.num_channels,
                                                        config.image_size), 3),
               "command": command, "date": today, "machine": machine}
        results_file = Path(args.runs_dir) / name / "eval_results.json" if args.runs_dir else None
        if results_file and results_file.is_file():
            row.update(accuracy_of_run(results_file))
        elif name in kept and "private_test_accuracy" in kept[name]:
            # no run here (runs/ is not kept between machines): the earlier row's numbers still come from
            # the training run named in its train_command
            row.update({key: kept[name][key] for key in ACCURACY_KEYS if key in kept[name]})
        rows.append(row)
        print(json.dumps(row), flush=True)
    write_json(args.json, {"rows": rows})
    text = render_markdown(rows)
    write_text(args.output, text)
    print(text)
    return rows


if __name__ == "__main__":
    main()
