"""Every module of fer_hf imports first and alone, in a fresh interpreter: an import circle (module A needs B
which needs A before A is complete) or a stale path after a move fails here, whatever order other tests or
the app happen to import things in."""

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

PACKAGE = REPO / "fer_hf"


def fer_hf_modules() -> list:
    """Dotted names of every Python module of the package (model-family folders included: each must also
    import on its own), packages as their ``__init__``."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(REPO).with_suffix("")
        if "metric_modules" in relative.parts:  # `evaluate` scripts, loaded by path and never imported
            continue
        parts = list(relative.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts[-1] == "__main__":  # runs the command line
            continue
        names.append(".".join(parts))
    return names


def test_every_module_is_listed():
    modules = fer_hf_modules()
    assert "fer_hf" in modules and "fer_hf.inference.recognizer" in modules and len(modules) > 40


@pytest.mark.parametrize("module", fer_hf_modules())
def test_module_imports_first_and_alone(module):
    result = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=REPO, capture_output=True, text=True,
                            env={**__import__("os").environ, "PYTHONPATH": str(REPO)}, timeout=600)
    assert result.returncode == 0, f"import {module} failed:\n{result.stderr[-3000:]}"


def test_every_module_says_what_it_is_for():
    missing = []
    for module in fer_hf_modules():
        path = REPO.joinpath(*module.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        first = path.read_text().lstrip()
        if not (first.startswith('"""') or first.startswith("'''")):
            missing.append(str(path.relative_to(REPO)))
    assert not missing, f"modules without a docstring saying what they are for: {missing}"
