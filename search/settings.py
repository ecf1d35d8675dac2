"""A study's settings: the budget's defaults, overridden by flags, checked before anything is created."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from search.defaults import resolve_glue_dir, resolve_model
from search.errors import UsageError
from spaces.budgets import BUDGETS
from spaces.structured import CONTROLS, METHODS, REWIND_POINTS, SparsityRange, sparsity_range_for
from trainables.data import DataSettings
from trainables.finetune import OPTIMIZERS, FinetuneSettings
from trainables.model import UnsupportedModelError, layout_for, load_config
from trainables.tasks import get_task


@dataclass(frozen=True)
class StudySettings:
    """Everything a study needs, resolved (absolute paths) and validated.

    Attributes: see ``search.run --help``; ``model_source``/``glue_source`` say where the model and data
    defaults came from.
    """

    task: str
    method: str
    control: str
    rewind: tuple[str, ...]
    model: str
    model_source: str
    glue_dir: str | None
    glue_source: str
    budget: str
    sparsity: SparsityRange
    num_trials: int
    seeds: tuple[int, ...]
    finetune: FinetuneSettings
    data: DataSettings
    grace_period: int
    concurrent_trials: int | None
    cpus_per_trial: float
    gpus_per_trial: float
    search_seed: int
    storage_path: str
    study_name: str
    mlflow_uri: str | None
    match_tolerance: float
    resume: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def study_dir(self) -> Path:
        """Where Ray Tune keeps this study (trial folders, state for --resume, plot, summary)."""
        return Path(self.storage_path) / self.study_name

    @property
    def cache_dir(self) -> Path:
        """The dense-model cache shared by every study under the same storage path."""
        return Path(self.storage_path) / "cache"

    def params(self) -> dict:
        """Flat parameters for the study's MLflow parent run."""
        flat = {k: v for k, v in asdict(self).items() if k not in ("finetune", "data", "sparsity", "extra")}
        flat.update({f"finetune.{k}": v for k, v in asdict(self.finetune).items()})
        flat.update({f"data.{k}": v for k, v in asdict(self.data).items()})
        flat.update({f"sparsity.{k}": v for k, v in asdict(self.sparsity).items()})
        flat["seeds"] = ",".join(map(str, self.seeds))
        flat["rewind"] = ",".join(self.rewind)
        return flat


def _is_local(model: str) -> bool:
    return os.path.exists(model) or model.startswith((".", "/", "~")) or model.count("/") > 1


def _check_model(model: str) -> str:
    """The model as an absolute path (local) or hub id, after checking it is a supported encoder."""
    if _is_local(model):
        path = Path(model).expanduser().resolve()
        if not (path / "config.json").is_file():
            raise UsageError(f"model path {model} not found (no config.json there): pass --model with a Hugging Face "
                             "model directory or a hub id")
        model = str(path)
    try:
        config = load_config(model)
    except (OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(f"model {model!r} could not be loaded ({first}): pass --model with a local model "
                         "directory, or run where the hub is reachable") from None
    try:
        layout_for(config)
    except UnsupportedModelError as err:
        raise UsageError(str(err)) from None
    return model


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
    if args.method not in METHODS:
        raise UsageError(f"unknown method {args.method!r}: choose one of {', '.join(METHODS)}")
    if args.control not in CONTROLS:
        raise UsageError(f"unknown control {args.control!r}: choose one of {', '.join(CONTROLS)}")
    rewind = tuple(r.strip() for r in args.rewind.split(",") if r.strip())
    bad = [r for r in rewind if r not in REWIND_POINTS]
    if bad or not rewind:
        raise UsageError(f"unknown rewinding point {','.join(bad) or args.rewind!r}: choose from "
                         f"{', '.join(REWIND_POINTS)} (comma-separate several to let the search choose)")
    budget = BUDGETS[args.budget]
    default_range = sparsity_range_for(task.name)
    sparsity = SparsityRange(
        args.sparsity_min if args.sparsity_min is not None else default_range.low,
        args.sparsity_max if args.sparsity_max is not None else default_range.high,
        args.sparsity_step if args.sparsity_step is not None else default_range.step)
    try:
        sparsity.validate()
    except ValueError as err:
        raise UsageError(str(err)) from None
    if args.optimizer is not None and args.optimizer not in OPTIMIZERS:
        raise UsageError(f"unknown optimizer {args.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")

    def pick(flag, default):
        return default if flag is None else flag

    counts = {"--num-trials": pick(args.num_trials, budget.num_trials), "--seeds": pick(args.seeds, budget.seeds),
              "--epochs": pick(args.epochs, budget.epochs_for(task.name)),
              "--batch-size": pick(args.batch_size, budget.batch_size),
              "--max-seq-length": pick(args.max_seq_length, budget.max_seq_length)}
    for flag, value in counts.items():
        if value < 1:
            raise UsageError(f"{flag} {value} must be at least 1")

    model = resolve_model(args.model)
    glue = resolve_glue_dir(args.glue_dir)
    glue_dir = _check_glue_dir(glue.value, task.classic.folder)
    model_path = _check_model(model.value)

    finetune = FinetuneSettings(
        learning_rate=pick(args.learning_rate, budget.learning_rate), epochs=counts["--epochs"],
        batch_size=counts["--batch-size"], optimizer=pick(args.optimizer, budget.optimizer),
        warmup_ratio=budget.warmup_ratio)
    data = DataSettings(glue_dir=glue_dir, max_seq_length=counts["--max-seq-length"],
                        max_train_examples=pick(args.max_train_examples, budget.max_train_examples) or None,
                        max_dev_examples=pick(args.max_dev_examples, budget.max_dev_examples) or None)
    name = args.study_name or f"{task.name}-{args.method}-{datetime.now():%Y%m%d-%H%M%S}"
    return StudySettings(
        task=task.name, method=args.method, control=args.control, rewind=rewind, model=model_path, model_source=model.source,
        glue_dir=glue_dir, glue_source=glue.source, budget=budget.name, sparsity=sparsity,
        num_trials=counts["--num-trials"], seeds=tuple(range(counts["--seeds"])), finetune=finetune, data=data,
        grace_period=min(pick(args.grace_period, budget.grace_period), finetune.epochs),
        concurrent_trials=args.concurrent_trials, cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial if args.gpus_per_trial is not None else _default_gpus(),
        search_seed=args.search_seed, storage_path=str(Path(args.storage_path).expanduser().resolve()),
        study_name=name, mlflow_uri=args.mlflow_uri, match_tolerance=args.match_tolerance,
        resume=args.resume)


def _default_gpus() -> float:
    import torch

    return 1.0 if torch.cuda.is_available() else 0.0
