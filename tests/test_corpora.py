"""FER+, CK+, JAFFE and SFEW loaders, folds and data-quality reports on the real data in ../shared/data
(numbers from its README, the data card, unless marked as measured)."""

import csv
import io
import json
import re
import warnings
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer_hf import FER2013_LABELS
from fer_hf.data import (SFEW_UNUSABLE, InvalidRowsWarning, LabelSetWarning, data_quality_report,
                         drop_cross_split_duplicates, ferplus_distribution_label, ferplus_majority_label, image_hashes,
                         leave_one_subject_out, load_ckplus, load_ferplus, load_jaffe, load_sfew, stratified_kfold,
                         subject_kfold)
from fer_hf.labels import FERPLUS_LABELS, canonical_label

from conftest import CKPLUS, DATA

FERPLUS = DATA / "ferplus"
FERPLUS_ZIP = FERPLUS / "ferplus_images.zip"
JAFFE = DATA / "jaffe"
SFEW = DATA / "sfew"
FOLDERS = {"train": "FER2013Train", "validation": "FER2013Valid", "test": "FER2013Test"}
VOTE_NAMES = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF"]


def _quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InvalidRowsWarning)
        warnings.simplefilter("ignore", LabelSetWarning)
        return function(*args, **kwargs)


def _label_csv_votes():
    """{name: (split, votes)} read straight from the three label.csv files of the zip."""
    out = {}
    with zipfile.ZipFile(FERPLUS_ZIP) as archive:
        for split, folder in FOLDERS.items():
            for row in csv.reader(io.StringIO(archive.read(f"{folder}/label.csv").decode())):
                out[row[0]] = (split, [int(v) for v in row[2:]])
    return out


@pytest.fixture(scope="module")
def ferplus():
    return _quiet(load_ferplus, FERPLUS_ZIP)


@pytest.fixture(scope="module")
def ferplus_linked():
    # the JPEGs' decoding is checked by the FER2013 tests; here the join is what matters
    return _quiet(load_ferplus, FERPLUS / "fer2013new.csv", validate_images=False)


@pytest.fixture(scope="module")
def ckplus():
    return _quiet(load_ckplus, CKPLUS)


@pytest.fixture(scope="module")
def sfew():
    return _quiet(load_sfew, SFEW)


# ----------------------------------------------------------------------------------------------- labels

def test_label_sets_share_ids_by_name():
    assert FERPLUS_LABELS[:7] == FER2013_LABELS and FERPLUS_LABELS[7] == "contempt"
    assert canonical_label("contempt") is None and canonical_label("contempt", "ferplus") == 7
    for name, cid in {"anger": 0, "Angry": 0, "sadness": 4, "happiness": 3, "Surprise": 5, "neutral": 6}.items():
        assert canonical_label(name) == canonical_label(name, "ferplus") == cid


# ----------------------------------------------------------------------------------------------- FER+

def test_ferplus_official_layout_sizes_and_class_counts(ferplus):
    votes = _label_csv_votes()
    # data card: 28,558 / 3,579 / 3,573 images in the three folders; the majority protocol keeps
    # 25,045 / 3,191 / 3,137 (measured; the FER+ sizes usually quoted)
    in_card = {"train": 28558, "validation": 3579, "test": 3573}
    assert Counter(split for split, _ in votes.values()) == in_card
    assert {s: len(ferplus[s]) for s in ferplus} == {"train": 25045, "validation": 3191, "test": 3137}
    dropped = ferplus.dropped.counts()
    for split in in_card:
        assert len(ferplus[split]) + sum(1 for k in ferplus.dropped.reasons if k.startswith(FOLDERS[split] + "/")) \
            == in_card[split]
    assert dropped == {"no majority: top class has at most half of the votes": 2458,
                       "no majority: tie for the most votes": 1778, "majority unknown": 99,
                       "majority not a face (NF)": 2}
    # class counts recomputed here from label.csv with the reference rule, by name
    for split in in_card:
        expected = Counter()
        for s, v in votes.values():
            if s != split:
                continue
            kept = [x if x > 1 else 0 for x in v]
            top = max(kept)
            if top > sum(kept) / 2 and kept.index(top) < 8:
                expected[canonical_label(VOTE_NAMES[kept.index(top)], "ferplus")] += 1
        assert Counter(ferplus[split]["label"][:]) == expected, split
    assert ferplus["train"].features["label"].names == FERPLUS_LABELS
    assert Counter(ferplus["test"]["label"][:])[7] == 15  # contempt is rare (measured)
    row = ferplus["validation"][0]
    assert row["image"].size == (48, 48) and len(row["votes"]) == 10 and len(row["soft_label"]) == 8


