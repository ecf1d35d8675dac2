"""Faults a study must survive: corrupt caches, left-over scratch folders, a crashing trial, a killed driver,
a second process on the same study, two studies creating one MLflow database."""

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from search.verdict.analysis import decide
from search.cli.study_command import main
from trainables.store import compute_once, problem, sweep_partials

ROOT = Path(__file__).resolve().parents[1]


def _writer(calls):
    def write(scratch: Path) -> None:
        calls.append(scratch)
        (scratch / "weights.bin").write_bytes(bytes(range(256)) * 40)
        (scratch / "record.json").write_text(json.dumps({"value": len(calls)}))
    return write


@pytest.mark.parametrize("damage, found", [
    (lambda e: (e / "record.json").write_text('{"value": 1, "checks'), "record.json unreadable"),
    (lambda e: (e / "weights.bin").write_bytes((e / "weights.bin").read_bytes()[:100]), "has 100 bytes"),
    (lambda e: (e / "weights.bin").write_bytes(b"x" + (e / "weights.bin").read_bytes()[1:]), "checksum differs"),
    (lambda e: (e / "weights.bin").unlink(), "weights.bin missing"),
])
def test_a_damaged_cache_entry_is_healed_on_the_terminal_and_its_damaged_copy_deleted(tmp_path, caplog, damage, found,
                                                                                       monkeypatch):
    from trainables import progress

    class Board:  # the study's ProgressBoard actor, whose notes the terminal display prints
        def __init__(self):
            self.notes = []
            self.note = self

        def remote(self, text):
            self.notes.append(text)

    board = Board()
    monkeypatch.setattr(progress._SENDER, "board", board)
    calls, entry = [], tmp_path / "cache" / "entry"
    assert compute_once(entry, _writer(calls)) and problem(entry) is None
    record = json.loads((entry / "record.json").read_text())
    assert record["checksums"]["weights.bin"]["bytes"] == 10240 and len(record["checksums"]["weights.bin"]["sha256"]) == 64
    assert not compute_once(entry, _writer(calls)) and len(calls) == 1  # intact: reused
    damage(entry)
    assert found in problem(entry)
    with caplog.at_level(logging.WARNING):
        assert compute_once(entry, _writer(calls))
    assert len(calls) == 2 and problem(entry) is None and json.loads((entry / "record.json").read_text())["value"] == 2
    assert list((tmp_path / "cache").glob("entry.corrupt-*")) == []  # deleted once the new entry was complete
    warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert str(entry) in warning and found in warning and "entry.corrupt-" in warning
    healing, healed = board.notes
    assert healing == warning and healed.startswith(f"healed cache entry {entry}: computed again, damaged copy entry"
                                                    ".corrupt-") and healed.endswith(" deleted")


def test_a_damaged_copy_left_by_a_killed_healing_is_swept_at_the_next_start(tmp_path):
    aside = tmp_path / "dense" / "abc.corrupt-20261207-000000-1"
    aside.mkdir(parents=True)
    (aside / "model.safetensors").write_bytes(b"x" * 10)
    assert sweep_partials(tmp_path) == [] and aside.is_dir()  # its entry is not whole again: the copy is kept
    assert compute_once(tmp_path / "dense" / "abc", _writer([]))  # the entry computed again (by a later study)
    assert sweep_partials(tmp_path) == [aside]
    assert sorted(p.name for p in (tmp_path / "dense").iterdir()) == ["abc", "abc.lock"]  # the entry stays


def test_a_real_dense_entry_with_a_truncated_tensor_file_is_fine_tuned_again(tiny_spec, tmp_path, caplog):
    from trainables.cache import ensure_dense

    first = ensure_dense(tiny_spec, tmp_path)
    weights = first.directory / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with caplog.at_level(logging.WARNING):
        again = ensure_dense(tiny_spec, tmp_path)
    assert not again.reused and ": model.safetensors has" in caplog.text
    assert again.history[-1].dev_score == first.history[-1].dev_score  # the same CPU fine-tune, recomputed
    assert len(again.weights()) == len(first.weights())


