"""The real-photo pieces on real data: identity-disjoint splits of muxspace and tfeid, the class- and
corpus-balanced mixing sampler, colour input for a colour model, the one framing shared by training and the
recognizer, ImageNet initialisation of fer_mobilenet, the real-photo augmentation, and a short multi-corpus
fine-tuning run."""

import io
import json
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from fer_hf.data.muxspace import load_muxspace, muxspace_identity
from fer_hf.data.protocols import identity_disjoint_splits
from fer_hf.data.tfeid import load_tfeid
from fer_hf.detection.detectors import build_detector
from fer_hf.detection.geometry import CROP_ADJUSTMENTS, adjust_box, face_crop, square_crop_box
from fer_hf.image_processing_fer import FerImageProcessor
from fer_hf.models import build_model
from fer_hf.training.backbones import load_backbone_weights
from fer_hf.training.framing import context_crop, recognizer_frame
from fer_hf.evaluation.metrics import split_report
from fer_hf.training.multicorpus import (IMAGENET_MEAN, IMAGENET_STD, MixingSampler, model_input,
                                         training_targets)
from fer_hf.training.real_photo_augmentation import RealPhotoAugmentation, augment_batch, centre_frame

from conftest import CKPLUS, DATA, FER2013_ZIP, REPO, SAMPLES

IMAGENET_WEIGHTS = DATA.parent / "weights" / "mobilenet_v2-b0353104.pth"


@pytest.fixture(scope="module")
def muxspace():
    return load_muxspace(DATA / "muxspace", validate_images=False)


@pytest.fixture(scope="module")
def tfeid():
    return load_tfeid(DATA / "tfeid")


def test_identity_disjoint_splits_never_share_a_person(muxspace, tfeid):
    for dataset, column in ((muxspace, "identity"), (tfeid, "performer")):
        people = {split: set(dataset[split][column]) for split in dataset}
        assert people["train"] and people["validation"] and people["test"]
        assert not (people["train"] & people["validation"]) and not (people["train"] & people["test"])
        assert not (people["validation"] & people["test"])
        total = sum(len(dataset[s]) for s in dataset)
        assert abs(len(dataset["train"]) / total - 0.70) < 0.05
        assert abs(len(dataset["validation"]) / total - 0.15) < 0.05
    # the class-aware assignment spreads muxspace's rare classes (a few film actors hold most of them)
    for label in (0, 4, 5):  # angry, sad, surprise
        in_validation = sum(1 for v in muxspace["validation"]["label"] if v == label)
        assert in_validation >= 25
    # stable: the same names give the same assignment, whatever their order
    names = list(muxspace["train"]["identity"]) + list(muxspace["test"]["identity"])
    assert identity_disjoint_splits(names) == identity_disjoint_splits(list(reversed(names)))
    assert muxspace_identity("George_W_Bush_0001.jpg") == ("George_W_Bush", "lfw")
    assert muxspace_identity("Avinash_12.jpg") == ("Avinash", "film")


def test_mixing_sampler_draws_corpora_and_classes_in_the_configured_proportions(tfeid):
    from fer_hf.data import load_ckplus

    labels = {"tfeid": np.asarray(tfeid["train"]["label"]),
              "ckplus": np.asarray(load_ckplus(CKPLUS, label_set="fer2013")["train"]["label"])}
    sampler = MixingSampler(labels, {"tfeid": 2.0, "ckplus": 1.0}, 7, class_power=0.0, corpus_power=0.5, seed=1)
    corpus_shares, class_shares = sampler.expected_shares()
    pairs = sampler.draw(20000)
    drawn_corpus = {c: sum(1 for k, _ in pairs if k == c) / len(pairs) for c in labels}
    drawn_class = np.bincount([labels[c][i] for c, i in pairs], minlength=7) / len(pairs)
    for corpus in labels:
        assert abs(drawn_corpus[corpus] - corpus_shares[corpus]) < 0.015
    assert np.allclose(list(class_shares.values()), 1 / 7)  # class_power 0: every class equally often
    assert np.abs(drawn_class - 1 / 7).max() < 0.015
    # neutral exists only in tfeid, so every neutral draw comes from it; each drawn image has the drawn class
    assert all(labels[c][i] == labels[c][i] for c, i in pairs[:100])
    neutral = [c for c, i in pairs if labels[c][i] == 6]
    assert neutral and set(neutral) == {"tfeid"}
    # weight 2 vs 1 with corpus_power 0.5: within happy, tfeid's share is 2 sqrt(n_t) / (2 sqrt(n_t) + sqrt(n_c))
    happy = [c for c, i in pairs if labels[c][i] == 3]
    n_t, n_c = (labels["tfeid"] == 3).sum(), (labels["ckplus"] == 3).sum()
    expected = 2 * np.sqrt(n_t) / (2 * np.sqrt(n_t) + np.sqrt(n_c))
    assert abs(happy.count("tfeid") / len(happy) - expected) < 0.03


