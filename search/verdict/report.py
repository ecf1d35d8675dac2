"""What a study shows a person: the trial table, the verdict lines, the phase-transition plot, the summary."""

from __future__ import annotations


import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from search.verdict.analysis import TicketResult, Verdict, is_screened  # noqa: E402
from trainables.pruning.registry import get_method  # noqa: E402


def _status(ticket: TicketResult) -> str:
    if ticket.status == "FINISHED":
        return "FINISHED"
    reason = ticket.status_reason or ""
    return f"{ticket.status} ({reason.split(':')[0]})" if reason else ticket.status


def trial_table(tickets: list[TicketResult]) -> pd.DataFrame:
    """One row per trial, by method, control, rewinding point, then sparsity: requested and achieved sparsity,
    what was kept, seeds run of planned, mean dev score, the paired difference from the dense model (a control:
    from its good ticket) in points with its interval, and the status (with the reason a trial stopped early)."""
    rows = []
    for t in sorted(tickets, key=lambda t: (t.method, t.control, t.rewind, t.sparsity, t.trial_id)):
        versus = t.versus_good if t.control != "good" else t.difference
        rows.append({
            "trial": t.trial_id, "method": t.method, "control": t.control, "rewind": t.rewind,
            "sparsity": f"{t.sparsity:.2f}",
            "achieved": "-" if t.achieved_sparsity is None else f"{t.achieved_sparsity:.3f}", "kept": t.kept,
            "seeds": f"{len(t.seed_scores)}/{t.planned_seeds or '?'}",
            "dev": "-" if t.dev_score is None else f"{t.dev_score:.4f}",
            "vs": "-" if t.is_dense and t.control == "good" else ("dense" if t.control == "good" else "good"),
            "difference [CI] (points)": "-" if versus is None or (t.is_dense and t.control == "good")
            else versus.points(),
            "status": _status(t)})
    return pd.DataFrame(rows)


def markdown_table(table: pd.DataFrame) -> str:
    """``table`` as a GitHub/MLflow markdown table (MLflow renders a run's description as markdown)."""
    def row(cells):
        return "| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |"
    return "\n".join([row(table.columns), row(["---"] * len(table.columns)),
                      *(row(values) for values in table.itertuples(index=False))])


#: How the verdict's roles read in a run's description.
ROLE_NAMES = {"best_super": "super ticket", "sparsest_super": "sparsest super ticket",
              "winning": "sparsest winning ticket"}


def description(verdict: Verdict, lines: list[str], table: pd.DataFrame, basis: str, link, command: str) -> str:
    """The parent run's description (``mlflow.note.content``, markdown): the verdict lines, links to the dense
    run and the named tickets' runs, the trial table, what sparsity counts and the command.

    Args:
        link: ``link(run_id) -> str``, the address of a run's page in the MLflow UI.
    """
    named = [(ROLE_NAMES[role], t) for role, t in verdict.named.items()]
    if verdict.dense is not None:
        named.insert(0, ("dense model", verdict.dense))
    runs = [f"[{what}: {_short(t)}]({link(t.run_id)})" for what, t in named if t.run_id]
    parts = ["**Verdict.** " + lines[0], *lines[1:], ""]
    if runs:
        parts += ["Runs: " + " · ".join(runs), ""]
    parts += [markdown_table(table), "", f"Sparsity counts: {basis}.", ""]
    if command:
        parts.append(f"Command: `{command}`")
    return "\n\n".join(p for p in parts if p) + "\n"


def _short(ticket: TicketResult) -> str:
    """The ticket's MLflow run name (``s=0.35 structured good``, ``dense``)."""
    return ticket.config.run_name


def _name(ticket: TicketResult) -> str:
    rewind = "" if ticket.rewind == "pretrained" else f", rewind {ticket.rewind}"
    return f"{ticket.method} at sparsity {ticket.sparsity:.2f} ({ticket.kept} kept{rewind})"


def _about(ticket: TicketResult, metric: str) -> str:
    d = ticket.difference
    run = f"; MLflow run {ticket.run_id}" if ticket.run_id else ""
    return (f"{_name(ticket)}: {d.points()} vs the dense model (dev {metric} {ticket.dev_score:.4f} vs "
            f"{_dense_mean(ticket):.4f}; {d.basis()}){run}")


def _dense_mean(ticket: TicketResult) -> float:
    return sum(ticket.dense_scores.values()) / len(ticket.dense_scores)


