"""``python -m search.compare``: put finished studies side by side (one table, one plot, one JSON).

Studies of different methods or controls on the same task (and the same dense fine-tune) each end with a
``summary.json``; this reads them, fetches every trial's dev metrics and per-example predictions from the
MLflow run it was logged to, and writes a table in the layout of Prasanna et al.'s (dense; each method's
good/random/bad tickets; sparsities) with each ticket's paired difference from the dense model (and each
control's from the good ticket of its own study), one verdict
over all of them (``search.verdict.analysis.decide``), a phase-transition plot with a curve per (method, control,
rewinding point), and the numbers.

Exit codes: 0 written, 2 bad input (one line, nothing written: a study that is missing or unfinished, a name that
is not one folder name, an --out in the way).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from search.cli.preflight import check_mlflow_uri, check_storage_path, check_study_name
from search.verdict.analysis import TicketResult, compare_controls, decide
from search.errors import OneLineParser, UsageError
from search.verdict.report import phase_transition_plot, verdict_lines
from search.study.state import StudyState, studies_under
from trainables.metrics import METRICS
from trainables.model import load_config
from trainables.pruning.registry import get_method
from trainables.tasks import get_task


def read_summary(storage: Path, name: str) -> tuple[StudyState, dict]:
    """A finished study's state and ``summary.json`` (files only: MLflow is not opened).

    Raises:
        UsageError: the study folder, its state or its summary is missing (not run, or not finished), or the
            summary is unreadable.
    """
    folder = storage / name
    state = StudyState.read(folder)
    if state is None:
        found = ", ".join(studies_under(storage)) or "none"
        raise UsageError(f"no study {name} under {storage} (studies there: {found}): pass --storage-path where it "
                         "ran and the names of finished studies")
    if not (folder / "summary.json").is_file():
        raise UsageError(f"study {name} under {storage} has not finished (no summary.json): resume it (python -m "
                         f"search.run --study-name {name} --resume ...), or compare finished studies")
    try:
        summary = json.loads((folder / "summary.json").read_text())
        valid = isinstance(summary["trials"], list) and isinstance(summary["settings"]["task"], str)
    except (OSError, ValueError, KeyError, TypeError):
        valid = False
    if not valid:
        raise UsageError(f"{folder / 'summary.json'} is not a study summary (unreadable, or without settings.task and "
                         f"trials): finish the study again (python -m search.run --study-name {name} --resume ...)")
    return state, summary


def load_study(storage: Path, name: str, read: tuple[StudyState, dict] | None = None
               ) -> tuple[dict, list[TicketResult], dict[str, dict]]:
    """A finished study: its settings, its trials and each trial's last dev metrics from MLflow. ``read``: what
    ``read_summary`` returned for it, when already read.

    Raises:
        UsageError: the study folder, its state or its summary is missing (not run, or not finished), or its MLflow
            store or runs are gone.
    """
    state, summary = read or read_summary(storage, name)
    fix = f"restore the store study {name} was logged to, or compare other studies"
    client = MlflowClient(check_mlflow_uri(state.tracking_uri, existing=True, fix=fix))
    tickets, metrics = [], {}
    for trial in summary["trials"]:
        ticket = TicketResult.from_dict(trial)
        tickets.append(ticket)
        if ticket.run_id:
            try:
                metrics[ticket.run_id] = client.get_run(ticket.run_id).data.metrics
            except MlflowException as err:
                if err.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise  # the store failed (a server down): a failure, not bad input
                raise UsageError(f"study {name}'s run {ticket.run_id} is not in its MLflow store "
                                 f"{state.tracking_uri}: {fix}") from None
            if ticket.achieved_sparsity is None and "mask.json" in [a.path for a in client.list_artifacts(ticket.run_id)]:
                ticket.facts["achieved_sparsity"] = _legacy_achieved(client, ticket, summary["settings"]["model"])
            _load_predictions(client, ticket)
    return summary["settings"], tickets, metrics


def _load_predictions(client: MlflowClient, ticket: TicketResult) -> None:
    """Fill the ticket's per-example predictions from its run's ``predictions.json`` (when it has one)."""
    if "predictions.json" not in [a.path for a in client.list_artifacts(ticket.run_id)]:
        return
    with open(client.download_artifacts(ticket.run_id, "predictions.json")) as file:
        data = json.load(file)
    ticket.labels = data["labels"]
    for seed in data["seeds"]:
        ticket.predictions[seed["seed"]] = seed["predictions"]
        ticket.dense_predictions[seed["seed"]] = seed["dense_predictions"]


def _legacy_achieved(client: MlflowClient, ticket: TicketResult, model: str) -> float:
    """The achieved sparsity of a ticket whose summary predates that fact, from the ``mask.json`` its run logged then
    (one mask per seed; only structured studies wrote it): the mask type's own count on ``model``'s sizes."""
    with open(client.download_artifacts(ticket.run_id, "mask.json")) as file:
        first = next(iter(json.load(file).values()))
    mask_type = get_method(ticket.method).mask_type
    return mask_type.from_dict(first).with_sizes(load_config(model)).achieved_sparsity


def _dev_metric(metrics: dict, name: str, primary: str) -> float | None:
    """A run's dev metric ``name``, the mean over its finished seeds: logged as ``dev_score`` (the primary metric)
    or ``dev_<name>``; runs logged before that hold ``<name>_seed<k>`` per seed instead."""
    key = "dev_score" if name == primary else f"dev_{name}"
    if key in metrics:
        return metrics[key]
    values = [v for k, v in metrics.items() if k.startswith(f"{name}_seed")]
    return sum(values) / len(values) if values else None


def _cell(value) -> str:
    return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def comparison_table(rows: list[dict]) -> str:
    """A Markdown table of ``rows`` (dicts with the same keys)."""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "|".join("---" for _ in keys) + "|"]
    lines += ["| " + " | ".join(_cell(row[k]) for k in keys) + " |" for row in rows]
    return "\n".join(lines)


def compare(storage: Path, names: list[str], out: Path, title: str | None = None) -> str:
    """Write ``comparison.md``, ``comparison.png`` and ``comparison.json`` under ``out``; returns the table.

    Trials appear in the order: dense, then by method, control, rewinding point and sparsity; only one dense
    row is kept (every study replays the same cached dense fine-tune). Unfinished trials are listed with
    their status but not plotted.

    Raises:
        UsageError: a missing or unfinished study, or studies of different tasks (checked on the summaries, before
            anything is read from MLflow).
    """
    read = {name: read_summary(storage, name) for name in names}
    tasks = {summary["settings"]["task"] for _, summary in read.values()}
    if len(tasks) != 1:
        raise UsageError(f"studies of different tasks ({', '.join(sorted(tasks))}): compare one task at a time")
    studies = [(name, *load_study(storage, name, read[name])) for name in names]
    task = get_task(tasks.pop())
    extra = [m for m in task.metrics if m in METRICS]
    dense_seen, tickets, rows = False, [], []
    ordered = sorted(((name, t, metrics) for name, _, ts, metrics in studies for t in ts),
                     key=lambda x: (not x[1].is_dense, x[1].method, x[1].control, x[1].rewind, x[1].sparsity))
    for name, ticket, metrics in ordered:
        if ticket.is_dense:
            if dense_seen:
                continue
            dense_seen = True
        tickets.append(ticket)
        values = metrics.get(ticket.run_id, {})
        rows.append({"ticket": "dense" if ticket.is_dense else f"{ticket.method} {ticket.control}",
                     "rewind": ticket.rewind, "sparsity": ticket.sparsity,
                     "achieved sparsity": ticket.achieved_sparsity, "kept": ticket.kept,
                     **{f"dev {m}": _dev_metric(values, m, task.primary_metric) for m in extra},
                     "seeds": len(ticket.seed_scores), "status": ticket.status, "study": name})
    first = studies[0][1]
    confidence, tolerance = first.get("confidence", 0.95), first.get("match_tolerance", 0.01)
    verdict = decide(tickets, task.name, confidence, tolerance)
    for _, _, study_tickets, _ in studies:
        # A control is compared with the good ticket of its own study: two studies may hold good tickets of the
        # same method and sparsity that prune different sets of weights (e.g. with and without embeddings).
        compare_controls(study_tickets, task.primary_metric, confidence)
    for row, ticket in zip(rows, tickets):
        row["vs dense [CI] (points)"] = None if ticket.difference is None or ticket.is_dense else ticket.difference.points()
        row["control vs good [CI] (points)"] = (ticket.versus_good.points() if ticket.control != "good"
                                                and ticket.versus_good is not None else None)
    table = comparison_table(rows)
    out.mkdir(parents=True, exist_ok=True)
    (out / "comparison.md").write_text(table + "\n\n" + "\n".join(verdict_lines(verdict, task.primary_metric)) + "\n")
    (out / "comparison.json").write_text(json.dumps({"studies": names, "rows": rows,
                                                     "settings": {n: s for n, s, _, _ in studies}}, indent=2))
    figure = phase_transition_plot(tickets, verdict, task.primary_metric,
                                   title or f"{task.name.upper()}: tickets by method and control")
    figure.savefig(out / "comparison.png", dpi=120)
    return table


def check_args(args: argparse.Namespace) -> tuple[Path, Path]:
    """The storage folder and the output folder of the parsed flags, checked (nothing is created): the studies are
    distinct folder names (never a path: the default output lies under ``<storage>/comparisons``), the storage is
    an existing local folder, and ``--out`` (anywhere, when given) is not a file nor under one.

    Raises:
        UsageError: the first problem, naming it and the fix.
    """
    if "://" in args.storage_path:
        raise UsageError(f"--storage-path {args.storage_path} is a URI: compare reads the studies' local copies; pass "
                         "the --local-dir they ran with (default ~/.cache/supertickets/<bucket and prefix>)")
    for name in args.studies:
        check_study_name(name, "study")
    twice = next((name for name in args.studies if args.studies.count(name) > 1), None)
    if twice:
        raise UsageError(f"study {twice} is named twice: name each study once")
    if args.out is None:  # the default output goes under the storage folder: it must be writable
        check_storage_path(args.storage_path)
    elif not args.storage_path.strip():  # else it is only read (it may be read-only)
        raise UsageError("--storage-path is empty: pass the folder the studies ran under (their --storage-path)")
    storage = Path(args.storage_path).expanduser().resolve()
    if not storage.is_dir():
        raise UsageError(f"--storage-path {args.storage_path}: no such folder: pass the folder the studies ran under "
                         "(their --storage-path)")
    if args.out is not None and not args.out.strip():
        raise UsageError("--out is empty: pass a folder, or leave it out for <storage-path>/comparisons/<studies>")
    if args.out is not None:
        out = Path(args.out).expanduser().absolute()
    else:
        out = storage / "comparisons" / "+".join(args.studies)
        if len(out.name.encode()) > 255:
            raise UsageError(f"the default output folder name {out.name[:40]}... is longer than a file system allows: "
                             "pass --out")
    blocking = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise UsageError(f"--out {out}: {blocking} is a file, not a folder: pass another --out")
    return storage, out


def main(argv: list[str] | None = None, prog: str = "python -m search.compare") -> int:
    """Run the CLI; returns the exit code (0 done, 2 bad input: one line on stderr, nothing written; 1 a failure:
    one line)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per downloaded file otherwise
    parser = OneLineParser(prog=prog, description=__doc__.split("\n\n")[1],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("studies", nargs="+", help="names of finished studies (as given to --study-name)")
    parser.add_argument("--storage-path", default="supertickets_results", help="the folder where the studies ran (for a storage URI: their --local-dir)")
    parser.add_argument("--out", help="folder for comparison.md, comparison.png, comparison.json (default "
                                      "<storage-path>/comparisons/<study>+<study>..., git-ignored with the results)")
    parser.add_argument("--title", help="title of the plot")
    try:
        args = parser.parse_args(argv)
        storage, out = check_args(args)
        table = compare(storage, args.studies, out, args.title)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # a failure (the MLflow store, the disk): one line, no traceback
        from search.errors import failure_summary

        print(f"failed (exit 1): {failure_summary(err)}; fix the cause and compare again", file=sys.stderr)
        return 1
    print(table)
    print(f"\nwritten to {out}/ (comparison.md, comparison.png, comparison.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
