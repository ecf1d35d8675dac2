"""Each study flag is declared once: the parser, its help, budget defaults and range checks come from it."""

import argparse
from dataclasses import replace

import pytest

from search.cli import flags
from search.cli.study_command import parser
from search.errors import UsageError
from spaces.budgets import BUDGETS
from trainables.finetune import PRECISIONS


def _help(name: str, prog: parser = parser) -> str:
    action = next(a for a in prog()._actions if a.dest == name)
    return action.help


def test_help_reads_its_defaults_and_budget_values_from_the_declarations(monkeypatch):
    assert "smoke 2, paper 6 (3 on sst2, qnli, mnli, qqp)" in _help("epochs")
    assert "smoke 500, paper all" in _help("max_train_examples")
    monkeypatch.setitem(BUDGETS, "smoke", replace(BUDGETS["smoke"], seeds=7, max_train_examples=900))
    assert "smoke 7, paper 5" in _help("seeds")  # a budget changed: the help follows, nothing else to edit
    assert "smoke: 900 training examples" in _help("budget")
    assert "(default 0.95)" in _help("confidence") and "(default 0.01 = 1 point)" in _help("match_tolerance")
    assert "structured 0.6, magnitude 0.9" in _help("sparsity_max")  # from the method registry


def test_declared_choices_and_ranges_are_what_the_study_checks():
    assert flags.FLAGS["precision"].choices == PRECISIONS
    args = argparse.Namespace(seeds=None, epochs=0)
    assert flags.value(args, "seeds", BUDGETS["smoke"], "rte") == BUDGETS["smoke"].seeds
    with pytest.raises(UsageError, match="^--epochs 0 must be at least 1$"):
        flags.value(args, "epochs", BUDGETS["smoke"], "rte")
    with pytest.raises(UsageError, match=r"^--max-train-examples -1 must be at least 0 \(0: all examples\)$"):
        flags.value(argparse.Namespace(max_train_examples=-1), "max_train_examples")
    assert {f.flag for f in flags.STUDY_FLAGS} <= {o for a in parser()._actions for o in a.option_strings}
