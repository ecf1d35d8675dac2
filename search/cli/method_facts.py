"""What ``--help`` says about the pruning methods, without importing them.

Every method module imports torch (and the method registry, ``trainables.pruning.registry``, imports them all:
about 4 s), so a command's parser reads the few facts its help and flags need (names, summaries, default sparsity
ranges, controls, options) from ``search.cli.builtin_methods``, a snapshot of the registry's built-in methods
that this module writes. The registry itself is read instead when it is loaded already (a test registered a
method in-process) or when ``$SUPERTICKETS_METHODS`` names plugins (their methods must show): then ``--help``
waits for torch.

After changing a method's name, summary, sparsity range, controls or options, write the snapshot again::

    python -m search.cli.method_facts

``tests/test_entry_points.py`` fails while it is out of date.
"""

from __future__ import annotations

import os
import pprint
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: ``trainables.pruning.registry.PLUGINS_ENV`` (not imported: that is the import this module avoids).
PLUGINS_ENV = "SUPERTICKETS_METHODS"
REGISTRY = "trainables.pruning.registry"
SNAPSHOT = Path(__file__).with_name("builtin_methods.py")
#: Option types by name (the snapshot stores the name).
TYPES = {"str": str, "int": int, "float": float, "bool": bool}


@dataclass(frozen=True)
class MethodFacts:
    """What the command line shows of a ``PruningMethod``: its name, one-line summary, default sparsity range
    ``(low, high, step)`` on any task (``sparsity_for(None)``) and controls."""

    name: str
    summary: str
    sparsity: tuple[float, float, float]
    controls: tuple[str, ...]


@dataclass(frozen=True)
class OptionFacts:
    """What the command line needs of a method ``Option``: its flag, type (by name), default, help, choices, and
    the methods that have it (``owners``)."""

    name: str
    type: str
    default: Any
    help: str
    choices: tuple | None
    owners: tuple[str, ...]

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def python_type(self) -> type:
        return TYPES[self.type]


def from_registry() -> tuple[dict[str, MethodFacts], dict[str, OptionFacts]]:
    """The facts of every method the registry holds (plugins of ``$SUPERTICKETS_METHODS`` included).

    Raises:
        ValueError: a plugin cannot be loaded.
    """
    from trainables.pruning.registry import all_methods, all_options

    methods = all_methods()
    facts = {name: MethodFacts(name, m.summary, tuple(m.sparsity_for(None)), tuple(m.controls))
             for name, m in methods.items()}
    options = {name: OptionFacts(name, o.type.__name__, o.default, o.help, o.choices,
                                 tuple(m for m, method in methods.items() if o in method.options))
               for name, o in all_options().items()}
    return facts, options


def method_facts() -> tuple[dict[str, MethodFacts], dict[str, OptionFacts]]:
    """The methods and their options, by name, in the registry's order: from the snapshot, unless the registry is
    loaded already or ``$SUPERTICKETS_METHODS`` names plugins (then from the registry).

    Raises:
        ValueError: a plugin cannot be loaded.
    """
    if REGISTRY in sys.modules or os.environ.get(PLUGINS_ENV, "").strip():
        return from_registry()
    from search.cli.builtin_methods import METHODS, OPTIONS

    return ({m["name"]: MethodFacts(**{**m, "sparsity": tuple(m["sparsity"]), "controls": tuple(m["controls"])})
             for m in METHODS},
            {o["name"]: OptionFacts(**{**o, "owners": tuple(o["owners"])}) for o in OPTIONS})


def snapshot_text(methods: dict[str, MethodFacts], options: dict[str, OptionFacts]) -> str:
    """The source of ``search/cli/builtin_methods.py`` for these facts."""
    def listing(name, items):
        return f"{name} = " + pprint.pformat([asdict(i) for i in items], width=116, sort_dicts=False) + "\n"

    return ('"""The built-in pruning methods as the command line shows them: written by ``python -m '
            'search.cli.method_facts``\nfrom ``trainables.pruning.registry`` (do not edit; tests/test_entry_points.py '
            'checks it is up to date)."""\n\n'
            + listing("METHODS", methods.values()) + "\n" + listing("OPTIONS", options.values()))


def main() -> int:
    """Write the snapshot from the registry (plugins of ``$SUPERTICKETS_METHODS`` left out)."""
    os.environ.pop(PLUGINS_ENV, None)
    SNAPSHOT.write_text(snapshot_text(*from_registry()))
    print(f"written {SNAPSHOT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
