"""The architecture the folders show: imports run one way, and a study saved under the old module paths loads."""

import ast
import pickle
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Who may import whom: a package imports only those below it (search -> spaces -> trainables).
LAYERS = {"trainables": set(), "spaces": {"trainables"}, "search": {"spaces", "trainables"}}
#: Inside search/: the entry points over the study, the study over strategy, verdict and records.
SEARCH_LAYERS = {"verdict": set(), "records": set(), "strategy": {"verdict"},
                 "study": {"strategy", "verdict", "records"},
                 "cli": {"study", "strategy", "verdict", "records"}}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_packages_import_only_the_layers_below(package):
    own = set(LAYERS)
    for path in (ROOT / package).rglob("*.py"):
        for name in _imports(path):
            top = name.split(".")[0]
            assert top not in own or top == package or top in LAYERS[package], f"{path.relative_to(ROOT)} imports {name}"


@pytest.mark.parametrize("part", sorted(SEARCH_LAYERS))
def test_search_sub_packages_import_down_only(part):
    for path in (ROOT / "search" / part).rglob("*.py"):
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "search" and len(parts) > 1 and parts[1] in SEARCH_LAYERS and parts[1] != part:
                assert parts[1] in SEARCH_LAYERS[part], f"{path.relative_to(ROOT)} imports {name}"


def test_a_search_pickled_under_the_old_module_paths_loads():
    from search.strategy.policy import Outcome
    from trainables.config import TrialConfig

    saved = pickle.dumps(Outcome({"sparsity": 0.3}, TrialConfig(0.3), "complete", None), protocol=2)  # names as text
    old = saved.replace(b"search.strategy.policy", b"search.policy")  # as a study started before the split saved it
    assert old != saved and pickle.loads(old) == Outcome({"sparsity": 0.3}, TrialConfig(0.3), "complete", None)
