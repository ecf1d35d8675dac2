"""From flags to a study's settings (``search.study.settings.StudySettings``): the budget's defaults, overridden by
flags, checked before anything is created."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from search.cli.defaults import resolve_glue_dir, resolve_model, resolve_path_option
from search.cli.flags import resolve_storage, value
from search.errors import UsageError
from search.records.optuna_storage import resolve_optuna_storage
from search.records.tracking import resolve_tracking_uri
from search.study.settings import StudySettings
from spaces.budgets import BUDGETS
from spaces.sparsity import SparsityRange
from trainables.data import DataSettings
from trainables.finetune import OPTIMIZERS, FinetuneSettings
from trainables.mirror import is_uri
from trainables.model import UnsupportedModelError, check_remote_code, layout_for, load_config, trust_remote_code
from trainables.pruning.controls import CONTROLS
from trainables.pruning.registry import all_methods, all_options
from trainables.rewinding import rewind_step
from trainables.tasks import get_task


def _is_local(model: str) -> bool:
    return os.path.exists(model) or model.startswith((".", "/", "~")) or model.count("/") > 1


def check_model(model: str) -> str:
    """The model as an absolute path (local) or hub id, after checking it is a supported encoder.

    Raises:
        UsageError: no model there, it cannot be loaded, its family is not supported, or it ships code of its own
            and ``--trust-remote-code`` was not given (``trainables.model.check_remote_code``).
    """
    if _is_local(model):
        path = Path(model).expanduser().resolve()
        if not (path / "config.json").is_file():
            raise UsageError(f"model path {model} not found (no config.json there): pass --model with a Hugging Face "
                             "model directory or a hub id")
        model = str(path)
    try:
        check_remote_code(model)
        config = load_config(model)
        check_remote_code(model, config)
    except UnsupportedModelError as err:
        raise UsageError(str(err)) from None
    except (OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(f"model {model!r} could not be loaded ({first}): pass --model with a local model "
                         "directory, or run where the hub is reachable") from None
    try:
        layout_for(config)
    except UnsupportedModelError as err:
        raise UsageError(str(err)) from None
    return model


def check_sequence_length(tokens: int, model: str) -> None:
    """``--max-seq-length`` fits the model's position embeddings (RoBERTa-style models start counting after their
    padding id, so two fewer).

    Raises:
        UsageError: more tokens than the model has positions for.
    """
    config = load_config(model)
    limit = getattr(config, "max_position_embeddings", None)
    if limit is None:
        return
    if config.model_type in ("roberta", "xlm-roberta", "camembert"):
        limit -= (config.pad_token_id or 0) + 1
    if tokens > limit:
        raise UsageError(f"--max-seq-length {tokens} is more than {Path(model).name} takes ({limit} tokens: its "
                         f"position embeddings): pass at most {limit}")


def _check_glue_dir(glue_dir: str | None, folder: str) -> str | None:
    if glue_dir is None:
        return None
    path = Path(glue_dir).expanduser().resolve()
    if not path.is_dir():
        raise UsageError(f"GLUE directory {glue_dir} not found: pass --glue-dir (or set GLUE_DIR) to a classic "
                         "GLUE directory, e.g. ../shared/data/glue")
    if not (path / folder).is_dir():
        raise UsageError(f"GLUE directory {glue_dir} has no {folder}/ folder: pass --glue-dir pointing at the "
                         "folder that holds the task folders")
    return str(path)


def build_settings(args) -> StudySettings:
    """Combine the parsed flags with the budget's defaults and check them all.

    Raises:
        UsageError: any bad input (unknown task, method or rewinding point, sparsity range outside
            [0, 1), missing GLUE directory or model, unsupported model, nonsensical counts).
    """
    try:
        task = get_task(args.task)
    except KeyError as err:
        raise UsageError(err.args[0] + " (see --help)") from None
    methods, controls, rewind = _choices(args)
    options = _method_options(args, methods)
    budget = BUDGETS[args.budget]
    default_range = SparsityRange(*all_methods()[methods[0]].sparsity_for(task.name))
    sparsity = SparsityRange(
        args.sparsity_min if args.sparsity_min is not None else default_range.low,
        args.sparsity_max if args.sparsity_max is not None else default_range.high,
        args.sparsity_step if args.sparsity_step is not None else default_range.step)
    try:
        sparsity.validate()
    except ValueError as err:
        raise UsageError(str(err)) from None
    floor = options.get("min_keep_per_matrix", 0)
    if sparsity.high > 1 - floor:
        raise UsageError(f"--sparsity-max {sparsity.high:g} cannot be reached while --min-keep-per-matrix keeps "
                         f"{floor:g} of every matrix: lower one of them (sparsity-max at most {1 - floor:g})")
    if args.optimizer is not None and args.optimizer not in OPTIMIZERS:
        raise UsageError(f"unknown optimizer {args.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")

    def flag(name):  # as given, else the budget's, else the declared default; checked against its declared range
        return value(args, name, budget, task.name)

    counts = {name: flag(name) for name in ("num_trials", "seeds", "epochs", "batch_size", "max_seq_length")}
    for name in ("concurrent_trials", "cpus_per_trial", "gpus_per_trial", "learning_rate", "grace_period",
                 "max_train_examples", "max_dev_examples", "max_failures", "search_seed", "confidence",
                 "match_tolerance"):
        flag(name)
    gpus = args.gpus_per_trial if args.gpus_per_trial is not None else _default_gpus()
    workers = data_workers(args.data_workers, args.cpus_per_trial, gpus)
    if args.local_dir and not is_uri(args.storage_path):
        raise UsageError(f"--local-dir {args.local_dir} is for a storage URI, but --storage-path {args.storage_path} "
                         "is a folder: drop --local-dir, or pass --storage-path s3://... / gs://...")
    scheduler = args.scheduler or ("race" if counts["seeds"] > 1 else "none")

    model = resolve_model(args.model)
    glue = resolve_glue_dir(args.glue_dir)
    glue_dir = _check_glue_dir(glue.value, task.classic.folder)
    trust_remote_code(args.trust_remote_code)  # this process's loaders and (forwarded) its Ray workers'
    model_path = check_model(model.value)
    check_sequence_length(counts["max_seq_length"], model_path)

    finetune = FinetuneSettings(
        learning_rate=flag("learning_rate"), epochs=counts["epochs"], batch_size=counts["batch_size"],
        optimizer=flag("optimizer"), warmup_ratio=budget.warmup_ratio, precision=args.precision)
    data = DataSettings(glue_dir=glue_dir, max_seq_length=counts["max_seq_length"],
                        max_train_examples=flag("max_train_examples") or None,
                        max_dev_examples=flag("max_dev_examples") or None)
    for method in methods:  # each method's own checks of its options and of the model
        try:
            all_methods()[method].check(options, model_path)
        except ValueError as err:
            raise UsageError(str(err)) from None
    name = args.study_name or f"{task.name}-{'+'.join(methods)}-{datetime.now():%Y%m%d-%H%M%S}"
    storage, local = resolve_storage(args.storage_path, args.local_dir)  # refuses an empty one
    return StudySettings(
        task=task.name, method=methods, control=controls, rewind=rewind, model=model_path, model_source=model.source,
        glue_dir=glue_dir, glue_source=glue.source, budget=budget.name, sparsity=sparsity,
        num_trials=counts["num_trials"], seeds=tuple(range(counts["seeds"])), finetune=finetune, data=data,
        grace_period=min(flag("grace_period"), finetune.epochs),
        concurrent_trials=args.concurrent_trials, cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=gpus, data_workers=workers,
        search_seed=args.search_seed, storage_path=storage, local_dir=local,
        study_name=name, mlflow_uri=args.mlflow_uri, match_tolerance=args.match_tolerance,
        confidence=args.confidence, scheduler=scheduler, search=args.search, resume=args.resume, options=options,
        max_failures=args.max_failures, keep_weights=args.keep_weights, trust_remote_code=args.trust_remote_code,
        optuna_storage=resolve_optuna_storage(args.optuna_storage, resolve_tracking_uri(args.mlflow_uri), local))


def storage_paths(storage_path: str, local_dir: str | None) -> tuple[str, str]:
    """``(storage, local)``: the storage folder made absolute (then also the local folder), or the URI as given with
    ``--local-dir`` (default ``~/.cache/supertickets/<bucket and prefix>``) made absolute
    (``search.cli.flags.resolve_storage``, which every command that reads studies shares)."""
    return resolve_storage(storage_path, local_dir)


def _split(value: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))


def _choices(args) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """``--method``, ``--control`` and ``--rewind`` as tuples, each value checked, and every control
    applicable to every method."""
    methods = _split(args.method)
    bad = [m for m in methods if m not in all_methods()]
    if bad or not methods:
        raise UsageError(f"unknown method {','.join(bad) or args.method!r}: choose from {', '.join(all_methods())} "
                         "(comma-separate several to compare them in one study)")
    controls = _split(args.control)
    bad = [c for c in controls if c not in CONTROLS]
    if bad or not controls:
        raise UsageError(f"unknown control {','.join(bad) or args.control!r}: choose from {', '.join(CONTROLS)}")
    for method in methods:
        missing = [c for c in controls if c not in all_methods()[method].controls]
        if missing:
            with_controls = [m for m, space in all_methods().items() if len(space.controls) > 1]
            raise UsageError(f"--control {','.join(missing)} does not apply to --method {method}: controls exist "
                             f"for {', '.join(with_controls)} tickets")
    rewind = _split(args.rewind)
    for point in rewind or (args.rewind,):
        try:
            rewind_step(point)
        except ValueError as err:
            raise UsageError(f"{err} (comma-separate several to let the search choose)") from None
    return methods, controls, rewind


def _method_options(args, methods: tuple[str, ...]) -> dict:
    """The options of the study's methods: flags given, else the declared defaults; paths made absolute;
    defaults implied by a method set (``PruningMethod.implied``). A flag of a method the study does not run is an
    error; the methods' own checks run once the model is resolved."""
    wanted = {o.name: o for m in methods for o in all_methods()[m].options}
    for name, option in all_options().items():
        if getattr(args, name, None) is not None and name not in wanted:
            owners = [m for m, space in all_methods().items() if option in space.options]
            raise UsageError(f"{option.flag} applies to --method {' or '.join(owners)}, not "
                             f"{','.join(methods)}: drop it or add that method")
    options = {}
    for name, option in wanted.items():
        value = getattr(args, name, None)
        if option.path:
            value = str(Path(resolve_path_option(name, value, option.default).value).expanduser().resolve())
        value = option.default if value is None else value
        if option.choices is not None and value not in option.choices:
            raise UsageError(f"{option.flag} {value!r} unknown: choose {' or '.join(map(str, option.choices))}")
        options[name] = value
    for method in methods:
        for name, value in all_methods()[method].implied(options).items():
            if getattr(args, name, None) is None:
                options[name] = value
    if not 0 <= options.get("min_keep_per_matrix", 0) < 1:
        raise UsageError(f"--min-keep-per-matrix {options['min_keep_per_matrix']} must be a fraction in [0, 1), "
                         "e.g. 0.01 (not percent)")
    return options