def verdict_lines(verdict: Verdict, metric: str) -> list[str]:
    """The verdict as lines a person reads: each names a ticket (or why none is named) with its difference in
    points, the interval, and the seeds and dev examples behind it."""
    dense, tol = verdict.dense, f"{100 * verdict.tolerance:g} point{'s' if verdict.tolerance != 0.01 else ''}"
    if verdict.kind == "no_dense":
        return ["No verdict: the dense model's trial did not finish, so there is nothing to compare tickets with."]
    if verdict.kind == "dense_failed":
        why = dense.status_reason or "failed"
        return [f"No verdict: the dense model's trial {why} (see its MLflow run {dense.run_id}); no ticket can be "
                "compared with it. Lower --learning-rate or check the settings."]
    if verdict.kind == "dense_not_learned":
        v = verdict.dense_vs_baseline
        return [f"The dense model did not learn this task under these settings: dev {metric} {dense.dev_score:.4f} vs "
                f"{verdict.baseline_score:.4f} for a constant prediction (the majority class), {v.points()} "
                f"({v.basis()}). No ticket is named; train longer or on more data (--epochs, "
                f"--max-train-examples, --learning-rate)."]
    lines = []
    if verdict.kind == "super":
        lines.append(f"Super ticket: {_about(verdict.best_super, metric)}")
        if verdict.sparsest_super is not verdict.best_super:
            lines.append(f"Sparsest super ticket: {_about(verdict.sparsest_super, metric)}")
    if verdict.winning is not None and verdict.winning not in (verdict.best_super, verdict.sparsest_super):
        lines.append(f"Sparsest winning ticket (no worse than dense by more than {tol}): "
                     f"{_about(verdict.winning, metric)}")
    elif verdict.winning is not None and verdict.kind == "super":
        lines.append(f"It is also the sparsest winning ticket (no worse than dense by more than {tol}).")
    if verdict.kind == "winning":
        lines.insert(0, "No ticket is shown better than the dense model (no interval lies above 0).")
    if verdict.kind == "none":
        best = verdict.best
        text = (f"No ticket is distinguishable from the dense model: none is shown better, and the least sparse "
                f"ticket tested is not shown to be within {tol} of it, so no winning ticket is named.")
        lines.append(text + (f" Best difference: {_about(best, metric)}" if best else " No ticket finished."))
    if verdict.beyond is not None and verdict.kind in ("super", "winning", "none"):
        lines.append(f"The winning sequence (least sparse first) ends at {_beyond(verdict.beyond, metric)}")
        if verdict.kind == "none" and verdict.beyond.difference is not None:
            d = verdict.beyond.difference
            half = (d.high - d.low) / 2
            if half > verdict.tolerance:
                lines.append(f"Its interval is +-{100 * half:.1f} points wide over {d.seeds} seed(s) and "
                             f"{d.examples} dev examples, wider than the {tol} tolerance: a ticket can be shown "
                             "winning here only if it beats dense on average. More seeds (--seeds) narrow it; "
                             "--match-tolerance sets what counts as a match.")
    lines += untested_lines(verdict)
    return lines


def verdict_tags(verdict: Verdict, lines: list[str]) -> dict[str, str]:
    """The parent run's verdict tags: ``verdict`` (the kind), ``verdict.line`` (the first line), ``super_ticket``
    (yes / none) and, when grid points went untested, ``verdict.untested`` (the untested-range sentences)."""
    tags = {"verdict": verdict.kind, "verdict.line": lines[0][:5000],
            "super_ticket": "yes" if verdict.best_super else "none"}
    untested = untested_lines(verdict)
    if untested:
        tags["verdict.untested"] = " ".join(untested)[:5000]
    return tags


def _ranges(sparsities: tuple, step: float | None) -> str:
    """``0.05-0.25, 0.40``: grid points, runs of neighbours joined."""
    runs: list[list[float]] = []
    for s in sorted(sparsities):
        if runs and step and round((s - runs[-1][-1]) / step) == 1:
            runs[-1].append(s)
        else:
            runs.append([s])
    return ", ".join(f"{r[0]:.2f}" if len(r) == 1 else f"{r[0]:.2f}-{r[-1]:.2f}" for r in runs)


def _step(part) -> float | None:
    points = sorted(part.never + part.screened)
    return min((b - a for a, b in zip(points, points[1:])), default=None)


def untested_lines(verdict: Verdict) -> list[str]:
    """One sentence per curve with untested grid points: which, and what that means for the verdict (the same
    sentence goes on the MLflow parent run)."""
    lines = []
    for part in verdict.untested:
        method, control, rewind = part.curve
        name = method + ("" if control == "good" else f" {control}") + ("" if rewind == "pretrained" else
                                                                       f" (rewind {rewind})")
        step = _step(part)
        said = []
        if part.never:
            said.append(f"{_ranges(part.never, step)} untested (never run): a super or winning ticket there is "
                        f"not ruled out")
        if part.screened:
            said.append(f"{_ranges(part.screened, step)} stopped after their first seeds as unable to be super "
                        f"tickets (not tested as winning tickets)")
        if part.gap is not None:
            said.append(f"the winning sequence stops at the untested {part.gap:.2f} (an untested ticket does not "
                        f"pass)")
        lines.append(f"Untested on the {name} curve: " + "; ".join(said) + ".")
    return lines


