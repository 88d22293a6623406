"""Prior correction for a domain whose class balance the model misjudges (e.g. answering ``angry`` for half of
the faces in real photos): per-class additive logit biases, fitted on labelled development faces only.

The biases minimise the class-balanced cross-entropy (the mean over classes of each class's mean
cross-entropy) of ``logits + bias`` on the development faces; with only 7 free numbers the problem is convex
and cannot memorise faces. This is post-hoc logit adjustment (Menon et al., "Long-tail learning via logit
adjustment", ICLR 2021) with the adjustment learned from development data instead of set from training
priors. `training_target_prior` gives the other form, the paper's own: ``-log(pi)`` with ``pi`` the class mass of
the targets a multi-corpus run trained on, computed from its recorded settings and fitted on no faces at all.
The biases travel in the model's config (``logit_adjustment``) and are added in ``forward``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..evaluation.metrics import balanced_accuracy


def fit_logit_adjustment(logits: np.ndarray, labels: np.ndarray, num_labels: int, min_class_faces: int = 1,
                         weight_decay: float = 1e-3) -> np.ndarray:
    """Per-class biases (float32 (num_labels,), mean 0) that minimise the class-balanced cross-entropy of
    ``logits + bias`` over the classes with at least ``min_class_faces`` faces (other classes keep bias 0
    relative to the mean).

    Args:
        logits: float (N, num_labels), the model's logits on development faces.
        labels: int (N,), their labels.
        weight_decay: L2 penalty on the biases (keeps classes absent from the data near 0).
    Raises:
        ValueError: for mismatched shapes or no class with enough faces.
    """
    logits = torch.as_tensor(np.asarray(logits, np.float32))
    labels = torch.as_tensor(np.asarray(labels, np.int64))
    if logits.ndim != 2 or logits.shape[1] != num_labels or len(labels) != len(logits):
        raise ValueError(f"logits must be (N, {num_labels}) and labels (N,); got {tuple(logits.shape)}, "
                         f"{tuple(labels.shape)}")
    classes = [k for k in range(num_labels) if int((labels == k).sum()) >= min_class_faces]
    if not classes:
        raise ValueError(f"no class has {min_class_faces} or more faces")
    bias = torch.zeros(num_labels, requires_grad=True)
    optimizer = torch.optim.LBFGS([bias], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        losses = torch.nn.functional.cross_entropy(logits + bias, labels, reduction="none")
        loss = torch.stack([losses[labels == k].mean() for k in classes]).mean() + weight_decay * (bias ** 2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    out = bias.detach().numpy()
    return (out - out.mean()).astype(np.float32)


def _balanced_accuracies(dev: dict, num_labels: int, minimum: dict, bias=0.0) -> dict:
    """{split: balanced accuracy of ``logits + bias``} for ``dev`` = {split: (logits, labels)}."""
    return {name: balanced_accuracy(y, (l + bias).argmax(1), num_labels, minimum[name])[0]
            for name, (l, y) in dev.items()}


def cross_fitted_gain(dev: dict, num_labels: int, min_class_faces: dict | None = None) -> dict:
    """The adoption test of docs/real_photos_rules.md: for two development splits A and B, biases fitted on A
    are scored on B and the other way round; the mean balanced accuracy of the corrected scores is compared
    with the uncorrected one on the same splits.

    Args:
        dev: {split name: (logits (N, num_labels), labels (N,))}, exactly two splits.
        min_class_faces: {split name: minimum faces per class for fitting and balanced accuracy} (default 1).
    Returns:
        {"uncorrected": {split: balanced accuracy}, "cross_fitted": {split: balanced accuracy},
        "uncorrected_mean", "cross_fitted_mean", "adopt" (bool), "bias" (fitted on both splits pooled, list)}.
    Raises:
        ValueError: unless ``dev`` has exactly two splits.
    """
    if len(dev) != 2:
        raise ValueError(f"cross-fitting needs exactly two development splits; got {sorted(dev)}")
    minimum = {name: (min_class_faces or {}).get(name, 1) for name in dev}
    (a, (la, ya)), (b, (lb, yb)) = dev.items()
    plain = _balanced_accuracies(dev, num_labels, minimum)
    bias_a = fit_logit_adjustment(la, ya, num_labels, minimum[a])
    bias_b = fit_logit_adjustment(lb, yb, num_labels, minimum[b])
    crossed = {b: balanced_accuracy(yb, (lb + bias_a).argmax(1), num_labels, minimum[b])[0],
               a: balanced_accuracy(ya, (la + bias_b).argmax(1), num_labels, minimum[a])[0]}
    pooled = fit_logit_adjustment(np.concatenate([la, lb]), np.concatenate([ya, yb]), num_labels,
                                  min(minimum.values()))
    result = {"uncorrected": plain, "cross_fitted": crossed,
              "uncorrected_mean": float(np.mean(list(plain.values()))),
              "cross_fitted_mean": float(np.mean(list(crossed.values()))), "bias": pooled.tolist()}
    result["adopt"] = bool(result["cross_fitted_mean"] > result["uncorrected_mean"])
    return result


def _label_smoothing(settings: dict) -> float:
    """The run's label smoothing: recorded in ``mix_settings.json`` (runs since 2026-12-08) or read from its
    command."""
    import shlex

    if settings.get("label_smoothing") is not None:
        return float(settings["label_smoothing"])
    words = shlex.split(settings.get("command", ""))
    for flag in ("--label_smoothing", "--label-smoothing"):
        if flag in words and words.index(flag) + 1 < len(words):
            return float(words[words.index(flag) + 1])
    raise ValueError("the run records no label smoothing (mix_settings.json or its command): cannot compute the "
                     "class mass of its targets")


def mix_target_prior(labels: dict, soft: dict, settings: dict) -> np.ndarray:
    """The expected training target per class (float64 (num_labels,), sums to 1) of a corpus mix: classes, then
    corpora, then faces drawn as `MixingSampler` draws them, each face's target built as `training_targets`
    builds it.

    Args:
        labels: {corpus: int array (N,) of corpus labels}; soft: {corpus: float array (N, >= num_labels) of the
            cache's ``soft_labels``}.
        settings: ``mix`` ({corpus: weight}), ``sample_by`` ("label" or "target"), ``class_power``,
            ``corpus_power``, ``original_label_weight`` and ``label_smoothing``, as a run records them.
    """
    from ..labels import FER2013_LABELS
    from .multicorpus import MixingSampler, training_targets

    num_labels = len(FER2013_LABELS)
    sampling = {c: (np.asarray(soft[c])[:, :num_labels].argmax(1) if settings.get("sample_by") == "target"
                    else labels[c]) for c in labels}
    sampler = MixingSampler(sampling, settings["mix"], num_labels, settings["class_power"], settings["corpus_power"])
    prior = np.zeros(num_labels)
    for i, corpus in enumerate(sampler.corpora):
        for k in range(num_labels):
            members = sampler.members[corpus, k]
            if len(members):
                targets = training_targets(soft[corpus][members], labels[corpus][members], num_labels,
                                           settings.get("original_label_weight") or 0.0, settings["label_smoothing"])
                prior += (sampler.class_probabilities[k] * sampler.corpus_probabilities[i, k]
                          * targets.double().mean(0).numpy())
    return prior / prior.sum()


def training_target_prior(run_dir, face_cache_dir="runs/face_cache") -> np.ndarray:
    """The class prior a multi-corpus run (``train_accelerate.py --corpus_mix``) trained on: `mix_target_prior`
    of its recorded settings over the training faces of its face caches. A class drawn as often as the others
    can still carry less target mass (FER+ votes move many FER2013 fear faces to other classes); post-hoc logit
    adjustment (Menon et al., ICLR 2021) subtracts ``log(pi)`` from the logits to undo that prior for a
    class-balanced target. Reads only training labels and targets: no development or test face.

    Args:
        run_dir: the run's folder holding ``mix_settings.json``, or that file itself (a released model keeps it
            as ``<member>.mix_settings.json``).
        face_cache_dir: where the run's face caches are (``{corpus}-train-{size}px[-detector]-v{version}.npz``;
            the run's recorded cache size is preferred, but labels and targets do not depend on the size).
    Returns:
        float64 (num_labels,), summing to 1.
    Raises:
        FileNotFoundError: without the settings file or a training cache of a corpus of the mix.
        ValueError: for a run distilled from a teacher (its targets are mostly the teacher's probabilities, whose
            prior is not the mix's) or one that records no label smoothing.
    """
    from .face_cache import CACHE_VERSION, cache_file

    settings_file = Path(run_dir)
    if settings_file.is_dir():
        settings_file = settings_file / "mix_settings.json"
    if not settings_file.is_file():
        raise FileNotFoundError(f"{settings_file} not found: give a multi-corpus run's folder (holding "
                                "mix_settings.json) or its settings file")
    settings = json.loads(settings_file.read_text())
    if settings.get("teacher_model"):
        raise ValueError(f"{run_dir} was distilled from {settings['teacher_model']}: its targets are mostly the "
                         "teacher's probabilities, so the mix's class mass is not its training prior")
    settings = {**settings, "label_smoothing": _label_smoothing(settings)}
    labels, soft = {}, {}
    for corpus in settings["mix"]:
        recorded = cache_file(face_cache_dir, corpus, "train", settings.get("face_cache_size") or 128)
        files = ([recorded] if recorded.is_file() else
                 sorted(Path(face_cache_dir).glob(f"{corpus}-train-*px*-v{CACHE_VERSION}.npz")))
        if not files:
            raise FileNotFoundError(f"no training face cache of {corpus} under {face_cache_dir} (build it with "
                                    "`python -m fer_hf.training.face_cache`)")
        with np.load(files[0], allow_pickle=False) as data:  # only these two arrays are read from the archive
            labels[corpus], soft[corpus] = data["labels"], data["soft_labels"]
    return mix_target_prior(labels, soft, settings)


def prior_adjustment(prior) -> np.ndarray:
    """``-log(prior)`` centred to mean 0, float32 (num_labels,): the logit adjustment (tau = 1) that removes a
    training prior (Menon et al., ICLR 2021)."""
    bias = -np.log(np.asarray(prior, np.float64))
    return (bias - bias.mean()).astype(np.float32)


#: The development splits the adoption test fits and scores on (docs/real_photos_rules.md): never a test split.
DEVELOPMENT_SPLITS = (("muxspace", "validation"), ("tfeid", "validation"))


def development_log_probabilities(model_name_or_path, data_root, splits=DEVELOPMENT_SPLITS,
                                  batch_size: int = 256, model=None) -> dict:
    """{``corpus/split``: (log-probabilities float64 (N, num_labels) of the model without any logit adjustment,
    labels int64 (N,))} on real-photo development splits, each photo cropped by the recognizer
    (`fer_hf.evaluation.report.load_evaluation_split`). Log-probabilities differ from logits by one constant per
    face, which changes neither the argmax nor the fitted biases. ``model``: the model already loaded from
    ``model_name_or_path`` (its ``config.logit_adjustment`` is cleared), else it is loaded here.

    Raises:
        ValueError: for a ``test`` split (a prior correction is never fitted on a test split) or a model whose
            label set is not FER2013's 7 classes in FER2013 order.
    """
    from transformers import AutoImageProcessor

    from ..evaluation.report import predict_log_probabilities
    from ..labels import FER2013_LABELS
    from ..models import load_fer_model
    from .multicorpus import recognizer_dev_sets

    for corpus, split in splits:
        if split == "test":
            raise ValueError(f"{corpus}/{split}: a prior correction is fitted on development splits only, never "
                             "on a test split")
    model = model if model is not None else load_fer_model(model_name_or_path)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if labels != list(FER2013_LABELS):
        raise ValueError(f"prior correction expects the FER2013 label order {FER2013_LABELS}; the model has {labels}")
    if getattr(model.config, "logit_adjustment", None) is not None:
        model.config.logit_adjustment = None  # fit against the plain model
    processor = AutoImageProcessor.from_pretrained(str(model_name_or_path), trust_remote_code=False)
    decoded = recognizer_dev_sets([f"{corpus}/{split}" for corpus, split in splits], data_root, processor)
    return {key: (predict_log_probabilities(model, processor, split["images"], batch_size=batch_size), split["labels"])
            for key, split in decoded.items()}


def training_prior_gain(dev: dict, model, runs, face_cache_dir, min_class_faces: dict | None = None,
                        public_test=None) -> dict:
    """The development splits with and without the training-prior logit adjustment of ``runs`` (one run, or one
    per member of a ``fer_ensemble`` model in member order, whose training priors are averaged with the member
    weights). Nothing is fitted: ``adopt`` is True when the adjusted mean balanced accuracy over ``dev`` is not
    below the uncorrected one and, with ``public_test``, neither is the adjusted FER2013 PublicTest balanced
    accuracy (the rule in docs/real_photos_rules.md).

    Args:
        dev: {split name: (log-probabilities (N, num_labels), labels (N,))} without any adjustment.
        model: the model ``dev`` was computed with (its ``member_weights`` when it is an ensemble).
        runs: run folders (see `training_target_prior`).
        public_test: optional (log-probabilities, labels) of FER2013 PublicTest, without any adjustment.
    Raises:
        ValueError: when the number of runs matches neither one nor the ensemble's members.
    """
    weights = [1.0]
    if len(runs) > 1:
        weights = list(getattr(model.config, "member_weights", None) or [])
        if len(weights) != len(runs):
            raise ValueError(f"{len(runs)} runs for a model with {len(weights) or 1} member(s): give one run, or one "
                             "per ensemble member in member order")
    priors = np.stack([training_target_prior(run, face_cache_dir) for run in runs])
    prior = (np.asarray(weights)[:, None] * priors).sum(0) / sum(weights)
    bias = prior_adjustment(prior)
    num_labels = len(prior)
    minimum = {name: (min_class_faces or {}).get(name, 1) for name in dev}
    plain = _balanced_accuracies(dev, num_labels, minimum)
    adjusted = _balanced_accuracies(dev, num_labels, minimum, bias)
    result = {"method": "training_prior", "runs": [str(r) for r in runs], "run_priors": priors.tolist(),
              "prior": prior.tolist(), "tau": 1.0, "uncorrected": plain, "adjusted": adjusted,
              "uncorrected_mean": float(np.mean(list(plain.values()))),
              "adjusted_mean": float(np.mean(list(adjusted.values()))), "bias": bias.tolist(),
              "rule": "docs/real_photos_rules.md (training-prior logit adjustment): adopted if the adjusted mean "
                      "balanced accuracy over the development splits is not below the uncorrected one and FER2013 "
                      "PublicTest balanced accuracy is not below either"}
    result["adopt"] = bool(result["adjusted_mean"] >= result["uncorrected_mean"])
    if public_test is not None:
        log_probs, labels = public_test
        result["fer2013/validation"] = {
            "uncorrected": balanced_accuracy(labels, log_probs.argmax(1), num_labels)[0],
            "adjusted": balanced_accuracy(labels, (log_probs + bias).argmax(1), num_labels)[0]}
        result["adopt"] = bool(result["adopt"] and result["fer2013/validation"]["adjusted"]
                               >= result["fer2013/validation"]["uncorrected"])
    return result


def main(argv=None) -> dict:
    """``python -m fer_hf.training.prior_correction --model DIR --data ../shared/data [--output_dir DIR]``: the
    adoption test of docs/real_photos_rules.md on the muxspace and tfeid validation people. Writes
    ``prior_correction.json`` (the cross-fitted and uncorrected balanced accuracies, the pooled biases, whether
    they are adopted, the command) into ``--output_dir`` (default: the model folder); with ``--apply`` and an
    adopted correction, also the model with ``config.logit_adjustment`` set, into ``--output_dir``. With
    ``--training_prior RUN [RUN ...]`` the biases are not fitted but set to ``-log(pi)`` of the runs' training
    prior (`training_target_prior`), and the report gives the development splits and FER2013 PublicTest with and
    without them."""
    import argparse
    import shlex
    import sys

    from ..labels import FER2013_LABELS
    from ..evaluation.metrics import min_class_faces

    parser = argparse.ArgumentParser(prog="python -m fer_hf.training.prior_correction", description=main.__doc__)
    parser.add_argument("--model", required=True, help="A fer_hf model folder with FER2013's 7 labels.")
    parser.add_argument("--data", default="../shared/data", help="The shared data folder (muxspace/, tfeid/).")
    parser.add_argument("--output_dir", default=None, help="Where the report (and with --apply the model) go.")
    parser.add_argument("--apply", action="store_true",
                        help="Save the model with the pooled biases in its config if the test adopts them.")
    parser.add_argument("--training_prior", nargs="+", default=None, metavar="RUN",
                        help="Instead of fitting biases on development faces, use -log(pi) of the training prior of "
                             "these multi-corpus runs (one per member of an ensemble, in member order: their "
                             "member-weighted mean pi), and report the development splits with and without it.")
    parser.add_argument("--face_cache_dir", default="runs/face_cache",
                        help="The training face caches (for --training_prior).")
    args = parser.parse_args(argv)
    command = "python -m fer_hf.training.prior_correction " + " ".join(shlex.quote(a) for a in
                                                                        (sys.argv[1:] if argv is None else argv))
    from ..models import load_fer_model

    model = load_fer_model(args.model)  # loaded once: scored here, saved with the biases under --apply
    # the training-prior test also reads FER2013 PublicTest: decoded and scored in the same pass
    splits = DEVELOPMENT_SPLITS + ((("fer2013", "validation"),) if args.training_prior else ())
    dev = development_log_probabilities(args.model, args.data, splits=splits, model=model)
    public = dev.pop("fer2013/validation", None)
    minimum = {name: min_class_faces(name) for name in dev}
    if args.training_prior:
        result = training_prior_gain(dev, model, args.training_prior, args.face_cache_dir, minimum, public)
    else:
        result = cross_fitted_gain(dev, len(FER2013_LABELS), minimum)
        result.update(method="fitted", rule="docs/real_photos_rules.md: adopted only if the cross-fitted mean "
                                             "balanced accuracy beats the uncorrected one")
    result.update({"model": str(args.model), "splits": list(dev), "min_class_faces": minimum,
                   "labels": list(FER2013_LABELS), "command": command})
    output = Path(args.output_dir or args.model)
    output.mkdir(parents=True, exist_ok=True)
    if args.apply and result["adopt"]:
        from transformers import AutoImageProcessor

        if not hasattr(model.config, "logit_adjustment"):
            raise ValueError(f"{model.config.model_type} has no logit_adjustment in its config")
        model.config.logit_adjustment = [float(v) for v in result["bias"]]
        model.save_pretrained(output)
        AutoImageProcessor.from_pretrained(str(args.model)).save_pretrained(output)
        result["applied_to"] = str(output)
    (output / "prior_correction.json").write_text(json.dumps(result, indent=1))
    shown = ("uncorrected", "adjusted", "uncorrected_mean", "adjusted_mean", "fer2013/validation", "prior") if (
        args.training_prior) else (
        "uncorrected", "cross_fitted", "uncorrected_mean", "cross_fitted_mean")
    print(json.dumps({k: result[k] for k in shown + ("adopt", "bias")}, indent=1))
    return result


if __name__ == "__main__":
    main()
