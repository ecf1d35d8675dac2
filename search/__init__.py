"""The application: command line, study orchestration, search strategy, verdict, records, multitask and tools.

A study started before ``search/`` was split into sub-packages saved its searcher, scheduler and callbacks (Ray
Tune pickles them) under the old module paths; ``MOVED`` maps those paths to today's, so ``--resume`` of such a
study still loads them. Nothing else imports the old paths.
"""

import importlib
import importlib.abc
import importlib.util
import sys

#: Module paths before the split -> where the module lives now.
MOVED = {f"search.{old}": f"search.{new}" for old, new in {
    "study": "study.orchestrate", "state": "study.state", "weights": "study.weights", "progress": "study.progress",
    "searcher": "strategy.searcher", "policy": "strategy.policy", "racing": "strategy.racing",
    "statistics": "verdict.statistics", "analysis": "verdict.analysis", "report": "verdict.report",
    "tracking": "records.tracking", "optuna_storage": "records.optuna_storage", "sqlite_uri": "records.sqlite_uri",
    "settings": "cli.settings", "defaults": "cli.defaults", "preflight": "cli.preflight",
    "multitask_report": "multitask.report", "shared_tickets": "multitask.shared_tickets",
}.items()}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old module path of ``MOVED`` only when it is imported (by the unpickler): the module is today's."""

    def find_spec(self, name, path, target=None):
        return importlib.util.spec_from_loader(name, self) if name in MOVED else None

    def create_module(self, spec):
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module):
        pass


sys.meta_path.append(_MovedModules())
