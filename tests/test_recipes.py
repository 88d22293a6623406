"""Training recipes on real FER2013 faces: augmentation presets, losses, TTA, the ensemble and distillation."""

import io
import itertools
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModelForImageClassification

import fer_hf  # noqa: F401  (registers the fer_hf model types)
from fer_hf import FER2013_LABELS
from fer_hf.training.augmentation import AUGMENTATION_PRESETS, apply_preset, random_erasing
from fer_hf.training.ensembling import fit_member_weights
from fer_hf.training.losses import class_weights, classification_loss, distillation_loss
from fer_hf.models import build_model
from fer_hf.models.ensemble import FerEnsembleForImageClassification
from fer_hf.models.hub import MODEL_CARDS_DIR
from fer_hf.inference.tta import tta_log_probs, tta_views

from conftest import DATA, FER2013_MODEL, FER2013_ZIP, REPO

#: FER2013 tooling is tested on the most accurate FER2013-only release (not the real-photo default)
FER2013_MODEL_DIR = MODEL_CARDS_DIR / FER2013_MODEL


@pytest.fixture(scope="module")
def private_test_faces():
    """64 real PrivateTest faces (uint8 (64, 1, 48, 48)) and their labels."""
    with zipfile.ZipFile(FER2013_ZIP) as archive:
        names = sorted(n for n in archive.namelist() if "/PrivateTest_" in n)[::50][:64]
        names = [names[i] for i in np.random.default_rng(0).permutation(len(names))]  # classes mixed in a batch
        images = np.stack([np.asarray(Image.open(io.BytesIO(archive.read(n))).convert("L")) for n in names])
    labels = torch.tensor([FER2013_LABELS.index(n.split("/")[1]) for n in names])
    return torch.from_numpy(images)[:, None], labels


@pytest.mark.parametrize("preset", AUGMENTATION_PRESETS)
def test_presets_keep_shapes_dtypes_and_label_sums(preset, private_test_faces):
    images, labels = private_test_faces
    torch.manual_seed(0)
    out, targets = apply_preset(preset, images.float(), labels, num_labels=7)
    assert out.shape == images.shape and out.dtype == torch.float32
    assert out.min() >= -1e-3 and out.max() <= 255 + 1e-3
    if preset == "none":
        assert torch.equal(out, images.float()) and torch.equal(targets, labels)
    else:
        assert not torch.equal(out, images.float())
    if preset == "mixup+cutmix":
        assert targets.shape == (64, 7) and targets.dtype == torch.float32
        assert torch.allclose(targets.sum(1), torch.ones(64), atol=1e-5)
        mixed = []
        for seed in range(5):  # lam ~ Beta(0.2, 0.2) is often close to 0 or 1: over a few batches it mixes
            torch.manual_seed(seed)
            mixed.append(apply_preset(preset, images.float(), labels, 7)[1].max(1).values.min().item())
        assert min(mixed) < 0.9, mixed
    else:
        assert torch.equal(targets, labels)


def test_mixup_cutmix_mixes_soft_targets_with_the_images(private_test_faces):
    images, labels = private_test_faces
    soft = torch.cat([torch.nn.functional.one_hot(labels, 7).float(), torch.full((64, 7), 1 / 7)], 1)
    torch.manual_seed(1)
    _, mixed = apply_preset("mixup+cutmix", images.float(), soft, num_labels=7)
    assert mixed.shape == (64, 14)
    assert torch.allclose(mixed[:, :7].sum(1), torch.ones(64), atol=1e-5)
    assert torch.allclose(mixed[:, 7:].sum(1), torch.ones(64), atol=1e-5)


def test_random_erasing_erases_per_image_within_the_area_range(private_test_faces):
    images, _ = private_test_faces
    torch.manual_seed(0)
    erased = random_erasing(images.float(), probability=1.0, scale=(0.05, 0.1), value=-1.0)
    fraction = (erased == -1.0).float().mean(dim=(1, 2, 3))
    assert (fraction > 0.02).all() and (fraction < 0.13).all()
    assert len(set(fraction.tolist())) > 10  # each image has its own rectangle
    untouched = random_erasing(images.float(), probability=0.0)
    assert torch.equal(untouched, images.float())


