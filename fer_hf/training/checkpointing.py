"""Training checkpoints on disk: which ones are complete, the latest one to resume from, recovering a run
folder after a crash, publishing a copy, and the rule that decides whether a new checkpoint is better."""

import json
import logging
import re
import shutil
from pathlib import Path

from ..atomic import TMP_PREFIX, recover_dir, recover_release, replace_dir, staging_dir


def checkpoint_epoch(path: Path):
    """N of a checkpoint folder ``epoch_N``; None for any other name (staging ``.tmp_epoch_N`` included)."""
    match = re.fullmatch(r"epoch_(\d+)", Path(path).name)
    return int(match.group(1)) if match else None


def is_complete_checkpoint(path: Path) -> bool:
    """A checkpoint is complete when its ``trainer_state.json`` (written last) parses. Checkpoints are
    written into a staging folder and renamed into place, so an ``epoch_N`` folder is always complete;
    the check also rejects folders left half-written by versions that saved in place."""
    try:
        return isinstance(json.loads((Path(path) / "trainer_state.json").read_text()), dict)
    except (OSError, ValueError):
        return False


def complete_checkpoints(output_dir: Path) -> list:
    """The complete ``checkpoints/epoch_N`` folders of a run, oldest first."""
    folders = [p for p in (Path(output_dir) / "checkpoints").glob("epoch_*")
               if p.is_dir() and checkpoint_epoch(p) is not None and is_complete_checkpoint(p)]
    return sorted(folders, key=checkpoint_epoch)


def latest_checkpoint(output_dir: Path):
    checkpoints = complete_checkpoints(output_dir)
    return checkpoints[-1] if checkpoints else None


def recover_run_folder(output_dir: Path) -> None:
    """Repair what a kill can leave in a run folder (main process, before training): finish or discard an
    interrupted release (`fer_hf.atomic.recover_release`), put back ``best_model`` and checkpoints whose
    swap was interrupted, and remove staging folders and incomplete checkpoints (never resumable)."""
    recover_release(output_dir)
    recover_dir(output_dir / "best_model")
    checkpoints = output_dir / "checkpoints"
    if not checkpoints.is_dir():
        return
    for old in checkpoints.glob(".old_epoch_*"):
        recover_dir(checkpoints / old.name[len(".old_"):])
    for staged in checkpoints.glob(TMP_PREFIX + "*"):
        shutil.rmtree(staged, ignore_errors=True)
    for folder in checkpoints.glob("epoch_*"):
        if folder.is_dir() and checkpoint_epoch(folder) is not None and not is_complete_checkpoint(folder):
            logging.getLogger(__name__).warning(f"Removing incomplete checkpoint {folder}")
            shutil.rmtree(folder, ignore_errors=True)


def publish_copy(source: Path, final: Path) -> None:
    """Replace the folder ``final`` by a copy of ``source`` (staged, then swapped in: `replace_dir`)."""
    staged = staging_dir(final)
    if staged.exists():
        shutil.rmtree(staged)
    shutil.copytree(source, staged)
    replace_dir(staged, final)


def better_checkpoint(accuracy: float, loss: float, best_accuracy: float, best_loss: float) -> bool:
    """Whether an epoch with this validation ``accuracy`` (fraction) and ``loss`` (mean NLL) replaces the
    best one so far: higher accuracy wins; a tie in accuracy (a small validation split that saturates at
    100%, as CK+ folds do) goes to the lower loss, not to the earlier, less trained epoch."""
    return accuracy > best_accuracy or (accuracy == best_accuracy and loss < best_loss)
