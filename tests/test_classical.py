"""The classical baseline (fer_hf.training.classical) on real data: features, fit / save / load, no pickle, tampered
files refused, the CK+ subject-independent protocol and the FER2013 protocol end to end (small subsets)."""

import json
import shutil

import numpy as np
import pytest

from conftest import CKPLUS, DATA, FER2013_ZIP

JAFFE = DATA / "jaffe"


@pytest.fixture(scope="module")
def ckplus():
    from fer_hf.training.classical import _labels
    from fer_hf.data import load_ckplus

    data = load_ckplus(CKPLUS)["train"]
    names = ["angry", "disgust", "fear", "happy", "sad", "surprise", "contempt"]  # CK+48 has no neutral
    return data, names, _labels(data, names), np.asarray(data["subject"][:])


@pytest.fixture(scope="module")
def trained(ckplus, tmp_path_factory):
    """A model fitted on ~300 CK+ images of one set of subjects, saved; the held-out images come from the
    other subjects only (no subject on both sides)."""
    from fer_hf.training.classical import ClassicalFERPipeline

    data, names, labels, subjects = ckplus
    rng = np.random.default_rng(0)
    unique = np.unique(subjects)
    train_subjects = rng.choice(unique, size=len(unique) * 3 // 10, replace=False)
    train = np.flatnonzero(np.isin(subjects, train_subjects))
    test = np.flatnonzero(~np.isin(subjects, train_subjects))
    model = ClassicalFERPipeline(label_names=names)
    features = model.extract_features(data["image"])
    model.fit_features(features[train], labels[train], groups=subjects[train])
    folder = model.save_pretrained(tmp_path_factory.mktemp("classical") / "model")
    return {"model": model, "folder": folder, "features": features, "train": train, "test": test}


def test_features_have_the_documented_shape_and_are_deterministic(ckplus):
    from skimage.filters import gabor

    from fer_hf.training.classical import ClassicalFERPipeline

    data, _, _, _ = ckplus
    images = data.select(range(0, 981, 123))["image"]
    model = ClassicalFERPipeline()
    features = model.extract_features(images)
    layout = model.feature_layout
    assert layout == {"lbp": (0, 36 * 59), "gabor": (36 * 59, 36 * 59 + 2 * 3 * 4 * 16)}  # 6x6 cells x 59 bins
    assert features.shape == (len(images), 2508) and features.dtype == np.float32
    lbp = features[:, :2124].reshape(len(images), 36, 59)
    np.testing.assert_allclose(lbp.sum(-1), 1.0, atol=1e-5)  # one normalised histogram per cell
    again = ClassicalFERPipeline().extract_features(list(images))
    assert np.array_equal(features, again)  # deterministic, also across instances
    # the batched FFT Gabor bank equals skimage.filters.gabor (reflect border) on a standardised face
    faces, found = model.preprocess(images[:1])
    assert found.all() and faces.shape == (1, 48, 48) and faces.dtype == np.uint8
    face = faces[0].astype(np.float32)
    face = (face - face.mean()) / (face.std() + 1e-6)
    magnitudes = model.gabor_magnitudes(faces)
    for j, (frequency, theta) in enumerate([(f, t * np.pi / 4) for f in model.gabor_frequencies for t in range(4)]):
        real, imag = gabor(face, frequency, theta=theta, bandwidth=1.0, mode="reflect")
        np.testing.assert_allclose(magnitudes[0, j], np.hypot(real, imag), atol=1e-5)


def test_haar_detection_crops_whole_frames():
    from PIL import Image

    from fer_hf.training.classical import ClassicalFERPipeline

    frames = [Image.open(path) for path in sorted(JAFFE.glob("*.tiff"))[:2]]  # 256x256 JAFFE frames
    model = ClassicalFERPipeline(detect_faces=True, min_face_size=80)
    faces, found = model.preprocess(frames)
    assert faces.shape == (2, 48, 48) and found.all()
    # a blank image has no face: centred square, reported, no exception
    faces, found = model.preprocess([np.full((120, 80), 128, np.uint8)])
    assert faces.shape == (1, 48, 48) and not found.any()


def test_save_load_identical_probabilities_and_above_chance(trained, ckplus):
    from scipy.stats import binom

    from fer_hf.training.classical import ClassicalFERPipeline

    data, names, labels, subjects = ckplus
    model, test = trained["model"], trained["test"]
    assert 250 <= len(trained["train"]) <= 350
    assert not set(subjects[trained["train"]]) & set(subjects[test])
    images = data.select(test.tolist())["image"]
    loaded = ClassicalFERPipeline.from_pretrained(trained["folder"])  # a fresh object
    probabilities = loaded.predict_proba(images)
    assert probabilities.shape == (len(test), 7) and loaded.label_names == names
    np.testing.assert_allclose(probabilities.sum(1), 1.0, atol=1e-9)
    assert np.array_equal(probabilities, model.predict_proba_features(trained["features"][test]))
    predictions = loaded.predict(images)
    assert np.array_equal(predictions, probabilities.argmax(1))
    # Bar: better than always answering the most frequent held-out class, by a margin no guesser reaches by
    # luck. A predictor independent of the image that is right with the majority rate p (~0.26 here) gets
    # k or more right out of n with probability binom.sf(k - 1, n, p); we require that to be below 1e-9.
    n = len(test)
    correct = int((predictions == labels[test]).sum())
    majority = np.bincount(labels[test]).max() / n
    assert binom.sf(correct - 1, n, majority) < 1e-9, (correct, n, majority)
    assert correct / n > 0.55, correct / n  # CK+ subject-independent LBP+SVM is usually 75-90%


def test_saved_folder_has_no_pickle(trained):
    from safetensors import safe_open

    folder = trained["folder"]
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["config.json", "model.safetensors"]
    for path in folder.iterdir():
        assert path.suffix not in (".pkl", ".pickle", ".joblib", ".skops", ".npy", ".pt", ".bin")
        assert not path.read_bytes().startswith(b"\x80")  # pickle protocol 2+ header
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "fer_classical" and config["id2label"]["6"] == "contempt"
    assert config["feature_dim"] == 2508 and config["denoise"] == "bilateral"
    with safe_open(str(folder / "model.safetensors"), framework="numpy") as f:
        metadata = f.metadata()
        keys = set(f.keys())
    assert {"svm.support_vectors_", "svm._dual_coef_", "scaler.mean_", "scaler.scale_", "calibrator.coef_"} <= keys
    classes = {step["class"] for step in json.loads(metadata["estimators"]).values()}
    assert classes == {"sklearn.preprocessing.StandardScaler", "sklearn.svm.SVC", "sklearn.linear_model.LogisticRegression"}


def _rewrite(folder, edit_metadata=None, edit_tensors=None):
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    path = str(folder / "model.safetensors")
    with safe_open(path, framework="numpy") as f:
        metadata = dict(f.metadata())
    tensors = load_file(path)
    if edit_metadata:
        state = json.loads(metadata["estimators"])
        edit_metadata(state)
        metadata["estimators"] = json.dumps(state)
    if edit_tensors:
        edit_tensors(tensors)
    save_file(tensors, path, metadata=metadata)


@pytest.mark.parametrize("tamper, message", [
    (lambda s: s["scaler"].update({"class": "sklearn.preprocessing.FunctionTransformer"}), "untrusted type"),
    (lambda s: s["svm"].update({"class": "builtins.eval"}), "untrusted type"),
    (lambda s: s["svm"]["state"].update({"kernel": {"__reduce__": ["os.system", ["echo hi"]]}}), "unknown encoding"),
    (lambda s: s["calibrator"]["state"].update({"__class__": "x"}), "attribute name"),
    (lambda s: s.update({"extra": {"class": "sklearn.svm.SVC", "state": {}}}), "expected"),
])
def test_loading_refuses_untrusted_types(trained, tmp_path, tamper, message):
    from fer_hf.training.classical import ClassicalFERPipeline, UnsafeModelError

    folder = shutil.copytree(trained["folder"], tmp_path / "tampered")
    _rewrite(folder, edit_metadata=tamper)
    with pytest.raises(UnsafeModelError, match=message):
        ClassicalFERPipeline.from_pretrained(folder)


def test_loading_refuses_tampered_tensors_and_configs(trained, tmp_path):
    from fer_hf.training.classical import ClassicalFERPipeline, UnsafeModelError

    folder = shutil.copytree(trained["folder"], tmp_path / "weights")

    def shift_support_vectors(tensors):
        tensors["svm.support_vectors_"] = tensors["svm.support_vectors_"] * 1.5

    _rewrite(folder, edit_tensors=shift_support_vectors)
    with pytest.raises(UnsafeModelError, match="self-check failed"):
        ClassicalFERPipeline.from_pretrained(folder)

    folder = shutil.copytree(trained["folder"], tmp_path / "extra")
    _rewrite(folder, edit_tensors=lambda tensors: tensors.update({"payload": np.zeros(3, np.uint8)}))
    with pytest.raises(UnsafeModelError, match="unexpected tensors"):
        ClassicalFERPipeline.from_pretrained(folder)

    folder = shutil.copytree(trained["folder"], tmp_path / "config")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "fer_vgg"}))
    with pytest.raises(ValueError, match="model_type"):
        ClassicalFERPipeline.from_pretrained(folder)

    folder = shutil.copytree(trained["folder"], tmp_path / "pickled")
    (folder / "model.safetensors").unlink()
    (folder / "model.pkl").write_bytes(b"\x80\x04N.")  # never read
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        ClassicalFERPipeline.from_pretrained(folder)


