"""The one corpus registry: which corpora fer_hf trains, evaluates and ensembles on, the loader and default
label set of each, and their fixed protocols (the split a checkpoint or an ensemble weight is selected on and
the split that is reported), SFEW's held-out Train movies included. Training, evaluation, ensembling and the
classical baseline all load corpora through `load_corpus`."""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional

from .ckplus import load_ckplus
from .fer2013 import load_fer2013
from .ferplus import load_ferplus
from .folds import group_holdout
from .jaffe import load_jaffe
from .muxspace import load_muxspace
from .sfew import load_sfew
from .tfeid import load_tfeid


class CorpusEntry(NamedTuple):
    """A corpus of the registry: its loader (``loader(path, label_set=..., **options)``) and the label set
    a model trained on it gets by default."""

    loader: Callable
    label_set: str


CORPORA = {
    "fer2013": CorpusEntry(load_fer2013, "fer2013"),
    "ferplus": CorpusEntry(load_ferplus, "ferplus"),
    "ckplus": CorpusEntry(load_ckplus, "ferplus"),
    "jaffe": CorpusEntry(load_jaffe, "fer2013"),
    "sfew": CorpusEntry(load_sfew, "fer2013"),
    "muxspace": CorpusEntry(load_muxspace, "fer2013"),
    "tfeid": CorpusEntry(load_tfeid, "fer2013"),
}

#: corpus -> its fixed protocol: what is selected on (``validation``) and what is reported (``test``).
#: CK+ and JAFFE have none: they are evaluated by cross-validation only.
PROTOCOLS = {
    "fer2013": "selected on PublicTest (validation); PrivateTest (test) reported",
    "ferplus": "selected on FER2013Valid (validation, majority vote); FER2013Test (test) reported",
    "sfew": "selected on held-out SFEW Train movies (validation); SFEW Val (test) reported",
    "muxspace": "identity-disjoint splits by person (70/15/15 %): selected on validation people; test people "
                "reported (balanced accuracy over the classes with >= 50 test faces)",
    "tfeid": "performer-disjoint splits (70/15/15 %): selected on validation performers; test performers reported",
}
#: Share of SFEW Train movies held out for selection, and the seed that picks them (train_accelerate.py's
#: ``--validation_fraction`` / ``--seed`` defaults; `fer-hf ensemble` fits on the same movies).
SFEW_VALIDATION_FRACTION = 0.1
SFEW_SEED = 42


def load_corpus(name: str, data_dir, label_set: Optional[str] = None, **options):
    """Every split of corpus ``name`` from ``data_dir`` as its loader returns it (`datasets.DatasetDict`).
    ``label_set``: None for the loader's own default; ``options`` go to the loader (e.g. ``labels=
    "distribution"`` for FER+ votes, ``detector=None`` for JAFFE's uncropped frames).

    Raises:
        ValueError: for a corpus the registry does not have.
    """
    if name not in CORPORA:
        raise ValueError(f"Unknown corpus {name!r}; choose one of {sorted(CORPORA)}")
    if label_set is not None:
        options["label_set"] = label_set
    return CORPORA[name].loader(str(data_dir), **options)


def sfew_held_out_movies(train, validation_fraction: float = SFEW_VALIDATION_FRACTION, seed: int = SFEW_SEED):
    """(kept, held out): SFEW Train split by whole movies, ``validation_fraction`` of the movies held out for
    selection (SFEW Val is the reported development set, so selection cannot use it)."""
    return group_holdout(train, "movie", validation_fraction, seed)


def protocol_splits(name: str, corpus, validation_fraction: float = SFEW_VALIDATION_FRACTION,
                    seed: int = SFEW_SEED) -> dict:
    """``{"train", "validation", "test"}`` of a loaded corpus under its fixed protocol (`PROTOCOLS`): FER2013,
    FER+, muxspace and tfeid as loaded (the last two split by person by their loaders); SFEW: Train minus the held-out movies / the held-out movies / Val.

    Raises:
        ValueError: for a corpus without a fixed protocol (CK+, JAFFE: cross-validation only).
    """
    if name in ("fer2013", "ferplus", "muxspace", "tfeid"):
        return {"train": corpus["train"], "validation": corpus["validation"], "test": corpus["test"]}
    if name == "sfew":
        train, held_out = sfew_held_out_movies(corpus["train"], validation_fraction, seed)
        return {"train": train, "validation": held_out, "test": corpus["validation"]}
    raise ValueError(f"{name!r} has no fixed selection split (one of {sorted(PROTOCOLS)}); "
                     "CK+ and JAFFE are evaluated by cross-validation only")