# name -> (votes as in FER2013Valid/label.csv, majority label (None = dropped, with reason), notes)
HAND_CHECKED = {
    "fer0028640.png": ([7, 0, 0, 0, 2, 0, 0, 1, 0, 0], 6, "neutral 7 of 10"),
    "fer0028663.png": ([5, 0, 2, 0, 1, 1, 1, 0, 0, 0], 6, "5/10 is no majority, but single votes are outliers: 5 of 7"),
    "fer0028651.png": ([0, 0, 3, 1, 0, 0, 5, 0, 1, 0], 2, "fear 5 of 8 after outlier removal"),
    "fer0028639.png": ([1, 0, 0, 1, 0, 2, 0, 6, 0, 0], 7, "contempt"),
    "fer0028641.png": ([5, 5, 0, 0, 0, 0, 0, 0, 0, 0], "no majority: tie for the most votes", "neutral/happiness tie"),
    "fer0028638.png": ([4, 0, 0, 0, 1, 0, 0, 4, 1, 0], "no majority: tie for the most votes", "neutral/contempt tie"),
    "fer0029192.png": ([0, 3, 3, 0, 3, 0, 0, 0, 1, 0], "no majority: tie for the most votes", "three-way tie"),
    "fer0028788.png": ([4, 0, 0, 2, 0, 0, 0, 0, 4, 0], "no majority: tie for the most votes", "tie with unknown"),
    "fer0030291.png": ([2, 0, 0, 0, 0, 0, 0, 0, 8, 0], "majority unknown", "unknown 8"),
}


def test_ferplus_majority_and_distribution_labels_by_hand(ferplus):
    votes = _label_csv_votes()
    rows = {name: (label, soft, v) for name, label, soft, v in zip(
        ferplus["validation"]["ferplus_name"][:], ferplus["validation"]["label"][:],
        ferplus["validation"]["soft_label"][:], ferplus["validation"]["votes"][:])}
    for name, (expected_votes, expected, note) in HAND_CHECKED.items():
        assert votes[name] == ("validation", expected_votes), name
        if isinstance(expected, int):
            assert rows[name][0] == expected and rows[name][2] == expected_votes, note
        else:
            assert name not in rows and ferplus.dropped.categories[f"FER2013Valid/{name}"] == expected, note
    assert ferplus.dropped.categories["FER2013Train/fer0010628.png"] == "majority not a face (NF)"
    assert votes["fer0010628.png"] == ("train", [0] * 9 + [10])
    # soft labels: emotion votes normalised, unknown/NF out, canonical id order
    np.testing.assert_allclose(rows["fer0028640.png"][1], [0.2, 0, 0, 0, 0, 0, 0.7, 0.1], atol=1e-6)
    np.testing.assert_allclose(rows["fer0028651.png"][1], [0, 0, 5 / 9, 0, 1 / 9, 3 / 9, 0, 0], atol=1e-6)
    # label_set="fer2013": a contempt majority is dropped; distribution mode keeps ties (smallest id wins)
    assert ferplus_majority_label(HAND_CHECKED["fer0028639.png"][0], "fer2013") == (
        None, "majority contempt, not in label_set 'fer2013'")
    assert ferplus_distribution_label([5, 5, 0, 0, 0, 0, 0, 0, 0, 0]) == (3, None)  # happy (3) before neutral (6)
    assert ferplus_distribution_label([0, 3, 3, 0, 3, 0, 0, 0, 1, 0]) == (0, None)
    assert ferplus_distribution_label(HAND_CHECKED["fer0028638.png"][0]) == (6, None)
    assert ferplus_distribution_label(HAND_CHECKED["fer0028638.png"][0], "fer2013")[0] is None
    assert ferplus_distribution_label(HAND_CHECKED["fer0028788.png"][0])[0] is None  # unknown ties neutral
    assert ferplus_distribution_label(HAND_CHECKED["fer0030291.png"][0])[0] is None


