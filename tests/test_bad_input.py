"""Every bad input: one line naming the problem and the fix, exit code 2, no traceback, nothing created."""

import json
import os
import subprocess
import sys

import pytest

from search.run import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in ("GLUE_DIR", "SUPERTICKETS_MODEL", "SUPERTICKETS_CONFIG", "SUPERTICKETS_TAMT_CORPUS", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


@pytest.fixture
def gpt2_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("gpt2")
    (path / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 2, "n_head": 2, "n_embd": 8}))
    return str(path)


def _cases(model_dir, glue_dir, gpt2_dir):
    ok = ["--model", model_dir, "--glue-dir", glue_dir, "--budget", "smoke"]
    return {
        "unknown task": (["--task", "squad", *ok], "unknown task 'squad'"),
        "unknown method": (["--task", "rte", "--method", "snip", *ok], "unknown method 'snip'"),
        "unknown control": (["--task", "rte", "--control", "worst", *ok], "unknown control 'worst'"),
        "unknown rewinding point": (["--task", "rte", "--rewind", "halfway", *ok], "unknown rewinding point 'halfway'"),
        "sparsity above 1": (["--task", "rte", "--sparsity-max", "1.2", *ok], "must lie in [0, 1)"),
        "sparsity in percent": (["--task", "rte", "--sparsity-max", "30", *ok], "not percent"),
        "negative sparsity": (["--task", "rte", "--sparsity-min", "-0.1", *ok], "must lie in [0, 1)"),
        "inverted range": (["--task", "rte", "--sparsity-min", "0.5", "--sparsity-max", "0.2", *ok], "inverted"),
        "missing GLUE dir": (["--task", "rte", "--model", model_dir, "--glue-dir", "/no/such/glue"],
                             "GLUE directory /no/such/glue not found"),
        "missing model path": (["--task", "rte", "--model", "/no/such/model", "--glue-dir", glue_dir],
                               "model path /no/such/model not found"),
        "not an encoder": (["--task", "rte", "--model", gpt2_dir, "--glue-dir", glue_dir],
                           "'gpt2' is not a supported encoder"),
        "bad flag value": (["--task", "rte", "--seeds", "two", *ok], "invalid int value"),
        "zero seeds": (["--task", "rte", "--seeds", "0", *ok], "--seeds 0 must be at least 1"),
        "control a method lacks": (["--task", "rte", "--method", "imp", "--control", "random", *ok],
                                   "--control random does not apply to --method imp"),
        "option of another method": (["--task", "rte", "--imp-rate", "0.2", *ok],
                                     "--imp-rate applies to --method imp, not structured"),
        "IMP rate above 1": (["--task", "rte", "--method", "imp", "--imp-rate", "10", *ok],
                             "IMP rate 10.0 must be a fraction in (0, 1)"),
        "step 0": (["--task", "rte", "--rewind", "pretrained,step:0", *ok], "unknown rewinding point 'step:0'"),
        "missing corpus": (["--task", "rte", "--method", "tamt", "--tamt-corpus", "/no/such/text", *ok],
                           "TAMT corpus /no/such/text not found"),
        "confidence in percent": (["--task", "rte", "--confidence", "95", *ok], "--confidence 95.0 must be a fraction"),
        "tolerance in points": (["--task", "rte", "--match-tolerance", "2", *ok],
                                "--match-tolerance 2.0 must be a fraction in [0, 1)"),
        "unknown scheduler": (["--task", "rte", "--scheduler", "hyperband", *ok], "invalid choice: 'hyperband'"),
        "unknown search": (["--task", "rte", "--search", "bohb", *ok], "invalid choice: 'bohb'"),
        "zero concurrent trials": (["--task", "rte", "--concurrent-trials", "0", *ok],
                                   "--concurrent-trials 0 must be at least 1"),
        "zero CPUs per trial": (["--task", "rte", "--cpus-per-trial", "0", *ok], "--cpus-per-trial 0 must be above 0"),
        "MLM without a head": (["--task", "rte", "--method", "tamt", "--tamt-objective", "mlm", "--tamt-corpus",
                                os.path.join(os.path.dirname(glue_dir), "wikitext-2"), *ok],
                               "has no masked-LM head"),
    }


@pytest.mark.parametrize("case", ["unknown task", "unknown method", "unknown control", "unknown rewinding point",
                                  "sparsity above 1", "sparsity in percent", "negative sparsity", "inverted range",
                                  "missing GLUE dir", "missing model path", "not an encoder", "bad flag value",
                                  "zero seeds", "control a method lacks", "option of another method",
                                  "IMP rate above 1", "step 0", "missing corpus", "MLM without a head",
                                  "confidence in percent", "tolerance in points", "unknown scheduler",
                                  "unknown search", "zero concurrent trials", "zero CPUs per trial"])
def test_bad_input_gets_one_line_and_exit_2(case, workdir, capsys, model_dir, glue_dir, gpt2_dir):
    argv, expected = _cases(model_dir, glue_dir, gpt2_dir)[case]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and expected in err, err
    assert list(workdir.iterdir()) == []  # no mlflow.db, no results folder, nothing half-written


def test_cli_exit_code_and_no_traceback(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ROOT}
    done = subprocess.run([sys.executable, "-m", "search.run", "--task", "squad"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and done.stderr.strip().count("\n") == 0
    assert list(tmp_path.iterdir()) == []


def test_help_explains_the_defaults():
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0


@pytest.mark.parametrize("argv, expected", [
    (["--grid", "/no/such/grid.json"], "grid file /no/such/grid.json not found"),
    (["--grid", "README.md"], "is not a grid written by benchmarks.record_grid"),
    (["--match-tolerance", "0.01,"], "is not a list of fractions in [0, 1)"),
    (["--match-tolerance", "2"], "is not a list of fractions in [0, 1)"),
    (["--search-seeds", "0"], "--search-seeds 0 must be at least 1"),
    (["--confidence", "95"], "--confidence 95.0 must be a fraction"),
])
def test_the_benchmark_rejects_bad_input_in_one_line(argv, expected, capsys, monkeypatch):
    from benchmarks.search_efficiency import main as benchmark

    monkeypatch.chdir(ROOT)
    assert benchmark(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and expected in err, err


def test_a_floor_that_makes_the_sparsity_range_unreachable_is_refused_before_anything_starts(
        workdir, model_dir, glue_dir, capsys):
    code = main(["--task", "rte", "--model", model_dir, "--glue-dir", glue_dir, "--budget", "smoke", "--method",
                 "magnitude", "--min-keep-per-matrix", "0.9", "--sparsity-min", "0.5", "--sparsity-max", "0.5"])
    assert code == 2 and "--min-keep-per-matrix keeps 0.9" in capsys.readouterr().err
    assert list(workdir.iterdir()) == []
