"""What a study prints while it runs: one line per event, a live table on a terminal, an estimate of its time.

Tune's own status tables are turned off (``verbose=0``); this Tune callback shows instead, per trial, what a
researcher compares (sparsity, method, control), where it is (seed, epoch, a bar of the epoch's optimiser steps
from ``trainables.progress``), its dev score and its status. On a terminal the table is redrawn in place once a
second below the event lines; in a file (``> log``) only plain event lines are written, plus a progress line per
running fine-tune every minute, so a log reads top to bottom without control codes. Every report also goes to
``<study>/progress.csv`` as one row of scalars (never masks or predictions).
"""

from __future__ import annotations

import csv
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ray.tune import Callback
from ray.tune.logger import CSVLoggerCallback

from trainables.config import TrialConfig
from trainables.progress import DENSE_JOB_PREFIX, StepProgress, dense_job
from trainables.report import REPORT_KEY, TrialReport

#: Columns of ``progress.csv``.
CSV_COLUMNS = ("time_s", "trial", "name", "seed", "epoch", "epochs", "dev_score", "train_loss", "seeds_done",
               "mean_dev_score", "mean_difference")
#: Seconds between in-place redraws on a terminal, and between progress lines in a file.
REFRESH_S, FILE_EVERY_S = 1.0, 60.0


@dataclass(frozen=True)
class Plan:
    """What the study will run, for the time estimate: seeds and epochs per trial, the trial cap, trials at once,
    and each ticket trial the search may run as its fine-tuning FLOPs over the dense model's (the method's
    ``training_cost``: below 1 for a structured ticket trained physically smaller; empty: all cost what the dense
    model costs)."""

    seeds: int
    epochs: int
    num_trials: int
    slots: int
    ticket_costs: tuple[float, ...] = ()


@dataclass
class _Row:
    name: str
    status: str = "PENDING"
    seed: int | None = None
    seed_index: int = 0
    seeds: int = 0
    epoch: int = 0
    epochs: int = 0
    dev: float | None = None
    step: StepProgress | None = None
    last_line: float = field(default_factory=time.monotonic)