def test_ferplus_unpacked_layout_distribution_and_fer2013_label_set(tmp_path):
    """The same hand-checked rows through an unpacked official layout, in both label modes and sets."""
    folder = tmp_path / "FER2013Valid"
    folder.mkdir()
    with zipfile.ZipFile(FERPLUS_ZIP) as archive:
        for name in HAND_CHECKED:
            (folder / name).write_bytes(archive.read(f"FER2013Valid/{name}"))
    lines = [f'{name},"(0, 0, 48, 48)",' + ",".join(map(str, v)) for name, (v, _, _) in HAND_CHECKED.items()]
    lines.append('fer9999999.png,"(0, 0, 48, 48)",' + ",".join(["10"] + ["0"] * 9))  # no image file
    (folder / "label.csv").write_text("\n".join(lines) + "\n")

    with pytest.warns(LabelSetWarning, match="contempt"):
        ds = _quiet_except_labelset(load_ferplus, tmp_path, labels="majority", label_set="fer2013")
    assert ds["validation"].features["label"].names == FER2013_LABELS
    assert sorted(zip(ds["validation"]["ferplus_name"][:], ds["validation"]["label"][:])) == [
        ("fer0028640.png", 6), ("fer0028651.png", 2), ("fer0028663.png", 6)]
    assert ds.dropped.categories["FER2013Valid/fer0028639.png"] == "majority contempt, not in label_set 'fer2013'"
    assert ds.dropped.categories["FER2013Valid/fer9999999.png"] == "image file missing"
    assert len(ds["validation"][0]["soft_label"]) == 7 and len(ds["train"]) == len(ds["test"]) == 0

    ds = _quiet(load_ferplus, tmp_path, labels="distribution")
    labels = dict(zip(ds["validation"]["ferplus_name"][:], ds["validation"]["label"][:]))
    assert labels == {"fer0028640.png": 6, "fer0028663.png": 6, "fer0028651.png": 2, "fer0028639.png": 7,
                      "fer0028641.png": 3, "fer0028638.png": 6, "fer0029192.png": 0}
    soft = dict(zip(ds["validation"]["ferplus_name"][:], ds["validation"]["soft_label"][:]))
    np.testing.assert_allclose(soft["fer0028641.png"], [0, 0, 0, 0.5, 0, 0, 0.5, 0], atol=1e-6)


def _quiet_except_labelset(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InvalidRowsWarning)
        return function(*args, **kwargs)


def test_ferplus_from_fer2013new_and_link_table_agrees_with_official_layout(ferplus, ferplus_linked):
    # measured: 184 FER2013 JPEGs have no FER+ row in the link table (unmatched 175,
    # matched_other_split_only 5, ambiguous_duplicate_unassigned 4: data card)
    counts = ferplus_linked.dropped.counts()
    assert counts["no FER+ row (unmatched)"] == 175
    assert counts["no FER+ row (matched_other_split_only)"] == 5
    assert counts["no FER+ row (ambiguous_duplicate_unassigned)"] == 4
    assert {s: len(ferplus_linked[s]) for s in ferplus_linked} == {"train": 25052, "validation": 3198, "test": 3152}

    label_csv = _label_csv_votes()
    with open(FERPLUS / "fer2013new.csv", newline="") as handle:
        new_votes = {r["Image name"]: [int(r[c]) for c in VOTE_NAMES]
                     for r in csv.DictReader(handle) if r["Image name"]}
    # Microsoft's label.csv (2016) and fer2013new.csv (2017) disagree on the votes of 1,602 images (measured)
    differ = {n for n in label_csv if label_csv[n][1] != new_votes[n]}
    assert len(differ) == 1602

    compared = agreed = 0
    for split in ("train", "validation", "test"):
        a, b = ferplus[split], ferplus_linked[split]
        official = {n: (lab, v, s) for n, lab, v, s in zip(a["ferplus_name"][:], a["label"][:], a["votes"][:],
                                                            a["soft_label"][:])}
        for name, label, votes, soft in zip(b["ferplus_name"][:], b["label"][:], b["votes"][:], b["soft_label"][:]):
            assert votes == new_votes[name] and label_csv[name][0] == split
            if name in official:
                compared += 1
                assert official[name][1] == label_csv[name][1]
                if name not in differ:
                    agreed += 1
                    assert official[name][0] == label and official[name][2] == soft
    assert compared > 0.98 * sum(len(ferplus[s]) for s in ferplus) and agreed > 0.95 * compared
    # same pixels up to JPEG noise (data card: mean absolute difference under 4 grey levels)
    a, b = ferplus["test"], ferplus_linked["test"]
    index_a = {n: i for i, n in enumerate(a["ferplus_name"][:])}
    for j, name in enumerate(b["ferplus_name"][:100]):
        if name in index_a:
            png = np.asarray(a[index_a[name]]["image"], dtype=float)
            jpg = np.asarray(b[j]["image"].convert("L"), dtype=float)
            assert np.abs(png - jpg).mean() < 4, name


