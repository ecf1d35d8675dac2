"""The multi-task study's result: per task and on average, each arm's dev score with its interval, Tickets-Share
minus the dense multi-task model with a paired interval, and the tasks' single-task results from their studies;
one table, one bar plot, a JSON summary.

Intervals: two-way bootstrap over seeds and dev examples (``search.verdict.statistics.multitask_interval``; METHODS.md
section 6), the same statistics as a study's verdict. The single-task columns are the studies' own means over
their seeds (their budgets may differ from this study's: the table says which).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from search.multitask.shared_tickets import SingleTaskResult
from search.verdict.statistics import PairedDifference, multitask_interval
from trainables.multitask import TaskTicket
from trainables.tasks import get_task


@dataclass
class ArmResult:
    """One arm over its finished seeds.

    Attributes:
        arm: ``tickets-share`` or ``multitask-dense``.
        scores: task -> seed -> final primary dev score.
        predictions: task -> seed -> final dev predictions (dev order).
        curves: seed -> the per-epoch reports (``trainables.multitask.run_multitask_trial``), without predictions.
        failed: seed -> why its trial failed.
    """

    arm: str
    scores: dict = field(default_factory=dict)
    predictions: dict = field(default_factory=dict)
    curves: dict = field(default_factory=dict)
    failed: dict = field(default_factory=dict)

    @property
    def seeds(self) -> list[int]:
        """Seeds that finished every task (sorted)."""
        per_task = [set(s) for s in self.predictions.values()]
        return sorted(set.intersection(*per_task)) if per_task else []


@dataclass(frozen=True)
class MultiTaskResult:
    """Everything the report shows.

    Attributes:
        tasks: task names, in order.
        scores: arm -> task (or ``average``) -> its score with interval (``PairedDifference`` against nothing).
        difference: task (or ``average``) -> Tickets-Share minus multitask-dense, paired over the common seeds.
        seeds: the seeds both arms finished.
        examples: task -> dev examples.
    """

    tasks: list
    scores: dict
    difference: dict
    seeds: list
    examples: dict


def analyse(arms: dict[str, ArmResult], labels: dict[str, list], confidence: float = 0.95) -> MultiTaskResult:
    """Each arm's scores and the paired difference, over the seeds both arms finished.

    Raises:
        ValueError: no seed finished in both arms.
    """
    tasks = list(labels)
    common = sorted(set.intersection(*[set(a.seeds) for a in arms.values()])) if arms else []
    if not common:
        raise ValueError("no seed finished in every arm: nothing to compare")
    metrics = [get_task(t).primary_metric for t in tasks]
    gold = [np.asarray(labels[t]) for t in tasks]

    def stacked(arm: ArmResult) -> list[np.ndarray]:
        return [np.asarray([arm.predictions[t][s] for s in common]) for t in tasks]

    scores: dict = {}
    for name, arm in arms.items():
        p = stacked(arm)
        scores[name] = {t: multitask_interval([metrics[i]], [p[i]], [gold[i]], confidence=confidence)
                        for i, t in enumerate(tasks)}
        scores[name]["average"] = multitask_interval(metrics, p, gold, confidence=confidence)
    difference = {}
    if {"tickets-share", "multitask-dense"} <= set(arms):
        ts, mt = stacked(arms["tickets-share"]), stacked(arms["multitask-dense"])
        difference = {t: multitask_interval([metrics[i]], [ts[i]], [gold[i]], [mt[i]], confidence)
                      for i, t in enumerate(tasks)}
        difference["average"] = multitask_interval(metrics, ts, gold, mt, confidence)
    return MultiTaskResult(tasks, scores, difference, common, {t: len(labels[t]) for t in tasks})


def _interval(value: PairedDifference) -> str:
    return f"{100 * value.mean:.1f} [{100 * value.low:.1f}, {100 * value.high:.1f}]"


def _mean(scores: dict) -> float | None:
    return float(np.mean(list(scores.values()))) if scores else None


def single_task_score(single: SingleTaskResult) -> tuple[float | None, float | None]:
    """The study's (dense mean, shared-ticket mean): the shared ticket's (``--share``), or the dense model's when
    the study has none in that role."""
    dense = _mean(single.dense_scores)
    return dense, _mean(single.ticket_scores) if single.ticket_scores else dense


def table(result: MultiTaskResult, singles: dict[str, SingleTaskResult], tickets: dict[str, TaskTicket]) -> pd.DataFrame:
    """One row per task and the average: the shared ticket, the single-task dense and ticket scores, each arm's
    score [interval], and Tickets-Share minus multitask-dense [interval], all in points (100 x dev score)."""
    rows = []
    for task in [*result.tasks, "average"]:
        if task == "average":
            pairs = [single_task_score(singles[t]) for t in result.tasks]
            dense = [d for d, _ in pairs]
            shared = [s for _, s in pairs]
            row = {"task": "average", "metric": "-", "ticket": "-",
                   "single dense": f"{100 * np.mean(dense):.1f}" if None not in dense else "-",
                   "single ticket": f"{100 * np.mean(shared):.1f}" if None not in shared else "-"}
        else:
            dense, shared = single_task_score(singles[task])
            ticket = tickets[task]
            row = {"task": task, "metric": get_task(task).primary_metric,
                   "ticket": f"dense (no {ticket.role} ticket)" if ticket.dense else
                   f"{ticket.method} s={ticket.sparsity:.2f}" + ("" if ticket.role == "super" else f" ({ticket.role})"),
                   "single dense": "-" if dense is None else f"{100 * dense:.1f}",
                   "single ticket": "-" if shared is None else f"{100 * shared:.1f}"}
        for arm, scores in result.scores.items():
            row[arm] = _interval(scores[task])
        if result.difference:
            row["TS - MT (points)"] = result.difference[task].points().replace(" points", "")
        rows.append(row)
    return pd.DataFrame(rows)


def lines(result: MultiTaskResult) -> list[str]:
    """The finding in words, with what stands behind it."""
    if not result.difference:
        return [f"one arm only: no comparison ({len(result.seeds)} seeds)"]
    average = result.difference["average"]
    verdict = ("Tickets-Share beats the dense multi-task model" if average.low > 0 else
               "Tickets-Share is worse than the dense multi-task model" if average.high < 0 else
               "no difference between Tickets-Share and the dense multi-task model can be told apart")
    per_task = ", ".join(f"{t} {result.difference[t].points()}" for t in result.tasks)
    return [f"{verdict} on the average of the primary dev scores: {average.describe()}.",
            f"per task: {per_task}.",
            "Liang et al. 2021 report +0.9 (BERT-base, 82.4 -> 83.3) and +1.0 (BERT-large) GLUE-average points."]


def bar_plot(result: MultiTaskResult, singles: dict[str, SingleTaskResult], title: str):
    """Grouped bars per task and the average: single-task dense, single-task ticket, each arm (with its interval)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [*result.tasks, "average"]
    single = [single_task_score(singles[t]) for t in result.tasks]
    series = {"single-task dense": [d for d, _ in single], "single-task ticket": [s for _, s in single]}
    for name in list(series):
        values = series[name]
        series[name] = values + [None if None in values else float(np.mean(values))]
    errors = {}
    for arm, scores in result.scores.items():
        series[arm] = [scores[g].mean for g in groups]
        errors[arm] = [[scores[g].mean - scores[g].low for g in groups], [scores[g].high - scores[g].mean for g in groups]]
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(groups), 3.8))
    width = 0.8 / len(series)
    x = np.arange(len(groups))
    for index, (name, values) in enumerate(series.items()):
        heights = [np.nan if v is None else 100 * v for v in values]
        error = None if name not in errors else 100 * np.asarray(errors[name])
        ax.bar(x + (index - (len(series) - 1) / 2) * width, heights, width, yerr=error, capsize=3, label=name)
    ax.set_xticks(x, groups)
    ax.set_ylabel("dev score (points)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def summary(result: MultiTaskResult, singles: dict[str, SingleTaskResult], tickets: dict[str, TaskTicket],
            arms: dict[str, ArmResult], settings: dict, text: list[str]) -> dict:
    """The JSON summary (no per-example predictions)."""
    return {"settings": settings, "lines": text, "seeds": result.seeds, "dev_examples": result.examples,
            "scores": {arm: {t: asdict(v) for t, v in s.items()} for arm, s in result.scores.items()},
            "difference": {t: asdict(v) for t, v in result.difference.items()},
            "single_task": {t: asdict(s) for t, s in singles.items()},
            "tickets": {t: {k: v for k, v in asdict(ticket).items() if k != "mask_files"} for t, ticket in tickets.items()},
            "per_seed": {arm: {t: {str(s): v for s, v in a.scores.get(t, {}).items()} for t in result.tasks}
                         for arm, a in arms.items()},
            "failed": {arm: a.failed for arm, a in arms.items() if a.failed}}