def test_ckplus_subject_independent_cv_end_to_end(tmp_path):
    from fer_hf.cli.commands import main

    out = tmp_path / "cv"
    code = main(["train-classical", "--dataset", "ckplus", "--data_dir", str(CKPLUS), "--output_dir", str(out),
                 "--cv", "subject", "--folds", "3", "--max_train_samples", "240", "--C", "10", "--gamma_factor",
                 "0.5", "1", "--inner_folds", "2"])
    assert code == 0
    results = json.loads((out / "cv_results.json").read_text())
    assert results["subject_independent"] and results["folds"] == 3 and "subject-independent" in results["protocol"]
    assert results["command"].startswith("python -m fer_hf train-classical --dataset ckplus")
    assert sum(f["test_images"] for f in results["per_fold"]) == results["images"] == 240  # each image tested once
    tested = [set(f["test_subjects"]) for f in results["per_fold"]]
    assert all(f["subjects_on_both_sides"] == 0 for f in results["per_fold"])
    assert not (tested[0] & tested[1] or tested[0] & tested[2] or tested[1] & tested[2])
    accuracies = [f["accuracy"] for f in results["per_fold"]]
    assert results["accuracy_mean"] == pytest.approx(np.mean(accuracies))
    assert results["accuracy_std"] == pytest.approx(np.std(accuracies, ddof=1))
    assert all(f["chosen"]["C"] == 10 for f in results["per_fold"])
    assert results["pooled"]["num_samples"] == 240 and results["accuracy_mean"] > 0.4