def test_ferplus_from_fer2013new_and_a_kaggle_csv_joins_by_row(tmp_path):
    """fer2013new.csv row i = fer2013.csv row i: a Kaggle-format CSV rebuilt from the lossless FER+ PNGs of
    the first 70 rows (row 59 has no FER+ image name, so it gets a blank face and must be left out)."""
    with open(FERPLUS / "fer2013new.csv", newline="") as handle:
        lines = handle.read().splitlines()[:71]
    (tmp_path / "fer2013new.csv").write_text("\n".join(lines) + "\n")
    rows = list(csv.DictReader(io.StringIO("\n".join(lines))))
    with zipfile.ZipFile(FERPLUS_ZIP) as archive, open(tmp_path / "fer2013.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["emotion", "pixels", "Usage"])
        for row in rows:
            name = row["Image name"]
            pixels = (np.asarray(Image.open(io.BytesIO(archive.read(f"FER2013Train/{name}")))) if name
                      else np.zeros((48, 48), np.uint8))
            writer.writerow([0, " ".join(map(str, pixels.ravel())), row["Usage"]])
    ds = _quiet(load_ferplus, tmp_path / "fer2013new.csv", fer2013_path=tmp_path / "fer2013.csv", labels="distribution")
    assert ds.dropped.categories["row59"] == "empty FER+ Image name"
    train = ds["train"]
    assert len(train) + len(ds.dropped) == 70 and len(ds["validation"]) == len(ds["test"]) == 0
    with zipfile.ZipFile(FERPLUS_ZIP) as archive:
        for i in (0, 1, len(train) - 1):
            row = train[i]
            source = rows[int(row["image_id"][3:])]
            assert row["ferplus_name"] == source["Image name"]
            assert row["votes"] == [int(source[c]) for c in VOTE_NAMES]
            png = np.asarray(Image.open(io.BytesIO(archive.read(f"FER2013Train/{row['ferplus_name']}"))))
            assert np.array_equal(np.asarray(row["image"]), png)


def test_ferplus_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="FER\\+ data not found"):
        load_ferplus(tmp_path / "missing.zip")
    with pytest.raises(FileNotFoundError, match="No FER\\+ data"):
        load_ferplus(tmp_path)
    (tmp_path / "fer2013new.csv").write_bytes((FERPLUS / "fer2013new.csv").read_bytes())
    with pytest.raises(FileNotFoundError, match="fer2013_path"):
        load_ferplus(tmp_path / "fer2013new.csv")
    with pytest.raises(ValueError, match="labels must be"):
        load_ferplus(FERPLUS_ZIP, labels="soft")


# ----------------------------------------------------------------------------------------------- CK+

def test_ckplus_counts_subjects_and_label_sets(ckplus):
    ds = ckplus["train"]
    assert list(ckplus) == ["train"] and len(ds) == 981
    card = {"anger": 135, "contempt": 54, "disgust": 177, "fear": 75, "happy": 207, "sadness": 84, "surprise": 249}
    assert Counter(ds["label"][:]) == {canonical_label(k, "ferplus"): v for k, v in card.items()}
    assert ckplus.label_report["empty_classes"] == ["neutral"]
    assert len(set(ds["subject"][:])) == 118 and len(set(ds["sequence"][:])) == 327
    assert all(re.fullmatch(r"S\d{3}", s) for s in ds["subject"][:])
    assert set(Counter(ds["sequence"][:]).values()) == {3}  # the last three frames of each sequence
    row = ds[0]
    assert row["image_id"].split("/")[-1].startswith(row["sequence"] + "_") and row["image"].size == (48, 48)

    with pytest.warns(LabelSetWarning, match="contempt"):
        seven = _quiet_except_labelset(load_ckplus, CKPLUS.parent, label_set="fer2013")
    assert len(seven["train"]) == 981 - 54 and seven.dropped.counts() == {"contempt not in label_set 'fer2013'": 54}
    with pytest.raises(FileNotFoundError, match="CK\\+ data not found"):
        load_ckplus(CKPLUS.parent / "nowhere")


