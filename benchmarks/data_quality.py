#!/usr/bin/env python
"""Data-quality report of every corpus in the shared data folder: FER2013 (image-folder zip), FER+ (official
layout, majority vote), CK+48, JAFFE (face crops, as the loader detects and caches them) and SFEW 2.0.

Each corpus is loaded as ``fer-hf evaluate`` / ``fer-hf data-quality`` load it (`fer_hf.evaluation.report.load_evaluation_corpus`:
the `fer_hf.data` loader with its default label set, every split) and reported by
`fer_hf.data.data_quality_report`: rows per split, rows the loader dropped (by reason), groups of images with
identical decoded pixels within a split and across splits, duplicate groups whose members carry different
labels, class counts per split and the imbalance ratio (largest / smallest non-empty class). Writes
``benchmarks/results/data_quality.json`` (every report in full, with the command and date) and
``benchmarks/results/data_quality.md`` (one table per corpus).

    python benchmarks/data_quality.py
    python benchmarks/data_quality.py --data ../shared/data --corpora ckplus jaffe --jaffe /elsewhere/jaffe
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from pathlib import Path

from common import DATA, REPO, command_line, result_path, write_json, write_text

#: dataset -> (title, path under the data folder)
CORPORA = {
    "fer2013": ("FER2013", "fer2013/fer2013_images.zip"),
    "ferplus": ("FER+ (official layout, majority vote)", "ferplus/ferplus_images.zip"),
    "ckplus": ("CK+48", "ckplus/CK+48"),
    "jaffe": ("JAFFE (face crops)", "jaffe"),
    "sfew": ("SFEW 2.0 (aligned faces)", "sfew"),
}


def _shown(path) -> str:
    """``path`` relative to the repository when it is below the repository's parent, else as given."""
    path = Path(path)
    try:
        path.resolve().relative_to(REPO.parent)
        return os.path.relpath(path.resolve(), REPO)
    except ValueError:
        return str(path)


def _ratio(counts) -> str:
    nonzero = [c for c in counts if c]
    return f"{max(nonzero) / min(nonzero):.2f}" if nonzero else "-"


def _group(example: dict, shown: int = 4) -> str:
    members = [f"`{i}` = {label}" for i, label in zip(example["image_ids"], example["labels"])]
    more = len(members) - shown
    if more <= 0:
        return ", ".join(members)
    labels = ", ".join(f"{label} {n}" for label, n in Counter(example["labels"]).most_common())
    return ", ".join(members[:shown]) + f" and {more} more (all {len(members)}: {labels})"


def corpus_table(report: dict) -> list:
    """Markdown lines of one corpus's report: a table with one column per split plus a whole-corpus column.

    Returns:
        the lines (list of str).
    """
    splits = list(report["rows"])
    duplicates, conflicts = report["duplicates"], report["conflicting_labels"]
    within, cross = duplicates["within_split"], duplicates["cross_split"]
    empty = [""] * len(splits)

    def row(name, cells, total):
        return f"| {name} | " + " | ".join(str(c) for c in cells) + f" | {total} |"

    lines = ["| measure | " + " | ".join(splits) + " | corpus |", "| --- |" + " ---: |" * (len(splits) + 1),
             row("rows", [f"{report['rows'][s]:,}" for s in splits], f"{sum(report['rows'].values()):,}")]
    dropped = report["dropped"]
    if dropped is None:
        lines.append(row("rows dropped by the loader", empty, "not reported"))
    elif not dropped["by_reason"]:
        lines.append(row("rows dropped by the loader", empty, "0"))
    else:
        for reason, n in dropped["by_reason"].items():
            lines.append(row(f"rows dropped by the loader: {reason}", empty, f"{n:,}"))
    lines += [
        row("duplicate groups within the split", [f"{within[s]['groups']:,}" for s in splits],
            f"{sum(w['groups'] for w in within.values()):,}"),
        row("redundant images within the split (members beyond the first)", [f"{within[s]['redundant']:,}" for s in splits],
            f"{sum(w['redundant'] for w in within.values()):,}"),
        row("duplicate groups across splits", empty, f"{cross['groups']:,}"),
        row("images in duplicate groups across splits", [f"{cross['images_per_split'][s]:,}" for s in splits],
            f"{cross['images']:,}"),
    ]
    for pair, n in cross["split_pairs"].items():
        lines.append(row(f"duplicate groups shared by {pair}", empty, f"{n:,}"))
    lines.append(row("duplicate groups with conflicting labels (within a split / across splits)", empty,
                     f"{conflicts['groups']:,} ({conflicts['within_split_groups']:,} / "
                     f"{conflicts['cross_split_groups']:,})"))
    balance = report["class_balance"]
    classes = list(next(iter(balance.values()))["counts"]) if balance else []
    for name in classes:
        counts = [balance[s]["counts"][name] if s in balance else 0 for s in splits]
        lines.append(row(f"class `{name}`", [f"{c:,}" for c in counts], f"{sum(counts):,}"))
    if classes:
        totals = [sum(balance[s]["counts"][name] for s in balance) for name in classes]
        lines.append(row("imbalance ratio (largest / smallest non-empty class)",
                         [_ratio(balance[s]["counts"].values()) if s in balance else "-" for s in splits],
                         _ratio(totals)))
    return lines


