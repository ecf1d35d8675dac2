"""Every pruning method, by ``--method`` name: one ``PruningMethod`` per line (``trainables.pruning.method``).

A method of your own is one module defining ``METHOD`` (its ``make_ticket``, mask type and options): add a line
below, or, without editing this package, name the module in ``$SUPERTICKETS_METHODS`` (comma-separated module
names or ``.py`` paths). The study forwards that variable to its Ray workers, so the trials find the method too.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

from trainables.pruning import imp, magnitude, structured, tamt
from trainables.pruning.method import Option, PruningMethod

METHODS: dict[str, PruningMethod] = {method.name: method for method in (
    structured.METHOD,
    magnitude.METHOD,
    imp.METHOD,
    tamt.METHOD,
)}

#: Modules (names or ``.py`` paths, comma-separated) whose ``METHOD`` joins the registry.
PLUGINS_ENV = "SUPERTICKETS_METHODS"
_loaded: set[str] = set()


def register(method: PruningMethod) -> None:
    """Add ``method`` to the registry under ``method.name`` (replacing a method of that name)."""
    METHODS[method.name] = method


def _module(entry: str):
    if entry.endswith(".py"):
        path = Path(entry).expanduser().resolve()
        spec = importlib.util.spec_from_file_location(f"supertickets_method_{path.stem}", path)
        if spec is None or not path.is_file():
            raise ImportError(f"no file {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # as an import would: dataclasses and pickling look the module up there
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(entry)


def load_plugins() -> None:
    """Register the ``METHOD`` of every module ``$SUPERTICKETS_METHODS`` names (each once per process).

    Raises:
        ValueError: a named module cannot be loaded or defines no ``PruningMethod`` called ``METHOD``.
    """
    for entry in filter(None, (e.strip() for e in os.environ.get(PLUGINS_ENV, "").split(","))):
        if entry in _loaded:
            continue
        try:
            method = getattr(_module(entry), "METHOD", None)
        except ImportError as err:
            raise ValueError(f"${PLUGINS_ENV} names {entry!r}, which cannot be imported ({err}): fix the module "
                             "name or the .py path") from None
        if not isinstance(method, PruningMethod):
            raise ValueError(f"${PLUGINS_ENV} names {entry!r}, which defines no PruningMethod called METHOD")
        register(method)
        _loaded.add(entry)


def plugins_for_workers() -> str:
    """``$SUPERTICKETS_METHODS`` with every ``.py`` path made absolute, for processes that start elsewhere (Ray's
    workers run in their trial folders)."""
    entries = filter(None, (e.strip() for e in os.environ.get(PLUGINS_ENV, "").split(",")))
    return ",".join(str(Path(e).expanduser().resolve()) if e.endswith(".py") else e for e in entries)


def all_methods() -> dict[str, PruningMethod]:
    """Every method by name, the plugins of ``$SUPERTICKETS_METHODS`` included.

    Raises:
        ValueError: a plugin cannot be loaded (``load_plugins``).
    """
    load_plugins()
    return METHODS


def all_options() -> dict[str, Option]:
    """Every method's options by name (a shared option, such as ``prune_pooler``, once)."""
    return {option.name: option for method in all_methods().values() for option in method.options}


def get_method(name: str) -> PruningMethod:
    """The method called ``name``.

    Raises:
        ValueError: unknown method.
    """
    methods = all_methods()
    if name not in methods:
        raise ValueError(f"unknown method {name!r}: choose one of {', '.join(methods)}")
    return methods[name]
