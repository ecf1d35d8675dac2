"""``python -m search.compare``: put finished studies side by side (one table, one plot, one JSON).

Studies of different methods or controls on the same task (and the same dense fine-tune) each end with a
``summary.json``; this reads them, fetches every trial's dev metrics and per-example predictions from the
MLflow run it was logged to, and writes a table in the layout of Prasanna et al.'s (dense; each method's
good/random/bad tickets; sparsities) with each ticket's paired difference from the dense model (and each
control's from the good ticket of its own study), one verdict
over all of them (``search.verdict.analysis.decide``), a phase-transition plot with a curve per (method, control,
rewinding point), and the numbers.

Exit codes: 0 written, 2 bad input (a study that is missing or unfinished).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mlflow.tracking import MlflowClient

from search.verdict.analysis import TicketResult, compare_controls, decide
from search.errors import UsageError
from search.verdict.report import phase_transition_plot, verdict_lines
from search.study.state import StudyState
from trainables.metrics import METRICS
from trainables.model import load_config
from trainables.pruning.registry import get_method
from trainables.tasks import get_task


def load_study(storage: Path, name: str) -> tuple[dict, list[TicketResult], dict[str, dict]]:
    """A finished study: its settings, its trials and each trial's last dev metrics from MLflow.

    Raises:
        UsageError: the study folder, its state or its summary is missing (not run, or not finished).
    """
    folder = storage / name
    state = StudyState.read(folder)
    if state is None or not (folder / "summary.json").exists():
        raise UsageError(f"study {name} has no finished summary under {storage}: pass --storage-path where it ran "
                         "and the names of finished studies")
    summary = json.loads((folder / "summary.json").read_text())
    client = MlflowClient(state.tracking_uri)
    tickets, metrics = [], {}
    for trial in summary["trials"]:
        ticket = TicketResult.from_dict(trial)
        tickets.append(ticket)
        if ticket.run_id:
            metrics[ticket.run_id] = client.get_run(ticket.run_id).data.metrics
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
        UsageError: a missing or unfinished study, or studies of different tasks.
    """
    studies = [(name, *load_study(storage, name)) for name in names]
    tasks = {settings["task"] for _, settings, _, _ in studies}
    if len(tasks) != 1:
        raise UsageError(f"studies of different tasks ({', '.join(sorted(tasks))}): compare one task at a time")
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


def main(argv: list[str] | None = None, prog: str = "python -m search.compare") -> int:
    """Run the CLI; returns the exit code (0 done, 2 bad input)."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("studies", nargs="+", help="names of finished studies (as given to --study-name)")
    parser.add_argument("--storage-path", default="supertickets_results", help="the folder where the studies ran (for a storage URI: their --local-dir)")
    parser.add_argument("--out", help="folder for comparison.md, comparison.png, comparison.json (default "
                                      "<storage-path>/comparisons/<study>+<study>..., git-ignored with the results)")
    parser.add_argument("--title", help="title of the plot")
    args = parser.parse_args(argv)
    if "://" in args.storage_path:
        print(f"error: --storage-path {args.storage_path} is a URI: compare reads the studies' local copies; pass the "
              "--local-dir they ran with (default ~/.cache/supertickets/<bucket and prefix>)", file=sys.stderr)
        return 2
    storage = Path(args.storage_path).expanduser().resolve()
    out = Path(args.out) if args.out else storage / "comparisons" / "+".join(args.studies)
    blocking = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        print(f"error: --out {out}: {blocking} is a file, not a folder: pass another --out", file=sys.stderr)
        return 2
    try:
        table = compare(storage, args.studies, out, args.title)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(table)
    print(f"\nwritten to {out}/ (comparison.md, comparison.png, comparison.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
