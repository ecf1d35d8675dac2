"""Every bad input to the tools beside the study (compare, export, the importance check, the multi-task study, the
benchmarks): exit code 2, one line on stderr naming the problem and the fix, nothing on stdout before or after it,
no traceback, nothing created (in the working folder or in the folders the flags point at)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from search.cli.preflight import RESERVED_NAMES, check_study_name
from search.errors import UsageError


def _tool(name):
    """The in-process entry point of a command line, imported when a case calls it."""
    def call(argv):
        if name == "compare":
            from search.tools.compare import main
        elif name == "supertickets":
            from search.console import main
        elif name == "export":
            from search.tools.export import main
        elif name == "importance":
            from search.tools.importance_check import main
        elif name == "multitask":
            from search.multitask.command import main
        elif name == "run":
            from search.cli.study_command import main
        else:
            main = __import__(f"benchmarks.{name}", fromlist=["main"]).main
        return main(argv)
    return call


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty working folder, with no setting read from the environment."""
    monkeypatch.chdir(tmp_path)
    for var in ("GLUE_DIR", "SUPERTICKETS_MODEL", "SUPERTICKETS_CONFIG", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """What the flags point at, outside every test's working folder: a storage folder of studies (finished ones of
    two tasks, an unfinished one, one with a broken summary, ones whose MLflow store or run is gone), an MLflow
    store (a run that is no trial, a study whose verdict named no ticket, of task MRPC and not finished), files
    that are no MLflow database, a non-empty folder, an existing output file, a file where a folder belongs."""
    from mlflow.tracking import MlflowClient

    from search.study.state import StudyState
    from search.verdict.analysis import ticket_from_report
    from trainables.config import TrialConfig

    root = tmp_path_factory.mktemp("world")
    db = root / "mlflow.db"
    client = MlflowClient(f"sqlite:///{db}")
    experiment = client.create_experiment("supertickets-mrpc")
    trial = client.create_run(experiment, run_name="not a trial")
    study = client.create_run(experiment, run_name="plain", tags={"supertickets.study": "plain", "role": "study"})
    client.log_param(study.info.run_id, "task", "mrpc")
    storage = root / "results"

    def stored(name, task=None, tracking=f"sqlite:///{db}", run_id=None, summary=None):
        StudyState("parent", tracking).write(storage / name)
        trials = [] if run_id is None else [
            ticket_from_report("t1", run_id, TrialConfig(0.0, "structured"), None, "FINISHED").to_dict()]
        if task or summary is not None:
            text = summary if summary is not None else json.dumps({"settings": {"task": task}, "trials": trials})
            (storage / name / "summary.json").write_text(text)

    stored("finished-rte", "rte")
    stored("finished-mrpc", "mrpc")
    stored("unfinished")
    stored("broken-summary", summary="")
    stored("store-gone", "rte", tracking=f"sqlite:///{root}/gone/mlflow.db", run_id="0" * 32)
    stored("run-gone", "rte", run_id="f" * 32)
    (root / "empty.db").write_text("")
    (root / "not-a-db").write_text("a text file, not a database\n")
    (root / "full").mkdir()
    (root / "full" / "keep.txt").write_text("the user's")
    (root / "grid.json").write_text("{}")
    (root / "a-file").write_text("not a folder")
    return {"root": str(root), "db": f"sqlite:///{db}", "storage": str(storage), "file": str(root / "a-file"),
            "trial": trial.info.run_id, "new": str(root / "new-out")}


def _snapshot(root: str) -> dict:
    """Every path under ``root`` with its size and modification time."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in Path(root).rglob("*")}


def _cases(w: dict, model_dir: str, glue_dir: str) -> dict:
    """Case name -> (tool, argv, a fragment of the expected message)."""
    S, db, f, new, root = w["storage"], w["db"], w["file"], w["new"], w["root"]
    at = ["--storage-path", S]
    mt = ["--model", model_dir, "--glue-dir", glue_dir, "--storage-path", f"{root}/mt", "--mlflow-uri", db]
    imp = ["--task", "rte", "--model", model_dir, "--glue-dir", glue_dir, "--budget", "smoke"]
    run = ["--task", "rte", "--model", model_dir, "--glue-dir", glue_dir, "--budget", "smoke"]
    ex = ["--out", new, "--mlflow-uri", db]
    long = [c * 100 for c in "abc"]
    return {
        # python -m search.compare / supertickets compare
        "compare: no study named": ("compare", at, "the following arguments are required: studies"),
        "compare: unknown flag": ("compare", ["finished-rte", *at, "--output", new], "unrecognized arguments: --output"),
        "compare: study name ../x": ("compare", ["../x", *at], "study '../x' must be one folder name"),
        "compare: study name an absolute path": ("compare", ["/tmp/x", *at], "study '/tmp/x' must be one folder name"),
        "compare: study name a/b": ("compare", ["a/b", *at], "study 'a/b' must be one folder name"),
        "compare: study named like the cache": ("compare", ["cache", *at], "'cache' is a name the project keeps"),
        "compare: study named like the comparisons, in capitals": ("compare", ["Comparisons", *at],
                                                                   "'Comparisons' is a name the project keeps"),
        "compare: empty storage path": ("compare", ["finished-rte", "--storage-path", ""], "--storage-path is empty"),
        "compare: storage URI": ("compare", ["finished-rte", "--storage-path", "s3://b/r"], "is a URI"),
        "compare: missing storage path": ("compare", ["finished-rte", "--storage-path", "/no/such/results"],
                                          "--storage-path /no/such/results: no such folder"),
        "compare: storage path is a file": ("compare", ["finished-rte", "--storage-path", f], "is a file, not a folder"),
        "compare: storage path is a study's folder": ("compare", ["finished-rte", "--storage-path", f"{S}/finished-rte"],
                                                      "finished-rte is a study's folder (it holds supertickets.json)"),
        "compare: no such study": ("compare", ["nosuch", *at], "no study nosuch under"),
        "compare: unfinished study": ("compare", ["unfinished", *at], "study unfinished under"),
        "compare: empty summary": ("compare", ["broken-summary", *at], "summary.json is not a study summary"),
        "compare: a study twice": ("compare", ["finished-rte", "finished-rte", *at], "finished-rte is named twice"),
        "compare: studies of two tasks": ("compare", ["finished-rte", "finished-mrpc", *at],
                                          "studies of different tasks (mrpc, rte)"),
        "compare: MLflow store gone": ("compare", ["store-gone", *at], "no MLflow database at"),
        "compare: run gone from the store": ("compare", ["run-gone", *at], f"run {'f' * 32} is not in its MLflow store"),
        "compare: empty --out": ("compare", ["finished-rte", *at, "--out", ""], "--out is empty"),
        "compare: --out is a file": ("compare", ["finished-rte", *at, "--out", f], "is a file, not a folder"),
        "compare: default folder name too long": ("compare", [*long, *at], "longer than a file system allows"),
        "supertickets compare: study a path": ("supertickets", ["compare", "../x", *at],
                                               "study '../x' must be one folder name"),
        "supertickets compare: no study": ("supertickets", ["compare"], "required: studies"),
        # python -m search.export
        "export: neither run nor study": ("export", ex, "one of the arguments --run-id --study is required"),
        "export: both run and study": ("export", ["--run-id", "a", "--study", "b", *ex], "not allowed with argument"),
        "export: no --out": ("export", ["--run-id", "a"], "the following arguments are required: --out"),
        "export: --ticket with --run-id": ("export", ["--run-id", "a", "--ticket", "winning", *ex],
                                           "--ticket winning picks a ticket of --study"),
        "export: unknown ticket": ("export", ["--study", "s", "--ticket", "best", *ex], "invalid choice: 'best'"),
        "export: negative check examples": ("export", ["--run-id", "a", "--check-examples", "-1", *ex],
                                            "--check-examples -1 must be at least 0"),
        "export: negative seed": ("export", ["--run-id", "a", "--seed", "-1", *ex], "--seed -1 must be 0 or more"),
        "export: empty run id": ("export", ["--run-id", "", *ex], "--run-id is empty"),
        "export: study name a path": ("export", ["--study", "../x", *ex], "--study '../x' must be one folder name"),
        "export: --out a non-empty folder": ("export", ["--run-id", "a", "--out", f"{root}/full", "--mlflow-uri", db],
                                             "exists and is not an empty folder"),
        "export: --out under a file": ("export", ["--run-id", "a", "--out", f"{f}/ticket", "--mlflow-uri", db],
                                       "is a file, not a folder"),
        "export: empty --out": ("export", ["--run-id", "a", "--out", "", "--mlflow-uri", db], "--out is empty"),
        "export: no MLflow database here": ("export", ["--run-id", "a", "--out", new], "no MLflow database at"),
        "export: unknown MLflow scheme": ("export", ["--run-id", "a", "--out", new, "--mlflow-uri", "foo://x"],
                                          "has an unknown scheme 'foo'"),
        "export: MLflow file store": ("export", ["--run-id", "a", "--out", new, "--mlflow-uri", "file:///tmp/mlruns"],
                                      "is a file store"),
        "export: MLflow database an empty file": ("export", ["--run-id", "a", "--out", new, "--mlflow-uri",
                                                             f"sqlite:///{root}/empty.db"], "(no experiments table)"),
        "export: MLflow database a text file": ("export", ["--run-id", "a", "--out", new, "--mlflow-uri",
                                                           f"sqlite:///{root}/not-a-db"], "is not an MLflow database"),
        "export: MLflow server not answering": ("export", ["--run-id", "a", "--out", new, "--mlflow-uri",
                                                           "http://127.0.0.1:9"], "does not answer"),
        "multitask: MLflow server not answering": ("multitask", ["--tasks", "rte,mrpc", *mt[:-2], "--mlflow-uri",
                                                                 "http://127.0.0.1:9"], "does not answer"),
        "multitask: sequences longer than the model takes": ("multitask", ["--tasks", "rte,mrpc", *mt,
                                                                           "--max-seq-length", "600"],
                                                             "--max-seq-length 600 is more than"),
        "importance: sequences longer than the model takes": ("importance", [*imp, "--max-seq-length", "513"],
                                                              "--max-seq-length 513 is more than"),
        "export: no such study": ("export", ["--study", "nosuch", *ex], "no study called 'nosuch'"),
        "export: no such run": ("export", ["--run-id", "deadbeef", *ex], "no run 'deadbeef'"),
        "export: a run that is no trial": ("export", ["--run-id", w["trial"], *ex], "is not a trial of a study"),
        "export: a verdict without the ticket": ("export", ["--study", "plain", *ex], "names no super ticket"),
        # python -m search.importance_check
        "importance: --out exists": ("importance", [*imp, "--out", f], "exists and would be overwritten"),
        "importance: --out a folder": ("importance", [*imp, "--out", root], "is a folder: pass the path of a new file"),
        "importance: empty --out": ("importance", [*imp, "--out", ""], "--out is empty"),
        "importance: --out under a file": ("importance", [*imp, "--out", f"{f}/x.json"], "is a file, not a folder"),
        "importance: another method": ("importance", [*imp, "--method", "magnitude"],
                                       "--method magnitude: the check measures the structured method's"),
        "importance: a control": ("importance", [*imp, "--control", "random"],
                                  "--control is a study's flag the importance check does not use"),
        "importance: an MLflow URI": ("importance", [*imp, "--mlflow-uri", "sqlite:///m.db"],
                                      "--mlflow-uri is a study's flag"),
        "importance: a sparsity range": ("importance", [*imp, "--sparsity-max", "0.5"], "--sparsity-max is a study's"),
        "importance: unknown estimator": ("importance", [*imp, "--importance", "gradient"], "invalid choice"),
        "importance: unknown task": ("importance", ["--task", "squad", *imp[2:]], "unknown task 'squad'"),
        "importance: empty storage path": ("importance", [*imp, "--storage-path", ""], "--storage-path is empty"),
        "importance: storage path a file": ("importance", [*imp, "--storage-path", f], "is a file, not a folder"),
        "importance: storage path the cache": ("importance", [*imp, "--storage-path", f"{S}/cache"],
                                               "is the project's own cache folder beside the studies in"),
        # python -m search.multitask
        "multitask: a task twice": ("multitask", ["--tasks", "rte,rte", *mt], "--tasks rte,rte names rte twice"),
        "multitask: a task twice in capitals": ("multitask", ["--tasks", "rte,RTE", *mt], "names rte twice"),
        "multitask: no task": ("multitask", ["--tasks", ",", *mt], "--tasks ',' names no task"),
        "multitask: study name a path": ("multitask", ["--tasks", "rte,mrpc", "--study", "rte=../x", *mt],
                                         "--study '../x' must be one folder name"),
        "multitask: two studies of a task": ("multitask", ["--tasks", "rte,mrpc", "--study", "rte=a", "--study",
                                                           "rte=b", *mt], "names two studies of rte (a, b)"),
        "multitask: an arm twice": ("multitask", ["--tasks", "rte,mrpc", "--arms", "tickets-share,tickets-share", *mt],
                                    "names an arm twice"),
        "multitask: unknown share": ("multitask", ["--tasks", "rte,mrpc", "--share", "all", *mt],
                                     "invalid choice: 'all'"),
        "multitask: subset of one example": ("multitask", ["--tasks", "rte,mrpc", "--max-train-examples", "1", *mt],
                                             "must be 0 (all) or at least 2"),
        "multitask: negative data workers": ("multitask", ["--tasks", "rte,mrpc", "--data-workers", "-1", *mt],
                                             "--data-workers -1 must be 0 or more"),
        "multitask: missing model": ("multitask", ["--tasks", "rte,mrpc", *mt, "--model", "/no/such/model"],
                                     "model path /no/such/model not found"),
        "multitask: empty storage path": ("multitask", ["--tasks", "rte,mrpc", *mt, "--storage-path", ""],
                                          "--storage-path is empty"),
        "multitask: storage path a file": ("multitask", ["--tasks", "rte,mrpc", *mt, "--storage-path", f],
                                           "is a file, not a folder"),
        "multitask: storage path the comparisons": ("multitask", ["--tasks", "rte,mrpc", *mt, "--storage-path",
                                                                  f"{S}/comparisons"], "own comparisons folder"),
        "multitask: resume of no study": ("multitask", ["--tasks", "rte,mrpc", "--resume", "--name", "nosuch", *mt],
                                          "no multi-task study nosuch to resume"),
        "multitask: no MLflow database here": ("multitask", ["--tasks", "rte,mrpc", *mt[:-2]], "no MLflow database at"),
        "multitask: MLflow database an empty file": ("multitask", ["--tasks", "rte,mrpc", *mt, "--mlflow-uri",
                                                                   f"sqlite:///{root}/empty.db"], "no experiments table"),
        "multitask: no such study": ("multitask", ["--tasks", "rte,mrpc", "--study", "rte=nosuch", *mt],
                                     "no study called 'nosuch'"),
        "multitask: a study of another task": ("multitask", ["--tasks", "rte,mrpc", "--study", "rte=plain", *mt],
                                               "study plain is of task mrpc, not rte"),
        "multitask: no finished study of a task": ("multitask", ["--tasks", "rte,mrpc", *mt],
                                                   "no finished study of task rte"),
        # python -m search.run: the reserved names
        "run: study named like the cache": ("run", [*run, "--study-name", "cache"], "'cache' is a name the project"),
        "run: study named like the multi-task folder": ("run", [*run, "--study-name", "MultiTask"],
                                                        "'MultiTask' is a name the project"),
        "run: storage path a study's folder": ("run", [*run, "--storage-path", f"{S}/finished-rte"],
                                               "is a study's folder"),
        # python -m benchmarks.record_grid
        "record_grid: no --out": ("record_grid", [], "the following arguments are required: --out"),
        "record_grid: zero seeds": ("record_grid", ["--out", new, "--seeds", "0"], "--seeds 0 must be at least 1"),
        "record_grid: sparsity in percent": ("record_grid", ["--out", new, "--sparsity-max", "60"], "not percent"),
        "record_grid: step 0": ("record_grid", ["--out", new, "--sparsity-step", "0"], "must be a fraction in (0, 1)"),
        "record_grid: zero workers": ("record_grid", ["--out", new, "--workers", "0"], "--workers 0 must be at least 1"),
        "record_grid: unknown optimizer": ("record_grid", ["--out", new, "--optimizer", "sgd"], "unknown optimizer"),
        "record_grid: zero learning rate": ("record_grid", ["--out", new, "--learning-rate", "0"],
                                            "--learning-rate 0 must be a positive number"),
        "record_grid: negative subset": ("record_grid", ["--out", new, "--max-train-examples", "-5"],
                                         "--max-train-examples -5 must be at least 0"),
        "record_grid: unknown task": ("record_grid", ["--out", new, "--task", "squad"], "unknown task 'squad' in --task"),
        "record_grid: two tasks": ("record_grid", ["--out", new, "--task", "rte,mrpc"], "a grid is of one task"),
        "record_grid: --out exists": ("record_grid", ["--out", f"{root}/grid.json"], "exists and would be overwritten"),
        "record_grid: --out under a file": ("record_grid", ["--out", f"{f}/grid.json"], "is a file, not a folder"),
        "record_grid: cache under a file": ("record_grid", ["--out", new, "--cache", f"{f}/cache"],
                                            f"--cache {f}/cache: {f} is a file"),
        "record_grid: missing GLUE dir": ("record_grid", ["--out", new, "--glue-dir", "/no/such/glue"],
                                          "/no/such/glue/MRPC/train.tsv not found"),
        "record_grid: missing model": ("record_grid", ["--out", new, "--model", "/no/such/model"],
                                       "model path /no/such/model not found"),
        # python -m benchmarks.ticket_speed
        "ticket_speed: sparsities in percent": ("ticket_speed", ["--sparsities", "30,50"], "not a list of fractions"),
        "ticket_speed: a sparsity not a number": ("ticket_speed", ["--sparsities", "0.3,abc"], "not a list of fractions"),
        "ticket_speed: zero rounds": ("ticket_speed", ["--rounds", "0"], "--rounds 0 must be at least 1"),
        "ticket_speed: unknown device": ("ticket_speed", ["--device", "tpu"], "--device 'tpu' is not a torch device"),
        "ticket_speed: no such GPU": ("ticket_speed", ["--device", "cuda:64"], "no such CUDA device here"),
        "ticket_speed: negative threads": ("ticket_speed", ["--threads", "-1"], "--threads -1 must be 0"),
        "ticket_speed: unknown task": ("ticket_speed", ["--task", "squad"], "unknown task 'squad'"),
        # python -m benchmarks.trial_speed / gpu_packing / optimizer_step
        "trial_speed: sparsities in percent": ("trial_speed", ["--sparsities", "30,50"], "not a list of fractions"),
        "trial_speed: zero steps": ("trial_speed", ["--steps", "0"], "--steps 0 must be at least 1"),
        "trial_speed: unknown device": ("trial_speed", ["--device", "tpu"], "--device 'tpu' is not a torch device"),
        "trial_speed: negative study rounds": ("trial_speed", ["--study-rounds", "-1"], "--study-rounds -1 must be 0"),
        "trial_speed: unknown study task": ("trial_speed", ["--study-task", "squad"], "unknown task 'squad'"),
        "gpu_packing: zero tickets": ("gpu_packing", ["--tickets", "0"], "--tickets 0 must be at least 1"),
        "optimizer_step: zero steps": ("optimizer_step", ["--steps", "0"], "--steps 0 must be at least 1"),
        "optimizer_step: unknown device": ("optimizer_step", ["--device", "tpu"], "--device 'tpu' is not a torch device"),
        "optimizer_step: missing model": ("optimizer_step", ["--model", "/no/such/model"], "model path /no/such/model"),
        # python -m benchmarks.adaptive_error / shapes / multitask_cost / storage_uri
        "adaptive_error: zero worlds": ("adaptive_error", ["--worlds", "0"], "--worlds 0 must be at least 1"),
        "adaptive_error: a shape twice": ("adaptive_error", ["--shapes", "flat,flat"], "names a shape twice"),
        "adaptive_error: unknown shape": ("adaptive_error", ["--shapes", "wiggle"], "unknown wiggle"),
        "adaptive_error: unknown flag": ("adaptive_error", ["--seeds", "3"], "unrecognized arguments: --seeds 3"),
        "shapes: empty grid file": ("shapes", ["--grid", f"{root}/empty.db"], "is not a grid written by"),
        "shapes: unknown flag": ("shapes", ["--grids", "x"], "unrecognized arguments: --grids"),
        "multitask_cost: one task": ("multitask_cost", ["--tasks", "rte"], "--tasks rte: name at least two"),
        "multitask_cost: zero steps": ("multitask_cost", ["--steps", "0"], "--steps 0 must be at least 1"),
        "multitask_cost: missing GLUE dir": ("multitask_cost", ["--glue-dir", "/no/such/glue"],
                                             "/no/such/glue/RTE/train.tsv not found"),
        "storage_uri: zero examples": ("storage_uri", ["--train-examples", "0"], "--train-examples 0 must be at least"),
        "storage_uri: missing model": ("storage_uri", ["--model", "/no/such/model"], "model path /no/such/model"),
    }


class _Names(dict):
    def __missing__(self, key):
        return key


CASES = list(_cases(_Names(), "m", "g"))


def test_the_table_has_at_least_45_kinds_of_bad_input_across_the_tools():
    assert len(CASES) >= 45
    tools = {_cases(_Names(), "m", "g")[case][0] for case in CASES}
    assert {"compare", "export", "importance", "multitask", "record_grid", "ticket_speed"} <= tools


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gets_one_line_exit_2_and_creates_nothing(case, workdir, world, capfd, model_dir, glue_dir):
    tool, argv, expected = _cases(world, model_dir, glue_dir)[case]
    before = _snapshot(world["root"])
    assert _tool(tool)(argv) == 2
    out, err = capfd.readouterr()
    assert out == ""  # no header, banner or download bar before the error
    assert err.count("\n") == 1 and err.startswith("error: ") and expected in err, err
    assert "Traceback" not in err
    assert list(workdir.iterdir()) == []  # no mlflow.db, no results folder, nothing half-written
    assert _snapshot(world["root"]) == before  # nor where the flags point


def test_every_reserved_name_is_refused_in_any_case_and_a_near_one_is_not():
    for name in RESERVED_NAMES:
        for spelling in (name, name.upper()):
            with pytest.raises(UsageError, match="is a name the project keeps"):
                check_study_name(spelling)
    check_study_name("cache-ablation")
    check_study_name("rte-comparisons")


def test_compare_output_may_go_anywhere_given_but_the_default_stays_under_comparisons(world, monkeypatch):
    import argparse

    from search.tools.compare import check_args

    storage, out = check_args(argparse.Namespace(studies=["finished-rte"], storage_path=world["storage"], out=None))
    assert out == storage / "comparisons" / "finished-rte" and out.is_relative_to(storage / "comparisons")
    _, chosen = check_args(argparse.Namespace(studies=["finished-rte"], storage_path=world["storage"],
                                              out=world["new"]))
    assert chosen == Path(world["new"])
    assert not os.path.exists(world["new"])


def test_python_m_search_compare_exits_2_with_one_line_and_writes_nothing(tmp_path):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-m", "search.compare", "../x"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: study '../x' must be one folder name")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_multitask_start_removes_only_the_folders_it_made(tmp_path):
    from search.multitask.command import _first_missing, _remove_unstarted

    storage = tmp_path / "mine"
    storage.mkdir()  # the user's own empty folder, given as --storage-path
    folder = storage / "multitask" / "mt"
    created = _first_missing(folder)
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text("{}")  # a download of the failed start
    _remove_unstarted(folder, created)
    assert storage.is_dir() and list(storage.iterdir()) == []