def _default_gpus() -> float:
    import torch

    return 1.0 if torch.cuda.is_available() else 0.0


#: The most data-loader workers ``--data-workers auto`` starts per fine-tune: collating padded GLUE batches is
#: cheap, so a few processes keep a GPU fed.
MAX_AUTO_WORKERS = 4


def data_workers(value: str, cpus_per_trial: float, gpus_per_trial: float) -> int:
    """``--data-workers`` as a number: ``auto`` is one worker per CPU of the trial beyond the one that trains, at
    most ``MAX_AUTO_WORKERS``, on a trial with a GPU, and 0 without one (on a CPU the workers would take cores
    from the training loop).

    Raises:
        UsageError: not ``auto`` or a whole number >= 0, or more workers than the trial has CPUs besides the
            one that trains.
    """
    spare = max(0, int(cpus_per_trial) - 1)
    if value == "auto":
        return min(MAX_AUTO_WORKERS, spare) if gpus_per_trial > 0 else 0
    try:
        workers = int(value)
    except ValueError:
        workers = -1
    if workers < 0:
        raise UsageError(f"--data-workers {value!r} must be auto or a whole number of processes, 0 or more")
    if workers > spare:
        raise UsageError(f"--data-workers {workers} needs --cpus-per-trial {workers + 1} or more (one CPU trains, one per "
                         f"worker); pass --cpus-per-trial {workers + 1} or fewer workers")
    return workers