def markdown(results: dict) -> str:
    """The data_quality.md text of `main`'s results.

    Returns:
        the Markdown text.
    """
    lines = ["# Data quality of the corpora", "", f"Command: `{results['command']}`  ", f"Date: {results['date']}  ",
             f"Note: {results['note'] or '-'}  ", "", "Each corpus is loaded as `fer-hf evaluate` and `fer-hf data-quality` load it (the `fer_hf.data` "
             "loader with its default label set, every split) and reported by "
             "`fer_hf.data.data_quality_report`. A duplicate group is a set of images whose decoded pixels are "
             "identical (re-encodings of the same pixels count, near-duplicates such as consecutive video frames "
             "do not); a group with conflicting labels is one whose members carry different labels. Rows "
             "dropped by the loader are not attributed to a split. Full reports, with example image ids: "
             "[`data_quality.json`](data_quality.json).", ""]
    for name, entry in results["corpora"].items():
        report = entry["report"]
        lines += [f"## {entry['title']}", "", f"`fer-hf data-quality --dataset {name} --data_dir {entry['data_dir']}` "
                  f"(loaded and reported in {entry['seconds']:.1f} s)", ""]
        label_report = report.get("label_report")
        if label_report:
            note = f"Label set `{label_report['label_set']}` ({len(label_report['classes'])} classes)"
            if label_report["empty_classes"]:
                note += f"; no images of: {', '.join(label_report['empty_classes'])}"
            if label_report["dropped_classes"]:
                note += "; classes outside the label set (rows dropped): " + ", ".join(
                    f"{k} {v}" for k, v in label_report["dropped_classes"].items())
            lines += [note + ".", ""]
        if entry.get("faces"):
            lines += [entry["faces"], ""]
        lines += corpus_table(report) + [""]
        examples = report["conflicting_labels"]["examples"][:3]
        if examples:
            lines += ["Conflicting-label examples (split:image id = label): " + "; ".join(map(_group, examples)) + ".", ""]
    return "\n".join(lines)


def main():
    from fer_hf.cli.commands import quality_summary
    from fer_hf.evaluation.report import load_evaluation_corpus
    from fer_hf.data import data_quality_report

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DATA), help="The shared data folder.")
    for name, (title, path) in CORPORA.items():
        parser.add_argument(f"--{name}", default=None, help=f"{title} (default: <data>/{path}).")
    parser.add_argument("--corpora", nargs="+", default=list(CORPORA), choices=list(CORPORA))
    parser.add_argument("--note", default="", help="A note for the header (e.g. the machine's load).")
    parser.add_argument("--max_examples", type=int, default=5, help="Example ids kept per finding in the JSON.")
    parser.add_argument("--output", default=str(result_path("data_quality", ".json")),
                        help="The JSON; the Markdown goes beside it (same name, .md).")
    args = parser.parse_args()
    command = command_line("data_quality")
    results = {"command": command.strip(), "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
               "note": args.note, "corpora": {}}
    for name in args.corpora:
        title, default = CORPORA[name]
        path = getattr(args, name) or str(Path(args.data) / default)
        started = time.perf_counter()
        corpus = load_evaluation_corpus(name, path)
        report = data_quality_report(corpus, max_examples=args.max_examples)
        entry = {"title": title, "dataset": name, "data_dir": _shown(path),
                 "seconds": round(time.perf_counter() - started, 1), "report": report}
        face_report = getattr(corpus, "face_report", None)
        if face_report:
            entry["face_report"] = {k: v for k, v in face_report.items() if k != "cache_dir"}
            entry["faces"] = (f"Faces detected by `{face_report.get('detector')}` in "
                              f"{sum(report['rows'].values()) - len(face_report.get('no_face', []))} of "
                              f"{sum(report['rows'].values())} images (the others: centred crop); the report is on "
                              "the crops.")
        results["corpora"][name] = entry
        print(f"== {title}: {entry['data_dir']} ({entry['seconds']} s)\n{quality_summary(report)}", flush=True)
    output = write_json(args.output, results)
    write_text(output.with_suffix(".md"), markdown(results))
    print(f"wrote {output} and {output.with_suffix('.md')}")


if __name__ == "__main__":
    main()
