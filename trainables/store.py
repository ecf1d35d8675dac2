"""Compute a cache entry once: under a file lock, written into a scratch folder, then renamed into place.

Every cache of this project (dense fine-tunes, IMP levels, TAMT masks) uses it, so a reader never sees a
half-written entry and concurrent trials that need the same entry compute it once: the others wait on the
lock and read what the first wrote (the pattern of open_lth's runner: skip a step whose output exists).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from filelock import FileLock


def compute_once(target: Path, write: Callable[[Path], None], marker: str = "record.json") -> bool:
    """Make sure the folder ``target`` exists with ``target / marker`` in it.

    Args:
        target: the entry's folder (its parent is created if needed).
        write: fills a scratch folder with the entry (``marker`` included); called at most once across
            processes for a given ``target``.
        marker: the file whose presence means the entry is complete.

    Returns:
        True when this call computed the entry, False when it was there (or another process finished it
        while this one waited).
    """
    if (target / marker).exists():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / marker).exists():
            return False
        scratch = Path(tempfile.mkdtemp(prefix=".partial-", dir=target.parent))
        try:
            write(scratch)
            os.replace(scratch, target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return True
