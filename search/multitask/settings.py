"""The command line of a Tickets-Share study and its validated settings (``python -m search.multitask``).

The flags it shares with a study are the study's own declarations (``search.cli.flags``), with the same budgets
(``spaces.budgets``: a budget's ``multitask_epochs`` are the passes over the mixed data) and the same checks of
the model, data, names and tracking URI (``search.cli``). Only the parser's needs are imported at the top, so
``--help`` answers without loading torch, Ray or MLflow; the checks load them when the flags are validated.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from search.cli.flags import FLAGS, add_store_flags, budget_summary, value
from search.errors import OneLineParser, UsageError
from spaces.budgets import BUDGETS

if TYPE_CHECKING:
    from trainables.data import DataSettings
    from trainables.finetune import FinetuneSettings

#: Which ticket of each study's verdict a task shares (``--share``): the verdict role it reads.
SHARE_CHOICES = ("super", "winning", "best")

DESCRIPTION = """\
Tickets-Share (Liang et al. 2021, section 5): one shared encoder, one head per task, trained on a mix of the tasks'
training sets; every batch runs through its own task's super ticket (masks read from the task's study in MLflow),
so a shared weight is updated only by the tasks whose ticket keeps it. A task whose study named no super ticket
trains densely (--share winning|best shares another ticket of the verdict instead). Baselines in the same command, same steps, data and seeds: the multi-task model without masks
(MT-DNN), and each task's single-task result from its study. Result: per task and the average of the primary dev
scores with 95% intervals over seeds and dev examples; a table, a bar plot, MLflow runs.