def test_left_over_scratch_folders_are_swept_unless_their_computation_still_runs(tmp_path):
    cache = tmp_path / "cache"
    stale = cache / "dense" / ".partial-0123abcd-k2j4"
    running = cache / "dense" / ".partial-4567ef01-x9z8"
    step = cache / "dense" / "0123abcd" / "steps" / ".partial-step-5.safetensors"
    for folder in (stale, running, step.parent):
        folder.mkdir(parents=True)
    step.write_bytes(b"half")
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from filelock import FileLock; "
                               "l = FileLock(sys.argv[1]); l.acquire(); print('held', flush=True); time.sleep(60)",
                               str(cache / "dense" / "4567ef01.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        removed = sweep_partials(cache)
    finally:
        holder.kill()
    assert set(removed) == {stale, step} and running.is_dir() and not stale.exists() and not step.exists()


def test_two_processes_create_one_fresh_mlflow_database_at_once(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    code = ("import sys, time; from search.records.tracking import open_experiment; "
            "time.sleep(max(0.0, float(sys.argv[2]) - time.time())); print(open_experiment(sys.argv[1], 'rte')[1])")
    start = str(time.time() + 6)  # both past their imports, then at the same moment
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", code, uri, start], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    ids = {out.strip().splitlines()[-1] for out, _ in outs}
    assert len(ids) == 1 and len(MlflowClient(uri).search_experiments()) == 2  # Default and supertickets-rte


def _common(root, model_dir, glue_dir, *more):
    return ["--task", "rte", "--budget", "smoke", "--model", model_dir, "--glue-dir", glue_dir, "--storage-path",
            str(root / "results"), "--mlflow-uri", f"sqlite:///{root}/mlflow.db", "--max-train-examples", "48",
            "--max-dev-examples", "48", "--max-seq-length", "32", "--epochs", "2", "--seeds", "1",
            "--cpus-per-trial", "1", "--method", "magnitude", "--search", "grid", *more]


def _children(uri: str, study: str):
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("supertickets-rte").experiment_id])
    parent = next(r for r in runs if r.data.tags.get("supertickets.study") == study)
    return parent, [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]


def test_a_trial_that_crashes_mid_way_fails_alone_and_the_verdict_comes_from_the_rest(
        tmp_path, model_dir, glue_dir, monkeypatch, capsys):
    monkeypatch.setenv("SUPERTICKETS_INJECT_FAULT", "0.3")
    argv = _common(tmp_path, model_dir, glue_dir, "--sparsity-min", "0.3", "--sparsity-max", "0.6",
                   "--sparsity-step", "0.3", "--num-trials", "3", "--study-name", "crash")
    assert main(argv) == 1  # a verdict, but a failure left 0.3 untested: not what the data say alone
    captured = capsys.readouterr()
    assert "Ray: local instance on 127.0.0.1" in captured.out  # a study's own Ray listens on the loopback only
    assert captured.err.splitlines()[-1].startswith("failed (exit 1): 1 trial(s) failed (magnitude s=0.30), so the "
                                                    "verdict above leaves their points untested; retry them with: "
                                                    "python -m search.run ")
    parent, children = _children(f"sqlite:///{tmp_path}/mlflow.db", "crash")
    attempts = {}
    for run in sorted(children, key=lambda r: r.info.start_time):
        attempts.setdefault(float(run.data.params["sparsity"]), []).append(run)
    by_sparsity = {sparsity: runs[-1] for sparsity, runs in attempts.items()}  # the newest attempt
    assert sorted(by_sparsity) == [0.0, 0.3, 0.6]
    # --max-failures 2 (default): Tune restarted the crashing trial twice, each attempt under its own run
    assert [r.data.tags["stop_reason"] for r in attempts[0.3]] == ["retried", "retried", "failed"]
    assert all(r.info.status == "FAILED" for r in attempts[0.3])
    assert len({r.data.tags["ray.trial_id"] for r in attempts[0.3]}) == 1
    crashed = by_sparsity[0.3]
    assert crashed.info.status == "FAILED" and crashed.data.tags["stop_reason"] == "failed"
    # died after epoch 1 of its only seed: that epoch's dev score is logged, no finished seed's paired difference
    assert "dev_score" in crashed.data.metrics and "paired_difference" not in crashed.data.metrics
    for sparsity in (0.0, 0.6):
        assert by_sparsity[sparsity].info.status == "FINISHED" and "stop_reason" not in by_sparsity[sparsity].data.tags
        assert "dev_score" in by_sparsity[sparsity].data.metrics
    assert "paired_difference" in by_sparsity[0.6].data.metrics  # (the dense run is not paired with itself)
    from search.tools.compare import load_study

    _, tickets, _ = load_study(tmp_path / "results", "crash")  # the trials as recorded, predictions included
    assert {t.status for t in tickets} == {"FINISHED", "FAILED"}
    alone = decide([t for t in tickets if t.status == "FINISHED"], "rte", 0.95, 0.01)
    assert parent.data.tags["verdict"] == alone.kind  # the crashed trial neither named nor in the way
    assert parent.info.status == "FINISHED"


