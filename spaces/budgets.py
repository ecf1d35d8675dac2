"""Budgets: how much compute a study spends. Every value can be overridden by a command-line flag.

``smoke`` runs the whole pipeline on 2 CPU cores in minutes with enough data that the dense model learns a
task where that is possible (SST-2 from 500 training sentences; measured in the README), 3 seeds so intervals
and seed racing mean something, and the whole dev set. On a task the dense model does not learn that fast the verdict
says so instead of naming tickets.
``paper`` is the papers' setting, meant for GPUs: the full train and dev sets, Liang et al.'s fine-tuning
(Adamax, lr 5e-5, batch 32, 6 epochs on the small tasks, 3 on the large ones, max length 128), five
seeds as Prasanna et al., and enough trials to trace the phase transition on Liang's 5 % grid.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    """Default study settings of one budget.

    Attributes:
        num_trials: trials in the study, the dense point (sparsity 0) included.
        seeds: seeds per trial (seeds ``0 .. seeds-1``); the reported dev score is their mean.
        epochs: fine-tuning epochs per trial, by task (``None`` key = any other task).
        learning_rate, batch_size, optimizer, warmup_ratio: fine-tuning hyper-parameters.
        max_seq_length: tokens per example.
        max_train_examples, max_dev_examples: subsets (``None`` = the whole split).
        grace_period: epochs before ASHA may stop a trial.
        multitask_epochs: passes over the mixed training data of a Tickets-Share study (``search.multitask``; the
            paper budget is MT-DNN's fine-tuning as Liang et al. use it, 5 epochs).
    """

    name: str
    num_trials: int
    seeds: int
    epochs: dict
    learning_rate: float
    batch_size: int
    optimizer: str
    warmup_ratio: float
    max_seq_length: int
    max_train_examples: int | None
    max_dev_examples: int | None
    grace_period: int
    multitask_epochs: int

    def epochs_for(self, task: str) -> int:
        """Fine-tuning epochs of ``task`` under this budget."""
        return self.epochs.get(task, self.epochs[None])


BUDGETS: dict[str, Budget] = {
    "smoke": Budget(name="smoke", num_trials=13, seeds=3, epochs={None: 2}, learning_rate=1e-4, batch_size=16,
                    optimizer="adamw", warmup_ratio=0.1, max_seq_length=64, max_train_examples=500,
                    max_dev_examples=None, grace_period=1, multitask_epochs=2),
    "paper": Budget(name="paper", num_trials=16, seeds=5,
                    epochs={"sst2": 3, "qnli": 3, "mnli": 3, "qqp": 3, None: 6},
                    learning_rate=5e-5, batch_size=32, optimizer="adamax", warmup_ratio=0.1, max_seq_length=128,
                    max_train_examples=None, max_dev_examples=None, grace_period=2, multitask_epochs=5),
}
