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

from search.errors import UsageError
from search.multitask.settings import STATE_FILE, build_settings, parser


def main(argv: list[str] | None = None, prog: str = "python -m search.multitask") -> int:
    """Run the CLI; returns the exit code (0 done, 2 bad input, 130 interrupted)."""
    given = sys.argv[1:] if argv is None else argv
    try:
        settings = build_settings(parser(prog).parse_args(given))
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per downloaded mask otherwise
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
    try:
        from search.multitask.run import run  # torch, Ray and MLflow: only once the flags are valid

        text = run(settings, " ".join([prog, *map(shlex.quote, given)]))
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        _remove_unstarted(settings.folder)
        return 2
    except KeyboardInterrupt:
        print(f"\nInterrupted; finished trials are kept. Resume with: {prog} --name {settings.name} --resume "
              f"--tasks {','.join(settings.tasks)}", file=sys.stderr)
        return 130
    print()
    print(text)
    return 0


def _remove_unstarted(folder: Path) -> None:
    """Leave nothing half-written: remove the study folder when a failed start left only downloads in it."""
    if folder.exists() and not (folder / STATE_FILE).exists():
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