def test_subject_folds_never_split_a_subject(ckplus):
    ds = ckplus["train"]
    subjects = np.asarray(ds["subject"][:])
    folds = subject_kfold(ds, 10, seed=0)
    assert len(folds) == 10 and folds.subject_independent and "subject-independent" in folds.protocol
    seen = []
    for train, test in folds:
        assert not set(subjects[train]) & set(subjects[test])
        assert len(train) + len(test) == len(ds)
        seen.extend(test.tolist())
    assert sorted(seen) == list(range(len(ds)))
    assert subject_kfold(ds, 10, seed=0)[3][1].tolist() == folds[3][1].tolist()  # deterministic
    plain = subject_kfold(ckplus, 5, stratify=False)  # a one-split DatasetDict is accepted
    assert all(not set(subjects[tr]) & set(subjects[te]) for tr, te in plain)
    random_folds = stratified_kfold(ds, 5, seed=0)
    assert not random_folds.subject_independent and "NOT subject-independent" in random_folds.protocol
    assert any(set(subjects[tr]) & set(subjects[te]) for tr, te in random_folds)  # why it is labelled so
    with pytest.raises(ValueError, match="distinct"):
        subject_kfold(ds.select(range(6)), 5)


# ----------------------------------------------------------------------------------------------- JAFFE

def test_jaffe_names_subjects_and_leave_one_subject_out():
    ds = _quiet(load_jaffe, JAFFE, detector=None)["train"]
    assert len(ds) == 213
    assert Counter(ds["subject"][:]) == {"KA": 23, "KL": 22, "KM": 22, "KR": 20, "MK": 21, "NA": 21, "NM": 20,
                                      "TM": 21, "UY": 21, "YM": 22}
    card = {"angry": 30, "disgust": 29, "fear": 32, "happy": 31, "neutral": 30, "sad": 31, "surprise": 30}
    assert Counter(ds["label"][:]) == {FER2013_LABELS.index(k): v for k, v in card.items()}
    first = ds[0]
    assert first["image_id"] == "KA.AN1.39.tiff" and first["label"] == 0 and first["image"].size == (256, 256)
    folds = leave_one_subject_out(ds)
    subjects = np.asarray(ds["subject"][:])
    assert len(folds) == 10 and folds.groups[0] == ["KA"]
    for (train, test), (held_out,) in zip(folds, folds.groups):
        assert set(subjects[test]) == {held_out} and held_out not in set(subjects[train])
        assert len(train) + len(test) == 213


def test_jaffe_faces_are_detected_cropped_and_cached(tmp_path, monkeypatch):
    """The one slow test: MTCNN on the 213 frames, then the cache."""
    import fer_hf.detection.detectors

    ds = _quiet(load_jaffe, JAFFE, cache_dir=tmp_path, label_set="ferplus")
    report = ds.face_report
    assert not report["from_cache"] and report["no_face"] == []  # measured: MTCNN finds every face
    cache = Path(report["cache_dir"])
    assert cache.parent == tmp_path
    manifest = json.loads((cache / "manifest.json").read_text())
    assert len(manifest["images"]) == 213 == len(list(cache.glob("*.png")))
    assert manifest["settings"]["detector"] == "mtcnn" and manifest["settings"]["margin"] == 0.2
    train = ds["train"]
    assert all(train["face_detected"][:]) and ds.label_report["empty_classes"] == ["contempt"]
    sides = [(x2 - x1, y2 - y1) for x1, y1, x2, y2 in train["face_box"][:]]
    # square crops (up to rounding) around 150-210 px faces (their size depends on the detector's crop
    # adjustment), cut from the frame at face_box
    assert all(abs(w - h) <= 1 and 100 <= w <= 260 for w, h in sides)
    crop = train[0]["image"]
    assert crop.mode == "L" and crop.size == sides[0]
    frame = Image.open(JAFFE / train[0]["image_id"]).convert("L")
    assert crop.tobytes() == frame.crop(tuple(train[0]["face_box"])).tobytes()

    def no_detector(*args, **kwargs):
        raise AssertionError("the detector must not run when the cache is complete")

    monkeypatch.setattr(fer_hf.detection.detectors, "build_detector", no_detector)
    again = _quiet(load_jaffe, JAFFE, cache_dir=tmp_path, label_set="ferplus")
    assert again.face_report["from_cache"] and again.face_report["cache_dir"] == report["cache_dir"]
    assert again["train"][5]["image"].tobytes() == train[5]["image"].tobytes()
    assert again["train"]["face_box"][:] == train["face_box"][:]
    with pytest.raises(AssertionError, match="must not run"):  # other settings, other cache entry
        _quiet(load_jaffe, JAFFE, cache_dir=tmp_path, margin=0.3)


