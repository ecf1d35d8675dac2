"""``python -m search.compare``: put finished studies side by side (one table, one plot, one JSON).

Studies of different methods or controls on the same task (and the same dense fine-tune) each end with a
``summary.json``; this reads them, fetches every trial's dev metrics and per-example predictions from the
MLflow run it was logged to, and writes a table in the layout of Prasanna et al.'s (dense; each method's
good/random/bad tickets; sparsities) with each ticket's paired difference from the dense model (and each
control's from the good ticket of its own study), one verdict
over all of them (``search.verdict.analysis.decide``), a phase-transition plot with a curve per (method, control,
rewinding point), and the numbers. It prints the table, that verdict and each study's own verdict (as the study
printed it). --storage-path and --mlflow-uri mean what they mean to a study; without --mlflow-uri each study's runs
are read from the store it recorded.

Exit codes: 0 written, 2 bad input (one line, nothing written: a study that is missing or unfinished, a name that
is not one folder name, an --out in the way).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from search.cli.flags import add_store_flags, resolve_mlflow_uri, resolve_storage
from search.errors import OneLineParser, UsageError
from search.study.state import StudyState, studies_under

if TYPE_CHECKING:  # MLflow, the verdict and the model code load once the flags are parsed: --help answers at once
    from mlflow.tracking import MlflowClient

    from search.verdict.analysis import TicketResult


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


def load_study(storage: Path, name: str, read: tuple[StudyState, dict] | None = None, mlflow_uri: str | None = None
               ) -> tuple[dict, list[TicketResult], dict[str, dict]]:
    """A finished study: its settings, its trials and each trial's last dev metrics from MLflow. ``read``: what
    ``read_summary`` returned for it, when already read; ``mlflow_uri``: the store its runs are in (``--mlflow-uri``,
    resolved), else the one the study recorded.

    Raises:
        UsageError: the study folder, its state or its summary is missing (not run, or not finished), or its MLflow
            store or runs are gone.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from search.verdict.analysis import TicketResult

    state, summary = read or read_summary(storage, name)
    fix = (f"restore the store study {name} was logged to, pass --mlflow-uri where its runs are now, or compare "
           "other studies" if mlflow_uri is None else
           f"pass the --mlflow-uri study {name} ran with, or leave it out for the store the study recorded")
    client = MlflowClient(mlflow_uri or resolve_mlflow_uri(state.tracking_uri, existing=True, fix=fix))
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
                                 f"{mlflow_uri or state.tracking_uri}: {fix}") from None
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
    from trainables.model import load_config
    from trainables.pruning.registry import get_method

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


def study_verdict(state: StudyState, summary: dict, client: MlflowClient | None = None) -> list[str]:
    """A study's own verdict lines, as the study printed them: its ``summary.json``'s (also logged to its MLflow
    parent run), else the parent run's ``verdict.line`` tag (``client``: its store), else a line saying none is
    recorded."""
    lines = (summary.get("verdict") or {}).get("lines") if isinstance(summary.get("verdict"), dict) else None
    if lines and all(isinstance(line, str) for line in lines):
        return list(lines)
    if client is not None:
        try:
            line = client.get_run(state.parent_run_id).data.tags.get("verdict.line")
        except Exception:  # no parent run there: the summary said nothing either
            line = None
        if line:
            return [line]
    return ["(no verdict recorded: the study's summary.json and MLflow parent run hold none)"]


def verdict_text(names: list[str], own: dict[str, list[str]], lines: list[str]) -> str:
    """What compare prints after its table: the verdict over all the compared tickets (``lines``), then each study's
    own verdict (``own``: name -> lines), in the order given."""
    text = ["Verdict over the compared studies (one dense model, every ticket):", *(f"  {line}" for line in lines)]
    for name in names:
        first, *rest = own[name]
        text += [f"Study {name}'s own verdict: {first}", *(f"  {line}" for line in rest)]
    return "\n".join(text)