def test_class_weights_follow_the_real_fer2013_training_counts(fer2013):
    labels = torch.tensor(fer2013["train"]["label"])
    weights = class_weights(labels, 7, "inverse")
    assert torch.allclose(weights.mean(), torch.tensor(1.0))
    counts = torch.bincount(labels, minlength=7).float()
    assert counts[1] == 436 and counts[3] == 7215
    assert torch.allclose(weights[1] / weights[3], counts[3] / counts[1], rtol=1e-4)
    sqrt = class_weights(labels, 7, "sqrt_inverse")
    assert 1 < sqrt[1] / sqrt[3] < weights[1] / weights[3]
    assert class_weights(labels, 7, "none") is None
    with pytest.raises(ValueError):
        class_weights(torch.tensor([0, 1]), 7, "inverse")


def test_losses_hard_soft_and_distillation():
    torch.manual_seed(0)
    logits = torch.randn(5, 7)
    labels = torch.tensor([0, 3, 3, 6, 1])
    one_hot = torch.nn.functional.one_hot(labels, 7).float()
    assert torch.allclose(classification_loss(logits, labels), classification_loss(logits, one_hot), atol=1e-6)
    weights = torch.ones(7)
    weights[3] = 5
    assert classification_loss(logits, labels, weight=weights) != classification_loss(logits, labels)
    teacher = torch.softmax(logits / 4, -1)
    assert distillation_loss(logits, teacher, 4.0).abs() < 1e-6  # student == teacher
    assert distillation_loss(torch.zeros(5, 7), teacher, 4.0) > 0


def test_tta_views_and_averaging_on_the_released_model(private_test_faces):
    images, labels = private_test_faces
    model = AutoModelForImageClassification.from_pretrained(FER2013_MODEL_DIR).eval()
    processor = AutoImageProcessor.from_pretrained(FER2013_MODEL_DIR)
    pixel_values = processor.rescale_and_normalize(images)
    views = tta_views(pixel_values, "ten_crop", padding=4, pad_value=[-2.0])
    assert len(views) == 10 and all(v.shape == pixel_values.shape for v in views)
    assert torch.equal(views[0], pixel_values)  # the centre crop of the padded face is the face
    assert torch.equal(views[5], torch.flip(pixel_values, dims=[3]))
    assert (views[1][:, :, :4, :] == -2.0).all()  # top-left corner crop shows the padding
    with torch.no_grad():
        plain = tta_log_probs(model, pixel_values, "none")
        flip = tta_log_probs(model, pixel_values, "flip")
        logits = model(pixel_values=pixel_values).logits
        mirrored = model(pixel_values=torch.flip(pixel_values, dims=[3])).logits
    assert torch.allclose(plain, logits.log_softmax(-1), atol=1e-5)
    expected = torch.log((logits.softmax(-1) + mirrored.softmax(-1)) / 2)
    assert torch.allclose(flip, expected, atol=1e-5)
    assert (flip.argmax(-1) == labels).float().mean() > 0.5  # real accuracy on real faces