# ----------------------------------------------------------------------------------------------- SFEW

def test_sfew_drops_exactly_the_listed_files(sfew):
    assert len(SFEW_UNUSABLE) == 31
    assert set(sfew.dropped.reasons) == set(SFEW_UNUSABLE)
    assert sfew.dropped.counts() == {"unusable: background, body or a face fragment, not a face": 19,
                                     "unusable: all-black image": 12}
    for name, reason in SFEW_UNUSABLE.items():
        path = SFEW / name
        assert path.is_file(), name
        if "all-black" in reason:
            assert path.stat().st_size == 174 and not np.asarray(Image.open(path)).any()
    # data card: 855 Train (169, 49, 76, 176, 151, 93, 141) and 405 Val (76, 23, 45, 62, 68, 49, 82)
    assert list(sfew) == ["train", "validation"]
    assert np.bincount(sfew["train"]["label"][:], minlength=7).tolist() == [169, 49, 76, 176, 151, 93, 141]
    assert np.bincount(sfew["validation"]["label"][:], minlength=7).tolist() == [76, 23, 45, 62, 68, 49, 82]
    kept = set(sfew["train"]["image_id"][:]) | set(sfew["validation"]["image_id"][:])
    assert not kept & set(SFEW_UNUSABLE)


def test_sfew_movies_and_movie_folds(sfew):
    train_movies, val_movies = set(sfew["train"]["movie"][:]), set(sfew["validation"]["movie"][:])
    assert len(train_movies) == 47 and len(val_movies) == 24 and not train_movies & val_movies  # data card
    movies = dict(zip(sfew["train"]["image_id"][:], sfew["train"]["movie"][:]))
    assert movies["Train/Fear/HarryPotter_Deathly_Hallows_1_001610960_00000028.png"] == "HarryPotter_Deathly_Hallows_1"
    assert movies["Train/Disgust/OceansThirteen-010619400_00000087.png"] == "OceansThirteen"
    assert movies["Train/Sad/IAmSam_013827920__00000055.png"] == "IAmSam"
    groups = np.asarray(sfew["train"]["movie"][:])
    for train, test in subject_kfold(sfew["train"], 5, group_column="movie"):
        assert not set(groups[train]) & set(groups[test])
    with pytest.raises(FileNotFoundError, match="SFEW data not found"):
        load_sfew(SFEW / "nowhere")


# ----------------------------------------------------------------------------------------------- Hub ids

def test_hub_ids_map_labels_by_name(monkeypatch):
    """Hub datasets (datasets.load_dataset stubbed: no network here) with alphabetical ClassLabels, as
    image-folder uploads have them, are remapped by name."""
    import datasets
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
    from datasets import Image as ImageFeature

    def image_dataset(paths, class_names, labels, extra=None):
        columns = {"image": [{"bytes": p.read_bytes(), "path": str(p)} for p in paths], "label": labels}
        features = {"image": ImageFeature(), "label": ClassLabel(names=class_names)}
        for name, values in (extra or {}).items():
            columns[name], features[name] = values, Value("int32")
        return Dataset.from_dict(columns, features=Features(features))

    ck_names = sorted(p.name for p in CKPLUS.iterdir())  # anger, contempt, disgust, fear, happy, sadness, surprise
    ck_files = [next(iter(sorted((CKPLUS / c).iterdir()))) for c in ("anger", "contempt", "sadness")]
    sfew_names = sorted(p.name for p in (SFEW / "Train").iterdir())  # Angry ... Neutral, Sad, Surprise
    sfew_files = [next(iter(sorted((SFEW / "Val" / c).iterdir()))) for c in ("Neutral", "Sad", "Surprise")]
    with zipfile.ZipFile(FERPLUS_ZIP) as archive:
        png = archive.read("FER2013Valid/fer0028640.png")
    votes = {name: [v] for name, v in zip(VOTE_NAMES, HAND_CHECKED["fer0028640.png"][0], strict=True)}
    fake = {
        "ckplus": DatasetDict(train=image_dataset(ck_files, ck_names, [ck_names.index(c) for c in
                                                                        ("anger", "contempt", "sadness")])),
        "sfew": DatasetDict(train=image_dataset(sfew_files[:1], sfew_names, [sfew_names.index("Neutral")]),
                            validation=image_dataset(sfew_files[1:], sfew_names,
                                                     [sfew_names.index("Sad"), sfew_names.index("Surprise")])),
        "ferplus": DatasetDict(test=Dataset.from_dict(
            {"image": [{"bytes": png, "path": "fer0028640.png"}], **votes},
            features=Features({"image": ImageFeature(), **{n: Value("int32") for n in VOTE_NAMES}}))),
    }
    monkeypatch.setattr(datasets, "load_dataset", lambda dataset_id, **kwargs: fake[dataset_id.split("/")[1]])

    ck = _quiet(load_ckplus, "someone/ckplus")
    assert ck["train"]["label"][:] == [0, 7, 4] and ck["train"]["subject"][:] == [
        f.name.split("_")[0] for f in ck_files]
    sf = _quiet(load_sfew, "someone/sfew")
    assert sf["train"]["label"][:] == [6] and sf["validation"]["label"][:] == [4, 5]
    assert sf["validation"]["movie"][:] == [re.match(r"(.+?)[-_]+\d+_+\d+\.png$", f.name).group(1)
                                            for f in sfew_files[1:]]
    fp = _quiet(load_ferplus, "someone/ferplus")
    assert fp["test"]["label"][:] == [6] and fp["test"]["votes"][:] == [HAND_CHECKED["fer0028640.png"][0]]


