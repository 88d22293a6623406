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

Copies inside the package: the model families (``fer_hf/models/<family>/``) and the metric modules
(``fer_hf/evaluation/metric_modules/``) must stay self-contained, so code they share is repeated rather than
imported. As in transformers, a repeated class, function or method carries a marker on the line above it
(above its decorators)::

    # Copied from fer_hf.models.mobilenet.modeling_fer_mobilenet.FerMobileNetModel.forward
    # Copied from fer_hf.models.vgg.modeling_fer_vgg.FerVGGPreTrainedModel._init_weights with FerVGG->FerLRN

and is kept identical to its source, after the ``with`` replacements (``old->new``, comma-separated, applied in
order as plain text). When every released folder is processed (no folder named), ``--check`` lists the
markers whose code differs and a rewrite replaces that code with the source's.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import json
import re
import sys
import tempfile
import textwrap
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


#: ``# Copied from fer_hf.<module>.<Name>[.<method>] [with old->new[, old->new ...]]``
COPIED_FROM = re.compile(r"^(?P<indent>[ \t]*)# Copied from (?P<target>fer_hf(?:\.\w+)+)"
                         r"(?:[ \t]+with[ \t]+(?P<replacements>\S.*?))?[ \t]*$")
#: Where `copied_from_blocks` looks for markers.
COPY_ROOTS = ("fer_hf",)


def _resolve_target(target: str, root: Path = REPO) -> tuple[Path, list[str]]:
    """``(source file, qualified name parts)`` of a dotted ``fer_hf....Name[.method]`` target: the longest
    module prefix that is a ``.py`` file under ``root``.

    Raises:
        ValueError: if no prefix of ``target`` names a file.
    """
    parts = target.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        path = root.joinpath(*parts[:cut]).with_suffix(".py")
        if path.is_file():
            return path, parts[cut:]
    raise ValueError(f"no module file for {target}")


def _find_definition(tree: ast.AST, names: list[str]):
    """The class / function node at ``names`` (``["Class", "method"]``) in a module's AST, or None."""
    node = tree
    for name in names:
        node = next((child for child in getattr(node, "body", [])
                     if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                     and child.name == name), None)
        if node is None:
            return None
    return node


def _first_line(node) -> int:
    """1-based first line of a definition, its decorators included."""
    return min([node.lineno, *(d.lineno for d in node.decorator_list)])


def _definition_text(lines: list[str], node) -> str:
    """The source of a definition (decorators included), dedented."""
    return textwrap.dedent("".join(lines[_first_line(node) - 1:node.end_lineno]))


def _replace(text: str, replacements) -> str:
    for pair in (replacements or "").split(","):
        if pair.strip():
            old, arrow, new = pair.strip().partition("->")
            if not arrow:
                raise ValueError(f"replacement {pair.strip()!r} is not old->new")
            text = text.replace(old.strip(), new.strip())
    return text


class CopiedBlock:
    """A definition under a ``# Copied from`` marker: where it is, what it should be, and what it is.

    ``marker_line``, ``first_line`` and ``last_line`` are 1-based (the copy's lines, decorators included);
    ``expected`` is the dedented source after the replacements ("" when it cannot be found), ``current`` the
    dedented copy, ``problem`` why the source or the copy cannot be found (None when both are there)."""

    def __init__(self, path: Path, marker_line: int, indent: str, target: str):
        self.path, self.marker_line, self.indent, self.target = path, marker_line, indent, target
        self.first_line = self.last_line = marker_line + 1
        self.expected = self.current = ""
        self.problem: str | None = None

    @property
    def stale(self) -> bool:
        return self.problem is None and self.current != self.expected

    def where(self, root: Path = REPO) -> str:
        return f"{self.path.relative_to(root).as_posix()}:{self.marker_line}"


def copied_from_blocks(path: Path, root: Path = REPO) -> list[CopiedBlock]:
    """Every ``# Copied from`` marker of a Python file, with its copy and what the copy should be."""
    path = Path(path)
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    if "# Copied from" not in text:
        return []
    tree = ast.parse(text)
    definitions = {_first_line(node): node for node in ast.walk(tree)
                   if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))}
    blocks = []
    for number, line in enumerate(lines, start=1):
        match = COPIED_FROM.match(line.rstrip("\n"))
        if match is None:
            continue
        node = definitions.get(number + 1)
        block = CopiedBlock(path, number, match["indent"], match["target"])
        if node is None:
            block.problem = "no class or function on the line after the marker"
            blocks.append(block)
            continue
        block.last_line, block.current = node.end_lineno, _definition_text(lines, node)
        try:
            source_path, names = _resolve_target(match["target"], root)
            source_text = source_path.read_text()
            source = _find_definition(ast.parse(source_text), names)
            if source is None:
                raise ValueError(f"{source_path.relative_to(root).as_posix()} defines no {'.'.join(names)}")
            block.expected = _replace(_definition_text(source_text.splitlines(keepends=True), source),
                                      match["replacements"])
        except ValueError as error:
            block.problem = str(error)
        blocks.append(block)
    return blocks


def check_copied_from(root: Path = REPO, fix: bool = False) -> tuple[list[str], list[str]]:
    """``(changes, problems)`` of the ``# Copied from`` markers under ``root``'s `COPY_ROOTS`: one line per copy
    that differs from its source (rewritten from the source with ``fix``), and one per marker whose source or
    copy cannot be found."""
    changes, problems = [], []
    for copy_root in COPY_ROOTS:
        for path in sorted((Path(root) / copy_root).rglob("*.py")):
            blocks = copied_from_blocks(path, root)
            for block in blocks:
                if block.problem:
                    problems.append(f"{block.where(root)}: # Copied from {block.target}: {block.problem}")
                elif block.stale:
                    changes.append(f"{block.where(root)}: differs from {block.target} "
                                   f"({'rewritten' if fix else 'run ' + COMMAND})")
            stale = [b for b in blocks if b.stale]
            if fix and stale:
                lines = path.read_text().splitlines(keepends=True)
                for block in reversed(stale):  # bottom up: earlier line numbers stay valid
                    lines[block.first_line - 1:block.last_line] = [
                        textwrap.indent(block.expected, block.indent)]
                path.write_text("".join(lines))
    return changes, problems


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
    if not args.folders:  # a whole-repository run: the copies inside the package too
        all_changes, all_problems = check_copied_from(fix=not args.check)
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