def compare(storage: Path, names: list[str], out: Path, title: str | None = None, mlflow_uri: str | None = None,
            verdicts: dict | None = None) -> str:
    """Write ``comparison.md``, ``comparison.png`` and ``comparison.json`` under ``out``; returns the table.
    ``mlflow_uri``: the store every study's runs are in (``--mlflow-uri``, resolved), else each study's recorded one.
    ``verdicts``: filled with ``"all"``, the comparison's verdict lines, and ``"studies"``, each study's own by name
    (``study_verdict``).

    Trials appear in the order: dense, then by method, control, rewinding point and sparsity; only one dense
    row is kept (every study replays the same cached dense fine-tune). Unfinished trials are listed with
    their status but not plotted.

    Raises:
        UsageError: a missing or unfinished study, or studies of different tasks (checked on the summaries, before
            anything is read from MLflow).
    """
    from mlflow.tracking import MlflowClient

    from search.verdict.analysis import compare_controls, decide
    from search.verdict.report import phase_transition_plot, verdict_lines
    from trainables.metrics import METRICS
    from trainables.tasks import get_task

    read = {name: read_summary(storage, name) for name in names}
    tasks = {summary["settings"]["task"] for _, summary in read.values()}
    if len(tasks) != 1:
        raise UsageError(f"studies of different tasks ({', '.join(sorted(tasks))}): compare one task at a time")
    studies = [(name, *load_study(storage, name, read[name], mlflow_uri)) for name in names]
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
    lines = verdict_lines(verdict, task.primary_metric)
    own = {}
    for name, (state, summary) in read.items():
        need_run = not (isinstance(summary.get("verdict"), dict) and summary["verdict"].get("lines"))
        own[name] = study_verdict(state, summary, MlflowClient(mlflow_uri or state.tracking_uri) if need_run else None)
    if verdicts is not None:
        verdicts.update(all=lines, studies=own)
    out.mkdir(parents=True, exist_ok=True)
    (out / "comparison.md").write_text(table + "\n\n" + verdict_text(names, own, lines) + "\n")
    (out / "comparison.json").write_text(json.dumps({"studies": names, "rows": rows,
                                                     "settings": {n: s for n, s, _, _ in studies}}, indent=2))
    figure = phase_transition_plot(tickets, verdict, task.primary_metric,
                                   title or f"{task.name.upper()}: tickets by method and control")
    figure.savefig(out / "comparison.png", dpi=120)
    return table


def check_args(args: argparse.Namespace) -> tuple[Path, Path]:
    """The storage folder and the output folder of the parsed flags, checked (nothing is created): the studies are
    distinct folder names (never a path: the default output lies under ``<storage>/comparisons``), the storage is
    an existing local folder, and ``--out`` (anywhere, when given) is not a file nor under one. ``--mlflow-uri`` is
    checked by ``mlflow_store``.

    Raises:
        UsageError: the first problem, naming it and the fix.
    """
    from search.cli.preflight import check_storage_path, check_study_name

    if "://" in args.storage_path:
        raise UsageError(f"--storage-path {args.storage_path} is a URI: compare reads the studies' local copies; pass "
                         f"the --local-dir they ran with (default {resolve_storage(args.storage_path)[1]})")
    for name in args.studies:
        check_study_name(name, "study")
    twice = next((name for name in args.studies if args.studies.count(name) > 1), None)
    if twice:
        raise UsageError(f"study {twice} is named twice: name each study once")
    if args.out is None:  # the default output goes under the storage folder: it must be writable
        check_storage_path(args.storage_path)
    elif not args.storage_path.strip():  # else it is only read (it may be read-only)
        raise UsageError("--storage-path is empty: pass the folder the studies ran under (their --storage-path)")
    storage = Path(resolve_storage(args.storage_path)[0])
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


def mlflow_store(args: argparse.Namespace) -> str | None:
    """``--mlflow-uri`` resolved as a study resolves it and checked to be an MLflow store already, or ``None`` when
    not given: each study's runs are then read from the store it recorded (its ``supertickets.json``).

    Raises:
        UsageError: an empty flag, or no MLflow store there.
    """
    if args.mlflow_uri is None:
        return None
    if not args.mlflow_uri.strip():
        raise UsageError("--mlflow-uri is empty: pass the studies' tracking URI, or leave it out for the store each "
                         "study recorded")
    return resolve_mlflow_uri(args.mlflow_uri, existing=True, fix="pass the --mlflow-uri the studies ran with, or leave "
                                                                  "it out for the store each study recorded")


def parser(prog: str = "python -m search.compare") -> argparse.ArgumentParser:
    """The command line: studies by name, where they are (``--storage-path``, ``--mlflow-uri``: as a study takes
    them), where the comparison goes. Imports nothing heavy."""
    p = OneLineParser(prog=prog, description=__doc__.split("\n\n")[1],
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("studies", nargs="+", help="names of finished studies (as given to --study-name)")
    add_store_flags(p, storage="compare reads the studies there (the folder they ran with; for a storage URI, "
                               "their --local-dir)",
                    mlflow="where the studies' runs are", mlflow_default="the store each study recorded in its "
                                                                         "supertickets.json")
    p.add_argument("--out", help="folder for comparison.md, comparison.png, comparison.json (default "
                                 "<storage-path>/comparisons/<study>+<study>..., git-ignored with the results)")
    p.add_argument("--title", help="title of the plot")
    return p


def main(argv: list[str] | None = None, prog: str = "python -m search.compare") -> int:
    """Run the CLI; returns the exit code (0 done, 2 bad input: one line on stderr, nothing written; 1 a failure:
    one line)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per downloaded file otherwise
    verdicts: dict = {}
    try:
        args = parser(prog).parse_args(argv)
        storage, out = check_args(args)
        table = compare(storage, args.studies, out, args.title, mlflow_store(args), verdicts)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # a failure (the MLflow store, the disk): one line, no traceback
        from search.errors import failure_summary

        print(f"failed (exit 1): {failure_summary(err)}; fix the cause and compare again", file=sys.stderr)
        return 1
    print(table)
    print()
    print(verdict_text(args.studies, verdicts["studies"], verdicts["all"]))
    print(f"\nwritten to {out}/ (comparison.md, comparison.png, comparison.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
