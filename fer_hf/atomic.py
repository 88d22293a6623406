"""Crash-safe writes of files, folders and released model folders.

A process killed at any instant (SIGKILL, power loss after the data reached the disk) leaves either the
previous version or the new one, never a truncated mix:

* a file: written to a hidden sibling (``.tmp_<pid>_<name>``), fsynced, then ``os.replace``-d over the
  target (`atomic_write_text`, `replacing`);
* a folder (a checkpoint, ``best_model``): written completely into a staging sibling (``.tmp_<name>``),
  fsynced, then swapped in by two renames, ``name -> .old_<name>`` and ``.tmp_<name> -> name``
  (`replace_dir`). A kill between the two renames leaves only ``.old_<name>``, which `recover_dir` renames
  back;
* a released model folder: it cannot be swapped as a whole, because it is also the run folder (it holds
  ``checkpoints/``, ``best_model/``, ``train_log.jsonl``) and ``from_pretrained`` is pointed at it. Every file
  of the new release is written into ``<folder>/.tmp_release`` first (the slow part: weights, evaluation
  results, plots, card); a journal ``.release_pending.json`` naming the files is then written atomically, the
  files are moved in one by one with ``os.replace`` (each move is atomic, the whole takes microseconds) and
  the journal is removed (`publish_files`). A kill while the staging folder is written leaves the previous
  release untouched (the staging folder is discarded by `recover_release`); a kill during the moves leaves
  the journal, and `recover_release` rolls the moves forward. ``eval_results.json`` is moved last, so a folder
  that has it has all the other files of that release (the cross-validation loop uses it as "fold done").

`crash_point` is a test hook: with ``FER_HF_TEST_CRASH_IN_SAVE=<stage>`` (or ``<stage>:<epoch>``) in the
environment the process ends with ``os._exit(137)`` (what SIGKILL gives) at that point of a write, so that
tests can kill a run exactly inside a checkpoint or release write. It does nothing otherwise.
"""

import json
import os
import shutil
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

CRASH_ENV = "FER_HF_TEST_CRASH_IN_SAVE"
TMP_PREFIX = ".tmp_"
OLD_PREFIX = ".old_"
RELEASE_STAGING = ".tmp_release"
RELEASE_JOURNAL = ".release_pending.json"


def crash_point(stage: str, epoch: int | None = None) -> None:
    """Test hook: end the process at once (exit status 137, like SIGKILL; no cleanup, no flushing) when
    ``FER_HF_TEST_CRASH_IN_SAVE`` is ``stage`` or ``stage:epoch``."""
    wanted = os.environ.get(CRASH_ENV)
    if wanted and (wanted == stage or (epoch is not None and wanted == f"{stage}:{epoch}")):
        os._exit(137)


def fsync_path(path) -> None:
    """fsync a file or a folder (a folder's fsync makes the renames and creations inside it durable)."""
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:  # e.g. folders on platforms that cannot open them
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(root) -> None:
    """fsync every file of ``root``, then every folder, deepest first."""
    root = Path(root)
    for folder, _, files in os.walk(root, topdown=False):
        for name in files:
            fsync_path(Path(folder) / name)
        fsync_path(folder)


@contextmanager
def replacing(path):
    """Yield a temporary path beside ``path`` (same suffix, so that e.g. matplotlib picks the format);
    once the block has written it, fsync it and ``os.replace`` it over ``path``. On an exception the
    temporary file is removed and ``path`` is left as it was."""
    path = Path(path)
    tmp = path.with_name(f"{TMP_PREFIX}{os.getpid()}_{path.name}")
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    fsync_path(path.parent)


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (the old content or the new one, never a truncated file)."""
    with replacing(path) as tmp, open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def append_line(path, line: str) -> None:
    """Append one line to a log and fsync it (a kill can still truncate that line: readers skip it)."""
    with open(path, "a") as handle:
        handle.write(line.rstrip("\n") + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_jsonl(path, key: str | None = None) -> list:
    """The records of a JSON-lines log, skipping lines that do not parse (a line truncated by a kill).
    With ``key``, only the last record of each ``key`` value is kept, in first-seen order (an epoch logged
    again after a resume)."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    if key is None:
        return records
    latest = {}
    for record in records:
        latest[record.get(key)] = record
    return list(latest.values())


def staging_dir(final) -> Path:
    """The staging sibling of a folder: ``<parent>/.tmp_<name>``."""
    final = Path(final)
    return final.with_name(TMP_PREFIX + final.name)


