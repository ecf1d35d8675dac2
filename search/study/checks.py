"""The checks a study makes again once it starts (the pre-flight, ``search.cli.preflight``, makes them first):
that a resumed study keeps its settings, and that a trial fits on a node of the Ray cluster it joined."""

from __future__ import annotations

from pathlib import Path

from search.errors import UsageError
from search.study.settings import StudySettings
from search.study.state import STATE_FILE, StudyState, stringify, studies_under
from trainables import mirror

#: Settings a resumed study may change: they decide how fast it runs, never what it finds.
MAY_CHANGE_ON_RESUME = frozenset({"resume", "concurrent_trials", "local_dir", "model_source", "glue_source", "max_failures",
                                  "data_workers"})
#: Settings added after some studies were stored: absent from an older state file, they are not compared (such a
#: study resumes with what it had, e.g. its Optuna study in the searcher's saved state rather than in optuna.db).
ADDED_SINCE = frozenset({"optuna_storage", "trust_remote_code"})


def check_resume(settings: StudySettings) -> None:
    """``--resume`` names a study that exists and keeps its settings; a new study does not reuse a name.

    A resumed study continues with the settings it was started with (Tune restores them), so a flag that
    differs would be ignored: that is refused, naming each setting, unless it is in ``MAY_CHANGE_ON_RESUME``.
    """
    storage = settings.root
    mirror.available(settings.study_dir / STATE_FILE)  # started on another machine: its state is under the URI
    state = StudyState.read(settings.study_dir)
    if not settings.resume:
        if state is not None:
            raise UsageError(f"study {settings.study_name} exists under {settings.storage_path}: add --resume to "
                             "continue it, or choose another --study-name")
        return
    if state is None:
        names = studies_under(storage)
        listing = ", ".join(names) if names else "none"
        known = f"studies there: {listing}" if settings.mirror is None else f"studies in {storage}: {listing}"
        raise UsageError(f"no study {settings.study_name} to resume under {settings.storage_path} ({known}): "
                         "pass --study-name of one of them, or --storage-path where it ran")
    check_trusted_folder(settings.study_dir, storage)
    if not state.params:
        return  # a study from before settings were stored: nothing to compare
    now = stringify(settings.params())
    changed = [key for key in sorted(set(now) | set(state.params))
               if key not in MAY_CHANGE_ON_RESUME and now.get(key) != state.params.get(key)
               and not (key in ADDED_SINCE and key not in state.params)]
    if changed:
        shown = "; ".join(f"{key} {state.params.get(key, '(unset)')} -> {now.get(key, '(unset)')}" for key in changed[:4])
        more = f" and {len(changed) - 4} more" if len(changed) > 4 else ""
        how = f"run: {state.command}" if state.command else "give the flags it was started with"
        raise UsageError(f"--resume would change study {settings.study_name}: {shown}{more}; to resume it unchanged, "
                         f"{how}")


def check_trusted_folder(folder: Path, top: Path) -> None:
    """Resuming loads Tune's pickled state from ``folder``, and unpickling runs code: refuse when ``folder``, a
    folder or file in it, or a folder above it up to ``top`` (the storage path) is writable by every user of the
    machine, so that anyone could have replaced the state. A symlink is judged by what it points to. A sticky
    folder (``/tmp``) does not let others replace files they do not own and is accepted.

    Raises:
        UsageError: the world-writable path, its mode and the ``chmod`` that fixes it.
    """
    import os
    import stat

    folder, top = Path(folder).absolute(), Path(top).absolute()
    paths = [folder, *[p for p in folder.parents if p == top or top in p.parents]]
    for root, dirs, files in os.walk(folder):
        paths += [Path(root) / name for name in (*dirs, *files)]
    for path in paths:
        try:
            mode = path.stat().st_mode  # follows a symlink to what Tune would read
        except OSError:
            continue  # a dangling link: nothing to load
        if mode & stat.S_IWOTH and not (stat.S_ISDIR(mode) and mode & stat.S_ISVTX):
            raise UsageError(f"refusing to resume from {path}: it is writable by every user (mode "
                             f"{stat.S_IMODE(mode):o}), and resuming loads Tune's pickled state, which runs code; "
                             f"make it yours alone (chmod o-w {path}) if you trust what is in it, then resume")


def local_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one), as a local Ray instance counts
    them."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def trial_slots(settings: StudySettings, cpus: float, gpus: float) -> int:
    """Trials at once: ``--concurrent-trials``, else as many as ``cpus`` and ``gpus`` hold with each trial's
    ``--cpus-per-trial`` and ``--gpus-per-trial`` (at least 1)."""
    if settings.concurrent_trials:
        return settings.concurrent_trials
    slots = int(cpus // settings.cpus_per_trial)  # cpus_per_trial > 0: checked by settings
    if settings.gpus_per_trial > 0:
        slots = min(slots, int(gpus // settings.gpus_per_trial))
    return max(1, slots)


def check_fits(settings: StudySettings, nodes: list[tuple[float, float]], where: str) -> None:
    """``--cpus-per-trial`` and ``--gpus-per-trial`` fit on one of ``nodes`` (``(cpus, gpus)`` each), else Ray
    would wait forever for a node that can run a trial. ``where`` names the biggest node in the message.

    Raises:
        UsageError: what a trial asks for, what the biggest node has, and the flag to change.
    """
    cpus = max((c for c, _ in nodes), default=0)
    gpus = max((g for _, g in nodes), default=0)
    if settings.gpus_per_trial > gpus:
        fix = "pass --gpus-per-trial 0 (CPU)" if gpus == 0 else f"pass --gpus-per-trial {gpus:g} or less"
        raise UsageError(f"--gpus-per-trial {settings.gpus_per_trial:g} does not fit: {where} has {gpus:g} "
                         f"GPU(s): {fix}")
    if not any(c >= settings.cpus_per_trial and g >= settings.gpus_per_trial for c, g in nodes):
        raise UsageError(f"--cpus-per-trial {settings.cpus_per_trial:g} does not fit: {where} has {cpus:g} "
                         f"CPU(s){f' and {gpus:g} GPU(s)' if gpus else ''}: pass --cpus-per-trial "
                         f"{max(1, int(cpus)):d} or less")
