"""Where a study's model and GLUE data come from when no flag says.

Resolution order, first hit wins, and the study prints which one it used:

1. the flag (``--model``, ``--glue-dir``, a method's path option such as ``--tamt-corpus``);
2. the environment (``SUPERTICKETS_MODEL``, ``GLUE_DIR``, the option's variable, e.g. ``SUPERTICKETS_TAMT_CORPUS``);
3. ``supertickets.toml`` in the working directory (or the file ``SUPERTICKETS_CONFIG`` names), keys
   ``model``, ``glue_dir`` and the option's name (``tamt_corpus``); relative paths are relative to that file. The README's set-up copies
   ``configs/offline-shared.toml`` there, which points at ``../shared`` (no hub needed);
4. the papers' defaults from the hub: ``bert-base-uncased`` and ``nyu-mll/glue``.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from search.errors import UsageError
from trainables.tasks import HUB_DATASET

HUB_MODEL = "bert-base-uncased"
CONFIG_FILE = "supertickets.toml"


@dataclass(frozen=True)
class Resolved:
    """A resolved default: its ``value`` (``None`` = the hub) and where it came from (``source``)."""

    value: str | None
    source: str


def _config() -> tuple[dict, Path | None]:
    path = Path(os.environ.get("SUPERTICKETS_CONFIG", CONFIG_FILE))
    if not path.is_file():
        if "SUPERTICKETS_CONFIG" in os.environ:
            raise UsageError(f"config file {path} (SUPERTICKETS_CONFIG) not found: fix the path or unset it")
        return {}, None
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"config file {path} is not valid TOML ({err}): fix it or remove it") from None
    check_config_keys(config, path)
    return config, path.resolve()


def config_keys() -> tuple[str, ...]:
    """The keys ``supertickets.toml`` may hold: ``model``, ``glue_dir`` and every method's path option."""
    from trainables.pruning.registry import all_options

    return ("model", "glue_dir", *sorted(name for name, option in all_options().items() if option.path))


def check_config_keys(config: dict, path: Path) -> None:
    """Every key of the config file is one ``config_keys`` names, and its value a non-empty string (a path or hub
    id): a misspelt key would otherwise be ignored and the study would silently use another default.

    Raises:
        UsageError: the first unknown key (with the closest known one) or a value of another type.
    """
    import difflib

    known = config_keys()
    for key, value in config.items():
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise UsageError(f"config file {path} has an unknown key {key!r}: {hint}it may hold {', '.join(known)}")
        if not isinstance(value, str) or not value.strip():
            raise UsageError(f"config file {path}: {key} = {value!r} must be a non-empty string (a path or hub id), "
                             f'e.g. {key} = "../shared/..."')


def _resolve(flag: str | None, env: str, key: str, fallback: str | None, fallback_source: str) -> Resolved:
    if flag:
        return Resolved(flag, "flag")
    if os.environ.get(env):
        return Resolved(os.environ[env], f"${env}")
    config, path = _config()
    if config.get(key):
        value = config[key]
        if not os.path.isabs(value) and (value.startswith(".") or os.sep in value):
            value = str((path.parent / value).resolve())
        return Resolved(value, str(path))
    return Resolved(fallback, fallback_source)


def resolve_model(flag: str | None) -> Resolved:
    """The checkpoint a study fine-tunes (hub id or local directory)."""
    return _resolve(flag, "SUPERTICKETS_MODEL", "model", HUB_MODEL, "papers' default (hub)")


def resolve_path_option(name: str, flag: str | None, default: str) -> Resolved:
    """A method option that names a file or folder (e.g. ``tamt_corpus``): flag, ``$SUPERTICKETS_<NAME>``,
    ``supertickets.toml``'s ``<name>``, else ``default`` relative to the working directory."""
    return _resolve(flag, f"SUPERTICKETS_{name.upper()}", name, default, "default (relative to the working directory)")


def resolve_glue_dir(flag: str | None) -> Resolved:
    """The classic GLUE directory, or ``None`` for the hub's ``nyu-mll/glue``."""
    return _resolve(flag, "GLUE_DIR", "glue_dir", None, f"papers' default (hub {HUB_DATASET})")
