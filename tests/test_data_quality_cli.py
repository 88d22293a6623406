"""`fer-hf data-quality` on real data: CK+48 from ../shared/data (report equal to `data_quality_report` on the
loader's output, and to facts counted on disk), an image folder built from CK+48 files with planted
duplicates, and the error for a missing data_dir."""

import hashlib
import json
import subprocess
import sys
import warnings
from collections import Counter, defaultdict

import numpy as np
import pytest
from PIL import Image

from fer_hf.cli.commands import main
from fer_hf.data import InvalidRowsWarning, LabelSetWarning, data_quality_report, load_ckplus

from conftest import CKPLUS, REPO

needs_ckplus = pytest.mark.skipif(not CKPLUS.is_dir(), reason=f"{CKPLUS} not found (set FER_HF_DATA)")
#: CK+48 folder -> canonical label name
CKPLUS_FOLDERS = {"anger": "angry", "contempt": "contempt", "disgust": "disgust", "fear": "fear", "happy": "happy",
                  "sadness": "sad", "surprise": "surprise"}


def _run(argv):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InvalidRowsWarning)
        warnings.simplefilter("ignore", LabelSetWarning)
        return main(argv)


def _pixel_key(path) -> str:
    """Our own pixel identity (not fer_hf's pixel_hash): SHA-256 of the grayscale array, its shape and mode."""
    with Image.open(path) as image:
        array = np.asarray(image)
        return hashlib.sha256(f"{image.mode}{array.shape}".encode() + array.tobytes()).hexdigest()


@needs_ckplus
def test_data_quality_on_ckplus_matches_the_library_and_the_files_on_disk(tmp_path, capsys):
    output = tmp_path / "reports" / "ckplus.json"  # the parent folder does not exist yet
    assert _run(["data-quality", "--dataset", "ckplus", "--data_dir", str(CKPLUS), "--output", str(output),
                 "--max_examples", "3"]) == 0
    printed = capsys.readouterr().out
    written = json.loads(output.read_text())
    assert written["dataset"] == "ckplus" and written["data_dir"] == str(CKPLUS)
    assert written["command"].startswith("python -m fer_hf data-quality --dataset ckplus")
    assert not list(output.parent.glob(".tmp_*"))  # written atomically, no temporary file left

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LabelSetWarning)
        direct = json.loads(json.dumps(data_quality_report(load_ckplus(CKPLUS), max_examples=3)))
    assert {key: written[key] for key in direct} == direct
    assert set(written) == set(direct) | {"command", "dataset", "data_dir"}

    # facts counted on disk, independently of fer_hf
    files = sorted(p for p in CKPLUS.rglob("*") if p.is_file())
    assert all(p.suffix == ".png" for p in files)
    on_disk = Counter(CKPLUS_FOLDERS[p.parent.name] for p in files)
    assert written["rows"] == {"train": len(files)} == {"train": 981}
    assert written["dropped"] == {"total": 0, "by_reason": {}, "examples": {}}
    balance = written["class_balance"]["train"]
    assert {name: n for name, n in balance["counts"].items() if n} == dict(on_disk)
    assert balance["empty_classes"] == ["neutral"]  # CK+48 has no neutral; contempt kept (label set ferplus)
    assert balance["imbalance_ratio"] == round(max(on_disk.values()) / min(on_disk.values()), 2) == 4.61
    groups = defaultdict(list)
    for path in files:
        groups[_pixel_key(path)].append(path)
    repeated = [g for g in groups.values() if len(g) > 1]
    within = written["duplicates"]["within_split"]["train"]
    assert within["groups"] == len(repeated) and within["redundant"] == sum(len(g) - 1 for g in repeated)
    assert written["duplicates"]["cross_split"]["groups"] == 0  # one split
    assert written["conflicting_labels"]["groups"] == sum(
        1 for g in repeated if len({CKPLUS_FOLDERS[p.parent.name] for p in g}) > 1)

    from fer_hf.evaluation.report import (load_evaluation_split)  # what `fer-hf evaluate --split train` reports on

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LabelSetWarning)
        assert len(load_evaluation_split("ckplus", CKPLUS, "train")) == written["rows"]["train"]

    assert "rows: train 981 (total 981)" in printed
    assert "dropped by the loader: 0" in printed
    assert "class imbalance (largest / smallest non-empty class): train 4.61 (empty: neutral)" in printed
    assert f"report: {output}" in printed