def test_fer2013_protocol_writes_model_results_and_card(tmp_path):
    from fer_hf.training.classical import ClassicalFERPipeline, train_classical

    out = tmp_path / "fer2013"
    results = train_classical("fer2013", FER2013_ZIP, out, max_train_samples=600, max_eval_samples=150,
                              grid={"C": [1, 10], "gamma_factor": [1]}, command="pytest")
    assert results["split_sizes"] == {"train": 600, "validation": 150, "test": 150}
    assert not results["is_fer2013_result"] and "subset of 600" in results["protocol"]
    assert [r["C"] for r in results["grid"]] == [1, 10] and results["chosen"]["C"] in (1, 10)
    best = max(r["validation_accuracy"] for r in results["grid"])
    assert results["chosen"]["C"] == next(r["C"] for r in results["grid"] if r["validation_accuracy"] == best)
    assert results["test"]["accuracy"] > 0.25  # chance (the majority class, happy) is ~0.25 on FER2013
    saved = json.loads((out / "eval_results.json").read_text())
    assert saved["test"]["accuracy"] == results["test"]["accuracy"] and saved["command"] == "pytest"
    card = (out / "README.md").read_text()
    assert card.startswith("---\n") and "model-index:" in card and "library_name: sklearn" in card
    assert f"value: {results['test']['accuracy']:.4f}" in card and "not FER2013 results" in card
    model = ClassicalFERPipeline.from_pretrained(out)
    assert model.C == results["chosen"]["C"] and model.label_names[6] == "neutral"