def recover_dir(final) -> None:
    """Finish or undo an interrupted `replace_dir`: if ``final`` is missing but ``.old_<name>`` exists, the
    kill came between the two renames: put the old folder back; a leftover ``.old_<name>`` beside a present
    ``final`` is removed. A staging ``.tmp_<name>`` is incomplete by construction and is removed."""
    final = Path(final)
    old = final.with_name(OLD_PREFIX + final.name)
    if old.is_dir():
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(old, final)
            fsync_path(final.parent)
    staged = staging_dir(final)
    if staged.exists():
        shutil.rmtree(staged, ignore_errors=True)


def replace_dir(staged, final, crash_stage: str | None = None, crash_epoch: int | None = None) -> None:
    """Swap the fully written folder ``staged`` in as ``final`` (see the module docstring). ``staged`` must
    be on the same file system (a sibling). ``crash_stage``: the test hook `crash_point` ``<stage>_swap``
    (``:<crash_epoch>``) fires between the two renames."""
    staged, final = Path(staged), Path(final)
    fsync_tree(staged)
    old = final.with_name(OLD_PREFIX + final.name)
    if old.is_dir():  # an earlier swap that was interrupted
        if final.exists():
            shutil.rmtree(old)
        else:
            os.rename(old, final)
    if final.exists():
        os.rename(final, old)
        if crash_stage:
            crash_point(crash_stage + "_swap", crash_epoch)
    os.rename(staged, final)
    fsync_path(final.parent)
    shutil.rmtree(old, ignore_errors=True)


def link_or_copy_tree(source, destination) -> None:
    """Copy the files of ``source`` into the new folder ``destination`` as hard links where possible
    (no extra disk space; only for files that are never written in place afterwards), copies otherwise."""
    source, destination = Path(source), Path(destination)
    destination.mkdir(parents=True)
    for item in source.iterdir():
        if item.is_dir():
            link_or_copy_tree(item, destination / item.name)
            continue
        try:
            os.link(item, destination / item.name)
        except OSError:
            shutil.copy2(item, destination / item.name)


def publish_files(staged, destination, last: Iterable[str] = ("eval_results.json",),
                  crash_stage: str | None = "release_publish", remove: Iterable[str] = ()) -> list:
    """Move the files of the fully written folder ``staged`` into ``destination`` (see the module
    docstring), the names in ``last`` last. Sub-folders of ``staged`` are swapped in with `replace_dir`.
    ``remove``: names of files in ``destination`` that the new release no longer has (e.g. an earlier
    release's model code), deleted after the move, under the same journal (a kill in between is rolled
    forward by `recover_release`). Returns the names published."""
    staged, destination = Path(staged), Path(destination)
    fsync_tree(staged)
    last = list(last)
    names = sorted((p.name for p in staged.iterdir()), key=lambda n: (n in last, last.index(n) if n in last else 0, n))
    remove = [name for name in remove if name not in names]
    atomic_write_text(destination / RELEASE_JOURNAL,
                      json.dumps({"staged": staged.name, "files": names, "remove": remove}))
    _move_in(staged, destination, names, crash_stage, remove)
    return names


def _move_in(staged: Path, destination: Path, names: list, crash_stage: str | None = None,
             remove: Iterable[str] = ()) -> None:
    for index, name in enumerate(names):
        source = staged / name
        if source.is_dir():
            replace_dir(source, destination / name)
        elif source.exists():
            os.replace(source, destination / name)
        if crash_stage and index == 0:
            crash_point(crash_stage)
    for name in remove:
        (destination / name).unlink(missing_ok=True)
    fsync_path(destination)
    journal = destination / RELEASE_JOURNAL
    if journal.exists():
        journal.unlink()
        fsync_path(destination)
    shutil.rmtree(staged, ignore_errors=True)


def recover_release(destination) -> str | None:
    """Repair a released folder after a kill: roll an interrupted `publish_files` forward (its journal says
    which files remain to be moved in), or discard a staging folder that was never published. Returns
    ``"rolled forward"``, ``"discarded staging"`` or None (nothing to do)."""
    destination = Path(destination)
    journal = destination / RELEASE_JOURNAL
    if journal.is_file():
        try:
            info = json.loads(journal.read_text())
        except ValueError:  # cannot happen with atomic_write_text; be safe: the staging folder is not trusted
            info = None
        if info:
            staged = destination / info["staged"]
            _move_in(staged, destination, [n for n in info["files"] if (staged / n).exists()],
                     remove=info.get("remove", []))
            return "rolled forward"
        journal.unlink()
    staged = destination / RELEASE_STAGING
    if staged.exists():
        shutil.rmtree(staged, ignore_errors=True)
        return "discarded staging"
    return None
