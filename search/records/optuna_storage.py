"""Where a study's Optuna trials are stored: an RDB storage that ``optuna-dashboard`` can open.

The default is a SQLite file ``optuna.db`` beside the MLflow SQLite database (``./optuna.db`` beside
``./mlflow.db``), so ``optuna-dashboard sqlite:///$PWD/optuna.db`` shows every study's search history, its
parameter importances and each trial's intermediate dev scores. One Optuna study per supertickets study, of the
same name.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from search.records import sqlite_uri

#: RDB schemes Optuna's storage takes.
OPTUNA_SCHEMES = ("sqlite", "postgresql", "mysql", "oracle", "mssql")


def resolve_optuna_storage(flag: str | None, tracking_uri: str, storage_path: str) -> str:
    """The Optuna RDB storage of a study: ``--optuna-storage``; else ``optuna.db`` beside the MLflow SQLite
    database; else (MLflow on a server) ``<storage_path>/optuna.db``. A relative SQLite path is made absolute."""
    if flag:
        return sqlite_uri.absolute(flag)
    if tracking_uri.startswith(sqlite_uri.PREFIX + "/"):
        return sqlite_uri.PREFIX + str(sqlite_uri.path_of(tracking_uri).parent / "optuna.db")
    return sqlite_uri.PREFIX + str(Path(storage_path) / "optuna.db")


def check_optuna_storage(url: str, study_name: str, resume: bool, created_folder: Path | None = None) -> None:
    """Refuse an Optuna storage the study cannot use, before anything is created: an unknown scheme, a SQLite
    file or folder that cannot be written, or (a new study) a study of the same name already stored there.
    ``created_folder``: a folder the study will create (its storage path, checked by the caller); a SQLite file
    under it may lack its folder yet (the default storage when MLflow is on a server).

    Raises:
        ValueError: the problem and the fix, in one line.
    """
    fix = "pass --optuna-storage sqlite:////absolute/path/optuna.db (or a postgresql:// / mysql:// URL)"
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower()
    if scheme not in OPTUNA_SCHEMES:
        raise ValueError(f"Optuna storage {url!r} has an unknown scheme {scheme!r}: {fix}")
    if scheme != "sqlite":
        return  # a server: not contacted before the study starts
    path = sqlite_uri.path_of(url)
    if created_folder is not None and not path.parent.exists() and path.parent.is_relative_to(created_folder.absolute()):
        return
    sqlite_uri.check_writable(path, "Optuna storage", fix)
    if path.exists():
        tables = _sqlite_tables(path)
        if tables is None:
            raise ValueError(f"Optuna storage {path} is not a SQLite database: {fix}")
        if (tables and "studies" not in tables) or "experiments" in tables:  # MLflow's database, or another program's
            raise ValueError(f"Optuna storage {path} holds another program's tables (the MLflow database?): {fix}")
        import optuna

        if not resume and study_name in optuna.study.get_all_study_names(storage=url):
            raise ValueError(f"Optuna storage {path} already holds a study named {study_name}: choose another "
                             f"--study-name, or remove it with: optuna delete-study --storage {url} --study-name "
                             f"{study_name}")


def _sqlite_tables(path: Path) -> set[str] | None:
    """The table names of the SQLite file ``path``, read without writing (``None``: not a SQLite database)."""
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            return {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError:
        return None


def record_verdict(url: str, study_name: str, verdict, lines: list[str], role_names: dict[str, str],
                   objective: str) -> dict[str, str]:
    """Write the verdict into the study's Optuna study, where optuna-dashboard shows it: the study's user attributes
    ``verdict`` (the verdict line, as in the terminal and MLflow's ``verdict.line`` tag), ``verdict_kind``,
    ``named_by_verdict`` (each ticket the verdict names, by its Optuna trial number and run name, or that it names
    none) and ``best_trial_card`` (whether the dashboard's "Best Trial" is a ticket the verdict names); and, through
    optuna-dashboard's ``save_note``, the study's note: every verdict line.

    The "Best Trial" card itself cannot be hidden: optuna-dashboard shows the best COMPLETE trial of every
    single-objective study. These attributes sit beside it on the dashboard's first page.

    Args:
        url: the Optuna storage; study_name: the study (made by ``search.strategy.searcher.TicketSearch``).
        verdict: the study's ``search.verdict.analysis.Verdict``; lines: its verdict lines.
        role_names: what each verdict role is called (``search.verdict.report.ROLE_NAMES``); objective: the
            Optuna objective's name (``search.strategy.searcher.OBJECTIVE_NAME``). Passed in: records sit below
            the verdict and the strategy and import neither.

    Returns:
        the user attributes written.
    """
    import optuna

    study = optuna.load_study(study_name=study_name, storage=url)
    trials = study.get_trials(deepcopy=False)
    number = {t.user_attrs.get("ray_trial_id"): t.number for t in trials}
    named = {}  # Optuna trial number -> what the verdict calls it
    for role, ticket in verdict.named.items():
        if ticket.trial_id in number:
            named.setdefault(number[ticket.trial_id], []).append(role_names[role])
    by_ticket = {t.trial_id: t for t in verdict.named.values()}
    names = "; ".join(f"trial {n} ({by_ticket[trial_id].config.run_name}, "
                      f"{by_ticket[trial_id].difference.points()}): {' and '.join(named[n])}"
                      for trial_id, n in number.items() if n in named)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        card = "no trial completed: there is no Best Trial"
    else:
        best = study.best_trial.number
        dense = verdict.dense is not None and number.get(verdict.dense.trial_id) == best
        card = (f"'Best Trial' ({best}) is the trial with the largest {objective}; "
                + (f"the verdict names it: {' and '.join(named[best])}" if best in named else
                   "it is the dense model, no ticket" if dense else
                   "the verdict does not name it: it is not shown to be a super or winning ticket"))
    attrs = {"verdict": lines[0], "named_by_verdict": names or "none: the verdict names no ticket",
             "best_trial_card": card, "verdict_kind": verdict.kind}
    for key, value in attrs.items():
        study.set_user_attr(key, value)
    try:
        from optuna_dashboard import save_note
    except ImportError:  # the dashboard is optional to the search itself
        return attrs
    save_note(study, "## Verdict\n\n" + "\n\n".join(lines) + f"\n\n{card}.\n")
    return attrs
