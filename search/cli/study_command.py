"""``python -m search.run``: search the super ticket of a GLUE task.

Exit codes: 0 done, 2 bad input (one-line message, nothing created), 1 the study itself failed.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys

if not os.environ.get("RAY_ADDRESS"):
    # A study's own Ray instance listens on 127.0.0.1 only; Ray reads this when it is imported (search.study.orchestrate).
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

from search.cli.defaults import CONFIG_FILE
from search.errors import OneLineParser, UsageError
from spaces.budgets import BUDGETS
from trainables.pruning.registry import all_methods, all_options
from search.study.weights import KEEP_WEIGHTS
from trainables.finetune import PRECISIONS
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
""" + "".join(f"  {name:<11} {space.summary}\n" for name, space in all_methods().items())

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
    """The command line: every flag with its default and units (fractions, epochs, counts)."""
    p = OneLineParser(prog=prog, description=DESCRIPTION, epilog=EPILOG.replace("python -m search.run", prog),
                formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_argument_group("what to search")
    what.add_argument("--task", required=True, help=f"GLUE task: {', '.join(TASKS)}")
    what.add_argument("--method", default="structured",
                      help=f"pruning method(s): {', '.join(all_methods())} (default structured); comma-separate several "
                           "to compare them in one study")
    what.add_argument("--control", default="good",
                      help="good (default): prune the least important units or smallest weights; random: as many, "
                           "chosen uniformly (seeded); bad: as many, the most important units or largest weights "
                           "(Prasanna et al.; structured and magnitude); comma-separate several to compare them")
    what.add_argument("--rewind", default="pretrained",
                      help="rewinding point(s): pretrained (default: re-fine-tune the ticket from the pre-trained "
                           "weights), step:K (the dense fine-tune's weights after K optimiser steps), none (the "
                           "fine-tuned weights, pruned, evaluated once); comma-separate several to let Optuna choose")
    what.add_argument("--sparsity-min", type=float, help="lowest sparsity searched, a fraction in [0, 1) (default 0)")
    what.add_argument("--sparsity-max", type=float,
                      help="highest sparsity searched, a fraction in [0, 1) (default: 0.6 structured, 0.9 others)")
    what.add_argument("--sparsity-step", type=float,
                      help="sparsity grid step (default: 0.05 structured, Liang et al.'s; 0.1 others)")
    what.add_argument("--model", help="hub id or local Hugging Face directory of a BERT-family encoder")
    what.add_argument("--glue-dir", help="classic GLUE directory (default $GLUE_DIR, else the hub's nyu-mll/glue)")

    options = p.add_argument_group("method options ([methods] each applies to)")
    for option in all_options().values():
        owners = "/".join(m for m, space in all_methods().items() if option in space.options)
        text = f"[{owners}] {option.help}"
        if option.type is bool:
            options.add_argument(option.flag, dest=option.name, action=argparse.BooleanOptionalAction, default=None,
                                 help=text)
        else:
            options.add_argument(option.flag, dest=option.name, type=option.type, choices=option.choices, help=text)

    budget = p.add_argument_group("budget (defaults come from --budget; any flag here overrides it)")
    budget.add_argument("--budget", choices=list(BUDGETS), default="paper",
                        help="smoke: 500 training examples, length 64, 2 epochs, 3 seeds, at most 8 trials, for 2 CPU "
                             "cores; paper (default): "
                             "full data, Adamax lr 5e-5, batch 32, 6 epochs (3 on large tasks), 5 seeds, 16 trials")
    budget.add_argument("--num-trials", type=int, help="at most this many trials, the dense one included (the "
                                                       "verdict search usually stops sooner)")
    budget.add_argument("--seeds", type=int, help="seeds per trial, run one after another; each is paired with the "
                                                  "dense model of the same seed")
    budget.add_argument("--epochs", type=int, help="fine-tuning epochs of the dense model and of each ticket")
    budget.add_argument("--learning-rate", type=float, help="peak learning rate")
    budget.add_argument("--batch-size", type=int, help="examples per step")
    budget.add_argument("--optimizer", help="adamw or adamax")
    budget.add_argument("--max-seq-length", type=int, help="tokens per example")
    budget.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="auto (default): bf16 autocast on GPUs that support it, fp16 with loss scaling on other "
                             "GPUs, fp32 on CPUs; or force bf16, fp16 or fp32 (weights and optimiser stay fp32)")
    budget.add_argument("--max-train-examples", type=int, help="train on a seeded subset of this size (0: all)")
    budget.add_argument("--max-dev-examples", type=int, help="evaluate on the first N dev examples (0: all)")
    budget.add_argument("--grace-period", type=int, help="reports (epochs of the first seed) before ASHA may stop a "
                                                         "trial (with --scheduler asha)")

    decide = p.add_argument_group("how the search decides")
    decide.add_argument("--search", choices=("verdict", "tpe", "random", "grid"), default="verdict",
                        help="verdict (default): bisect for the end of the winning sequence, then check super tickets' "
                             "neighbours and run controls, and stop once the verdict is settled; tpe / random: "
                             "Optuna's TPE or random sampler for --num-trials trials; grid: every grid point")
    decide.add_argument("--scheduler", choices=("race", "asha", "none"),
                        help="race (default with several seeds): stop a ticket between seeds once its interval "
                             "shows it cannot be named even if the remaining seeds go its way (a futility test); "
                             "asha: ASHA on the reports (epochs); none (default with one seed): every trial runs "
                             "every seed and epoch")
    decide.add_argument("--confidence", type=float, default=0.95,
                        help="confidence level of every interval, a fraction (default 0.95)")
    decide.add_argument("--match-tolerance", type=float, default=0.01,
                        help="a winning ticket is shown no worse than dense by more than this, in dev-score units "
                             "(default 0.01 = 1 point): its interval's lower bound is at least -tolerance, and so "
                             "is every less sparse ticket tested on its curve")

    run = p.add_argument_group("where it runs and where results go")
    run.add_argument("--concurrent-trials", type=int,
                     help="trials at once (default: as many as the Ray cluster's CPUs and GPUs hold when the study "
                          "starts; none is queued, so each new point is chosen knowing the results so far)")
    run.add_argument("--cpus-per-trial", type=float, default=2.0, help="CPUs per trial (default 2)")
    run.add_argument("--max-failures", type=int, default=2,
                     help="times a trial is restarted, from its first epoch under a new MLflow run, after its worker "
                          "or node died or it raised (default 2; a diverged trial is not restarted: it is FAILED)")
    run.add_argument("--keep-weights", choices=KEEP_WEIGHTS, default="named",
                     help="fine-tuned weights kept and logged to the child runs (for python -m search.export): named "
                          "(default: the dense model and the tickets the verdict names), all (every good ticket's, logged to "
                          "its run) or none. Each trial writes its weights "
                          "while the study runs (one model per good trial and seed on disk at most)")
    run.add_argument("--data-workers", default="auto",
                     help="data-loader worker processes per fine-tune, collating batches into pinned memory beside "
                          "the training loop (no effect on results): a number, or auto (default: one per CPU of the "
                          "trial beyond the first, at most 4, on a trial with a GPU; 0 on the CPU, where they would "
                          "take cores from training)")
    run.add_argument("--gpus-per-trial", type=float,
                     help="GPUs per trial, fractions allowed (0.25 packs 4 trials on a GPU); default 1 if CUDA is "
                          "visible, else 0")
    run.add_argument("--search-seed", type=int, default=0, help="seed of the Optuna sampler (default 0)")
    run.add_argument("--storage-path", default="supertickets_results",
                     help="where studies and the caches are stored: a folder (on a cluster, one every node mounts) "
                          "or a URI Ray Tune accepts (s3://bucket/prefix, gs://..., "
                          "s3://...?endpoint_override=host:port&scheme=http for MinIO), which every node reads and "
                          "writes (default ./supertickets_results)")
    run.add_argument("--local-dir",
                     help="with a storage URI: the local folder, the same path on every node, where the caches and "
                          "the study's files are kept before they are uploaded (default "
                          "~/.cache/supertickets/<bucket and prefix>)")
    run.add_argument("--study-name", help="name of the study (default <task>-<method>-<date>-<time>)")
    run.add_argument("--resume", action="store_true", help="resume the interrupted study --study-name")
    run.add_argument("--mlflow-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, else "
                                          "sqlite:///<cwd>/mlflow.db)")
    run.add_argument("--optuna-storage", help="Optuna RDB storage of the search, for optuna-dashboard (default: "
                                              "optuna.db beside the MLflow SQLite database, else in --storage-path)")
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
    """Run the CLI; returns the exit code (0 done, 2 bad input, 130 interrupted). ``argv`` defaults to sys.argv."""
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
    print()
    print(outcome.table)
    print()
    print(outcome.line)
    print(outcome.ui_hint())
    return 0


if __name__ == "__main__":
    sys.exit(main())
