"""``python -m search.multitask``: Tickets-Share, multi-task fine-tuning through each task's super ticket (Liang et
al. 2021, section 5), against the same multi-task model without masks and against the tasks' single-task studies.

    python -m search.multitask --tasks rte,mrpc,stsb                   # the tasks' latest finished studies
    python -m search.multitask --tasks rte,mrpc --study rte=rte-structured-0412 --budget smoke

Every (arm, seed) is a Ray Tune trial; the study is resumable (``--resume --name NAME``), its runs go to the MLflow
experiment ``supertickets-multitask`` (a parent run, a child per arm) and its table, bar plot and summary beside
it under ``<storage>/multitask/<name>``. Bad input: one line, exit code 2, nothing written.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import sys
from pathlib import Path

from search.study.local_ray import keep_ray_on_loopback

keep_ray_on_loopback()  # before anything imports ray (search.multitask.run)

from search.errors import UsageError  # noqa: E402
from search.multitask.settings import STATE_FILE, build_settings, parser


def check_studies(settings) -> None:
    """Each task of a new multi-task study has its study in the tracking store (the one ``--study`` names, else its
    latest finished one): looked up, nothing downloaded or created, so that a missing one is told before the
    header and before Ray and the study's folder exist.

    Raises:
        UsageError: a task has no such study (the message names the study command to run first).
    """
    from mlflow.tracking import MlflowClient

    from search.multitask.shared_tickets import find_study

    client = MlflowClient(settings.mlflow_uri)
    for task in settings.tasks:
        find_study(client, task, settings.model, settings.studies.get(task), settings.mlflow_uri)


def main(argv: list[str] | None = None, prog: str = "python -m search.multitask") -> int:
    """Run the CLI; returns the exit code (0 done, 2 bad input: one line on stderr and nothing created, 1 a failure
    mid-run: one line with the resume command, 130 interrupted)."""
    given = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per downloaded mask otherwise
    try:
        settings = build_settings(parser(prog).parse_args(given))
        if not settings.resume:
            check_studies(settings)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if os.path.isdir(settings.model) and settings.glue_dir is not None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("mlflow", "alembic", "ray"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    print(f"multi-task study {settings.name}: tasks {','.join(settings.tasks)}, arms {','.join(settings.arms)}, "
          f"{len(settings.seeds)} seeds, budget {settings.budget} ({settings.finetune.epochs} epoch(s) over the mixed data)")
    created = _first_missing(settings.folder)
    try:
        from search.multitask.run import run  # torch, Ray and MLflow: only once the flags are valid

        outcome = run(settings, " ".join([prog, *map(shlex.quote, given)]))
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        _remove_unstarted(settings.folder, created)
        return 2
    except KeyboardInterrupt:
        print(f"\nInterrupted; finished trials are kept. Resume with: {prog} --name {settings.name} --resume "
              f"--tasks {','.join(settings.tasks)}", file=sys.stderr)
        return 130
    except Exception as err:  # a failure mid-run (disk full, server gone): finished trials are kept
        from search.errors import failure_summary

        print(f"failed (exit 1): {failure_summary(err)}; finished trials are kept. Fix the cause, then: {prog} --name "
              f"{settings.name} --resume --tasks {','.join(settings.tasks)}", file=sys.stderr)
        return 1
    print()
    print(outcome.text)
    if outcome.failed:
        print(f"failed (exit 1): {len(outcome.failed)} trial(s) failed ({'; '.join(outcome.failed)[:300]}), so the "
              f"table above lacks their seeds; retry them with: {prog} --name {settings.name} --resume --tasks "
              f"{','.join(settings.tasks)}", file=sys.stderr)
        return 1
    print("done (exit 0)")
    return 0


def _first_missing(folder: Path) -> Path | None:
    """The outermost of ``folder`` and its parents that does not exist yet (what a start creates), or ``None``."""
    missing = None
    for path in (folder, *folder.parents):
        if path.exists():
            return missing
        missing = path
    return missing


def _remove_unstarted(folder: Path, created: Path | None) -> None:
    """Leave nothing half-written: when a failed start left only downloads (no state file), remove what it created
    (``created``: the study folder, or the outermost new parent of it, e.g. ``<storage>/multitask``)."""
    if created is None or not folder.exists() or (folder / STATE_FILE).exists():
        return
    shutil.rmtree(folder, ignore_errors=True)
    for parent in folder.parents:  # the new parents, while empty (another study may have started in them)
        if not parent.is_relative_to(created) or any(parent.iterdir()):  # only folders this start made
            break
        parent.rmdir()


if __name__ == "__main__":
    sys.exit(main())