@needs_ckplus
def test_data_quality_on_an_image_folder_with_planted_duplicates(tmp_path, capsys):
    """train/ and test/ split folders of CK+48 files: an exact copy inside train, a re-encoding of the same
    pixels (other bytes) in test under another label, and a file that is not an image."""
    anger, happy, fear = (sorted((CKPLUS / folder).glob("*.png"))[:3] for folder in ("anger", "happy", "fear"))
    root = tmp_path / "corpus"
    for folder in ("train/angry", "train/happy", "test/happy", "test/fear"):
        (root / folder).mkdir(parents=True)
    for i, path in enumerate(anger):
        (root / "train/angry" / f"a{i}.png").write_bytes(path.read_bytes())
    for i, path in enumerate(happy):
        (root / "train/happy" / f"h{i}.png").write_bytes(path.read_bytes())
    for i, path in enumerate(fear):
        (root / "test/fear" / f"f{i}.png").write_bytes(path.read_bytes())
    (root / "train/angry/copy_of_a0.png").write_bytes(anger[0].read_bytes())
    with Image.open(anger[0]) as image:  # same pixels, other bytes (BMP), other label, other split
        image.save(root / "test/happy/reencoded_a0.bmp")
    assert (root / "test/happy/reencoded_a0.bmp").read_bytes() != anger[0].read_bytes()
    (root / "test/happy/broken.png").write_bytes(b"not an image")

    output = tmp_path / "folder.json"
    assert _run(["data-quality", "--dataset", "imagefolder", "--data_dir", str(root), "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    assert report["rows"] == {"train": 7, "test": 4}
    assert report["dropped"]["total"] == 1 and list(report["dropped"]["examples"]) == ["test/happy/broken.png"]
    duplicates = report["duplicates"]
    assert duplicates["all"] == {"groups": 1, "images": 3}
    assert duplicates["within_split"]["train"]["groups"] == 1 and duplicates["within_split"]["train"]["redundant"] == 1
    assert duplicates["within_split"]["test"]["groups"] == 0
    assert duplicates["cross_split"]["groups"] == 1
    assert duplicates["cross_split"]["images_per_split"] == {"train": 2, "test": 1}
    assert duplicates["cross_split"]["split_pairs"] == {"train/test": 1}
    assert sorted(duplicates["cross_split"]["examples"][0]) == [
        "test:happy/reencoded_a0.bmp", "train:angry/a0.png", "train:angry/copy_of_a0.png"]
    conflicts = report["conflicting_labels"]
    assert conflicts["groups"] == 1 and conflicts["cross_split_groups"] == 1 and conflicts["within_split_groups"] == 0
    assert sorted(conflicts["examples"][0]["labels"]) == ["angry", "angry", "happy"]
    assert report["class_balance"]["train"]["counts"]["angry"] == 4
    assert report["class_balance"]["train"]["imbalance_ratio"] == round(4 / 3, 2)
    printed = capsys.readouterr().out
    assert "duplicate groups across splits: 1 (3 images; train 2, test 1; groups per split pair: train/test 1)" in printed
    assert "duplicate groups with conflicting labels: 1 (0 within a split, 1 across)" in printed


@pytest.mark.parametrize("dataset", ["fer2013", "ferplus", "ckplus", "jaffe", "sfew", "imagefolder"])
def test_missing_data_dir_is_a_clear_error(tmp_path, capsys, dataset):
    missing = tmp_path / "no_such_folder"
    output = tmp_path / "report.json"
    assert main(["data-quality", "--dataset", dataset, "--data_dir", str(missing), "--output", str(output)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("fer-hf data-quality: error: ") and str(missing) in captured.err
    assert "Traceback" not in captured.err and not output.exists()


def test_python_m_fer_hf_data_quality_missing_data_dir(tmp_path):
    missing = tmp_path / "absent"
    result = subprocess.run([sys.executable, "-m", "fer_hf", "data-quality", "--dataset", "ckplus", "--data_dir",
                             str(missing)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "fer-hf data-quality: error:" in result.stderr and str(missing) in result.stderr
    assert "Traceback" not in result.stderr
