"""Every process a command starts listens on 127.0.0.1 only: the listening sockets of a study, a multi-task run and
the benchmark's Ray path, listed while they run (each command in its own interpreter, as a user starts it)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
from mlflow.tracking import MlflowClient

from tests.grids import write_grid
from tests.test_multitask import _finished_study
from trainables.data import load_raw
from trainables.tasks import get_task

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1", "::1"}


def _listening(argv: list[str], cwd: Path, hold_s: float = 8.0, limit_s: float = 300.0) -> set[tuple]:
    """Run ``python argv`` and list, every 0.3 s, the listening TCP sockets of it and every process it starts,
    until it ends or ``hold_s`` seconds after Ray's GCS server first listens; then interrupt it (Ctrl-C) and make
    sure nothing it started is left. Returns ``{(process name, address, port)}``."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_ADDRESS")}
    env.update(PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, *argv], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    root = psutil.Process(proc.pid)
    seen: set[tuple] = set()
    known: dict[int, psutil.Process] = {}
    ray_up = None
    deadline = time.monotonic() + limit_s
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            family = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        for process in family:
            known.setdefault(process.pid, process)
            try:
                name = process.name()
                for conn in process.net_connections(kind="inet"):
                    if conn.status == psutil.CONN_LISTEN:
                        seen.add((name, conn.laddr.ip, conn.laddr.port))
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        if ray_up is None and any(name == "gcs_server" for name, _, _ in seen):
            ray_up = time.monotonic()
        if ray_up is not None and time.monotonic() - ray_up > hold_s:
            break
        time.sleep(0.3)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    for process in known.values():  # Ray's processes may have left the process group
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    stderr = proc.stderr.read()
    assert ray_up is not None, f"Ray never listened; the command said:\n{stderr[-3000:]}"
    return seen


def _check(seen: set[tuple], what: str) -> None:
    listing = "\n".join(f"  {name:<22} {ip}:{port}" for name, ip, port in sorted(seen))
    print(f"\nlistening sockets of {what}:\n{listing}")
    assert {"gcs_server", "raylet"} <= {name for name, _, _ in seen}, listing
    assert {ip for _, ip, _ in seen} <= LOOPBACK, f"{what} listens beyond 127.0.0.1:\n{listing}"


def test_a_study_listens_on_loopback_only(tmp_path, model_dir, glue_dir):
    seen = _listening(["-m", "search.run", "--task", "rte", "--model", model_dir, "--glue-dir", glue_dir,
                       "--budget", "smoke", "--max-train-examples", "32", "--max-dev-examples", "24",
                       "--max-seq-length", "32", "--cpus-per-trial", "1", "--storage-path", str(tmp_path / "r")],
                      tmp_path)
    _check(seen, "python -m search.run")


def test_a_multitask_run_listens_on_loopback_only(tmp_path, model_dir, glue_dir):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    studied = str(Path(model_dir).resolve())
    for task in ("rte", "mrpc"):
        _finished_study(client, client.create_experiment(f"supertickets-{task}"), task, studied, f"{task}-study")
    seen = _listening(["-m", "search.multitask", "--tasks", "rte,mrpc", "--model", model_dir, "--glue-dir", glue_dir,
                       "--mlflow-uri", uri, "--storage-path", str(tmp_path / "r"), "--budget", "smoke",
                       "--max-train-examples", "32", "--max-dev-examples", "24", "--max-seq-length", "32",
                       "--epochs", "1", "--seeds", "1", "--cpus-per-trial", "1", "--name", "mt"], tmp_path)
    _check(seen, "python -m search.multitask")


def test_the_benchmark_on_ray_listens_on_loopback_only(tmp_path, glue_dir):
    labels = load_raw(get_task("mrpc"), glue_dir)["validation"]["label"]
    grid = write_grid(tmp_path / "grid.json", labels, {0.1: 0, 0.2: -80}, seeds=2, epochs=1)
    assert json.loads(Path(grid).read_text())["task"] == "mrpc"
    seen = _listening(["-m", "benchmarks.search_efficiency", "--ray", "--grid", str(grid), "--search-seeds", "1",
                       "--shapes", "recorded"], tmp_path, hold_s=5)
    _check(seen, "python -m benchmarks.search_efficiency --ray")
