"""What a study shows a person: the trial table, the verdict line, the phase-transition plot, the summary."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from search.analysis import TicketResult, Verdict  # noqa: E402


def trial_table(tickets: list[TicketResult], seeds: tuple[int, ...]) -> pd.DataFrame:
    """One row per trial, by method, control, rewinding point, then sparsity: requested and achieved sparsity
    (fraction of the prunable weights masked), what was kept, dev score per seed and mean, epochs, status."""
    rows = []
    for t in sorted(tickets, key=lambda t: (t.method, t.control, t.rewind, t.sparsity, t.trial_id)):
        row = {"trial": t.trial_id, "method": t.method, "control": t.control, "rewind": t.rewind,
               "sparsity": t.sparsity,
               "achieved": "-" if t.achieved_sparsity is None else f"{t.achieved_sparsity:.3f}", "kept": t.kept}
        for seed in seeds:
            score = t.seed_scores.get(seed)
            row[f"seed {seed}"] = "-" if score is None else f"{score:.4f}"
        row["mean"] = "-" if t.dev_score is None else f"{t.dev_score:.4f}"
        row["epochs"] = t.epochs
        row["status"] = t.status
        rows.append(row)
    return pd.DataFrame(rows)


def verdict_line(verdict: Verdict, metric: str) -> str:
    """One line naming the super ticket (or the winning ticket, or why there is neither)."""
    dense = verdict.dense
    if dense is None:
        return "No super ticket: the dense baseline did not finish, so there is nothing to compare with."
    base = f"dense {metric} {dense.dev_score:.4f} ± {dense.dev_std:.4f}"
    if verdict.super_ticket is not None:
        t = verdict.super_ticket
        return (f"Super ticket: {t.method} ({t.control}) at sparsity {t.sparsity:.2f} ({t.kept} kept), dev "
                f"{metric} {t.dev_score:.4f} vs {base} (+{t.dev_score - dense.dev_score:.4f}); MLflow run {t.run_id}")
    if verdict.winning_ticket is not None:
        t = verdict.winning_ticket
        return (f"No ticket beats the dense model ({base}). Sparsest winning ticket: {t.method} ({t.control}) at "
                f"sparsity {t.sparsity:.2f} ({t.kept} kept), dev {metric} {t.dev_score:.4f}; MLflow run {t.run_id}")
    return f"No ticket beats or matches the dense model ({base})."


def _x(ticket: TicketResult) -> float:
    """Percent of the prunable encoder weights masked (structured: the weights the pruned units disable)."""
    return 100 * (ticket.achieved_sparsity if ticket.achieved_sparsity is not None else ticket.head_sparsity)


def phase_transition_plot(tickets: list[TicketResult], verdict: Verdict, metric: str, title: str):
    """Dev score against achieved sparsity (% of prunable weights masked), dense baseline as a line, super ticket
    marked.

    Each (method, control, rewinding point) is its own curve; per-seed scores are drawn faintly behind the
    means. Returns the matplotlib figure.
    """
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    done = [t for t in tickets if t.dev_score is not None]
    curves = sorted({(t.method, t.control, t.rewind) for t in done if not t.is_dense})
    for method, control, rewind in curves:
        points = sorted((t for t in done if (t.method, t.control, t.rewind) == (method, control, rewind)
                         and t.status == "FINISHED" and not t.is_dense), key=_x)
        if verdict.dense is not None:
            points = [verdict.dense, *points]  # every curve starts at the dense model
        ax.plot([_x(t) for t in points], [t.dev_score for t in points], "o-",
                label=f"{method}, {control} ticket, rewind={rewind}")
        for t in points:
            ax.scatter([_x(t)] * len(t.seed_scores), list(t.seed_scores.values()), color="grey", alpha=0.35, s=12)
    killed = [t for t in done if t.status == "KILLED"]
    if killed:
        ax.scatter([_x(t) for t in killed], [t.dev_score for t in killed], marker="x",
                   color="tab:red", label="stopped early by ASHA (truncated)")
    if verdict.dense is not None:
        ax.axhline(verdict.dense.dev_score, color="black", linestyle="--", label="dense baseline")
    if verdict.super_ticket is not None:
        t = verdict.super_ticket
        ax.scatter([_x(t)], [t.dev_score], marker="*", s=260, color="gold", edgecolor="black",
                   zorder=5, label=f"super ticket ({t.method}, {_x(t):.0f}% of weights masked)")
    ax.set_xlabel("sparsity achieved: % of prunable encoder weights masked (Q, K, V, attention output, FFN)")
    ax.set_ylabel(f"dev {metric}")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def summary(tickets: list[TicketResult], verdict: Verdict, settings: dict) -> dict:
    """The JSON summary logged on the parent run and saved beside the study."""
    def pick(t):
        return None if t is None else t.to_dict()

    return {"settings": settings, "dense": pick(verdict.dense), "super_ticket": pick(verdict.super_ticket),
            "winning_ticket": pick(verdict.winning_ticket), "trials": [t.to_dict() for t in tickets]}