def bar(done: int, total: int, width: int = 12) -> str:
    """A text progress bar: ``[#####-------]``."""
    filled = 0 if total <= 0 else min(width, round(width * done / total))
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def duration(seconds: float) -> str:
    """``42 s``, ``7 min 5 s``, ``3 h 20 min``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def estimate(plan: Plan, epoch_seconds: float) -> str:
    """The study's time from one measured epoch of the dense fine-tune: the dense fine-tunes (every seed, as many
    at once as the slots allow), a ticket trial (every seed and epoch, scaled by its kept FLOPs; seed racing may
    stop it sooner) and the most the search may run (the ``num_trials - 1`` costliest ticket trials of the space,
    ``slots`` at once; the dense point replays the cache)."""
    dense_trial = plan.seeds * plan.epochs * epoch_seconds
    dense = math.ceil(plan.seeds / plan.slots) * plan.epochs * epoch_seconds
    budget = max(0, plan.num_trials - 1)
    costs = sorted(plan.ticket_costs or (1.0,), reverse=True)
    taken = [costs[i % len(costs)] for i in range(budget)]  # the costliest first; a small space repeats
    rounds = math.ceil(budget / plan.slots)
    search = rounds * (sum(taken) / budget if budget else 0.0) * dense_trial
    cheapest, costliest = min(costs), max(costs)
    trial = (f"a ticket trial up to {duration(costliest * dense_trial)}" if cheapest == costliest else
             f"a ticket trial {duration(cheapest * dense_trial)} to {duration(costliest * dense_trial)} (scaled by "
             f"its kept FLOPs: {100 * cheapest:.0f}-{100 * costliest:.0f} % of the dense model's)")
    return (f"estimate: dense fine-tunes {duration(dense)}; {trial} ({plan.seeds} seed(s) x {plan.epochs} "
            f"epoch(s)); at most {budget} ticket trials, {plan.slots} at once: up to {duration(dense + search)} in "
            "all (the verdict search and seed racing usually stop sooner; evaluation time not counted)")


class StudyDisplay(Callback):
    """The study's terminal display (see the module doc); also polled by the driver while the dense fine-tunes run.

    Args:
        board: the ``ProgressBoard`` actor handle (``None``: no in-epoch progress).
        plan: for the time estimate.
        csv_path: where ``progress.csv`` goes (``None``: nowhere).
        out: the stream (default ``sys.stdout``); a terminal gets the live table.
    """

    def __init__(self, board=None, plan: Plan | None = None, csv_path: str | None = None, out=None,
                 board_name: str | None = None):
        self.board, self.plan, self.csv_path, self._out = board, plan, csv_path, out
        self.board_name = board_name  # a resumed study's display comes back from Tune's pickle: found by name
        self.rows: dict[str, _Row] = {}
        self.ended: set[str] = set()  # jobs whose board entries are stale
        self.started = time.monotonic()
        self.estimated = False
        self._drawn = 0
        self._last_poll = 0.0

    def attach(self, board, board_name: str, plan: Plan) -> None:
        """Give the display the study's ``ProgressBoard`` (the actor and its name) and the plan to estimate from."""
        self.board, self.board_name, self.plan = board, board_name, plan

    def __getstate__(self):  # Tune pickles callbacks into its state: handles and streams stay out
        return {**self.__dict__, "_out": None, "board": None, "_drawn": 0}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.started = time.monotonic()

    @property
    def out(self):
        return self._out or sys.stdout

    @property
    def live(self) -> bool:
        """True on a terminal: the table is redrawn in place."""
        return bool(getattr(self.out, "isatty", lambda: False)())

    # ---- lines -------------------------------------------------------------------------------------------------
    def say(self, line: str) -> None:
        """Print one event line (above the live table on a terminal), flushed at once."""
        self._clear()
        self.out.write(f"[{duration(time.monotonic() - self.started):>11}] {line}\n")
        self._draw()
        self.out.flush()

    def _clear(self) -> None:
        if self.live and self._drawn:
            self.out.write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0

    def _draw(self) -> None:
        if not self.live:
            return
        width = shutil.get_terminal_size().columns - 1  # a wrapped line would break the redraw's line count
        lines = [self._row_text(job, row)[:width] for job, row in self.rows.items()
                 if row.status in ("RUNNING", "PENDING")]
        if lines:
            self.out.write("\n".join(lines) + "\n")
        self._drawn = len(lines)

    def _row_text(self, job: str, row: _Row) -> str:
        where = "" if row.seed is None else f"seed {row.seed_index + 1}/{row.seeds} epoch {row.epoch}/{row.epochs}"
        step = row.step
        inside = "" if step is None else f" {bar(step.step, step.steps)} {step.step}/{step.steps} steps"
        dev = "" if row.dev is None else f"  dev {row.dev:.4f}"
        return f"  {job[:14]:<14} {row.name:<28} {row.status:<8} {where}{inside}{dev}"

    # ---- in-epoch progress -------------------------------------------------------------------------------------
    def poll(self, force: bool = False) -> None:
        """Read the board (at most once a second), redraw or write progress lines, and estimate the study's time
        once an epoch has been measured."""
        now = time.monotonic()
        if not force and now - self._last_poll < REFRESH_S:
            return
        self._last_poll = now
        import ray

        if self.board is None and self.board_name:
            try:
                self.board = ray.get_actor(self.board_name)
            except ValueError:
                self.board_name = None
        if self.board is None:
            return
        try:
            latest, first_epoch = ray.get(self.board.snapshot.remote(), timeout=5)
            notes = ray.get(self.board.take_notes.remote(), timeout=5)
        except Exception:  # noqa: BLE001 - the display must never stop a study
            return
        if notes and self.live:
            self._clear()
        for text in notes:  # e.g. a healed cache entry (trainables.store)
            self.say(text)
        for job, step in latest.items():
            if job in self.ended:
                continue
            dense = job.startswith(DENSE_JOB_PREFIX)
            row = self.rows.get(job)
            if row is None and dense:
                row = self.rows[job] = _Row(f"dense fine-tune seed {step.seed}", "RUNNING")
            if row is None:
                continue
            row.step = step
            if dense:
                row.seed, row.seeds, row.epoch, row.epochs = step.seed, 1, step.epoch, step.epochs
            if not self.live and row.status == "RUNNING" and now - row.last_line >= FILE_EVERY_S \
                    and step.step < step.steps:
                row.last_line = now
                self.say(f"{row.name}: seed {step.seed} epoch {step.epoch}/{step.epochs}, step {step.step}/"
                         f"{step.steps} ({100 * step.step / max(1, step.steps):.0f} %, {duration(step.seconds)})")
        self._maybe_estimate(latest, first_epoch)
        if self.live:
            self._clear()
            self._draw()
            self.out.flush()

    def _maybe_estimate(self, latest: dict, first_epoch: StepProgress | None) -> None:
        if self.estimated or self.plan is None:
            return
        if first_epoch is not None:
            seconds = first_epoch.seconds
            basis = f"the first epoch: {first_epoch.steps} steps in {duration(seconds)}"
        else:  # a long first epoch: estimate from its first minute
            early = [s for s in latest.values() if s.step >= 20 and s.seconds >= 60]
            if not early:
                return
            s = early[0]
            seconds, basis = s.seconds * s.steps / s.step, f"the first {s.step} of {s.steps} steps of an epoch"
        self.estimated = True
        self.say(f"{estimate(self.plan, seconds)}; measured on {basis}")

    def dense_done(self, seed: int, text: str) -> None:
        """A dense fine-tune ended (or was read from the cache): its row goes, its line stays."""
        self.rows.pop(dense_job(seed), None)
        self.ended.add(dense_job(seed))
        self.say(text)

    # ---- Tune callback -----------------------------------------------------------------------------------------
    def on_trial_start(self, iteration, trials, trial, **info):
        name = TrialConfig.from_tune(trial.config).run_name
        self.rows[trial.trial_id] = _Row(name, "RUNNING")
        self.say(f"trial {trial.trial_id} {name}: started")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        report = TrialReport.from_tune(result)
        row = self.rows.setdefault(trial.trial_id, _Row(TrialConfig.from_tune(trial.config).run_name, "RUNNING"))
        if report is None:
            return
        row.seed, row.seed_index = report.seed, report.planned_seeds.index(report.seed)
        row.seeds, row.epoch, row.epochs, row.step = len(report.planned_seeds), report.epoch, report.planned_epochs, None
        row.dev = report.mean_score if report.finished else report.current.dev_score
        loss = "" if report.current.train_loss is None else f", train loss {report.current.train_loss:.4f}"
        self.say(f"trial {trial.trial_id} {row.name}: seed {report.seed} epoch {report.epoch}/{report.planned_epochs}"
                 f" dev {report.current.dev_score:.4f}{loss}")
        self._write_csv(trial.trial_id, row.name, report)

    def on_step_end(self, iteration, trials, **info):
        self.poll()

    def on_trial_recover(self, iteration, trials, trial, **info):
        row = self.rows.get(trial.trial_id)
        self.say(f"trial {trial.trial_id} {row.name if row else ''}: failed or lost its node; restarted from its first "
                 f"epoch ({trial.num_failures} failure(s) so far)")

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._ended(trial, "FINISHED")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._ended(trial, "FAILED")

    def _ended(self, trial, status: str) -> None:
        row = self.rows.get(trial.trial_id)
        if row is None:
            return
        report = TrialReport.from_tune(trial.last_result) if trial.last_result else None
        if status == "FINISHED" and report is not None and report.status_reason:
            status = "FAILED"  # diverged: reported, then ended without an error (nothing to restart)
        elif status == "FINISHED" and report is not None and not report.complete:
            status = "STOPPED"  # a scheduler ended it before its last seed
        row.status = status
        self.ended.add(trial.trial_id)
        if report is not None and report.finished:
            versus = "" if row.name == "dense" else f", {100 * report.mean_difference:+.1f} points vs dense"
            what = f"dev {report.mean_score:.4f} over {len(report.finished)} seed(s){versus}"
        else:
            what = report.status_reason if report is not None and report.status_reason else "no seed finished"
        self.say(f"trial {trial.trial_id} {row.name}: {status} ({what})")

    def _write_csv(self, trial_id: str, name: str, report: TrialReport) -> None:
        if not self.csv_path:
            return
        path = Path(self.csv_path)
        new = not path.exists()
        with path.open("a", newline="") as file:
            writer = csv.writer(file)
            if new:
                writer.writerow(CSV_COLUMNS)
            writer.writerow([round(time.monotonic() - self.started, 1), trial_id, name, report.seed, report.epoch,
                             report.planned_epochs, report.current.dev_score, report.current.train_loss,
                             len(report.finished), report.mean_score, report.mean_difference])


