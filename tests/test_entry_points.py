"""Every entry point speaks the study's language and answers --help at once (issue 29, point 5): each command's
--help exits 0 without importing torch, Ray, MLflow, transformers, datasets or Optuna; compare and multitask take
--storage-path and --mlflow-uri as a study declares them; compare prints the verdicts; the methods' snapshot that
--help reads is the registry's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "ray", "mlflow", "transformers", "datasets", "optuna")

#: Each command line as a user types it (module, arguments before --help); supertickets runs search.console.
COMMANDS = {
    "python -m search.run": ("search.run", []),
    "python -m search.compare": ("search.compare", []),
    "python -m search.export": ("search.export", []),
    "python -m search.multitask": ("search.multitask", []),
    "python -m search.importance_check": ("search.importance_check", []),
    "supertickets": ("search.console", []),
    "supertickets compare": ("search.console", ["compare"]),
    "supertickets export": ("search.console", ["export"]),
    "supertickets multitask": ("search.console", ["multitask"]),
}

#: Runs a module as ``python -m`` does with ``--help``, then prints the exit code and the heavy modules imported.
PROBE = """
import json, runpy, sys
module, argv, heavy = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
sys.argv = [module, *argv, "--help"]
code = 0
try:
    runpy.run_module(module, run_name="__main__", alter_sys=True)
except SystemExit as done:
    code = done.code or 0
print(json.dumps({"code": code, "heavy": [m for m in heavy if m in sys.modules]}), file=sys.stderr)
"""


def _env() -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("SUPERTICKETS_METHODS", None)
    return env


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_exits_0_and_imports_nothing_heavy(command):
    module, argv = COMMANDS[command]
    done = subprocess.run([sys.executable, "-c", PROBE, module, json.dumps(argv), json.dumps(HEAVY)], cwd=ROOT,
                          env=_env(), capture_output=True, text=True, timeout=120)
    result = json.loads(done.stderr.strip().splitlines()[-1])
    assert result["code"] == 0, done.stderr
    assert done.stdout.startswith("usage: "), done.stdout[:300]
    assert result["heavy"] == [], f"{command} --help imports {result['heavy']}: defer them past parsing"


def test_the_console_script_lists_every_sub_command_and_shows_its_help():
    from search.console import COMMANDS as SUB

    script = Path(sys.executable).with_name("supertickets")
    run = [str(script)] if script.exists() else [sys.executable, "-m", "search.console"]
    out = subprocess.run([*run, "--help"], capture_output=True, text=True, timeout=120, env=_env(), cwd=ROOT)
    assert out.returncode == 0 and all(f"  {name} " in out.stdout for name in SUB)
    for name in SUB:
        out = subprocess.run([*run, name, "--help"], capture_output=True, text=True, timeout=120, env=_env(), cwd=ROOT)
        assert out.returncode == 0 and "--mlflow-uri" in out.stdout, (name, out.stderr[-500:])


def test_the_methods_snapshot_is_the_registrys(monkeypatch):
    """``search/cli/builtin_methods.py`` (what --help reads instead of importing every method) is what
    ``python -m search.cli.method_facts`` writes from the registry now."""
    from search.cli import method_facts

    monkeypatch.delenv(method_facts.PLUGINS_ENV, raising=False)
    from trainables.pruning import registry

    assert registry.PLUGINS_ENV == method_facts.PLUGINS_ENV
    expected = method_facts.snapshot_text(*method_facts.from_registry())
    assert method_facts.SNAPSHOT.read_text() == expected, (
        "search/cli/builtin_methods.py is out of date: run python -m search.cli.method_facts")


def test_the_study_parser_from_the_snapshot_is_the_one_from_the_registry():
    """Built without the registry (in a fresh process), the study's --help says what it says with it."""
    code = ("import os, sys\nfrom search.cli.study_command import parser\ntext = parser().format_help()\n"
            "assert 'trainables.pruning.registry' not in sys.modules\nimport trainables.pruning.registry\n"
            "print(text == parser().format_help())")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**_env(), "COLUMNS": "120"},
                          capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "True", done.stderr[-2000:]


def _store_actions(parser) -> dict:
    return {a.dest: a for a in parser._actions if a.dest in ("storage_path", "mlflow_uri")}