def test_a_killed_driver_resumes_without_retraining_or_losing_a_trial_and_one_study_has_one_writer(
        tmp_path, model_dir, glue_dir):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    argv = _common(tmp_path, model_dir, glue_dir, "--sparsity-min", "0.2", "--sparsity-max", "0.6",
                   "--sparsity-step", "0.2", "--num-trials", "4", "--concurrent-trials", "1", "--study-name", "killed")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    driver = subprocess.Popen([sys.executable, "-m", "search.run", *argv], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    state = tmp_path / "results" / "killed" / "supertickets.json"
    try:
        deadline = time.time() + 300
        while not state.exists() and time.time() < deadline and driver.poll() is None:
            time.sleep(0.2)
        second = subprocess.run([sys.executable, "-m", "search.run", *argv, "--resume"], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 2 and "is being run by another process" in second.stderr, second.stderr
        assert "Traceback" not in second.stderr and driver.poll() is None
        finished = []
        while time.time() < deadline and driver.poll() is None:
            time.sleep(0.2)
            _, children = _children(uri, "killed")
            finished = [r for r in children if r.info.status == "FINISHED"]
            if finished and any(r.info.status == "RUNNING" for r in children):
                os.kill(driver.pid, signal.SIGKILL)
                break
        assert finished, "the study ended or stalled before a trial finished"
        driver.wait(timeout=60)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    _, before = _children(uri, "killed")
    done_before = {r.data.tags["ray.trial_id"]: r for r in before if r.info.status == "FINISHED"}
    cut_off = {r.data.tags["ray.trial_id"] for r in before if r.info.status == "RUNNING"}
    assert done_before and cut_off

    resumed = subprocess.run([sys.executable, "-m", "search.run", *argv, "--resume"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    parent, after = _children(uri, "killed")
    assert parent.info.status == "FINISHED" and not [r for r in after if r.info.status == "RUNNING"]
    per_trial = {}
    for run in after:
        per_trial.setdefault(run.data.tags["ray.trial_id"], []).append(run)
    assert len(per_trial) == 4, [(t, [(r.data.params.get("sparsity"), r.info.status, r.data.tags.get("stop_reason"))
                                      for r in runs]) for t, runs in per_trial.items()]  # none lost, none added
    for trial_id, run in done_before.items():  # not re-trained: its one run, untouched
        assert [r.info.run_id for r in per_trial[trial_id]] == [run.info.run_id]
        assert per_trial[trial_id][0].info.end_time == run.info.end_time
    for trial_id in cut_off:  # the cut-off run is closed as interrupted, and the trial finished in a new run
        statuses = sorted((r.info.status, r.data.tags.get("stop_reason")) for r in per_trial[trial_id])
        assert statuses == [("FINISHED", None), ("KILLED", "interrupted")]
    summary = json.loads((tmp_path / "results" / "killed" / "summary.json").read_text())
    assert len(summary["trials"]) == 4 and all(t["status"] == "FINISHED" for t in summary["trials"])
    print(f"SIGKILL after {len(done_before)} finished trial(s), {len(cut_off)} cut off; after --resume: child runs per "
          f"trial {sorted(len(runs) for runs in per_trial.values())}, RUNNING 0, finished trials re-trained 0")


@pytest.fixture
def small_disk(tmp_path):
    """A 220 MB tmpfs, where the machine lets this process mount one (as root in a container); else skipped."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=220m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()[:100]}): the disk-full fault needs one")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_disk_too_small_for_the_study_is_refused_before_anything_is_written(small_disk, tmp_path, model_dir,
                                                                                glue_dir, capsys):
    argv = [*_common(tmp_path, model_dir, glue_dir, "--study-name", "big"), "--seeds", "3",
            "--storage-path", str(small_disk / "results")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    # 3 dense fine-tunes + 2 running trials' weights of 91 MB, +10 %: about 0.5 GB on a 220 MB disk
    assert err.count("\n") == 1 and err.startswith(f"error: {small_disk} has 231 MB free, but the study will write "
                                                   "about 500 MB there"), err
    assert "--keep-weights none" in err and list(small_disk.iterdir()) == []


def test_a_disk_that_fills_mid_study_stops_it_cleanly_with_the_resume_command(small_disk, tmp_path, model_dir,
                                                                               glue_dir, capsys):
    import threading

    from search.cli.settings import build_settings
    from search.cli.study_command import parser
    from search.study.orchestrate import study_lock

    argv = [*_common(tmp_path, model_dir, glue_dir, "--study-name", "full", "--concurrent-trials", "1",
                     "--keep-weights", "none"), "--storage-path", str(small_disk / "results")]
    study = small_disk / "results" / "full"

    def fill():  # once the study has started (past pre-flight), leave the disk 64 KB
        deadline = time.time() + 300
        while not study.exists() and time.time() < deadline:
            time.sleep(0.05)
        free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
        with open(small_disk / "filler", "wb") as handle:
            os.posix_fallocate(handle.fileno(), 0, max(0, free - 65536))

    filler = threading.Thread(target=fill)
    filler.start()
    code = main(argv)
    filler.join()
    err = capsys.readouterr().err
    assert code == 1, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("failed (exit 1): the disk is full (No space left on device); finished trials are kept, "
                           "runs closed as FAILED"), last
    assert last.endswith("--study-name full --resume") and "python -m search.run --task rte" in last
    assert "Traceback" not in err
    parent, _ = _children(f"sqlite:///{tmp_path}/mlflow.db", "full")
    assert parent.info.status == "FAILED" and "No space left on device" in parent.data.tags["supertickets.status_reason"]
    lock = study_lock(build_settings(parser().parse_args(argv)))
    lock.acquire(timeout=0)  # released: a resume can take it
    lock.release()


def test_a_dense_entry_healed_in_a_worker_is_said_on_the_study_terminal(tmp_path, model_dir, glue_dir, capsys):
    assert main(_common(tmp_path, model_dir, glue_dir, "--num-trials", "1", "--study-name", "heal-1")) == 0
    (weights,) = (tmp_path / "results" / "cache" / "dense").glob("*/model.safetensors")
    weights.write_bytes(weights.read_bytes()[:1000])  # cut short, as a full disk or a killed copy leaves it
    capsys.readouterr()
    assert main(_common(tmp_path, model_dir, glue_dir, "--num-trials", "1", "--study-name", "heal-2")) == 0
    out = capsys.readouterr().out  # the driver's terminal, though the healing ran in a Ray worker
    entry = weights.parent
    assert f"healing cache entry {entry}: model.safetensors has 1000 bytes" in out
    assert f"healed cache entry {entry}: computed again, damaged copy {entry.name}.corrupt-" in out
    assert list(entry.parent.glob("*.corrupt-*")) == []