def test_processor_gives_a_colour_model_three_equal_channels_for_a_gray_face(tfeid):
    processor = FerImageProcessor(num_channels=3, do_grayscale=False, size={"height": 96, "width": 96},
                                  image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD)
    with zipfile.ZipFile(FER2013_ZIP) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".jpg"))
        gray = Image.open(io.BytesIO(archive.read(name)))
    assert gray.mode == "L"
    pixels = processor(gray, return_tensors="pt")["pixel_values"][0]
    assert pixels.shape == (3, 96, 96)
    raw = pixels * torch.tensor(IMAGENET_STD).view(3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    assert torch.allclose(raw[0], raw[1], atol=1e-5) and torch.allclose(raw[1], raw[2], atol=1e-5)
    colour = processor(tfeid["train"][0]["image"], return_tensors="pt")["pixel_values"][0]
    raw = colour * torch.tensor(IMAGENET_STD).view(3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    assert (raw[0] - raw[2]).abs().mean() > 0.02  # a colour face keeps its colour


def test_training_framing_is_the_recognizers_crop_on_a_real_photo():
    photo = Image.open(SAMPLES / "surprised.jpeg").convert("RGB")
    detector = build_detector("mtcnn", min_face_size=20)
    boxes, scores = detector.detect(photo)
    box = np.asarray(boxes, np.float32).reshape(-1, 4)[int(np.argmax(scores))]
    adjustment = CROP_ADJUSTMENTS["mtcnn"]
    frame = recognizer_frame(box, 0.2, adjustment)
    assert frame == square_crop_box(adjust_box(box, adjustment), 0.2)
    size = 112
    # the recognizer's crop through the model's processor
    processor = FerImageProcessor(num_channels=3, do_grayscale=False, size={"height": size, "width": size},
                                  image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD)
    inference = processor(face_crop(photo, box, 0.2, adjustment), return_tensors="pt")["pixel_values"]
    # training's cached context crop, framed at scale 1 (evaluation) and by augment_batch with no randomness
    context = torch.from_numpy(context_crop(photo, frame, 160)).permute(2, 0, 1)[None]
    evaluation = model_input(centre_frame(context.float() / 255, size), processor)
    identity = RealPhotoAugmentation(scale=(1.0, 1.0), aspect=(1.0, 1.0), offset=0.0, rotation=0.0, flip=0.0,
                                     brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0, grayscale=0.0,
                                     blur=0.0, downscale=0.0, jpeg=0.0, erasing=0.0)
    training = model_input(augment_batch(context, size, identity, torch.Generator().manual_seed(0)), processor)
    # same face, same framing: only resampling differs (a shifted or rescaled frame differs far more)
    assert (inference - evaluation).abs().mean() < 0.05
    assert (inference - training).abs().mean() < 0.08
    shifted = processor(photo.crop((frame[0] + 15, frame[1], frame[2] + 15, frame[3])), return_tensors="pt")
    assert (inference - shifted["pixel_values"]).abs().mean() > 2 * (inference - evaluation).abs().mean()
    # a gray 48 px model (a FER2013 VGG fine-tuned on the mix) is fed the same frame in gray, as its processor does
    gray = FerImageProcessor(num_channels=1, size={"height": 48, "width": 48})
    gray_inference = gray(face_crop(photo, box, 0.2, adjustment), return_tensors="pt")["pixel_values"]
    gray_training = model_input(augment_batch(context, 48, identity, torch.Generator().manual_seed(0)), gray)
    assert gray_training.shape == gray_inference.shape == (1, 1, 48, 48)
    assert (gray_inference - gray_training).abs().mean() < 0.08


def test_imagenet_weights_change_the_backbone_and_a_wrong_file_is_refused(tmp_path):
    model = build_model("fer_mobilenet", overrides={"image_size": 96})
    before = model.fer_mobilenet.features[0][0].weight.detach().clone()
    head = model.classifier[1].weight.detach().clone()
    report = load_backbone_weights(model, str(IMAGENET_WEIGHTS))
    state = torch.load(IMAGENET_WEIGHTS, weights_only=True)
    after = model.fer_mobilenet.features[0][0].weight
    assert not torch.equal(before, after) and torch.equal(after, state["features.0.0.weight"])
    assert torch.equal(model.classifier[1].weight, head)  # the ImageNet classifier is skipped
    assert not report["missing"] and not report["mismatched"] and report["skipped"]
    assert model.config.backbone_weights == str(IMAGENET_WEIGHTS)
    wrong = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, wrong)
    with pytest.raises(ValueError, match="no tensor"):
        load_backbone_weights(build_model("fer_mobilenet"), str(wrong))
    with pytest.raises(FileNotFoundError):
        load_backbone_weights(build_model("fer_mobilenet"), str(tmp_path / "missing.pth"))


def test_augmentation_flips_frames_and_keeps_gray_faces_gray(tfeid):
    faces = [np.asarray(tfeid["train"][i]["image"].convert("RGB").resize((128, 128))) for i in range(8)]
    context = torch.from_numpy(np.stack(faces)).permute(0, 3, 1, 2)
    still = dict(scale=(1.0, 1.0), aspect=(1.0, 1.0), offset=0.0, rotation=0.0, brightness=0.0, contrast=0.0,
                 saturation=0.0, hue=0.0, grayscale=0.0, blur=0.0, downscale=0.0, jpeg=0.0, erasing=0.0)
    plain = augment_batch(context, 64, RealPhotoAugmentation(flip=0.0, **still), torch.Generator().manual_seed(0))
    flipped = augment_batch(context, 64, RealPhotoAugmentation(flip=1.0, **still), torch.Generator().manual_seed(0))
    assert torch.allclose(plain.flip(-1), flipped, atol=1e-4)
    gray = augment_batch(context, 64, RealPhotoAugmentation(), torch.Generator().manual_seed(0),
                         is_gray=torch.ones(8, dtype=torch.bool))
    assert torch.allclose(gray[:, 0], gray[:, 1], atol=1e-5) and torch.allclose(gray[:, 1], gray[:, 2], atol=1e-5)
    full = augment_batch(context, 64, RealPhotoAugmentation(), torch.Generator().manual_seed(3))
    again = augment_batch(context, 64, RealPhotoAugmentation(), torch.Generator().manual_seed(3))
    assert full.shape == (8, 3, 64, 64) and 0 <= float(full.min()) and float(full.max()) <= 1
    assert torch.equal(full, again)  # one generator reproduces a batch
    assert (full - plain).abs().mean() > 0.02


def test_split_report_shows_answer_shares_and_rare_classes():
    labels = np.array([0] * 30 + [3] * 30 + [5] * 3)
    logits = np.zeros((63, 7))
    logits[:, 0] = 1  # answers angry for everything
    report = split_report(labels, logits, 7, min_class_faces=25)
    assert report["answer_share"]["angry"] == 1.0 and report["balanced_over"] == ["angry", "happy"]
    assert report["balanced_accuracy"] == 0.5 and report["recall"]["surprise"] == 0.0


def _train(argv, cwd):
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    return subprocess.run([sys.executable, str(REPO / "train_accelerate.py"), *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=1800)


def test_short_multicorpus_fine_tuning_run_lowers_the_loss(tmp_path):
    """`train_accelerate.py --corpus_mix` on real tfeid + CK+ faces (whole-image frames: no detector, to stay
    fast), stopped after 2 of 4 epochs and resumed, as a long run is chunked."""
    from transformers import AutoModelForImageClassification, pipeline

    out = tmp_path / "run"
    argv = ["--corpus_mix", "tfeid=1,ckplus=1", "--selection_splits", "tfeid/validation", "--report_splits",
            "--face_detector", "none", "--face_cache_dir", str(tmp_path / "cache"), "--shared_data_dir", str(DATA),
            "--model_type", "fer_mobilenet", "--config_overrides", "image_size=64",
            "--backbone_weights", str(IMAGENET_WEIGHTS), "--learning_rate", "1e-3", "--warmup_ratio", "0.3",
            "--samples_per_epoch", "384", "--per_device_train_batch_size", "32", "--num_train_epochs", "4",
            "--freeze_epochs", "1", "--sample_by", "target", "--output_dir", str(out), "--num_threads", "2"]
    stopped = _train(argv + ["--stop_after_epochs", "2"], tmp_path)
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    assert not (out / "train_result.json").exists()
    first = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in first] == [1, 2] and first[0]["frozen_blocks"] == 7 and first[1]["frozen_blocks"] == 0
    # resumed from the newest checkpoint: epochs 3 and 4 follow, the first two are kept as they were
    resumed = _train(argv + ["--resume_from_checkpoint", "latest"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    history = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4] and history[:2] == first
    assert history[-1]["train_loss"] < history[0]["train_loss"] - 0.05
    result = json.loads((out / "train_result.json").read_text())
    assert result["best"]["epoch"] in (1, 2, 3, 4) and not result["stopped_early"]
    settings = json.loads((out / "mix_settings.json").read_text())
    assert settings["train_faces"]["ckplus"] > 900 and "tfeid/validation" in settings["selection_splits"]
    model = AutoModelForImageClassification.from_pretrained(out / "best")
    assert model.config.model_type == "fer_mobilenet" and model.config.backbone_weights == str(IMAGENET_WEIGHTS)
    answers = pipeline("image-classification", model=str(out / "best"))(
        Image.open(SAMPLES / "happy-baby.jpeg").convert("RGB"), top_k=7)  # every class: a short run is unsure
    assert len(answers) == 7 and abs(sum(a["score"] for a in answers) - 1) < 1e-4
    other = _train([a if a != "4" else "6" for a in argv] + ["--resume_from_checkpoint", "latest"], tmp_path)
    assert other.returncode != 0 and "same --num_train_epochs" in other.stderr  # another schedule cannot continue


def test_original_label_weight_puts_mass_on_fer2013s_own_label():
    """FER2013 faces whose FER+ votes disagree with FER2013's label: with --original_label_weight w the target
    is (1 - w) * votes + w * one-hot(label); faces without votes (one-hot) are unchanged."""
    from fer_hf.labels import FER2013_LABELS
    from fer_hf.training.face_cache import ferplus_distributions

    votes = ferplus_distributions(DATA)
    rows = [(v, FER2013_LABELS.index(path.split("/")[1])) for path, v in votes.items()
            if path.startswith("test/") and int(np.argmax(v)) != FER2013_LABELS.index(path.split("/")[1])][:64]
    assert len(rows) == 64  # FER+ relabelled many PrivateTest faces
    soft = np.stack([v for v, _ in rows])
    labels = np.array([k for _, k in rows])
    plain = training_targets(soft, labels, 7)
    half = training_targets(soft, labels, 7, original_label_weight=0.5, smoothing=0.1)
    full = training_targets(soft, labels, 7, original_label_weight=1.0)
    index = np.arange(64)
    assert torch.allclose(plain, torch.from_numpy(soft / soft.sum(1, keepdims=True)))
    assert torch.equal(full.argmax(1), torch.from_numpy(labels)) and torch.allclose(full.sum(1), torch.ones(64))
    expected = (0.5 * plain[index, labels] + 0.5) * 0.9 + 0.1 / 7
    assert torch.allclose(half[index, labels], expected) and torch.allclose(half.sum(1), torch.ones(64))
    one_hot = np.eye(7, dtype=np.float32)[labels]
    assert torch.allclose(training_targets(one_hot, labels, 7, original_label_weight=0.5), torch.from_numpy(one_hot))


def test_multicorpus_run_can_start_from_a_released_model(tmp_path):
    """--model_name_or_path fine-tunes a trained model (here the released fer-mobilenet-real) instead of a fresh
    one, with bf16 autocast: after one short epoch at a tiny learning rate it still reads tfeid validation
    performers like the released model, far above a fresh ImageNet start given the same epoch; combining it with
    --backbone_weights is refused."""
    released = REPO / "model_cards" / "fer-mobilenet-real"
    common = ["--corpus_mix", "tfeid=1", "--selection_splits", "tfeid/validation", "--report_splits",
              "--face_detector", "none", "--face_cache_dir", str(tmp_path / "cache"), "--shared_data_dir", str(DATA),
              "--learning_rate", "1e-6", "--warmup_ratio", "0.5", "--samples_per_epoch", "256", "--per_device_train_batch_size", "32",
              "--num_train_epochs", "1", "--freeze_epochs", "0", "--num_threads", "2", "--mixed_precision", "bf16"]
    warm = _train(common + ["--model_name_or_path", str(released), "--output_dir", str(tmp_path / "warm"),
                            "--face_cache_size", "176"], tmp_path)
    assert warm.returncode == 0, warm.stderr[-3000:]
    # --face_cache_size: a larger cache (110 px faces for a 112 px model) is built beside the default one
    assert sorted(p.name for p in (tmp_path / "cache").glob("tfeid-*176px*.npz")) and \
        not list((tmp_path / "cache").glob("tfeid-*128px*.npz"))
    fresh = _train(common + ["--model_type", "fer_mobilenet", "--config_preset", "fer-mobilenet-v2-112",
                             "--backbone_weights", str(IMAGENET_WEIGHTS), "--output_dir", str(tmp_path / "fresh")],
                   tmp_path)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    score = {name: json.loads((tmp_path / name / "train_log.jsonl").read_text().splitlines()[0])["selection_score"]
             for name in ("warm", "fresh")}
    assert score["warm"] > 0.5 and score["warm"] > score["fresh"] + 0.2, score
    settings = json.loads((tmp_path / "warm" / "mix_settings.json").read_text())
    assert settings["model_name_or_path"] == str(released) and settings["mixed_precision"] == "bf16"
    assert settings["face_cache_size"] == 176
    both = _train(common + ["--model_name_or_path", str(released), "--backbone_weights", str(IMAGENET_WEIGHTS),
                            "--output_dir", str(tmp_path / "both")], tmp_path)
    assert both.returncode != 0 and "give one of them" in both.stderr


@pytest.mark.parametrize("name, floor", [("fer-mobilenet-real-2", 0.6), ("fer-vgg-44-distilled-ft", 0.45)])
def test_recognizer_selection_crops_score_the_split_as_fer_hf_evaluate_does(tmp_path, name, floor):
    """--selection_crops recognizer: the development report written after an epoch is the one `fer-hf evaluate`
    gives the saved model on the same split (tfeid validation performers, photos cropped by the recognizer's
    MTCNN detection and eye alignment), and it reads them as the released model it started from does: a colour
    ImageNet MobileNet and a gray 48 px FER2013 VGG, each trained and saved with its own processor."""
    from fer_hf.evaluation.report import evaluate_model

    released = REPO / "model_cards" / name
    out = tmp_path / "run"
    argv = ["--corpus_mix", "tfeid=1", "--selection_splits", "tfeid/validation", "--report_splits",
            "--selection_crops", "recognizer", "--face_detector", "none", "--face_cache_dir", str(tmp_path / "cache"),
            "--shared_data_dir", str(DATA), "--model_name_or_path", str(released), "--learning_rate", "1e-6",
            "--samples_per_epoch", "64", "--per_device_train_batch_size", "32", "--num_train_epochs", "1",
            "--freeze_epochs", "0", "--num_threads", "2", "--output_dir", str(out)]
    run = _train(argv, tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    logged = json.loads((out / "train_log.jsonl").read_text().splitlines()[0])["splits"]["tfeid/validation"]
    assert json.loads((out / "mix_settings.json").read_text())["selection_crops"] == "recognizer"
    evaluated = evaluate_model(out / "best", "tfeid", DATA / "tfeid", split="validation", calibration_split="none")
    assert logged["faces"] == evaluated["num_images"] == 187
    assert logged["accuracy"] == pytest.approx(evaluated["accuracy"], abs=1e-9)
    assert logged["balanced_accuracy"] == pytest.approx(evaluated["balanced_accuracy"], abs=1e-9)
    assert logged["balanced_accuracy"] > floor  # as the released model reads these performers (72% / 54% balanced)
    assert logged["balanced_accuracy"] == pytest.approx(
        evaluate_model(released, "tfeid", DATA / "tfeid", split="validation", calibration_split="none")
        ["balanced_accuracy"], abs=0.03)
    saved = json.loads((out / "best" / "preprocessor_config.json").read_text())
    original = json.loads((released / "preprocessor_config.json").read_text())
    assert {k: saved[k] for k in ("num_channels", "size", "image_mean", "image_std")} == \
        {k: original[k] for k in ("num_channels", "size", "image_mean", "image_std")}


def test_released_colour_ensemble_feeds_each_member_as_its_own_processor_does(tfeid):
    """fer-ensemble-real takes one 112 px colour face: its colour MobileNet member gets that face, its gray 48 px
    VGG member the luma of it resized. On real tfeid validation faces the ensemble's answers are those of the
    members' probabilities averaged (then shifted by the release's logit adjustment) with each member fed by its
    own saved processor (as trained): the MobileNet
    gets exactly its own input, the VGG one close to what its processor makes of the face."""
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    folder = REPO / "model_cards" / "fer-ensemble-real"
    ensemble = AutoModelForImageClassification.from_pretrained(folder).eval()
    processor = AutoImageProcessor.from_pretrained(folder)
    assert processor.num_channels == ensemble.config.num_channels == 3 and not processor.do_grayscale
    faces = [tfeid["validation"][i]["image"].convert("RGB") for i in range(0, len(tfeid["validation"]), 4)]
    pixel_values = processor(faces, return_tensors="pt")["pixel_values"]
    (_, first, first_processor), (_, second, second_processor) = ensemble.member_models()
    assert (first.config.num_channels, second.config.num_channels) == (3, 1)
    with torch.no_grad():
        own = [first_processor(faces, return_tensors="pt")["pixel_values"],
               second_processor(faces, return_tensors="pt")["pixel_values"]]
        inside = ensemble.member_inputs(pixel_values)
        torch.testing.assert_close(inside[0], own[0], atol=1e-5, rtol=0)  # the colour member: its own input
        assert inside[1].shape == own[1].shape == (len(faces), 1, 48, 48)
        assert (inside[1] - own[1]).abs().mean() < 0.05  # the gray member: only the resampling path differs
        alone = [m(pixel_values=x).logits.softmax(-1) for m, x in zip((first, second), own)]
        within = [m(pixel_values=x).logits.softmax(-1) for m, x in zip((first, second), inside)]
        averaged = sum(w * p for w, p in zip(ensemble.config.member_weights, alone))
        # the released ensemble shifts the log of that average by its logit adjustment (its card, Prior correction)
        bias = torch.tensor(ensemble.config.logit_adjustment or [0.0] * ensemble.config.num_labels)
        averaged = (averaged.log() + bias).softmax(-1)
        probabilities = ensemble(pixel_values=pixel_values).logits.softmax(-1)
    assert len(faces) >= 40
    for a, b in zip(alone, within):  # each member answers as it does fed by its own processor
        assert (a.argmax(-1) == b.argmax(-1)).float().mean() >= 0.95
    assert (probabilities - averaged).abs().max(-1).values.mean() < 0.03
    assert (probabilities.argmax(-1) == averaged.argmax(-1)).float().mean() >= 0.85  # close calls may flip


def test_distillation_teacher_reads_the_students_faces_as_its_own_processor_does(tfeid, tmp_path):
    """Online distillation in multi-corpus training: the teacher gets each augmented 112 px training face
    resized and normalized as its own saved processor would (a colour ensemble exactly, a gray 48 px VGG up to
    the resampling path), on real tfeid validation faces; a folder that holds no model is refused clearly."""
    from transformers import AutoImageProcessor

    from fer_hf.training.multicorpus import load_teacher, teacher_probabilities

    faces = [tfeid["validation"][i]["image"].convert("RGB").resize((112, 112), Image.BILINEAR)
             for i in range(0, len(tfeid["validation"]), 4)]
    batch = torch.from_numpy(np.stack([np.asarray(f) for f in faces])).permute(0, 3, 1, 2).float() / 255.0
    for name, exact in (("fer-ensemble-real", True), ("fer-vgg-44-distilled-ft", False)):
        folder = REPO / "model_cards" / name
        teacher, processor = load_teacher(folder)
        assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
        with torch.no_grad():
            own = teacher(**AutoImageProcessor.from_pretrained(folder)(faces, return_tensors="pt")).logits.softmax(-1)
        online = teacher_probabilities(teacher, processor, batch, temperature=1.0)
        assert online.shape == (len(faces), 7) and torch.allclose(online.sum(-1), torch.ones(len(faces)))
        if exact:
            torch.testing.assert_close(online, own, atol=1e-4, rtol=0)
        else:
            assert (online.argmax(-1) == own.argmax(-1)).float().mean() >= 0.9
            assert (online - own).abs().max(-1).values.mean() < 0.05
        softened = teacher_probabilities(teacher, processor, batch, temperature=4.0)
        assert (softened.max(-1).values < online.max(-1).values).all()  # a higher temperature softens every face
    with pytest.raises(ValueError, match="--teacher_model"):
        load_teacher(tmp_path)


def test_short_multicorpus_distillation_run_from_the_released_ensemble(tmp_path):
    """`train_accelerate.py --corpus_mix tfeid=1 --teacher_model fer-ensemble-real --distillation_alpha 1`: a
    64 px colour student learns only from the ensemble's softened answers on its augmented faces (real tfeid
    faces), the distillation loss falls, and the run records its teacher."""
    out = tmp_path / "run"
    teacher = REPO / "model_cards" / "fer-ensemble-real"
    argv = ["--corpus_mix", "tfeid=1", "--selection_splits", "tfeid/validation", "--report_splits",
            "--face_detector", "none", "--face_cache_dir", str(tmp_path / "cache"), "--shared_data_dir", str(DATA),
            "--model_type", "fer_mobilenet", "--config_overrides", "image_size=64",
            "--backbone_weights", str(IMAGENET_WEIGHTS), "--learning_rate", "2e-3", "--warmup_ratio", "0.2",
            "--samples_per_epoch", "320", "--per_device_train_batch_size", "32", "--num_train_epochs", "3",
            "--freeze_epochs", "0", "--teacher_model", str(teacher), "--distillation_alpha", "1.0",
            "--distillation_temperature", "2.0", "--output_dir", str(out), "--num_threads", "2"]
    run = _train(argv, tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    history = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert len(history) == 3 and history[-1]["train_loss"] < history[0]["train_loss"] - 0.05, history
    settings = json.loads((out / "mix_settings.json").read_text())
    assert settings["teacher_model"] == str(teacher)
    assert (settings["distillation_alpha"], settings["distillation_temperature"]) == (1.0, 2.0)
    refused = _train([a if a != str(teacher) else str(tmp_path) for a in argv[:-4]] +
                     ["--output_dir", str(tmp_path / "refused"), "--num_threads", "2"], tmp_path)
    assert refused.returncode != 0 and "--teacher_model" in refused.stderr
