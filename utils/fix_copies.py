"""Writes the remote-code copies (``*.py``) of every released model folder under ``model_cards/`` from fer_hf.

A released folder is laid out as a Hub repository: besides its weights and configs it holds copies of the
package code that ``from_pretrained(folder, trust_remote_code=True)`` runs where fer_hf is not installed.
Those copies are generated, in the spirit of transformers' ``make fix-copies``: for each folder this builds
its model (from its config.json, no weights read) and its image processor with fer_hf, calls their
``save_pretrained`` (which copies, through ``register_for_auto_class``, each class's module and the files it
imports relatively; the ensemble adds its members' families) into a temporary folder, and writes exactly
those ``*.py`` files, each under a two-line header naming its source. A ``*.py`` file that the library would
not write is removed.

Usage (from the repository root, with this checkout's fer_hf importable)::

    python utils/fix_copies.py            # rewrite every released folder's copies
    python utils/fix_copies.py --check    # exit 1, listing what differs, when a copy is stale
    python utils/fix_copies.py model_cards/fer-vgg-ferplus   # some folders only

Besides the copies, ``--check`` and a rewrite both report what they cannot fix: an ``auto_map`` entry (in
config.json, preprocessor_config.json or an ensemble member's config) whose module is not written or does
not define the class, a copy whose relative import is missing, or a copy that imports fer_hf.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL_CARDS = REPO / "model_cards"
COMMAND = "python utils/fix_copies.py"


def header(source: str) -> str:
    """The two comment lines that start every generated copy (``source`` relative to the repository)."""
    return (f"# Generated from {source} by `{COMMAND}`: do not edit this copy;\n"
            f"# edit {source} and rerun the command (`--check` tells whether the copies are current).\n")


def released_folders(root: Path = MODEL_CARDS) -> list[Path]:
    """Every folder under ``root`` that holds a released model (a config.json)."""
    return sorted(p.parent for p in Path(root).glob("*/config.json"))


def _fer_hf():
    """fer_hf, with its classes registered for the Auto classes and for saving their code."""
    importlib.import_module("fer_hf.models")
    return sys.modules["fer_hf"]


def _package_sources(objects) -> dict[str, Path]:
    """{file name: source file} of the modules that define the classes of ``objects`` (fer_hf's only) and
    of the files those modules import relatively: every file ``save_pretrained`` may copy."""
    from transformers.dynamic_module_utils import get_relative_import_files

    sources: dict[str, Path] = {}
    for obj in objects:
        if not type(obj).__module__.startswith("fer_hf."):
            continue
        module_file = Path(inspect.getsourcefile(type(obj))).resolve()
        for path in [module_file, *map(Path, get_relative_import_files(module_file))]:
            path = path.resolve()
            if sources.setdefault(path.name, path) != path:
                raise RuntimeError(f"two package files are saved as {path.name}: {sources[path.name]} and {path}")
    return sources


def _saved(folder: Path):
    """What fer_hf's ``save_pretrained`` writes for the model and processor of ``folder``:
    ``({file name: (source path, text)}, {config file name: its auto_map})``."""
    _fer_hf()
    from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

    config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
    model = AutoModelForImageClassification.from_config(config, trust_remote_code=False)
    processor = AutoImageProcessor.from_pretrained(folder, trust_remote_code=False)
    for obj in (config, model, processor):
        if not type(obj).__module__.startswith("fer_hf."):
            raise RuntimeError(f"{folder}: {type(obj).__name__} is not a fer_hf class ({type(obj).__module__})")
    sources = _package_sources([processor, *model.modules(), *(getattr(m, "config", None) for m in model.modules())])
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        files = {}
        for path in sorted(Path(tmp).glob("*.py")):
            text = path.read_text()
            if path.name not in sources or sources[path.name].read_text() != text:
                raise RuntimeError(f"{folder}: save_pretrained wrote {path.name}, which is no fer_hf class's module")
            files[path.name] = (sources[path.name], text)
        auto_maps = {name: json.loads((Path(tmp) / name).read_text()).get("auto_map")
                     for name in ("config.json", "preprocessor_config.json")}
    return files, auto_maps


def expected_copies(folder: Path) -> tuple[dict[str, str], dict]:
    """``({file name: text}, {config file name: auto_map})``: every ``*.py`` file ``folder`` should hold, what
    ``save_pretrained`` writes each under `header`, and the auto_maps it writes beside them."""
    package_root = Path(_fer_hf().__file__).resolve().parent.parent
    files, auto_maps = _saved(Path(folder))
    copies = {name: header(source.relative_to(package_root).as_posix()) + text
              for name, (source, text) in files.items()}
    return copies, auto_maps


def _defines(text: str, name: str) -> bool:
    """Whether the module source ``text`` defines ``name`` at its top level (a class or an assignment)."""
    return any(isinstance(node, ast.ClassDef) and node.name == name or
               isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets)
               for node in ast.parse(text).body)


def _auto_map_entries(folder: Path):
    """``(where, "module.Class")`` for every auto_map entry of the folder's configs, members' included."""
    for config_name in ("config.json", "preprocessor_config.json"):
        path = folder / config_name
        if not path.is_file():
            continue
        config = json.loads(path.read_text())
        for where, auto_map in [(config_name, config.get("auto_map")),
                                *((f"{config_name} member {m.get('name', i)!r}", m.get("config", {}).get("auto_map"))
                                  for i, m in enumerate(config.get("members") or []))]:
            for auto_class, reference in (auto_map or {}).items():
                for ref in reference if isinstance(reference, (list, tuple)) else [reference]:
                    if ref:
                        yield f"{where} {auto_class}", ref


def code_problems(folder: Path, copies: dict[str, str], saved_auto_maps: dict) -> list[str]:
    """What ``copies`` (the folder's ``*.py`` texts) leave broken for ``trust_remote_code`` loading and no
    rewrite of the copies fixes: an auto_map entry whose module is not there or lacks the class, an auto_map
    that differs from what ``save_pretrained`` writes, a relative import of a missing file, an import of
    fer_hf (``saved_auto_maps``: the auto_maps ``save_pretrained`` writes, from `expected_copies`)."""
    from transformers.dynamic_module_utils import get_imports, get_relative_imports

    folder = Path(folder)
    problems = []
    for where, ref in _auto_map_entries(folder):
        module, _, class_name = ref.rpartition(".")
        file_name = f"{module.split('--')[-1]}.py"
        if file_name not in copies:
            problems.append(f"{folder.name}/{where} names {ref}, but {file_name} is not written")
        elif not _defines(copies[file_name], class_name):
            problems.append(f"{folder.name}/{where} names {ref}, but {file_name} defines no {class_name}")
    for config_name, auto_map in saved_auto_maps.items():
        path = folder / config_name
        current = json.loads(path.read_text()).get("auto_map") if path.is_file() else None
        if current != auto_map:
            problems.append(f"{folder.name}/{config_name}: auto_map {current} differs from the {auto_map} that "
                            "save_pretrained writes (re-save the model to update it)")
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in copies.items():
            path = Path(tmp) / name
            path.write_text(text)
            missing = [f"{m}.py" for m in get_relative_imports(path) if f"{m}.py" not in copies]
            if missing:
                problems.append(f"{folder.name}/{name} imports {', '.join(missing)} relatively, which is not written")
            if any(m == "fer_hf" for m in get_imports(path)):
                problems.append(f"{folder.name}/{name} imports fer_hf: it cannot load where fer_hf is not installed")
    return problems


def fix_folder(folder: Path, check: bool = False) -> tuple[list[str], list[str]]:
    """Bring the ``*.py`` copies of ``folder`` up to date (with ``check``, only compare).

    Returns ``(changes, problems)``: one line per file that is (or, with ``check``, would be) written or
    removed, and the `code_problems` of the up-to-date copies."""
    folder = Path(folder)
    expected, saved_auto_maps = expected_copies(folder)
    current = {p.name: p.read_text() for p in sorted(folder.glob("*.py"))}
    changes = []
    for name, text in expected.items():
        if current.get(name) != text:
            before = len(current[name].splitlines()) if name in current else 0
            changes.append(f"{folder.name}/{name}: {'stale' if name in current else 'missing'} "
                           f"({before} -> {len(text.splitlines())} lines)")
            if not check:
                (folder / name).write_text(text)
    for name in sorted(set(current) - set(expected)):
        changes.append(f"{folder.name}/{name}: not written by save_pretrained ({'to remove' if check else 'removed'})")
        if not check:
            (folder / name).unlink()
    return changes, code_problems(folder, expected, saved_auto_maps)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="*", type=Path, help="released folders (default: every model_cards/*/)")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when a copy is stale")
    args = parser.parse_args(argv)
    package = Path(_fer_hf().__file__).resolve().parent
    if package != REPO / "fer_hf":
        print(f"fer_hf is imported from {package}, not from this checkout ({REPO / 'fer_hf'}): run from the "
              f"repository root with PYTHONPATH=. (or this checkout installed)", file=sys.stderr)
        return 2
    from transformers.utils import logging

    logging.disable_progress_bar()  # the weights save_pretrained writes into a temporary folder
    all_changes, all_problems = [], []
    for folder in args.folders or released_folders():
        changes, problems = fix_folder(folder, check=args.check)
        all_changes += changes
        all_problems += problems
    for line in all_changes:
        print(line)
    for line in all_problems:
        print(f"problem: {line}", file=sys.stderr)
    if args.check and all_changes:
        print(f"{len(all_changes)} copies are not what the package would write: run `{COMMAND}`", file=sys.stderr)
    return 1 if all_problems or (args.check and all_changes) else 0


if __name__ == "__main__":
    sys.exit(main())
