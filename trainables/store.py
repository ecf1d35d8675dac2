"""Compute a cache entry once: under a file lock, written into a scratch folder, sealed, then renamed into place.

Every cache of this project (dense fine-tunes, IMP levels, TAMT masks) uses it, so a reader never sees a
half-written entry and concurrent trials that need the same entry compute it once: the others wait on the
lock and read what the first wrote (the pattern of open_lth's runner: skip a step whose output exists).

Sealing writes the SHA-256 and size of every file of the entry into its ``record.json`` (``"checksums"``).
An entry whose record is unreadable, or whose files are missing, cut short or changed, is moved aside
(``<entry>.corrupt-<time>``) and computed again; the damaged copy is deleted as soon as the new entry is complete
(a copy left by a process killed in between is deleted by ``sweep_partials`` at the next study's start). Both
the warning and the study's terminal (``trainables.progress.note``) say which entry was healed and why.

With a storage URI (``trainables.mirror``) an entry missing here is first downloaded from under the URI (and
checked like a local one), and an entry computed here is uploaded there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

from filelock import FileLock, Timeout

from trainables import mirror, progress

log = logging.getLogger(__name__)

RECORD = "record.json"
PARTIAL = ".partial-"
#: Infix of a damaged entry moved aside (``<entry>.corrupt-<time>-<pid>``).
CORRUPT = ".corrupt-"


def compute_once(target: Path, write: Callable[[Path], None], marker: str = RECORD) -> bool:
    """Make sure the folder ``target`` exists, complete and intact, with ``target / marker`` in it.

    Args:
        target: the entry's folder (its parent is created if needed).
        write: fills a scratch folder with the entry (``marker`` included); called at most once across
            processes for a given ``target``, unless the entry is found corrupt later.
        marker: the file whose presence means the entry was completed.

    Returns:
        True when this call computed the entry, False when it was there (or another process finished it
        while this one waited, or it was downloaded from the storage URI).
    """
    if problem(target, marker) is None:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        found = problem(target, marker)
        if found is None:
            return False
        aside = None
        if target.exists():
            aside = target.with_name(f"{target.name}{CORRUPT}{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
            os.replace(target, aside)
            text = (f"healing cache entry {target}: {found}; moved aside to {aside.name}, computing it again "
                    "(the damaged copy is deleted once the new entry is complete)")
            log.warning(text)
            progress.note(text)
        for stale in target.parent.glob(f"{PARTIAL}{target.name}-*"):  # we hold the lock: nobody writes these
            shutil.rmtree(stale, ignore_errors=True)
        scratch = Path(tempfile.mkdtemp(prefix=f"{PARTIAL}{target.name}-", dir=target.parent))
        try:
            if mirror.pull(target, into=scratch) and problem(scratch, marker) is None:
                os.replace(scratch, target)  # computed elsewhere: downloaded from the storage URI
                return False
            for leftover in list(scratch.iterdir()):  # an incomplete download
                shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
            write(scratch)
            seal(scratch)
            os.replace(scratch, target)
            if aside is not None:
                shutil.rmtree(aside, ignore_errors=True)
                progress.note(f"healed cache entry {target}: computed again, damaged copy {aside.name} deleted")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    mirror.push(target)
    return True


def _digest(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != RECORD and not p.name.endswith(".lock"))


def seal(folder: Path) -> None:
    """Write the size and SHA-256 of every file in ``folder`` (but the record itself and lock files) into
    ``folder/record.json`` under ``"checksums"``, creating the record if the entry has none."""
    path = folder / RECORD
    record = json.loads(path.read_text()) if path.exists() else {}
    record["checksums"] = {str(p.relative_to(folder)): {"bytes": p.stat().st_size, "sha256": _digest(p)}
                           for p in _files(folder)}
    path.write_text(json.dumps(record, indent=2))


def problem(target: Path, marker: str = RECORD) -> str | None:
    """Why the entry ``target`` cannot be used (``None`` when it can): absent, its record unreadable, or a file
    its record lists missing, of another size or another checksum. Entries sealed before checksums existed
    are trusted when their marker is there."""
    if not (target / marker).exists():
        return "not complete" if target.exists() else "absent"
    path = target / RECORD
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        return f"{RECORD} unreadable: {err}"
    for name, expected in (record.get("checksums") or {}).items():
        file = target / name
        if not file.is_file():
            return f"{name} missing"
        if file.stat().st_size != expected["bytes"]:
            return f"{name} has {file.stat().st_size} bytes, expected {expected['bytes']}"
        if _digest(file) != expected["sha256"]:
            return f"{name} checksum differs"
    return None


def sweep_partials(root: Path) -> list[Path]:
    """Remove what interrupted computations left under the cache ``root``: ``.partial-*`` scratch folders and
    files, and damaged entries moved aside (``*.corrupt-*``) whose healing was cut off, whose entry's lock nobody
    holds (a computation still running holds it, and is left alone).

    Returns:
        the paths removed.
    """
    removed = []
    if not Path(root).is_dir():
        return removed
    for stale in sorted(Path(root).rglob(f"{PARTIAL}*")):
        inside = stale.relative_to(root).parts[:-1]
        if not stale.exists() or any(part.startswith(PARTIAL) for part in inside):
            continue  # gone with its folder, or part of a scratch folder that is handled as a whole
        if stale.is_dir():  # .partial-<entry>-XXXX, written under <entry>.lock
            lock = stale.parent / (stale.name[len(PARTIAL):].rsplit("-", 1)[0] + ".lock")
        else:  # steps/.partial-step-K.safetensors, written under <dense entry>/steps.lock
            lock = stale.parent.parent / "steps.lock"
        try:
            with FileLock(str(lock), timeout=0):
                if stale.is_dir():
                    shutil.rmtree(stale)
                else:
                    stale.unlink()
        except Timeout:
            continue
        removed.append(stale)
    for aside in sorted(Path(root).rglob(f"*{CORRUPT}*")):  # a damaged copy whose healing was cut off
        if not aside.is_dir() or any(CORRUPT in part or part.startswith(PARTIAL)
                                     for part in aside.relative_to(root).parts[:-1]):
            continue
        if problem(aside.parent / aside.name.split(CORRUPT)[0]) is not None:
            continue  # its entry is not whole again yet: kept until it is
        try:
            with FileLock(str(aside.parent / (aside.name.split(CORRUPT)[0] + ".lock")), timeout=0):
                shutil.rmtree(aside)
        except Timeout:
            continue
        removed.append(aside)
    return removed