def _beyond(ticket: TicketResult, metric: str) -> str:
    """Why the ticket that ended the winning sequence did not pass."""
    if ticket.difference is None:
        return f"{_name(ticket)}: {_status(ticket)} before any seed finished."
    if not ticket.complete:
        d = ticket.difference
        return f"{_name(ticket)}: {_status(ticket)} after {d.seeds} of {ticket.planned_seeds} seeds at {d.describe()}."
    return f"{_about(ticket, metric)}; its lower bound is below the tolerance."


def _x(ticket: TicketResult) -> float:
    """Percent of the prunable encoder weights masked (structured: the weights the pruned units disable)."""
    return 100 * (ticket.achieved_sparsity if ticket.achieved_sparsity is not None else ticket.sparsity)


def _label(ticket: TicketResult) -> str:
    """How the plot names a ticket's point: by its requested sparsity, as its MLflow run is named (``s=0.05``)."""
    return f"s={ticket.sparsity:.2f}"


def phase_transition_plot(tickets: list[TicketResult], verdict: Verdict, metric: str, title: str,
                          basis: str = "Q, K, V, attention output, FFN"):
    """Paired difference from the dense model (points) against achieved sparsity (% of prunable weights masked).

    Each (method, control, rewinding point) is its own curve; each point carries its confidence interval as an
    error bar (over seeds and dev examples) and is labelled with its requested sparsity (``s=0.05``, the fraction
    of the method's units its run is named by), so a point reads both ways: the axis says how much of the weights
    the ticket masks, the label which run it is. Trials a scheduler stopped early are drawn hollow at their partial
    difference. The zero line is the dense model, the dotted line the winning tolerance; the super and winning
    tickets are marked only when the verdict names them. ``basis`` says which weights the sparsity counts.
    Returns the matplotlib figure.
    """
    fig, ax = plt.subplots(figsize=(8, 4.8))
    shown = [t for t in tickets if t.difference is not None and not t.is_dense]
    for curve in sorted({t.curve for t in shown}):
        method, control, rewind = curve
        finished = sorted((t for t in shown if t.curve == curve and t.complete), key=_x)
        label = f"{method}, {control} ticket" + ("" if rewind == "pretrained" else f", rewind {rewind}")
        points = [(0.0, 0.0, 0.0, 0.0)] + [(_x(t), 100 * t.difference.mean, 100 * (t.difference.mean - t.difference.low),
                                            100 * (t.difference.high - t.difference.mean)) for t in finished]
        xs, ys, lo, hi = zip(*points)
        line = ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o-", capsize=3, label=f"{label} (all seeds)")
        stopped = [t for t in shown if t.curve == curve and not t.complete]
        for subset, marker, what in (([t for t in stopped if not is_screened(t)], "o", "stopped early (fewer seeds)"),
                                     ([t for t in stopped if is_screened(t)], "s",
                                      "screened: cannot be super (first seeds)")):
            if subset:
                ax.errorbar([_x(t) for t in subset], [100 * t.difference.mean for t in subset],
                            yerr=[[100 * (t.difference.mean - t.difference.low) for t in subset],
                                  [100 * (t.difference.high - t.difference.mean) for t in subset]],
                            fmt=marker, mfc="none", capsize=2, alpha=0.6, color=line[0].get_color(),
                            label=f"{label}, {what}")
        for ticket in finished + stopped:
            ax.annotate(_label(ticket), (_x(ticket), 100 * ticket.difference.mean), textcoords="offset points",
                        xytext=(4, 4), fontsize=6, color=line[0].get_color())
    ax.axhline(0.0, color="black", linestyle="--", linewidth=1, label="dense model")
    if verdict.dense is not None and verdict.kind in ("super", "winning", "none"):
        ax.axhline(-100 * verdict.tolerance, color="grey", linestyle=":", linewidth=1,
                   label=f"winning tolerance (-{100 * verdict.tolerance:g} points)")
    marks = {"best_super": ("*", "gold", "super ticket"), "sparsest_super": ("*", "orange", "sparsest super ticket"),
             "winning": ("D", "tab:green", "sparsest winning ticket")}
    for role, ticket in verdict.named.items():
        if role == "sparsest_super" and ticket is verdict.best_super:
            continue
        marker, color, text = marks[role]
        ax.scatter([_x(ticket)], [100 * ticket.difference.mean], marker=marker, s=240 if marker == "*" else 90,
                   color=color, edgecolor="black", zorder=5,
                   label=f"{text} ({_label(ticket)}, {_x(ticket):.0f}% of weights masked)")
    if verdict.kind in ("dense_not_learned", "dense_failed", "no_dense"):
        ax.text(0.5, 0.5, "no verdict: " + verdict.kind.replace("_", " "), transform=ax.transAxes, ha="center",
                color="tab:red")
    never = [f"{' '.join(part.curve[:1])}: {_ranges(part.never, _step(part))}" for part in verdict.untested
             if part.never]
    if never:
        ax.text(0.99, 0.02, "never run (requested sparsity): " + "; ".join(never) + "\na super ticket there is not "
                "ruled out", transform=ax.transAxes, ha="right", va="bottom", fontsize=7, color="dimgrey")
    interval = verdict.dense.difference.basis() if verdict.dense is not None and verdict.dense.difference else ""
    ax.set_xlabel(f"sparsity achieved: % of prunable weights masked ({basis})\neach point is labelled s = its "
                  "requested sparsity, the fraction of the method's units its run is named by", fontsize=8)
    ax.margins(x=0.08)  # room for the last point's label
    ax.set_ylabel(f"ticket - dense, dev {metric} (points)")
    ax.set_title(title + (f"\n{interval}" if interval else ""), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def kept_units_heatmap(tickets: list[TicketResult], title: str, most: int = 8):
    """Which units each ticket keeps, as Prasanna et al. (2020, fig. 3) show heads and FFN blocks: one panel per
    good ticket whose mask type draws a unit grid (``Mask.unit_grid``; structured tickets: rows = layers, columns
    = the layer's heads then its FFN block), least sparse first, at most ``most``; colour = the fraction of the
    ticket's seeds that keep the unit (each seed's ticket comes from its own dense fine-tune, so they may differ).
    Read from the tickets' mask files.

    Returns:
        the matplotlib figure, or ``None`` when no ticket has a unit grid here.
    """
    panels = []
    for t in sorted(tickets, key=lambda t: (t.sparsity, t.rewind)):
        if t.control != "good" or t.is_dense or not t.mask_files:
            continue
        try:
            mask_type = get_method(t.method).mask_type
        except ValueError:  # a method not registered in this process
            continue
        grids = []
        for path in t.mask_files:
            try:
                grid = mask_type.unit_grid(path)
            except OSError:  # on another node's disk
                continue
            if grid is not None:
                grids.append(grid)
        if grids:
            panels.append((t, grids[0], np.mean([g.kept for g in grids], axis=0), len(grids)))
    if not panels:
        return None
    panels = panels[:most]
    layers, columns = panels[0][2].shape
    fig, axes = plt.subplots(1, len(panels), figsize=(1.2 + 0.28 * columns * len(panels), 0.9 + 0.3 * layers),
                             squeeze=False, sharey=True)
    for ax, (t, grid, kept, seeds) in zip(axes[0], panels):
        image = ax.imshow(kept, vmin=0, vmax=1, cmap="Greens", aspect="equal")
        if grid.split is not None:
            ax.axvline(grid.split - 0.5, color="black", linewidth=1)
        ax.set_title(f"s={t.sparsity:.2f}\n{t.kept}\n{seeds} seed(s)", fontsize=7)
        ax.set_xticks(range(len(grid.labels)), list(grid.labels), fontsize=6)
        ax.set_xlabel(grid.xlabel, fontsize=7)
    axes[0][0].set_yticks(range(layers), [str(layer + 1) for layer in range(layers)], fontsize=6)
    axes[0][0].set_ylabel("layer", fontsize=7)
    fig.colorbar(image, ax=axes[0].tolist(), fraction=0.02, pad=0.02, label="fraction of seeds keeping it")
    fig.suptitle(title, fontsize=9)
    return fig


def summary(tickets: list[TicketResult], verdict: Verdict, lines: list[str], settings: dict) -> dict:
    """The JSON summary logged on the parent run and saved beside the study."""
    def pick(t):
        return None if t is None else t.to_dict()

    return {"settings": settings, "verdict": {"kind": verdict.kind, "lines": lines,
                                              "confidence": verdict.confidence, "tolerance": verdict.tolerance,
                                              "baseline_score": verdict.baseline_score,
                                              "untested": [{"curve": list(u.curve), "never": list(u.never),
                                                            "screened": list(u.screened)}
                                                           for u in verdict.untested]},
            "dense": pick(verdict.dense), **{role: pick(t) for role, t in
                                              (("best_super", verdict.best_super),
                                               ("sparsest_super", verdict.sparsest_super),
                                               ("winning", verdict.winning), ("best", verdict.best))},
            "trials": [t.to_dict() for t in tickets]}