@pytest.mark.parametrize("tool", ["compare", "multitask"])
def test_compare_and_multitask_take_the_studys_storage_and_mlflow_flags(tool):
    from search.cli.flags import FLAGS
    from search.cli.study_command import parser as study_parser

    if tool == "compare":
        from search.tools.compare import parser
        argv = ["first"]
    else:
        from search.multitask.settings import parser
        argv = ["--tasks", "rte,mrpc"]
    ours, study = _store_actions(parser()), _store_actions(study_parser())
    assert set(ours) == {"storage_path", "mlflow_uri"}
    for name in ours:  # the same flag, default and declared help (a command adds what it does with it)
        assert ours[name].option_strings == study[name].option_strings
        assert ours[name].default == study[name].default
        assert ours[name].help.startswith(FLAGS[name].help.split(" (default")[0].split("{")[0])
    args = parser().parse_args([*argv, "--storage-path", "/data/results", "--mlflow-uri", "sqlite:////data/m.db"])
    assert (args.storage_path, args.mlflow_uri) == ("/data/results", "sqlite:////data/m.db")


def test_the_study_resolves_its_storage_as_every_command_does(tmp_path, monkeypatch):
    from search.cli.flags import resolve_storage
    from search.errors import UsageError

    monkeypatch.chdir(tmp_path)
    assert resolve_storage("results") == (str(tmp_path / "results"), str(tmp_path / "results"))
    uri, local = resolve_storage("s3://bucket/prefix/")
    assert uri == "s3://bucket/prefix" and local == str(Path("~/.cache/supertickets/s3-bucket_prefix").expanduser())
    assert resolve_storage("s3://bucket/prefix", "cache")[1] == str(tmp_path / "cache")
    with pytest.raises(UsageError, match="--storage-path is empty"):
        resolve_storage(" ")


@pytest.fixture
def moved_studies(tmp_path):
    """Two finished studies (files only, and their runs) whose MLflow store has moved since they ran: each state
    names ``moved-away.db``, the runs are in ``here.db``. One summary holds the study's verdict lines, the other
    none (its parent run's ``verdict.line`` tag says it)."""
    from mlflow.tracking import MlflowClient

    from search.study.state import StudyState
    from search.verdict.analysis import ticket_from_report
    from trainables.config import TrialConfig

    client = MlflowClient(f"sqlite:///{tmp_path}/here.db")
    experiment = client.create_experiment("supertickets-rte")
    storage = tmp_path / "results"
    for name, lines in (("one", ["Super ticket: structured s=0.30, +1.2 points", "the study's second line"]),
                        ("two", None)):
        parent = client.create_run(experiment, run_name=name, tags={"supertickets.study": name,
                                                                      "verdict.line": f"{name}: the parent's tag"})
        dense = client.create_run(experiment, run_name="dense", tags={"mlflow.parentRunId": parent.info.run_id})
        client.log_metric(dense.info.run_id, "dev_score", 0.5)
        StudyState(parent.info.run_id, f"sqlite:///{tmp_path}/moved-away.db").write(storage / name)
        trial = ticket_from_report("t1", dense.info.run_id, TrialConfig(0.0, "structured"), None, "FINISHED")
        summary = {"settings": {"task": "rte"}, "trials": [trial.to_dict()]}
        if lines:
            summary["verdict"] = {"kind": "super", "lines": lines}
        (storage / name / "summary.json").write_text(json.dumps(summary))
    return tmp_path


def test_compare_reads_the_store_mlflow_uri_names_and_prints_every_verdict(moved_studies, capsys):
    from search.tools.compare import main as compare

    storage, out = str(moved_studies / "results"), str(moved_studies / "out")
    assert compare(["one", "two", "--storage-path", storage, "--out", out]) == 2  # the recorded store is gone
    assert "no MLflow database at" in capsys.readouterr().err
    assert compare(["one", "two", "--storage-path", storage, "--out", out,
                    "--mlflow-uri", f"sqlite:///{moved_studies}/here.db"]) == 0
    printed = capsys.readouterr().out
    assert "Verdict over the compared studies" in printed and "No verdict: the dense model's trial" in printed
    assert "Study one's own verdict: Super ticket: structured s=0.30, +1.2 points" in printed
    assert "the study's second line" in printed
    assert "Study two's own verdict: two: the parent's tag" in printed
    written = (moved_studies / "out" / "comparison.md").read_text()
    assert "Study one's own verdict: Super ticket" in written
    assert compare(["one", "--storage-path", storage, "--out", out, "--mlflow-uri",
                    f"sqlite:///{moved_studies}/nowhere.db"]) == 2
    assert "no MLflow database at" in capsys.readouterr().err


def test_multitask_reads_the_store_mlflow_uri_names(tmp_path, model_dir, glue_dir, capsys, monkeypatch):
    from search.multitask.command import main

    monkeypatch.chdir(tmp_path)
    flags = ["--tasks", "rte,mrpc", "--model", model_dir, "--glue-dir", glue_dir, "--storage-path",
             str(tmp_path / "results")]
    assert main([*flags, "--mlflow-uri", f"sqlite:///{tmp_path}/elsewhere/mlflow.db"]) == 2
    assert f"no MLflow database at {tmp_path}/elsewhere/mlflow.db" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
