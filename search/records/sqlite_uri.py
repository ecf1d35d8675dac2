"""SQLite database URLs as MLflow and Optuna (both through SQLAlchemy) take them: ``sqlite:////absolute/path``."""

from __future__ import annotations

import os
from pathlib import Path

PREFIX = "sqlite:///"


def absolute(uri: str) -> str:
    """``uri`` with a relative SQLite path made absolute (against this process's working directory: trials and
    tools run elsewhere), a bare path taken as a SQLite file; any other URL unchanged."""
    if uri.startswith(PREFIX) and not uri.startswith(PREFIX + "/"):
        return PREFIX + str(Path(uri[len(PREFIX):]).resolve())
    return uri if "://" in uri else PREFIX + str(Path(uri).resolve())


def path_of(uri: str) -> Path:
    """The file of an absolute SQLite URL (``sqlite:////a/b.db`` -> ``/a/b.db``)."""
    return Path(uri.split("://", 1)[1][1:])


def check_writable(path: Path, what: str, fix: str) -> None:
    """The SQLite file ``path`` can be created or written: an existing one is a writable file, its folder exists
    and is writable. ``what`` names it in the message (``MLflow database``), ``fix`` says what to do.

    Raises:
        ValueError: the problem and the fix, in one line.
    """
    if path.exists() and (not path.is_file() or not os.access(path, os.W_OK)):
        raise ValueError(f"{what} {path} is not a writable file: {fix}")
    if not path.parent.is_dir() or not os.access(path.parent, os.W_OK | os.X_OK):
        raise ValueError(f"{what} folder {path.parent} does not exist or is not writable: create it, or {fix}")
