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