Task sampling: proportional to training-set size (MT-DNN's: every batch of every task once per epoch, mixed), or
temperature-scaled with --sampling-temperature T > 1 (p_t proportional to n_t^(1/T)).
"""

EPILOG = """\
examples:
  python -m search.multitask --tasks rte,mrpc,stsb                      # the paper's settings (meant for GPUs)
  python -m search.multitask --tasks rte,sst2 --budget smoke            # on 2 CPU cores in minutes
  python -m search.multitask --tasks rte,mrpc --study mrpc=mrpc-magnitude-0412 --seeds 5
  python -m search.multitask --name mt-0412 --resume --tasks rte,mrpc   # continue an interrupted one
"""


def _not_one(value: int) -> str | None:
    """A subset of one example per task leaves nothing to mix or to bootstrap over."""
    return "must be 0 (all) or at least 2" if value == 1 else None


#: The study flags a multi-task study shares with a study (declared once, in ``search.cli.flags``), with what the
#: multi-task study means by them where it differs: epochs are passes over the mixed data (the budget's
#: ``multitask_epochs``), the subsets are per task (at least 2 examples), and a length below 8 leaves no room for a
#: pair. ``--storage-path`` and ``--mlflow-uri`` are added as every command that reads studies adds them
#: (``search.cli.flags.add_store_flags``).
SHARED = (FLAGS["model"], FLAGS["glue_dir"], FLAGS["trust_remote_code"],
          replace(FLAGS["budget"], help="; ".join(f"{name}: {budget_summary(b, 'multitask_epochs')}"
                                                  for name, b in BUDGETS.items())),
          replace(FLAGS["seeds"], help="seeds per arm, 0..N-1; seed s uses the mask of the study's seed s (else its "
                                       "lowest seed's)"),
          replace(FLAGS["epochs"], budget="multitask_epochs", help="passes over the mixed training data"),
          FLAGS["learning_rate"], replace(FLAGS["batch_size"], help="examples per step, one task per batch"),
          replace(FLAGS["max_seq_length"], minimum=8, why="room for a sentence pair"),
          replace(FLAGS["max_train_examples"], help="training examples per task, a seeded subset (0: all)",
                  check=_not_one),
          replace(FLAGS["max_dev_examples"], help="first dev examples per task (0: all)", check=_not_one),
          FLAGS["cpus_per_trial"],
          replace(FLAGS["gpus_per_trial"], help="GPUs per trial, fractions allowed; default 1 where the Ray cluster "
                                                "has GPUs, else 0"))


def parser(prog: str = "python -m search.multitask") -> argparse.ArgumentParser:
    """The command line: the flags shared with a study (``SHARED``) and the multi-task study's own."""
    p = OneLineParser(prog=prog, description=DESCRIPTION, epilog=EPILOG,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", required=True, help="comma-separated GLUE tasks, at least 2 (rte,mrpc,stsb,cola,sst2)")
    p.add_argument("--study", action="append", default=[], metavar="TASK=NAME",
                   help="the study whose super ticket TASK shares (repeatable; default: the latest finished study of "
                        "the task with the same --model in the MLflow store)")
    for flag in SHARED:
        flag.add_to(p)
    add_store_flags(p, storage="a multi-task study takes a folder (not a URI) and goes to <it>/multitask/<name>",
                    mlflow="where the tasks' studies are; the multi-task study's runs go there too")
    p.add_argument("--share", choices=SHARE_CHOICES, default="super",
                   help="which ticket of each study's verdict a task shares: super (default, as Liang et al.: a task "
                        "whose verdict names none trains densely), winning (the sparsest winning ticket), or best (the "
                        "ticket with the largest mean difference from the dense model even where its interval does "
                        "not support it: for budgets too small to name super tickets; the report says so)")
    p.add_argument("--sampling-temperature", type=float, default=1.0,
                   help="1 (default): tasks proportional to training-set size; T > 1: p_t ~ n_t^(1/T)")
    p.add_argument("--arms", default="tickets-share,multitask-dense",
                   help="which arms to run (default both: tickets-share,multitask-dense)")
    p.add_argument("--name", help="this multi-task study's name (default multitask-<tasks>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted study --name")
    p.add_argument("--data-workers", type=int, default=0, help="data-loader worker processes per task (default 0)")
    return p


@dataclass(frozen=True)
class MultiTaskSettings:
    """A validated multi-task study.

    Attributes:
        tasks: task names, in order. studies: task -> study named by ``--study`` (absent: the latest).
        share: which ticket of each study's verdict is shared (``--share``: super, winning, best).
        arms: the arms to run. seeds: seeds ``0..n-1``.
        folder: ``<storage>/multitask/<name>`` (absolute). tune_path: Tune's experiment folder inside it.
    """

    tasks: tuple
    studies: dict
    share: str
    model: str
    glue_dir: str | None
    budget: str
    seeds: tuple
    finetune: FinetuneSettings
    data: DataSettings
    temperature: float
    arms: tuple
    name: str
    resume: bool
    folder: Path
    mlflow_uri: str
    cpus_per_trial: float
    gpus_per_trial: float | None
    data_workers: int

    def params(self) -> dict:
        """Flat parameters for the MLflow parent run."""
        flat = {"tasks": ",".join(self.tasks), "model": self.model, "glue_dir": self.glue_dir, "budget": self.budget,
                "seeds": ",".join(map(str, self.seeds)), "sampling_temperature": self.temperature, "share": self.share,
                "arms": ",".join(self.arms)}
        flat.update({f"finetune.{k}": v for k, v in asdict(self.finetune).items()})
        flat.update({f"data.{k}": v for k, v in asdict(self.data).items() if k != "glue_dir"})
        flat.update({f"study.{t}": n for t, n in self.studies.items()})
        return flat


def build_settings(args) -> MultiTaskSettings:
    """Validate the flags (one line per problem, ``UsageError``), with the study's checks of the shared ones."""
    from search.cli.defaults import resolve_glue_dir, resolve_model
    from search.cli.flags import resolve_mlflow_uri, resolve_storage
    from search.cli.preflight import check_model_and_data, check_storage_path, check_study_name, check_tasks
    from trainables.data import DataSettings
    from trainables.finetune import FinetuneSettings
    from search.cli.settings import check_sequence_length
    from trainables.model import trust_remote_code
    from trainables.multitask import ARMS

    tasks = check_tasks(args.tasks, "--tasks", at_least=2)
    studies = {}
    for item in args.study:
        task, _, name = item.partition("=")
        task = task.strip().lower()
        if not name or task not in tasks:
            raise UsageError(f"--study {item}: write TASK=NAME with TASK one of --tasks ({','.join(tasks)})")
        if task in studies:
            raise UsageError(f"--study names two studies of {task} ({studies[task]}, {name}): name one per task")
        check_study_name(name, "--study")
        studies[task] = name
    arms = tuple(a.strip() for a in args.arms.split(",") if a.strip())
    if not arms or any(a not in ARMS for a in arms):
        raise UsageError(f"--arms {args.arms}: choose among {', '.join(ARMS)}")
    if len(set(arms)) != len(arms):
        raise UsageError(f"--arms {args.arms} names an arm twice: name each once (choose among {', '.join(ARMS)})")
    budget = BUDGETS[args.budget]
    shared = {flag.name: value(args, flag, budget) for flag in SHARED}
    if not args.sampling_temperature >= 1.0:
        raise UsageError(f"--sampling-temperature {args.sampling_temperature} must be at least 1 (1 = proportional)")
    if args.data_workers < 0:
        raise UsageError(f"--data-workers {args.data_workers} must be 0 or more")
    if args.resume and not args.name:
        raise UsageError("--resume needs --name of the multi-task study to resume")
    name = args.name or f"multitask-{'-'.join(tasks)}-{time.strftime('%Y%m%d-%H%M%S')}"
    check_study_name(name, "--name")
    glue = resolve_glue_dir(args.glue_dir).value
    glue = None if glue is None else str(Path(glue).expanduser().resolve())
    trust_remote_code(args.trust_remote_code)  # this process's loaders and (forwarded) its Ray workers'
    model = check_model_and_data(resolve_model(args.model).value, glue, tasks)
    check_sequence_length(shared["max_seq_length"], model)
    if "://" in args.storage_path:
        raise UsageError(f"--storage-path {args.storage_path}: a multi-task study takes a folder (every node must see "
                         "it); a bucket URI is not supported here yet")
    check_storage_path(args.storage_path)
    storage = Path(resolve_storage(args.storage_path)[0])
    folder = storage / "multitask" / name
    state = folder / STATE_FILE
    if args.resume and not state.exists():
        raise UsageError(f"no multi-task study {name} to resume under {folder.parent}: check --name and --storage-path")
    if not args.resume and state.exists():
        raise UsageError(f"multi-task study {name} exists under {folder.parent}: add --resume to continue it, or "
                         "choose another --name")
    if args.resume:
        from search.study.checks import check_trusted_folder

        check_trusted_folder(folder, storage)
    uri = resolve_mlflow_uri(args.mlflow_uri, existing=True,  # the tasks' studies are read from it
                             fix="pass the --mlflow-uri the tasks' studies ran with (or set MLFLOW_TRACKING_URI)")
    finetune = FinetuneSettings(learning_rate=shared["learning_rate"], epochs=shared["epochs"],
                                batch_size=shared["batch_size"], optimizer=budget.optimizer,
                                warmup_ratio=budget.warmup_ratio)
    data = DataSettings(glue, shared["max_seq_length"], shared["max_train_examples"] or None,
                        shared["max_dev_examples"] or None)
    settings = MultiTaskSettings(tasks, studies, args.share, model, glue, args.budget,
                                 tuple(range(shared["seeds"])), finetune, data, args.sampling_temperature, arms,
                                 name, args.resume, folder, uri, args.cpus_per_trial, args.gpus_per_trial,
                                 args.data_workers)
    return settings


#: The study's state file in its folder: parent run id, settings and the tickets it shares.
STATE_FILE = "multitask.json"


