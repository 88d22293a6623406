"""The remote-code copies (``*.py``) in the released folders under model_cards/ are exactly what
``python utils/fix_copies.py`` writes from the package, and that command notices and repairs a stale, missing
or stray copy and an auto_map naming a class no copy defines."""

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("fix_copies", REPO / "utils" / "fix_copies.py")
fix_copies = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fix_copies)

RELEASED = fix_copies.released_folders()


def test_every_released_model_is_checked():
    assert len(RELEASED) >= 6 and {"fer-vgg-fer2013", "fer-ensemble"} <= {f.name for f in RELEASED}


@pytest.mark.parametrize("folder", RELEASED, ids=lambda f: f.name)
def test_released_copies_are_what_the_command_writes(folder):
    changes, problems = fix_copies.fix_folder(folder, check=True)
    assert not changes, f"run `{fix_copies.COMMAND}`: " + "; ".join(changes)
    assert not problems, problems


@pytest.fixture
def released_copy(tmp_path):
    """fer-vgg-fer2013's configs and code (no weights: the command never reads them) in a scratch folder."""
    source = fix_copies.MODEL_CARDS / "fer-vgg-fer2013"
    folder = tmp_path / source.name
    folder.mkdir()
    for path in [*source.glob("*.json"), *source.glob("*.py")]:
        shutil.copy(path, folder / path.name)
    return folder


def test_check_reports_stale_missing_and_stray_copies_and_a_rewrite_repairs_them(released_copy):
    (released_copy / "modeling_fer_vgg.py").write_text("# edited by hand\n")
    (released_copy / "configuration_fer_vgg.py").unlink()
    (released_copy / "helpers.py").write_text("x = 1\n")
    assert fix_copies.main([str(released_copy), "--check"]) == 1
    changes, _ = fix_copies.fix_folder(released_copy, check=True)
    assert [line.split(":")[0] for line in changes] == [
        "fer-vgg-fer2013/configuration_fer_vgg.py", "fer-vgg-fer2013/modeling_fer_vgg.py", "fer-vgg-fer2013/helpers.py"]
    assert (released_copy / "helpers.py").exists()  # --check writes nothing

    assert fix_copies.main([str(released_copy)]) == 0
    assert fix_copies.main([str(released_copy), "--check"]) == 0
    expected, _ = fix_copies.expected_copies(released_copy)
    assert {p.name: p.read_text() for p in released_copy.glob("*.py")} == expected
    assert set(expected) == {"configuration_fer_vgg.py", "modeling_fer_vgg.py", "image_processing_fer.py"}
    for name, text in expected.items():
        assert text.startswith("# Generated from fer_hf/") and f"/{name} by `{fix_copies.COMMAND}`" in text


def test_an_auto_map_naming_what_no_copy_defines_is_a_problem(released_copy):
    config_path = released_copy / "config.json"
    config = json.loads(config_path.read_text())
    config["auto_map"]["AutoModelForImageClassification"] = "modeling_fer_vgg.FerVGGForSomethingElse"
    config["auto_map"]["AutoConfig"] = "configuration_fer_other.FerVGGConfig"
    config_path.write_text(json.dumps(config))
    changes, problems = fix_copies.fix_folder(released_copy)
    assert not changes
    assert any("defines no FerVGGForSomethingElse" in p for p in problems), problems
    assert any("configuration_fer_other.py is not written" in p for p in problems), problems
    assert any("differs from the" in p for p in problems), problems
    assert fix_copies.main([str(released_copy)]) == 1


def test_package_copies_under_copied_from_markers_match_their_sources():
    changes, problems = fix_copies.check_copied_from()
    assert not changes, f"run `{fix_copies.COMMAND}`: " + "; ".join(changes)
    assert not problems, problems
    marked = [b for p in sorted((REPO / "fer_hf").rglob("*.py")) for b in fix_copies.copied_from_blocks(p)]
    assert len(marked) >= 6


SOURCE = '''class FerAModel:
    def forward(self, x):
        hidden = self.fer_a(x)
        return hidden + 1


def helper(value):
    return value * 2
'''

COPY = '''class FerBModel:
    # Copied from fer_hf.models.a.modeling_a.FerAModel.forward with fer_a->fer_b
    def forward(self, x):
        hidden = self.fer_b(x)
        return hidden + 1

    def other(self):
        return 0


# Copied from fer_hf.models.a.modeling_a.helper
def helper(value):
    return value * 2
'''


@pytest.fixture
def package(tmp_path):
    """A scratch repository root with a source family ``a`` and a family ``b`` holding marked copies."""
    for family, text in (("a", SOURCE), ("b", COPY)):
        folder = tmp_path / "fer_hf" / "models" / family
        folder.mkdir(parents=True)
        (folder / f"modeling_{family}.py").write_text(text)
    return tmp_path


def test_copied_from_check_finds_a_stale_copy_and_the_rewrite_restores_it(package):
    copy = package / "fer_hf" / "models" / "b" / "modeling_b.py"
    assert fix_copies.check_copied_from(package) == ([], [])

    copy.write_text(COPY.replace("hidden + 1", "hidden + 2"))
    changes, problems = fix_copies.check_copied_from(package)
    assert changes == ["fer_hf/models/b/modeling_b.py:2: differs from fer_hf.models.a.modeling_a.FerAModel.forward "
                       f"(run {fix_copies.COMMAND})"] and not problems
    assert "hidden + 2" in copy.read_text()  # checking writes nothing

    changes, _ = fix_copies.check_copied_from(package, fix=True)
    assert len(changes) == 1 and copy.read_text() == COPY
    assert fix_copies.check_copied_from(package) == ([], [])


def test_copied_from_markers_naming_nothing_are_problems(package):
    copy = package / "fer_hf" / "models" / "b" / "modeling_b.py"
    copy.write_text(COPY.replace("FerAModel.forward", "FerAModel.backward")
                    .replace("modeling_a.helper", "modeling_c.helper")
                    .replace("    def other(self):", "    # Copied from fer_hf.models.a.modeling_a.helper\n\n"
                                                     "    def other(self):"))
    changes, problems = fix_copies.check_copied_from(package)
    assert not changes
    assert [p.split(": ", 1)[1] for p in problems] == [
        "# Copied from fer_hf.models.a.modeling_a.FerAModel.backward: fer_hf/models/a/modeling_a.py defines no "
        "FerAModel.backward",
        "# Copied from fer_hf.models.a.modeling_a.helper: no class or function on the line after the marker",
        "# Copied from fer_hf.models.a.modeling_c.helper: no module file for fer_hf.models.a.modeling_c.helper"]
