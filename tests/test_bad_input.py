"""Every bad input: one line naming the problem and the fix, exit code 2, no traceback, nothing created."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from search.cli.study_command import main
from search.errors import UsageError

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


@pytest.fixture(scope="session")
def broken(tmp_path_factory, model_dir, glue_dir):
    """Broken copies of the inputs, outside any test's working folder: GLUE directories whose RTE files are damaged
    one way each, model folders missing a part (the real weights linked, never copied), a file where a folder
    belongs."""
    root = tmp_path_factory.mktemp("broken")
    header = "index\tsentence1\tsentence2\tlabel\n"
    good_row = "0\tA man sleeps.\tA person sleeps.\tentailment\n"
    dev = (Path(glue_dir) / "RTE" / "dev.tsv").read_text()
    trains = {"empty": "", "header only": header, "malformed row": header + good_row + "1\tone\ttwo\tentailment\textra\n",
              "unknown label": header + good_row + "1\tone\ttwo\tmaybe\n", "no label column":
              "index\tsentence1\tsentence2\n0\ta\tb\n", "no dev file": header + good_row}
    glue = {}
    latin = root / "glue" / "latin-1" / "RTE"
    latin.mkdir(parents=True)
    (latin / "train.tsv").write_bytes((header + "0\tCaf\xe9 ouvert.\tUn caf\xe9.\tentailment\n").encode("latin-1"))
    (latin / "dev.tsv").write_text(dev)
    glue["latin-1"] = str(latin.parent)
    corpora = {"empty": b"", "blank": b"\n  \n\t\n", "latin-1": "d\xe9j\xe0 vu\n".encode("latin-1")}
    corpus = {}
    for name, data in corpora.items():
        corpus[name] = root / f"corpus-{name}.txt"
        corpus[name].write_bytes(data)
    for name, train in trains.items():
        folder = root / "glue" / name.replace(" ", "-") / "RTE"
        folder.mkdir(parents=True)
        (folder / "train.tsv").write_text(train)
        if name != "no dev file":
            (folder / "dev.tsv").write_text(dev)
        glue[name] = str(folder.parent)
    models = {}
    shared = Path(model_dir)
    for name in ("no weights", "truncated weights", "no tokenizer"):
        folder = root / "models" / name.replace(" ", "-")
        folder.mkdir(parents=True)
        (folder / "config.json").write_text((shared / "config.json").read_text())
        if name == "truncated weights":
            (folder / "model.safetensors").write_bytes((shared / "model.safetensors").read_bytes()[:100_000])
        elif name == "no tokenizer":
            (folder / "model.safetensors").symlink_to(shared / "model.safetensors")
        models[name] = str(folder)
    a_file = root / "a-file"
    a_file.write_text("not a folder")
    with_code = root / "models" / "with-code"
    with_code.mkdir()
    for item in shared.iterdir():
        (with_code / item.name).symlink_to(item)
    (with_code / "config.json").unlink()
    (with_code / "config.json").write_text(json.dumps({**json.loads((shared / "config.json").read_text()),
                                                       "auto_map": {"AutoModel": "custom.Model"}}))
    models["with code"] = str(with_code)
    return {"glue": glue, "models": models, "file": str(a_file), "corpus": {k: str(v) for k, v in corpus.items()}}


def _cases(model_dir, glue_dir, gpt2_dir, broken):
    ok = ["--model", model_dir, "--glue-dir", glue_dir, "--budget", "smoke"]
    rte = ["--task", "rte", *ok]

    def glue(name):
        return ["--task", "rte", "--model", model_dir, "--glue-dir", broken["glue"][name], "--budget", "smoke"]

    def model(name):
        return ["--task", "rte", "--model", broken["models"][name], "--glue-dir", glue_dir, "--budget", "smoke"]

    return {
        # flags, one by one
        "unknown task": (["--task", "squad", *ok], "unknown task 'squad'"),
        "unknown method": (["--task", "rte", "--method", "snip", *ok], "unknown method 'snip'"),
        "unknown control": (["--task", "rte", "--control", "worst", *ok], "unknown control 'worst'"),
        "unknown rewinding point": (["--task", "rte", "--rewind", "halfway", *ok], "unknown rewinding point 'halfway'"),
        "sparsity above 1": (["--task", "rte", "--sparsity-max", "1.2", *ok], "must lie in [0, 1)"),
        "sparsity in percent": (["--task", "rte", "--sparsity-max", "30", *ok], "not percent"),
        "negative sparsity": (["--task", "rte", "--sparsity-min", "-0.1", *ok], "must lie in [0, 1)"),
        "inverted range": (["--task", "rte", "--sparsity-min", "0.5", "--sparsity-max", "0.2", *ok], "inverted"),
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
        "confidence in percent": ([*rte, "--confidence", "95"], "--confidence 95 must be a fraction"),
        "tolerance in points": ([*rte, "--match-tolerance", "2"], "--match-tolerance 2 must be a fraction in [0, 1)"),
        "unknown scheduler": ([*rte, "--scheduler", "hyperband"], "invalid choice: 'hyperband'"),
        "unknown search": ([*rte, "--search", "bohb"], "invalid choice: 'bohb'"),
        "zero concurrent trials": ([*rte, "--concurrent-trials", "0"], "--concurrent-trials 0 must be at least 1"),
        "zero CPUs per trial": ([*rte, "--cpus-per-trial", "0"], "--cpus-per-trial 0 must be above 0"),
        "MLM without a head": (["--task", "rte", "--method", "tamt", "--tamt-objective", "mlm", "--tamt-corpus",
                                os.path.join(os.path.dirname(glue_dir), "wikitext-2"), *ok], "has no masked-LM head"),
        "zero learning rate": ([*rte, "--learning-rate", "0"], "--learning-rate 0 must be a positive number"),
        "grace period 0": ([*rte, "--grace-period", "0"], "--grace-period 0 must be at least 1"),
        "negative train subset": ([*rte, "--max-train-examples", "-5"], "--max-train-examples -5 must be at least 0"),
        "negative dev subset": ([*rte, "--max-dev-examples", "-1"], "--max-dev-examples -1 must be at least 0"),
        "negative search seed": ([*rte, "--search-seed", "-1"], "--search-seed -1 must be at least 0"),
        "GPU fraction above 1": ([*rte, "--gpus-per-trial", "1.5"], "Ray takes a fraction of one GPU or whole GPUs"),
        "data workers not a number": ([*rte, "--data-workers", "many"], "--data-workers 'many' must be auto or a whole"),
        "more data workers than CPUs": ([*rte, "--data-workers", "3"], "--data-workers 3 needs --cpus-per-trial 4"),
        "floor above the range": ([*rte, "--method", "magnitude", "--min-keep-per-matrix", "0.9", "--sparsity-min",
                                   "0.5", "--sparsity-max", "0.5"], "--min-keep-per-matrix keeps 0.9"),
        # the world the flags point at
        "missing GLUE dir": (["--task", "rte", "--model", model_dir, "--glue-dir", "/no/such/glue"],
                             "GLUE directory /no/such/glue not found"),
        "missing model path": (["--task", "rte", "--model", "/no/such/model", "--glue-dir", glue_dir],
                               "model path /no/such/model not found"),
        "not an encoder": (["--task", "rte", "--model", gpt2_dir, "--glue-dir", glue_dir],
                           "'gpt2' is not a supported encoder"),
        "empty train file": (glue("empty"), "train.tsv is empty: expected a header row"),
        "header-only train file": (glue("header only"), "train.tsv has no examples"),
        "malformed row": (glue("malformed row"), "train.tsv line 3: 5 tab-separated fields, expected 4"),
        "unknown label": (glue("unknown label"), "train.tsv line 3: label 'maybe', expected one of entailment"),
        "header without the label": (glue("no label column"), "train.tsv line 1: the header lacks column(s) label"),
        "missing dev file": (glue("no dev file"), "dev.tsv not found"),
        "config without weights": (model("no weights"), "has a config.json but no weights"),
        "truncated weights": (model("truncated weights"), "model.safetensors are unreadable"),
        "no tokenizer": (model("no tokenizer"), "tokenizer has"),
        "unknown MLflow scheme": ([*rte, "--mlflow-uri", "foo://bar"], "has an unknown scheme 'foo'"),
        "MLflow database in a missing folder": ([*rte, "--mlflow-uri", "sqlite:////no/such/folder/mlflow.db"],
                                                "MLflow database folder /no/such/folder does not exist"),
        "MLflow file store": ([*rte, "--mlflow-uri", "file:///tmp/mlruns"], "is a file store, which MLflow 3 refuses"),
        "storage URI of an unknown scheme": ([*rte, "--storage-path", "foo://bucket/results"],
                                             "--storage-path foo://bucket/results cannot be opened"),
        "local dir without a storage URI": ([*rte, "--local-dir", "cache"], "--local-dir cache is for a storage URI"),
        "unknown precision": ([*rte, "--precision", "fp8"], "argument --precision: invalid choice: 'fp8'"),
        "negative max failures": ([*rte, "--max-failures", "-1"], "--max-failures -1 must be at least 0"),
        "unknown Optuna scheme": ([*rte, "--optuna-storage", "redis://x"], "Optuna storage 'redis://x' has an unknown"),
        "Optuna storage in a missing folder": ([*rte, "--optuna-storage", "sqlite:////no/such/optuna.db"],
                                               "Optuna storage folder /no/such does not exist"),
        "storage path is a file": ([*rte, "--storage-path", broken["file"]], "is a file, not a folder"),
        "storage path under a file": ([*rte, "--storage-path", broken["file"] + "/results"], "is a file, not a folder"),
        "study name with a slash": ([*rte, "--study-name", "a/b"], "--study-name 'a/b' must be one folder name"),
        "study name with a space": ([*rte, "--study-name", "my study"], "must be one folder name"),
        "study name ..": ([*rte, "--study-name", ".."], "--study-name '..' must be one folder name"),
        "resume of no study": ([*rte, "--study-name", "nosuch", "--resume"], "no study nosuch to resume under"),
        "resume without a name": ([*rte, "--resume"], "--resume needs --study-name"),
        "more GPUs than a node has": ([*rte, "--gpus-per-trial", "64"], "--gpus-per-trial 64 does not fit"),
        "more CPUs than a node has": ([*rte, "--cpus-per-trial", "4096"], "--cpus-per-trial 4096 does not fit"),
        # issue 28: what pre-flight did not cover before
        "empty storage path": ([*rte, "--storage-path", ""], "--storage-path is empty: pass a folder"),
        "empty local dir": ([*rte, "--storage-path", "s3://bucket/results", "--local-dir", ""],
                            "--local-dir is empty: pass a folder"),
        "study name of the cache folder": ([*rte, "--study-name", "cache"], "--study-name 'cache' is a name the "
                                                                           "project keeps for its own files"),
        "study name of the comparisons folder": ([*rte, "--study-name", "Comparisons"], "keeps for its own files"),
        "MLflow server that does not answer": ([*rte, "--mlflow-uri", "http://127.0.0.1:9"],
                                               "MLflow tracking server http://127.0.0.1:9 does not answer"),
        "MLflow server at an unknown host": ([*rte, "--mlflow-uri", "http://no-such-host.invalid:5000"],
                                             "does not answer"),
        "longer sequences than the model takes": ([*rte, "--max-seq-length", "1024"],
                                                  "--max-seq-length 1024 is more than all-MiniLM-L6-v2 takes (512"),
        "train file not UTF-8": (glue("latin-1"), "train.tsv is not UTF-8 text (byte"),
        "model that ships code": (model("with code"), "ships code of its own (auto_map -> custom), which supertickets "
                                                      "does not run unless you pass --trust-remote-code"),
        "empty TAMT corpus": ([*rte, "--method", "tamt", "--tamt-corpus", broken["corpus"]["empty"]], "holds no text"),
        "blank TAMT corpus": ([*rte, "--method", "tamt", "--tamt-corpus", broken["corpus"]["blank"]], "holds no text"),
        "TAMT corpus not UTF-8": ([*rte, "--method", "tamt", "--tamt-corpus", broken["corpus"]["latin-1"]],
                                  "is not UTF-8 text"),
        "rewinding step past the fine-tune": ([*rte, "--max-train-examples", "64", "--rewind", "step:100000"],
                                              "--rewind step:100000 is past the dense fine-tune's last step (8 = 2 "
                                              "epochs x 4 batches of 16)"),
    }


CASES = list(_cases("m", "/g/glue", "g", {"glue": {k: k for k in ("empty", "header only", "malformed row", "unknown label",
                                                              "no label column", "no dev file", "latin-1")},
                                          "models": {k: k for k in ("no weights", "truncated weights", "no tokenizer",
                                                                    "with code")},
                                          "corpus": {k: k for k in ("empty", "blank", "latin-1")}, "file": "f"}))


def test_the_table_has_at_least_40_kinds_of_bad_input():
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gets_one_line_and_exit_2(case, workdir, capsys, model_dir, glue_dir, gpt2_dir, broken):
    argv, expected = _cases(model_dir, glue_dir, gpt2_dir, broken)[case]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and expected in err, err
    assert "Traceback" not in err
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
    (["--confidence", "95"], "--confidence 95 must be a fraction"),
])
def test_the_benchmark_rejects_bad_input_in_one_line(argv, expected, capsys, monkeypatch):
    from benchmarks.search_efficiency import main as benchmark

    monkeypatch.chdir(ROOT)
    assert benchmark(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and expected in err, err


@pytest.fixture
def stored_study(tmp_path_factory, model_dir, glue_dir):
    """A study's state file as a started study leaves it (no run needed to check a resume against it)."""
    from search.cli.study_command import parser, resume_command
    from search.cli.settings import build_settings
    from search.study.state import StudyState, stringify

    storage = tmp_path_factory.mktemp("storage")
    argv = ["--task", "rte", "--model", model_dir, "--glue-dir", glue_dir, "--budget", "smoke", "--epochs", "2",
            "--storage-path", str(storage), "--study-name", "started"]
    settings = build_settings(parser().parse_args(argv))
    StudyState("run-id", "sqlite:////nowhere/mlflow.db", stringify(settings.params()),
               resume_command(argv, "started")).write(settings.study_dir)
    return argv