class MultiTaskLines(Callback):
    """One line per epoch of every multi-task trial (``search.multitask``) and one per failed trial, printed by the
    driver: ``tickets-share seed 0 epoch 1: rte 61.2  mrpc 70.1  (average 65.7)`` (points)."""

    def on_trial_result(self, iteration, trials, trial, result, **info):
        scores = "  ".join(f"{k.split('/')[0]} {100 * v:.1f}" for k, v in result.items() if k.endswith("/dev_score"))
        print(f"{trial.config['arm']} seed {trial.config['seed']} epoch {result['epoch']}: {scores}  "
              f"(average {100 * result['dev_score']:.1f})", flush=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        print(f"{trial.config['arm']} seed {trial.config['seed']}: FAILED ({trial.error_file})", flush=True)


class ScalarCSVLogger(CSVLoggerCallback):
    """Tune's per-trial ``progress.csv`` with the scalars only: the whole report (per-example predictions) stays in
    ``result.json`` and MLflow, not in a spreadsheet column. Given to Tune, it replaces Tune's own CSV logger.

    Args:
        drop: the result keys left out (default: a study trial's report).
    """

    def __init__(self, drop: tuple[str, ...] = (REPORT_KEY,)):
        super().__init__()
        self.drop = drop

    def log_trial_result(self, iteration: int, trial, result: dict):
        super().log_trial_result(iteration, trial, {k: v for k, v in result.items() if k not in self.drop})
