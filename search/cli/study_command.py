"""``python -m search.run``: search the super ticket of a GLUE task.

Exit codes: 0 a verdict the data made (naming nothing included), 2 bad input (one-line message, nothing created),
1 a failure (the dense trial or a ticket's failed on every attempt; a crash); the last line says which.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys

from search.study.local_ray import keep_ray_on_loopback

keep_ray_on_loopback()  # before anything imports ray (search.study.orchestrate)

from search.cli.defaults import CONFIG_FILE
from search.cli.flags import GROUPS, STUDY_FLAGS, add_flags, budget_summary
from search.cli.method_facts import method_facts
from search.errors import OneLineParser, UsageError
from spaces.budgets import BUDGETS
from trainables.tasks import TASKS

DESCRIPTION = f"""\
Find winning and super tickets of a pre-trained BERT-family encoder on a GLUE task.

A study fine-tunes the dense model once per seed (cached under --storage-path/cache and reused by every
trial and later study with the same settings), then searches the sparsity grid through Ray Tune and Optuna.
Each trial prunes a ticket with its method, rewinds it and fine-tunes it, one seed after another; every seed
is compared with the dense model of the same seed on the same dev examples. With several seeds, seed racing
stops a ticket as soon as its interval shows it cannot be named. Everything goes to MLflow; the study ends
with a table and a verdict that names super tickets (interval of ticket - dense above 0) and the sparsest
winning ticket (no worse than dense by more than --match-tolerance, tested from the least sparse ticket on
and ending at the first that fails) only when the data support it, each with
its difference in points, its confidence interval and the seeds and dev examples behind it. A dense model
that does not beat the majority class names no ticket at all.

Model and data, when no flag says: $SUPERTICKETS_MODEL / $GLUE_DIR, then ./{CONFIG_FILE}, then the
papers' bert-base-uncased and nyu-mll/glue from the hub.

methods (--method):
"""

EPILOG = """\
examples:
  python -m search.run --task rte                       # the papers' budget (meant for GPUs)
  python -m search.run --task sst2 --budget smoke       # the whole pipeline on 2 CPU cores in minutes
  python -m search.run --task rte --budget smoke        # if the dense model learns nothing, the guard says so
  python -m search.run --task mrpc --seeds 3 --gpus-per-trial 0.5
  python -m search.run --task mrpc --method imp --rewind step:200
  python -m search.run --task mrpc --method magnitude --control good,random,bad --sparsity-min 0.5 --sparsity-max 0.5
  RAY_ADDRESS=auto python -m search.run --task stsb     # on a running Ray cluster
  mlflow ui --backend-store-uri sqlite:///$PWD/mlflow.db  # look at the results
  optuna-dashboard sqlite:///$PWD/optuna.db               # the search history, importances, learning curves
"""


def parser(prog: str = "python -m search.run") -> argparse.ArgumentParser:
    """The command line, made from the flag declarations (``search.cli.flags``) and the methods' options: every flag
    with its default and units (fractions, epochs, counts). The methods' facts come from
    ``search.cli.method_facts`` (a snapshot of the registry), so building it imports neither torch nor the methods.

    Raises:
        UsageError: a method named in ``$SUPERTICKETS_METHODS`` cannot be loaded.
    """
    try:
        methods, method_options = method_facts()
    except ValueError as err:  # a plugin named in $SUPERTICKETS_METHODS cannot be loaded
        raise UsageError(str(err)) from None
    description = DESCRIPTION + "".join(f"  {name:<11} {method.summary}\n" for name, method in methods.items())
    p = OneLineParser(prog=prog, description=description, epilog=EPILOG.replace("python -m search.run", prog),
                      formatter_class=argparse.RawDescriptionHelpFormatter)

    def per_method(index: int) -> str:
        return ", ".join(f"{name} {method.sparsity[index]:g}" for name, method in methods.items())

    texts = {"tasks": ", ".join(TASKS), "methods": ", ".join(methods),
             "controlled": ", ".join(m for m, method in methods.items() if len(method.controls) > 1),
             "low": per_method(0), "high": per_method(1), "step": per_method(2),
             "budgets": "; ".join(f"{name}: {budget_summary(budget)}" for name, budget in BUDGETS.items())}
    add_flags(p, [f.name for f in STUDY_FLAGS if f.group == "what"], **texts)
    options = p.add_argument_group(GROUPS["options"])
    for option in method_options.values():
        text = f"[{'/'.join(option.owners)}] {option.help}"
        if option.python_type is bool:
            options.add_argument(option.flag, dest=option.name, action=argparse.BooleanOptionalAction, default=None,
                                 help=text)
        else:
            options.add_argument(option.flag, dest=option.name, type=option.python_type, choices=option.choices,
                                 help=text)
    add_flags(p, [f.name for f in STUDY_FLAGS if f.group != "what"], **texts)
    return p


def resume_command(argv: list[str], study_name: str) -> str:
    """The command line that resumes the study ``study_name`` started with ``argv``."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--study-name":
            skip = True
        elif arg != "--resume" and not arg.startswith("--study-name="):
            kept.append(arg)
    return " ".join(["python -m search.run", *map(shlex.quote, kept), "--study-name", study_name, "--resume"])


