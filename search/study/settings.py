"""A study's settings: everything a study needs, resolved and validated by the command line (``search.cli``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from spaces.sparsity import SparsityRange
from trainables.data import DataSettings
from trainables.finetune import FinetuneSettings
from trainables.mirror import Mirror, is_uri, join
from trainables.rewinding import rewind_step


@dataclass(frozen=True)
class StudySettings:
    """Everything a study needs, resolved (absolute paths) and validated.

    Attributes: the flags of ``search.cli.flags`` (their defaults and ranges are declared there, once), resolved:
    ``seeds`` as the tuple ``0..n-1``, ``finetune`` and ``data`` grouped, paths absolute; ``model_source`` and
    ``glue_source`` say where the model and data defaults came from.
    """

    task: str
    method: tuple[str, ...]
    control: tuple[str, ...]
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
    confidence: float
    scheduler: str
    search: str
    resume: bool
    options: dict
    optuna_storage: str | None
    max_failures: int
    keep_weights: str
    data_workers: int
    local_dir: str
    trust_remote_code: bool = False

    @property
    def root(self) -> Path:
        """The local folder of the study's own files: ``storage_path``, or with a storage URI ``local_dir``."""
        return Path(self.local_dir or self.storage_path)

    @property
    def mirror(self) -> Mirror | None:
        """With a storage URI, ``root`` kept under it too (``trainables.mirror``); else ``None``."""
        return Mirror(str(self.root), self.storage_path) if is_uri(self.storage_path) else None

    @property
    def tune_path(self) -> str:
        """Where Ray Tune keeps the study's experiment (trial folders, its state for --resume): under the URI."""
        return join(self.storage_path, self.study_name) if is_uri(self.storage_path) else str(self.study_dir)

    @property
    def rewind_steps(self) -> tuple[int, ...]:
        """The K of every ``step:K`` rewinding point: the dense fine-tune saves these checkpoints."""
        return tuple(k for k in (rewind_step(r) for r in self.rewind) if k is not None)

    @property
    def study_dir(self) -> Path:
        """The study's folder: its state for --resume, plots, summary, progress, weights (with a folder as storage
        also Ray Tune's trial folders)."""
        return self.root / self.study_name

    @property
    def weights_dir(self) -> Path:
        """Where the trials write their fine-tuned tickets (``--keep-weights``); what is not kept is deleted."""
        return self.study_dir / "weights"

    @property
    def cache_dir(self) -> Path:
        """The cache (dense fine-tunes, importance, IMP, TAMT, masks) shared by every study under the same storage."""
        return self.root / "cache"

    def params(self) -> dict:
        """Flat parameters for the study's MLflow parent run."""
        flat = {k: v for k, v in asdict(self).items() if k not in ("finetune", "data", "sparsity", "options")}
        flat.update({f"finetune.{k}": v for k, v in asdict(self.finetune).items()})
        flat.update({f"data.{k}": v for k, v in asdict(self.data).items()})
        flat.update({f"sparsity.{k}": v for k, v in asdict(self.sparsity).items()})
        flat.update(self.options)
        flat["seeds"] = ",".join(map(str, self.seeds))
        for name in ("method", "control", "rewind"):
            flat[name] = ",".join(getattr(self, name))
        return flat
