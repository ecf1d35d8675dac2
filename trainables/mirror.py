"""Files kept under a storage URI (``--storage-path s3://bucket/prefix``, ``gs://...``) as well as on local disk.

With a URI as storage, Ray Tune writes its experiment there itself; this project's own files (the dense,
importance, IMP and TAMT cache entries, the trials' masks and weights, the study's state and report) are written
to a local folder first (``--local-dir``, the same path on every node) and copied to the same relative place
under the URI. A node that lacks an entry locally looks for it under the URI before computing it, so a cache
entry computed on one node, or by an earlier study on another machine, is downloaded rather than computed again.

Object stores have no locks: two nodes that need the same missing entry at the same moment may both compute it
(the content is the same; the last upload wins). The study fine-tunes the dense model before its trials start,
so this only happens for entries two trials first need at once.

Copies go through ``pyarrow.fs`` (the file-system layer Ray Tune itself uses), so every URI Tune accepts works:
``s3://`` (``?endpoint_override=host:port&scheme=http`` for MinIO and other S3-compatible stores), ``gs://``,
``hdfs://``, and ``file://``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pyarrow.fs as pafs

log = logging.getLogger(__name__)


def is_uri(path: str) -> bool:
    """Whether ``path`` is a URI (``scheme://...``) rather than a folder."""
    return "://" in path


def join(uri: str, *parts: str) -> str:
    """``uri`` with ``parts`` appended to its path; its query (``?endpoint_override=...``) is kept at the end."""
    split = urlsplit(uri)
    path = "/".join([split.path.rstrip("/"), *(p.strip("/") for p in parts if p)])
    return urlunsplit((split.scheme, split.netloc, path, split.query, split.fragment))


def open_uri(uri: str) -> tuple[pafs.FileSystem, str]:
    """The file system and the path in it that ``uri`` names (``pyarrow.fs.FileSystem.from_uri``).

    Raises:
        pyarrow.ArrowInvalid, OSError: the scheme is unknown or its client cannot be set up.
    """
    return pafs.FileSystem.from_uri(uri)


@dataclass(frozen=True)
class Mirror:
    """A local folder whose contents are also kept under ``uri``, at the same relative paths.

    Attributes:
        local: the absolute local folder.
        uri: where its copy lives (a URI ``pyarrow.fs`` opens).
    """

    local: str
    uri: str

    def covers(self, path: str | os.PathLike) -> bool:
        """Whether ``path`` lies inside the local folder."""
        return Path(os.path.abspath(path)).is_relative_to(self.local)

    def _remote(self, path: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
        relative = Path(os.path.abspath(path)).relative_to(self.local)
        return open_uri(join(self.uri, *relative.parts))

    def push(self, path: str | os.PathLike) -> None:
        """Copy the local file or folder ``path`` to its place under the URI (overwriting what is there)."""
        filesystem, remote = self._remote(path)
        if Path(path).is_dir():
            filesystem.create_dir(remote, recursive=True)
        else:
            filesystem.create_dir(remote.rsplit("/", 1)[0], recursive=True)
        pafs.copy_files(str(Path(path).resolve()), remote, source_filesystem=pafs.LocalFileSystem(),
                        destination_filesystem=filesystem)

    def pull(self, path: str | os.PathLike, into: str | os.PathLike | None = None) -> bool:
        """Copy the file or folder that ``path`` stands for from under the URI to ``into`` (default ``path``).

        Returns:
            False when the URI has nothing there (nothing is written then).
        """
        filesystem, remote = self._remote(path)
        kind = filesystem.get_file_info(remote).type
        if kind == pafs.FileType.NotFound:
            return False
        into = Path(into or path)
        (into if kind == pafs.FileType.Directory else into.parent).mkdir(parents=True, exist_ok=True)
        pafs.copy_files(remote, str(into.resolve()), source_filesystem=filesystem,
                        destination_filesystem=pafs.LocalFileSystem())
        return True

    def delete(self, path: str | os.PathLike) -> None:
        """Remove the copy of the file or folder ``path`` under the URI (nothing happens when there is none)."""
        filesystem, remote = self._remote(path)
        kind = filesystem.get_file_info(remote).type
        if kind == pafs.FileType.Directory:
            filesystem.delete_dir(remote)
        elif kind == pafs.FileType.File:
            filesystem.delete_file(remote)


_MIRRORS: dict[str, Mirror] = {}


def share(local: str | os.PathLike, uri: str) -> Mirror:
    """Keep what this process writes under ``local`` also under ``uri`` (see the module docstring); the study,
    each trial and each dense fine-tune task call it for the study's local folder. Idempotent."""
    mirror = Mirror(os.path.abspath(local), uri)
    _MIRRORS[mirror.local] = mirror
    return mirror


def mirror_for(path: str | os.PathLike) -> Mirror | None:
    """The mirror ``path`` lies in, or ``None`` (a purely local path)."""
    return next((m for m in _MIRRORS.values() if m.covers(path)), None)


def push(path: str | os.PathLike) -> None:
    """Upload ``path`` when it lies in a mirrored folder; nothing otherwise."""
    mirror = mirror_for(path)
    if mirror is not None:
        mirror.push(path)


def pull(path: str | os.PathLike, into: str | os.PathLike | None = None) -> bool:
    """Download ``path`` (to ``into``) when it lies in a mirrored folder and the URI has it.

    Returns:
        whether something was downloaded.
    """
    mirror = mirror_for(path)
    return mirror is not None and mirror.pull(path, into)


def available(path: str | os.PathLike) -> bool:
    """Whether the file ``path`` is on this node, after downloading it if a mirror has it."""
    return Path(path).exists() or pull(path)