# ----------------------------------------------------------------------------------------------- quality

def test_quality_report_matches_the_card_on_the_ferplus_images():
    """The data card: the 35,710 FER+ PNGs hold 1,513 groups of pixel-identical images (3,353 images),
    556 of which span more than one split."""
    from datasets import Dataset, DatasetDict, Features, Image as ImageFeature, Value

    features = Features({"image": ImageFeature(), "image_id": Value("string")})
    dd = DatasetDict()
    with zipfile.ZipFile(FERPLUS_ZIP) as archive:
        for split, folder in FOLDERS.items():
            names = sorted(n for n in archive.namelist() if n.startswith(folder + "/") and n.endswith(".png"))
            dd[split] = Dataset.from_dict({"image": [{"bytes": archive.read(n), "path": n} for n in names],
                                           "image_id": names}, features=features)
    report = data_quality_report(dd)
    assert report["rows"] == {"train": 28558, "validation": 3579, "test": 3573}
    assert report["duplicates"]["all"] == {"groups": 1513, "images": 3353}
    assert report["duplicates"]["cross_split"]["groups"] == 556


def test_quality_report_and_cross_split_duplicates_on_fer2013(fer2013):
    report = data_quality_report(fer2013)
    json.dumps(report)
    assert report["rows"] == {"train": 28709, "validation": 3589, "test": 3589}
    assert report["dropped"] == {"total": 0, "by_reason": {}, "examples": {}}
    assert report["class_balance"]["validation"]["counts"]["happy"] == 895
    cross = report["duplicates"]["cross_split"]
    # measured on the JPEGs (the card's 556 groups are for the FER+ PNGs, which lack 175 FER2013 images)
    assert cross["groups"] == 557 and cross["images_per_split"] == {"train": 703, "validation": 306, "test": 314}
    assert cross["split_pairs"] == {"train/validation": 270, "train/test": 278, "validation/test": 43}
    assert report["conflicting_labels"]["groups"] == 57 and report["conflicting_labels"]["cross_split_groups"] == 26
    example = cross["examples"][0]
    assert len({i.split(":")[0] for i in example}) > 1

    cleaned, removal = drop_cross_split_duplicates(fer2013)
    assert removal["removed"] == 703 and removal["rows_after"] == 28709 - 703
    assert len(cleaned["validation"]) == 3589 and len(cleaned["test"]) == 3589
    assert cleaned["validation"] is fer2013["validation"] and cleaned["test"] is fer2013["test"]
    evaluation = set(image_hashes(fer2013["validation"])) | set(image_hashes(fer2013["test"]))
    train_hashes = image_hashes(fer2013["train"])
    expected = [i for i, h in zip(fer2013["train"]["image_id"][:], train_hashes) if h not in evaluation]
    assert list(cleaned["train"]["image_id"][:]) == expected
    assert cleaned.dropped is fer2013.dropped and cleaned.duplicate_removal == removal