def test_resume_refuses_a_flag_that_would_change_the_study_and_says_how_to_resume(stored_study, workdir, capsys):
    assert main([*stored_study, "--epochs", "3", "--learning-rate", "3e-4", "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--resume would change study started:" in err
    assert "finetune.epochs 2 -> 3" in err and "finetune.learning_rate 0.0001 -> 0.0003" in err
    assert "run: python -m search.run --task rte" in err and err.rstrip().endswith("--study-name started --resume")
    assert list(workdir.iterdir()) == []


def test_a_fault_injection_value_that_is_no_sparsity_is_refused(workdir, capsys, model_dir, glue_dir, monkeypatch):
    monkeypatch.setenv("SUPERTICKETS_INJECT_FAULT", "abc")
    assert main(["--task", "rte", "--model", model_dir, "--glue-dir", glue_dir, "--budget", "smoke"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "$SUPERTICKETS_INJECT_FAULT='abc' must be a sparsity in [0, 1)" in err
    assert list(workdir.iterdir()) == []


def test_a_started_study_name_is_not_reused_without_resume(stored_study, workdir, capsys):
    assert main(stored_study) == 2
    assert "study started exists under" in capsys.readouterr().err
    assert list(workdir.iterdir()) == []


def test_resume_may_change_how_many_trials_run_at_once(stored_study, monkeypatch):
    from search.study.checks import check_resume
    from search.cli.study_command import parser
    from search.cli.settings import build_settings

    check_resume(build_settings(parser().parse_args([*stored_study, "--concurrent-trials", "1", "--resume"])))


def test_a_study_stored_before_the_optuna_storage_setting_still_resumes(stored_study):
    from search.study.checks import check_resume
    from search.cli.study_command import parser
    from search.cli.settings import build_settings
    from search.study.state import StudyState

    settings = build_settings(parser().parse_args([*stored_study, "--resume"]))
    state = StudyState.read(settings.study_dir)
    old = {k: v for k, v in state.params.items() if k != "optuna_storage"}
    StudyState(state.parent_run_id, state.tracking_uri, old, state.command).write(settings.study_dir)
    try:
        check_resume(settings)
    finally:
        state.write(settings.study_dir)


def test_a_trial_must_fit_on_one_node_of_a_cluster_not_on_the_cluster_summed(stored_study):
    from search.errors import UsageError
    from search.study.checks import check_fits
    from search.cli.study_command import parser
    from search.cli.settings import build_settings

    settings = build_settings(parser().parse_args([*stored_study, "--cpus-per-trial", "8", "--gpus-per-trial", "1"]))
    nodes = [(16.0, 0.0), (8.0, 1.0)]
    check_fits(settings, nodes, "the biggest node of the Ray cluster at auto")  # the GPU node has 8 CPUs: fits
    with pytest.raises(UsageError, match="--cpus-per-trial 8 does not fit: the biggest node .* has 16 CPU"):
        check_fits(settings, [(16.0, 0.0), (4.0, 1.0), (4.0, 1.0)], "the biggest node of the Ray cluster at auto")
    with pytest.raises(UsageError, match="--gpus-per-trial 1 does not fit: .* has 0 GPU"):
        check_fits(settings, [(64.0, 0.0)], "the biggest node of the Ray cluster at auto")


def test_a_study_name_the_optuna_storage_holds_is_refused_unless_resuming(tmp_path):
    import optuna

    from search.records.optuna_storage import check_optuna_storage, resolve_optuna_storage

    url = resolve_optuna_storage(None, f"sqlite:///{tmp_path}/mlflow.db", str(tmp_path / "results"))
    assert url == f"sqlite:///{tmp_path}/optuna.db"  # beside the MLflow database
    check_optuna_storage(url, "taken", resume=False)  # no file yet: nothing to check, nothing created
    assert not (tmp_path / "optuna.db").exists()
    optuna.create_study(storage=url, study_name="taken")
    with pytest.raises(ValueError, match="already holds a study named taken: choose another --study-name"):
        check_optuna_storage(url, "taken", resume=False)
    check_optuna_storage(url, "taken", resume=True)
    check_optuna_storage(url, "free", resume=False)


def test_an_optuna_storage_that_is_no_optuna_database_is_refused_without_writing_to_it(tmp_path):
    import sqlite3

    from search.records.optuna_storage import check_optuna_storage

    junk = tmp_path / "junk.db"
    junk.write_text("not a database")
    with pytest.raises(ValueError, match="is not a SQLite database"):
        check_optuna_storage(f"sqlite:///{junk}", "s", resume=False)
    mlflow_db = tmp_path / "mlflow.db"  # a careless user passes the MLflow database
    with sqlite3.connect(mlflow_db) as db:
        db.execute("CREATE TABLE experiments (experiment_id INTEGER)")
    before = mlflow_db.read_bytes()
    with pytest.raises(ValueError, match="holds another program's tables"):
        check_optuna_storage(f"sqlite:///{mlflow_db}", "s", resume=False)
    assert mlflow_db.read_bytes() == before  # nothing written into it


def test_compare_out_under_a_file_is_one_line_and_exit_2(tmp_path, capsys):
    from search.tools.compare import main as compare

    (tmp_path / "afile").write_text("x")
    assert compare(["any", "--storage-path", str(tmp_path), "--out", str(tmp_path / "afile" / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file, not a folder" in err


@pytest.mark.parametrize("text, expected", [
    ('modle = "/models/m"\n', "has an unknown key 'modle': did you mean model? it may hold model, glue_dir, tamt_corpus"),
    ('glue-dir = "/data/glue"\n', "unknown key 'glue-dir': did you mean glue_dir?"),
    ("model = 3\n", "model = 3 must be a non-empty string"),
    ('glue_dir = ""\n', "glue_dir = '' must be a non-empty string"),
    ('model = ["a", "b"]\n', "must be a non-empty string"),
    ("model = \n", "is not valid TOML"),
])
def test_a_config_file_with_a_misspelt_key_or_a_wrong_type_is_refused(text, expected, workdir, tmp_path_factory,
                                                                      monkeypatch, capsys):
    config = tmp_path_factory.mktemp("config") / "supertickets.toml"
    config.write_text(text)
    monkeypatch.setenv("SUPERTICKETS_CONFIG", str(config))  # the file a study would read (no flag overrides it)
    assert main(["--task", "rte", "--budget", "smoke"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: config file {config}") and expected in err, err
    assert list(workdir.iterdir()) == []


def test_resume_from_a_world_writable_study_folder_is_refused(stored_study, workdir, capsys):
    study = Path(stored_study[stored_study.index("--storage-path") + 1]) / "started"
    tune = study / "tune"
    tune.mkdir(exist_ok=True)
    before = study.stat().st_mode
    try:
        os.chmod(tune, 0o777)  # anyone could replace Tune's pickled state in it
        assert main([*stored_study, "--resume"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"refusing to resume from {tune}: it is writable by every user (mode 777)" in err
        assert f"chmod o-w {tune}" in err
        os.chmod(tune, 0o1777)  # sticky, as /tmp: others cannot replace what they do not own
        from search.study.checks import check_trusted_folder

        check_trusted_folder(study, study.parent)
        os.chmod(tune, 0o755)
        os.chmod(study.parent, 0o777)
        with pytest.raises(Exception, match=f"refusing to resume from {study.parent}"):
            check_trusted_folder(study, study.parent)
    finally:
        os.chmod(study.parent, 0o755)
        os.chmod(study, before)
        tune.rmdir()


def test_a_tracking_server_that_answers_passes_pre_flight_in_a_fresh_folder(workdir, model_dir, glue_dir):
    """MLflow on a server puts the Optuna storage under the storage path, which the study creates: pre-flight
    accepts it (it once asked for the folder to exist) and creates nothing itself."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from search.cli.preflight import check_before_start
    from search.cli.settings import build_settings
    from search.cli.study_command import parser

    class Health(BaseHTTPRequestHandler):  # what `mlflow server` answers on /health
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}"
        settings = build_settings(parser().parse_args(["--task", "rte", "--model", model_dir, "--glue-dir", glue_dir,
                                                       "--budget", "smoke", "--mlflow-uri", uri]))
        assert settings.optuna_storage == f"sqlite:///{workdir}/supertickets_results/optuna.db"
        check_before_start(settings)
        assert list(workdir.iterdir()) == []
        with pytest.raises(UsageError, match=f"{uri}/wrong answers HTTP 404 for /health, which an MLflow tracking "
                                             "server does not"):
            check_before_start(build_settings(parser().parse_args(
                ["--task", "rte", "--model", model_dir, "--glue-dir", glue_dir, "--budget", "smoke",
                 "--mlflow-uri", f"{uri}/wrong"])))
    finally:
        server.shutdown()


def test_resume_refuses_a_world_writable_pickle_in_a_safe_folder(stored_study):
    from search.study.checks import check_trusted_folder

    study = Path(stored_study[stored_study.index("--storage-path") + 1]) / "started"
    pickle = study / "searcher-state.pkl"
    pickle.write_bytes(b"state")
    try:
        os.chmod(pickle, 0o666)
        with pytest.raises(UsageError, match=f"refusing to resume from {pickle}: it is writable by every user "
                                             "\\(mode 666\\)"):
            check_trusted_folder(study, study.parent)
        os.chmod(pickle, 0o644)
        check_trusted_folder(study, study.parent)
    finally:
        pickle.unlink()
