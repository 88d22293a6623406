import csv
import io
import warnings
import zipfile

import numpy as np
import pytest
from PIL import Image

from fer_hf import FER2013_LABELS
from fer_hf.data import (InvalidRowsWarning, MixedTestSplitWarning, load_fer2013, load_fer2013_csv,
                         load_fer2013_image_folder)
from fer_hf.labels import canonical_label

from conftest import FER2013_ZIP

# Verified counts from ../shared/data/README.md (canonical id order: angry, disgust, fear, happy, sad, surprise, neutral)
EXPECTED = {
    "train": [3995, 436, 4097, 7215, 4830, 3171, 4965],
    "validation": [467, 56, 496, 895, 653, 415, 607],
    "test": [491, 55, 528, 879, 594, 416, 626],
}


def test_real_zip_splits_and_canonical_labels(fer2013):
    for split, counts in EXPECTED.items():
        labels = np.asarray(fer2013[split]["label"])
        assert np.bincount(labels, minlength=7).tolist() == counts, split
    assert fer2013["train"].features["label"].names == FER2013_LABELS
    assert len(fer2013.dropped) == 0
    ids = fer2013["test"]["image_id"]
    assert all("/PrivateTest_" in i for i in ids) and all("/PublicTest_" in i for i in fer2013["validation"]["image_id"])
    # the two file names that occur in two class folders stay two rows, told apart by their full path
    twins = [i for i in fer2013["train"]["image_id"] if i.endswith("/Training_52789098.jpg")]
    assert sorted(twins) == ["train/neutral/Training_52789098.jpg", "train/surprise/Training_52789098.jpg"]
    image = fer2013["test"][0]["image"]
    assert image.size == (48, 48)


def _extract(tmp_path, members):
    with zipfile.ZipFile(FER2013_ZIP) as archive:
        for name in members:
            target = tmp_path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(name))


def _some_members(prefixes=("Training_", "PublicTest_", "PrivateTest_"), per_class=3):
    with zipfile.ZipFile(FER2013_ZIP) as archive:
        names = [n for n in archive.namelist() if n.endswith(".jpg")]
    chosen = []
    for cls in ("angry", "happy", "neutral", "surprise"):
        for prefix in prefixes:
            chosen += [n for n in names if f"/{cls}/{prefix}" in n][:per_class]
    return chosen


def test_unpacked_folder_with_a_corrupt_file_and_an_unknown_class(tmp_path):
    members = _some_members()
    _extract(tmp_path, members)
    (tmp_path / "train" / "happy" / "Training_corrupt.jpg").write_bytes(b"\xff\xd8 this is not a JPEG")
    (tmp_path / "train" / "bored").mkdir()
    (tmp_path / "train" / "bored" / "Training_1.jpg").write_bytes((tmp_path / members[0]).read_bytes())
    with pytest.warns(InvalidRowsWarning, match=r"Dropped 2 invalid row"):
        ds = load_fer2013_image_folder(tmp_path)
    assert [len(ds[s]) for s in ("train", "validation", "test")] == [12, 12, 12]
    assert set(ds.dropped.reasons) == {"train/happy/Training_corrupt.jpg", "train/bored/Training_1.jpg"}
    happy = [canonical_label("happy")] * 3
    assert [lab for lab, i in zip(ds["train"]["label"], ds["train"]["image_id"]) if "/happy/" in i] == happy


def test_mixed_test_folder_warns_and_holds_out_validation(tmp_path):
    members = _some_members(per_class=10)
    with zipfile.ZipFile(FER2013_ZIP) as archive:
        for name in members:  # strip the Usage prefixes: a plain train/ + test/ mirror
            parent, base = name.rsplit("/", 1)
            target = tmp_path / parent / base.split("_", 1)[1]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(name))
    with pytest.warns(MixedTestSplitWarning, match="NOT comparable"):
        ds = load_fer2013(tmp_path)
    assert len(ds["test"]) == 80 and len(ds["train"]) + len(ds["validation"]) == 40
    assert len(ds["validation"]) == 4


def _real_pixels(count):
    with zipfile.ZipFile(FER2013_ZIP) as archive:
        names = [n for n in archive.namelist() if "/happy/Training_" in n][:count]
        return [np.asarray(Image.open(io.BytesIO(archive.read(n))).convert("L")) for n in names]


def test_kaggle_csv_with_bad_rows(tmp_path):
    faces = _real_pixels(4)
    path = tmp_path / "fer2013.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["emotion", "pixels", "Usage"])
        writer.writerow([3, " ".join(map(str, faces[0].ravel())), "Training"])
        writer.writerow([3, " ".join(map(str, faces[1].ravel())), "PublicTest"])
        writer.writerow([6, " ".join(map(str, faces[2].ravel())), "PrivateTest"])
        writer.writerow([3, " ".join(map(str, faces[3].ravel()[:-1])), "Training"])  # 2303 pixels
        writer.writerow([3, "12 abc " + " ".join(["7"] * 2302), "Training"])  # non-numeric
        writer.writerow([9, " ".join(map(str, faces[0].ravel())), "Training"])  # unknown label
        writer.writerow([0, " ".join(map(str, faces[0].ravel())), "Holdout"])  # unknown usage
        writer.writerow([0, " ".join(["300"] * 2304), "Training"])  # out of range
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_fer2013_csv(path)
    messages = [str(w.message) for w in caught if issubclass(w.category, InvalidRowsWarning)]
    assert len(messages) == 1 and messages[0].startswith("Dropped 5 invalid row(s)")
    assert ds.dropped.reasons == {
        "row3": "2303 pixels instead of 2304",
        "row4": "non-numeric pixels",
        "row5": "unknown emotion '9'",
        "row6": "unknown Usage 'Holdout'",
        "row7": "pixel values outside integers 0..255",
    }
    assert [len(ds[s]) for s in ("train", "validation", "test")] == [1, 1, 1]
    assert ds["test"][0]["label"] == 6
    # pixels survive losslessly
    assert np.array_equal(np.asarray(ds["train"][0]["image"]), faces[0])


def test_csv_without_required_columns(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="missing column"):
        load_fer2013(path)


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_fer2013(tmp_path / "nowhere" / "fer2013.csv")