def test_ensemble_average_matches_a_hand_computation_on_real_members(private_test_faces, tmp_path):
    images, labels = private_test_faces
    member_a = AutoModelForImageClassification.from_pretrained(FER2013_MODEL_DIR).eval()
    processor_a = AutoImageProcessor.from_pretrained(FER2013_MODEL_DIR)
    torch.manual_seed(0)
    member_b = build_model("fer_lrn", overrides={"hidden_sizes": [8, 8], "classifier_hidden_sizes": [16, 8]}).eval()
    member_c = build_model("fer_resnet", overrides={"depths": [1, 1, 1, 1], "classifier_hidden_size": 16,
                                                    "image_size": 32}).eval()
    from fer_hf.image_processing_fer import FerImageProcessor

    processor_b = FerImageProcessor()
    processor_c = FerImageProcessor(num_channels=3, size={"height": 32, "width": 32},
                                    image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
    ensemble = FerEnsembleForImageClassification.from_members(
        [member_a, member_b, member_c], [processor_a, processor_b, processor_c], ["vgg", "lrn", "resnet"],
        [0.6, 0.3, 0.1])
    # no member reads colour (the 3-channel resnet's processor turns faces gray), so the ensemble's input and
    # saved processor are gray, at its largest member size
    from fer_hf.training.ensembling import ensemble_processor

    processor = ensemble_processor(ensemble.config)
    assert processor.num_channels == 1 and processor.size == {"height": 48, "width": 48}
    faces = [Image.fromarray(face[0].numpy()) for face in images[:16]]
    with torch.no_grad():
        out = ensemble(**processor(faces, return_tensors="pt"), output_member_logits=True)
        probs = [member_a(**processor_a(faces, return_tensors="pt")).logits.softmax(-1),
                 member_b(**processor_b(faces, return_tensors="pt")).logits.softmax(-1),
                 member_c(**processor_c(faces, return_tensors="pt")).logits.softmax(-1)]
    # members see their own inputs (sizes, channels, normalization) inside the ensemble
    assert torch.allclose(out.member_logits[:, 0].softmax(-1), probs[0], atol=1e-5)
    assert torch.allclose(out.member_logits[:, 1].softmax(-1), probs[1], atol=1e-5)
    assert torch.allclose(out.member_logits[:, 2].softmax(-1), probs[2], atol=0.02)  # resize: torch vs PIL
    hand = 0.6 * out.member_logits[:, 0].softmax(-1) + 0.3 * out.member_logits[:, 1].softmax(-1) \
        + 0.1 * out.member_logits[:, 2].softmax(-1)
    assert torch.allclose(out.logits.exp(), hand, atol=1e-5)
    ensemble.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        again = loaded(**AutoImageProcessor.from_pretrained(tmp_path)(faces, return_tensors="pt")).logits
    assert torch.allclose(again, out.logits, atol=1e-6)
    assert {"modeling_fer_vgg.py", "modeling_fer_lrn.py", "modeling_fer_resnet.py"} <= {p.name for p in tmp_path.iterdir()}


def test_fit_member_weights_finds_the_informative_member(private_test_faces):
    _, labels = private_test_faces
    good = torch.nn.functional.one_hot(labels, 7).float() * 0.7 + 0.3 / 7
    noise = torch.softmax(torch.randn(64, 7, generator=torch.Generator().manual_seed(0)), -1)
    weights, accuracy = fit_member_weights(torch.stack([noise, good]), labels, step=0.1)
    assert weights[1] > weights[0] and abs(sum(weights) - 1) < 1e-9 and accuracy == 1.0
    weights, _ = fit_member_weights(torch.stack([good, good]), labels, step=0.1, criterion="accuracy")
    assert weights == [0.5, 0.5]


def _fit_by_one_loop(probs, labels, step, criterion):
    """The search `fit_member_weights` does, written as the plain loop over the grid it replaced."""
    members, units, best = probs.shape[0], round(1 / step), None
    for combo in itertools.product(range(units + 1), repeat=members - 1):
        if sum(combo) <= units:
            weights = torch.tensor([*combo, units - sum(combo)], dtype=torch.float64) / units
            mixed = torch.einsum("m,mnk->nk", weights, probs.double())
            accuracy = (mixed.argmax(-1) == labels).double().mean().item()
            nll = -torch.log(mixed[torch.arange(len(labels)), labels].clamp_min(1e-12)).mean().item()
            spread = float(((weights - 1 / members) ** 2).sum())
            key = (nll, spread) if criterion == "nll" else (-accuracy, nll, spread)
            if best is None or key < best[0]:
                best = (key, weights.tolist(), accuracy)
    return best[1], best[2]


@pytest.mark.parametrize("criterion", ["nll", "accuracy"])
def test_fit_member_weights_matches_a_plain_search_on_real_member_outputs(private_test_faces, criterion):
    """Three real members (the two released FER2013 single models, and the default on mirrored faces) on 64
    real PrivateTest faces: the vectorised search picks the weights and accuracy of the plain loop."""
    images, labels = private_test_faces
    members = []
    for name, flip in (("fer-vgg-distilled", False), ("fer-vgg-fer2013", False), ("fer-vgg-distilled", True)):
        model = AutoModelForImageClassification.from_pretrained(FER2013_MODEL_DIR.parent / name).eval()
        processor = AutoImageProcessor.from_pretrained(FER2013_MODEL_DIR.parent / name)
        pixel_values = processor.rescale_and_normalize(images.flip(-1) if flip else images)
        with torch.no_grad():
            members.append(model(pixel_values=pixel_values).logits.softmax(-1))
    probs = torch.stack(members)
    weights, accuracy = fit_member_weights(probs, labels, step=0.1, criterion=criterion)
    expected_weights, expected_accuracy = _fit_by_one_loop(probs, labels, 0.1, criterion)
    assert np.allclose(weights, expected_weights) and accuracy == expected_accuracy, (weights, expected_weights)
    assert len({round(w, 6) for w in weights}) > 1  # a real fit, not the uniform fallback


def test_fit_member_weights_refuses_a_grid_too_large_to_search(private_test_faces):
    _, labels = private_test_faces
    probs = torch.full((12, len(labels), 7), 1 / 7)
    with pytest.raises(ValueError, match="coarser step or fewer candidates"):
        fit_member_weights(probs, labels, step=0.01)


@pytest.mark.slow
def test_short_distillation_run_lowers_the_kl_to_the_teacher(tmp_path, private_test_faces):
    """A tiny student trained 6 short epochs (120 steps) on the released model's soft targets ends closer to it (KL on
    held-out PrivateTest faces) than the same student at initialisation."""
    out = tmp_path / "student"
    overrides = "hidden_sizes=[8,16],classifier_hidden_size=32"
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, str(REPO / "train_accelerate.py"), "--data_dir", str(FER2013_ZIP),
                             "--output_dir", str(out), "--max_train_samples", "640", "--max_eval_samples", "128",
                             "--num_train_epochs", "6", "--config_overrides", overrides, "--augmentation", "none",
                             "--teacher_model", str(FER2013_MODEL_DIR), "--distillation_alpha", "1.0",
                             "--distillation_temperature", "2", "--learning_rate", "0.003", "--lr_scheduler",
                             "constant", "--per_device_train_batch_size", "32", "--mixed_precision", "no"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert torch.load(out / "teacher_soft_targets.pt", weights_only=True).shape == (640, 7)
    results = json.loads((out / "eval_results.json").read_text())
    assert results["teacher"] == str(FER2013_MODEL_DIR)
    # the card names the teacher with what the teacher's own eval_results.json says about it
    released = json.loads((FER2013_MODEL_DIR / "eval_results.json").read_text())
    assert results["teacher_summary"]["test_accuracy"] == released["test"]["accuracy"]
    card = (out / "README.md").read_text()
    assert f"Teacher: `{FER2013_MODEL_DIR}` (`fer_vgg`; PublicTest {released['validation']['accuracy'] * 100:.2f}%, " \
        f"PrivateTest {released['test']['accuracy'] * 100:.2f}%, no TTA)" in card
    assert "1.0 x T^2 x KL(teacher || student) at temperature T = 2.0" in card
    images, _ = private_test_faces
    teacher = AutoModelForImageClassification.from_pretrained(FER2013_MODEL_DIR).eval()
    processor = AutoImageProcessor.from_pretrained(FER2013_MODEL_DIR)
    student = AutoModelForImageClassification.from_pretrained(out).eval()
    from fer_hf.models import build_model as build

    torch.manual_seed(42)
    initial = build("fer_vgg", overrides={"hidden_sizes": [8, 16], "classifier_hidden_size": 32}).eval()
    pixel_values = processor.rescale_and_normalize(images)

    def kl(model):
        with torch.no_grad():
            target = teacher(pixel_values=pixel_values).logits.softmax(-1)
            return torch.nn.functional.kl_div(model(pixel_values=pixel_values).logits.log_softmax(-1), target,
                                              reduction="batchmean").item()

    assert kl(student) < 0.85 * kl(initial), (kl(student), kl(initial))


@pytest.fixture(scope="module")
def surprised_model_dir(tmp_path_factory):
    """A saved copy of the default model whose classifier always says "surprise" (its bias +20): a member
    no weight fit would choose."""
    folder = tmp_path_factory.mktemp("models") / "surprised"
    surprised = AutoModelForImageClassification.from_pretrained(FER2013_MODEL_DIR)
    with torch.no_grad():
        surprised.classifier[-1].bias[FER2013_LABELS.index("surprise")] += 20.0
    surprised.save_pretrained(folder)
    AutoImageProcessor.from_pretrained(FER2013_MODEL_DIR).save_pretrained(folder)
    return folder


def test_build_ensemble_leaves_out_members_fitted_to_weight_zero(tmp_path, surprised_model_dir, monkeypatch):
    """`fer-hf ensemble` end to end on real PublicTest / PrivateTest faces (a fixed random 150 of each):
    the released model next to a copy whose classifier always says "surprise"; the fit on PublicTest gives the
    copy weight 0, so the written ensemble holds the released model alone and the card names the other.
    The folder held an earlier release with a ResNet member: its model code is gone, the new code is there."""
    import fer_hf.data
    from fer_hf.training.ensembling import build_ensemble

    decodes = []
    decode = fer_hf.data.dataset_to_uint8

    def counted(dataset, processor, desc="decode"):
        decodes.append(desc)
        return decode(dataset, processor, desc=desc)

    monkeypatch.setattr(fer_hf.data, "dataset_to_uint8", counted)
    (tmp_path / "ensemble").mkdir()
    (tmp_path / "ensemble" / "modeling_fer_resnet.py").write_text("# an earlier release's member code\n")
    results = build_ensemble([str(FER2013_MODEL_DIR), str(surprised_model_dir)], str(FER2013_ZIP),
                             tmp_path / "ensemble", max_eval_samples=150)
    assert [m["name"] for m in results["members"]] == [FER2013_MODEL_DIR.name]
    assert results["member_weights"] == [1.0]
    # each split decoded once: the members and the ensemble share the decoded faces
    assert decodes == ["decode validation", "decode test"], decodes
    assert [m["name"] for m in results["left_out_members"]] == ["surprised"]
    left_out = results["left_out_members"][0]
    assert left_out["weight"] == 0.0 and left_out["validation"]["accuracy"] < 0.3
    config = json.loads((tmp_path / "ensemble" / "config.json").read_text())
    assert len(config["members"]) == 1
    code = sorted(path.name for path in (tmp_path / "ensemble").glob("*.py"))
    assert code == ["configuration_fer_ensemble.py", "configuration_fer_vgg.py", "image_processing_fer.py",
                    "modeling_fer_ensemble.py", "modeling_fer_vgg.py"], code
    # the one-member ensemble predicts exactly what the member does
    assert results["test"]["accuracy"] == results["members"][0]["test"]["accuracy"]
    assert "left out because the fit on PublicTest gave them weight 0: `surprised`" in \
        (tmp_path / "ensemble" / "README.md").read_text()


def test_build_ensemble_on_sfew_with_fixed_weights(tmp_path, surprised_model_dir):
    """`fer-hf ensemble --dataset sfew --weights ...` on real SFEW faces (a fixed random 60 of the held-out
    Train movies and 60 of Val): the given weights are used as they are (no fit), the selection split is
    the held-out Train movies train_accelerate.py selects on (none of them in SFEW Val or in the rest of
    Train), and the card names SFEW's splits, not FER2013's."""
    from fer_hf.data import group_holdout, load_sfew
    from fer_hf.training.ensembling import build_ensemble, ensemble_splits

    splits = ensemble_splits("sfew", DATA / "sfew")
    corpus = load_sfew(DATA / "sfew")
    rest, held_out = group_holdout(corpus["train"], "movie", 0.1, 42)
    assert splits["validation"]["image_id"] == held_out["image_id"] and len(held_out) == 100
    assert not set(held_out["movie"]) & (set(rest["movie"]) | set(corpus["validation"]["movie"]))
    assert splits["test"]["image_id"] == corpus["validation"]["image_id"]

    # the always-surprised copy gets weight 3 of 4: a fit would never choose that, fixed weights must keep it
    results = build_ensemble([str(FER2013_MODEL_DIR), str(surprised_model_dir)], str(DATA / "sfew"),
                             tmp_path / "ensemble", dataset="sfew", weights=[1, 3], max_eval_samples=60,
                             weights_dtype="float16", member_names=["released", "always-surprise"])
    assert [m["name"] for m in results["members"]] == ["released", "always-surprise"]
    assert results["weights_fitted"] is False and results["member_weights"] == [0.25, 0.75]
    assert results["dataset"] == "sfew" and results["split_sizes"] == {"validation": 60, "test": 60}
    assert results["left_out_members"] == []
    surprise_share = results["test"]["per_class"]["surprise"]["support"] / 60
    # the mixture says surprise almost everywhere, unlike the default model alone
    assert results["test"]["accuracy"] <= surprise_share + 0.05 < results["members"][0]["test"]["accuracy"]
    card = (tmp_path / "ensemble" / "README.md").read_text()
    assert "**SFEW Val** was evaluated once" in card and "held-out SFEW Train movies" in card
    assert "given on the command line, not fitted" in card and "PrivateTest" not in card
    assert "| `always-surprise` | `fer_vgg` | 0.75 |" in card
    # float16 storage: half the size, loads as float32, and the reported numbers are those of the stored weights
    from safetensors import safe_open

    from fer_hf.data import dataset_to_uint8
    from fer_hf.training.ensembling import predict_probabilities
    from fer_hf.evaluation.report import random_subset

    with safe_open(str(tmp_path / "ensemble" / "model.safetensors"), "pt") as stored:
        assert {stored.get_slice(k).get_dtype() for k in stored.keys()} <= {"F16", "I64"}
    reloaded = AutoModelForImageClassification.from_pretrained(tmp_path / "ensemble")
    assert reloaded.dtype == torch.float32
    from fer_hf.training.ensembling import (safetensors_megabytes)  # measures the float16 file exactly, from the model

    assert safetensors_megabytes(reloaded, "float16") * 1e6 == (tmp_path / "ensemble" / "model.safetensors").stat().st_size
    assert safetensors_megabytes(reloaded, "float32") > 1.9 * safetensors_megabytes(reloaded, "float16")
    processor = AutoImageProcessor.from_pretrained(tmp_path / "ensemble")
    images, labels = dataset_to_uint8(random_subset(splits["test"], 60, seed=0), processor)
    predictions = predict_probabilities(reloaded, processor, images).argmax(-1)
    assert (predictions == labels).double().mean().item() == results["test"]["accuracy"]
    assert "stored in float16" in card
    with pytest.raises(ValueError, match="one per member"):
        build_ensemble([str(FER2013_MODEL_DIR)], str(DATA / "sfew"), tmp_path / "bad", dataset="sfew",
                       weights=[0.5, 0.5])
    with pytest.raises(ValueError, match="cross-validation only"):
        ensemble_splits("ckplus", DATA / "ckplus")


def test_build_ensemble_takes_a_released_ensembles_members_as_candidates(tmp_path, private_test_faces,
                                                                       surprised_model_dir):
    """`fer-hf ensemble --members model_cards/fer-ensemble other-model`: the released ensemble's four members
    become four candidates of their own (their names and processors kept), beside the new one; with the
    released weights (and 0 for the new candidate) the rebuilt ensemble predicts what the release predicts
    on real PrivateTest faces (a fixed random 100), and each member alone is the release's member output."""
    from fer_hf.data import dataset_to_uint8
    from fer_hf.training.ensembling import build_ensemble, ensemble_splits, predict_probabilities
    from fer_hf.evaluation.report import random_subset

    released_dir = REPO / "model_cards" / "fer-ensemble"
    released = AutoModelForImageClassification.from_pretrained(released_dir).eval()
    released_names = [member["name"] for member in released.config.members]
    released_weights = list(released.config.member_weights)
    # member_models: standalone copies that give the release's member outputs on their own processors' inputs
    images, _ = private_test_faces
    faces = [Image.fromarray(face[0].numpy()) for face in images[:16]]
    ensemble_processor = AutoImageProcessor.from_pretrained(released_dir)
    with torch.no_grad():
        member_logits = released(**ensemble_processor(faces, return_tensors="pt"),
                                 output_member_logits=True).member_logits
        rows = released.member_models()
        assert [name for name, _, _ in rows] == released_names
        for index, (name, member, processor) in enumerate(rows):
            assert member is not released.members[index] and not member.training
            alone = member(**processor(faces, return_tensors="pt")).logits
            assert torch.allclose(alone, member_logits[:, index], atol=1e-4), name

    results = build_ensemble([str(released_dir), str(surprised_model_dir)], str(FER2013_ZIP),
                             tmp_path / "rebuilt", weights=released_weights + [0.0], max_eval_samples=100)
    assert [m["name"] for m in results["members"]] == released_names
    assert [m["name"] for m in results["left_out_members"]] == ["surprised"]
    assert results["member_weights"] == pytest.approx(released_weights)
    test = random_subset(ensemble_splits("fer2013", FER2013_ZIP)["test"], 100, seed=0)
    test_images, test_labels = dataset_to_uint8(test, ensemble_processor)
    predictions = predict_probabilities(released, ensemble_processor, test_images).argmax(-1)
    assert results["test"]["accuracy"] == (predictions == test_labels).double().mean().item()
    with pytest.raises(ValueError, match="5 numbers"):  # 4 members of the ensemble + 1 model
        build_ensemble([str(released_dir), str(surprised_model_dir)], str(FER2013_ZIP), tmp_path / "bad",
                       weights=[1, 1], max_eval_samples=20)


def test_build_ensemble_size_rule_drops_the_smallest_weight_member_and_refits(tmp_path, surprised_model_dir):
    """`fer-hf ensemble --max_megabytes`: on real PublicTest / PrivateTest faces (a fixed random 150 of each)
    the default model and the first release share the weight and the always-surprised copy gets 0. With a
    limit that two members' file exceeds and one member's meets, the member with the smaller weight
    is dropped, the weights are fitted again (the other member alone: weight 1), the written file is within
    the limit and measures what `safetensors_megabytes` said, and the card and results give both reasons a
    candidate was left out. Fixed weights over the limit are not refitted: they raise."""
    from fer_hf.training.ensembling import build_ensemble, safetensors_megabytes

    first_release = REPO / "model_cards" / "fer-vgg-fer2013"
    members = [str(FER2013_MODEL_DIR), str(first_release), str(surprised_model_dir)]
    free = build_ensemble(members, str(FER2013_ZIP), tmp_path / "free", max_eval_samples=150)
    weights = {m["name"]: m["weight"] for m in free["members"]}
    assert set(weights) == {FER2013_MODEL_DIR.name, "fer-vgg-fer2013"}, free["member_weights"]
    free_megabytes = (tmp_path / "free" / "model.safetensors").stat().st_size / 1e6
    limit = round(0.75 * free_megabytes, 1)
    smaller, larger = sorted(weights, key=weights.get)

    results = build_ensemble(members, str(FER2013_ZIP), tmp_path / "sized", max_eval_samples=150,
                             max_megabytes=limit)
    assert [m["name"] for m in results["members"]] == [larger] and results["member_weights"] == [1.0]
    assert results["dropped_for_size"] == [{"name": smaller, "weight": weights[smaller],
                                            "ensemble_megabytes": round(free_megabytes, 3)}]
    because = {m["name"]: m["left_out_because"] for m in results["left_out_members"]}
    assert because == {smaller: "size", "surprised": "weight 0"}
    stored = tmp_path / "sized" / "model.safetensors"
    assert stored.stat().st_size / 1e6 <= limit
    reloaded = AutoModelForImageClassification.from_pretrained(tmp_path / "sized")
    assert safetensors_megabytes(reloaded) * 1e6 == stored.stat().st_size
    # the one-member ensemble (float32, as the member was evaluated) predicts what that member does on its own
    assert results["test"]["accuracy"] == results["members"][0]["test"]["accuracy"]
    card = (tmp_path / "sized" / "README.md").read_text()
    assert f"Left out by the size rule (`--max_megabytes {limit:g}`" in card and f"`{smaller}` (weight" in card
    assert "weight 0: `surprised`" in card

    with pytest.raises(ValueError, match="not refitted"):
        build_ensemble(members[:2], str(FER2013_ZIP), tmp_path / "fixed", max_eval_samples=20,
                       weights=[1, 1], max_megabytes=limit)