def main(argv: list[str] | None = None, prog: str = "python -m search.run") -> int:
    """Run the CLI; returns the exit code (0 a verdict the data made, 1 a failure made it, ``exit_status``; 2 bad
    input; 130 interrupted). ``argv`` defaults to sys.argv."""
    try:
        args = parser(prog).parse_args(argv)
        if args.resume and not args.study_name:
            raise UsageError("--resume needs --study-name of the study to resume")
        from search.cli.preflight import check_before_start
        from search.cli.settings import build_settings

        settings = build_settings(args)
        check_before_start(settings)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    from search.study.orchestrate import run_study

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("mlflow", "alembic", "ray"):  # set-up chatter; warnings still show
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # start-up lines show at once, also when redirected to a file
    given = sys.argv[1:] if argv is None else argv
    try:
        outcome = run_study(settings, command=resume_command(given, settings.study_name),
                            typed_command=" ".join([prog, *map(shlex.quote, given)]))
    except UsageError as err:  # found once the study starts: another process runs it, or the cluster is too small
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nInterrupted; finished trials are kept. Resume with: "
              f"{resume_command(given, settings.study_name)}", file=sys.stderr)
        return 130
    except Exception as err:  # a failure mid-study (disk full, server gone): runs closed FAILED, locks released
        print(crash_line(err, settings, resume_command(given, settings.study_name)), file=sys.stderr)
        return 1
    print()
    print(outcome.table)
    print()
    print(outcome.line)
    print(outcome.ui_hint())
    code, summary = exit_status(outcome, resume_command(given, settings.study_name))
    print(summary, file=sys.stderr if code else sys.stdout)
    return code


def crash_line(err: BaseException, settings, resume: str) -> str:
    """The one line a study that failed mid-way ends with: what failed (``search.errors.failure_summary``), where
    its traceback went, and the command that resumes it. The traceback goes to ``<study>/error.log`` (or, when
    that cannot be written, nowhere but this line: a full disk)."""
    import traceback

    from search.errors import failure_summary

    what = failure_summary(err)
    fix = ("free space (or pass another --storage-path / --mlflow-uri), then resume" if what.startswith("the disk")
           else "fix the cause, then resume")
    log = settings.study_dir / "error.log"
    try:
        log.write_text("".join(traceback.format_exception(err)))
        where = f"traceback in {log}"
    except OSError:
        where = "no traceback written (the folder cannot be written)"
    return f"failed (exit 1): {what}; finished trials are kept, runs closed as FAILED ({where}). {fix}: {resume}"


#: Verdict kinds a failure made, not the data (``search.verdict.analysis.KINDS``).
FAILED_VERDICTS = ("dense_failed", "no_dense")


def exit_status(outcome, resume: str) -> tuple[int, str]:
    """The study's exit code and its one summary line: 0 when the data made the verdict (naming nothing
    included, and a ticket whose training diverged is data), 1 when a failure did: the dense trial did not finish,
    or a trial failed on every attempt, so a point of the grid is untested for no reason the data gave.

    Args:
        outcome: the finished study (``search.study.orchestrate.StudyOutcome``).
        resume: the command that resumes the study (Tune retries failed trials on resume).
    """
    failed = [t for t in outcome.tickets if t.status == "FAILED" and not (t.status_reason or "").startswith("diverged")]
    if outcome.verdict.kind in FAILED_VERDICTS:
        dense = outcome.verdict.dense
        if dense is not None and (dense.status_reason or "").startswith("diverged"):
            return 1, (f"failed (exit 1): no verdict, the dense model's training diverged ({dense.status_reason}); "
                       f"lower --learning-rate, then start a new study")
        why = "failed" if dense is not None else "did not finish"
        return 1, (f"failed (exit 1): no verdict, the dense model's trial {why}; its error is in the MLflow run and "
                   f"Ray's log. Fix the cause, then: {resume}")
    if failed:
        names = ", ".join(sorted({f"{t.config.method} s={t.sparsity:.2f}" for t in failed}))
        return 1, (f"failed (exit 1): {len(failed)} trial(s) failed ({names}), so the verdict above leaves their "
                   f"points untested; retry them with: {resume}")
    return 0, "done (exit 0): the verdict above is what the data say"


if __name__ == "__main__":
    sys.exit(main())
