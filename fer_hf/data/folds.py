"""Cross-validation folds for the small corpora (CK+, JAFFE, SFEW): subject-independent folds (no subject, or
movie, on both sides: GUIDE.md §4) and, labelled as such, random stratified folds.

Every function returns a `FoldList`: a list of ``(train_indices, test_indices)`` pairs (sorted int64 numpy
arrays of row positions in the dataset) with a ``protocol`` string saying how it was built; report it
next to the numbers (mean ± std over folds)."""

from __future__ import annotations

import numpy as np


class FoldList(list):
    """List of ``(train_indices, test_indices)``; ``protocol`` describes the split (e.g. "subject-independent
    10-fold (StratifiedGroupKFold by 'subject', seed 0)" or "random stratified 5-fold, NOT
    subject-independent"); ``groups`` lists the held-out groups per fold (None for random folds)."""

    def __init__(self, folds, protocol: str, subject_independent: bool, groups=None):
        super().__init__(folds)
        self.protocol = protocol
        self.subject_independent = subject_independent
        self.groups = groups


def _split(dataset):
    """A `Dataset`, or the only split of a one-split `DatasetDict`."""
    if isinstance(dataset, dict):
        if len(dataset) != 1:
            raise ValueError(f"Pass one split, not a DatasetDict with splits {list(dataset)}")
        dataset = next(iter(dataset.values()))
    return dataset


def _column(dataset, name: str) -> np.ndarray:
    if name not in dataset.column_names:
        raise ValueError(f"Dataset has no {name!r} column (columns: {dataset.column_names})")
    return np.asarray(dataset[name][:])


def subject_kfold(dataset, n_folds: int = 10, group_column: str = "subject", seed: int = 0,
                  stratify: bool = True) -> FoldList:
    """Subject-independent k-fold: each group (``group_column``: ``subject`` for CK+ / JAFFE, ``movie`` for
    SFEW) is in exactly one test fold and never on both sides of a fold.

    ``stratify=True`` (default) uses `sklearn.model_selection.StratifiedGroupKFold` (shuffled with
    ``seed``: class proportions kept as far as whole groups allow); ``False`` uses `GroupKFold` (balanced
    fold sizes, deterministic).

    Raises:
        ValueError: if the column is missing or there are fewer groups than ``n_folds``.
    """
    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

    dataset = _split(dataset)
    groups = _column(dataset, group_column)
    n_groups = len(np.unique(groups))
    if n_folds < 2 or n_groups < n_folds:
        raise ValueError(f"{n_folds} folds need at least {max(n_folds, 2)} distinct {group_column!r} values, "
                         f"got {n_groups}")
    index = np.zeros(len(groups))
    if stratify:
        splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        pairs = splitter.split(index, _column(dataset, "label"), groups)
        how = f"StratifiedGroupKFold by {group_column!r}, seed {seed}"
    else:
        splitter = GroupKFold(n_splits=n_folds)
        pairs = splitter.split(index, None, groups)
        how = f"GroupKFold by {group_column!r}"
    folds = [(np.sort(train).astype(np.int64), np.sort(test).astype(np.int64)) for train, test in pairs]
    held_out = [sorted(map(str, np.unique(groups[test]))) for _, test in folds]
    return FoldList(folds, f"subject-independent {n_folds}-fold ({how})", True, held_out)


def leave_one_subject_out(dataset, group_column: str = "subject") -> FoldList:
    """One fold per group (sorted by name): test = all rows of that group, train = all other rows.

    Raises:
        ValueError: if the column is missing or has fewer than 2 groups.
    """
    dataset = _split(dataset)
    groups = _column(dataset, group_column).astype(str)
    names = sorted(np.unique(groups))
    if len(names) < 2:
        raise ValueError(f"Leave-one-out needs at least 2 distinct {group_column!r} values, got {len(names)}")
    folds = [(np.flatnonzero(groups != g).astype(np.int64), np.flatnonzero(groups == g).astype(np.int64))
             for g in names]
    return FoldList(folds, f"leave-one-{group_column}-out ({len(names)} folds)", True, [[g] for g in names])


def stratified_kfold(dataset, n_folds: int = 5, seed: int = 0) -> FoldList:
    """Random stratified k-fold (`sklearn.model_selection.StratifiedKFold`, shuffled with ``seed``).

    NOT subject-independent: frames of one subject (CK+: three near-identical frames per sequence) land on
    both sides, which inflates accuracy. Report it only beside subject-independent folds, labelled as such
    (``result.protocol``)."""
    from sklearn.model_selection import StratifiedKFold

    dataset = _split(dataset)
    labels = _column(dataset, "label")
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    folds = [(np.sort(train).astype(np.int64), np.sort(test).astype(np.int64))
             for train, test in splitter.split(np.zeros(len(labels)), labels)]
    return FoldList(folds, f"random stratified {n_folds}-fold (seed {seed}), NOT subject-independent", False)


def group_holdout(dataset, group_column: str, fraction: float, seed: int):
    """Hold whole groups (subjects, SFEW movies) out of ``dataset`` for checkpoint or weight selection
    (`sklearn.model_selection.GroupShuffleSplit`, one split, ``test_size=fraction``, ``random_state=seed``).

    ``train_accelerate.py`` selects SFEW checkpoints on ``group_holdout(sfew["train"], "movie", 0.1, 42)``
    (its ``--validation_fraction`` / ``--seed`` defaults) and `fer_hf.training.ensembling.build_ensemble` fits SFEW
    ensemble weights on the same held-out movies, never on SFEW Val.

    Returns:
        ``(train, held_out)`` `datasets.Dataset`s, rows in their original order; no group is on both sides.
    Raises:
        ValueError: if the column is missing.
    """
    from sklearn.model_selection import GroupShuffleSplit

    dataset = _split(dataset)
    groups = _column(dataset, group_column)
    splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    train_index, held_out_index = next(splitter.split(np.zeros(len(groups)), groups=groups))
    return dataset.select(sorted(train_index)), dataset.select(sorted(held_out_index))
