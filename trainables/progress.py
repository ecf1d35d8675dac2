"""Progress inside a fine-tune, sent from the Ray worker that runs it to the study's terminal display.

Tune hears from a trial once per epoch; a long epoch (an hour of SST-2 on CPUs) would show nothing meanwhile.
So ``FineTuneRun`` tells ``step`` about every optimiser step, and this module forwards at most one update a
second to the study's ``ProgressBoard``, a Ray actor the driver creates under the name in
``$SUPERTICKETS_PROGRESS_BOARD``. Without that variable (tests, a fine-tune outside a study) nothing is sent.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

#: The environment variable naming the study's board actor (set by the driver for its workers).
BOARD_ENV = "SUPERTICKETS_PROGRESS_BOARD"


@dataclass(frozen=True)
class StepProgress:
    """Where one running fine-tune is.

    Attributes:
        job: the Tune trial id, or ``dense seed <k>`` for a dense fine-tune.
        seed: the fine-tune's seed.
        epoch: 1-based epoch in progress; epochs: epochs planned.
        step: optimiser steps done in this epoch; steps: steps per epoch.
        seconds: seconds since the epoch began.
    """

    job: str
    seed: int
    epoch: int
    epochs: int
    step: int
    steps: int
    seconds: float


class ProgressBoard:
    """The latest ``StepProgress`` of every job, and the first epoch that ended (run as a Ray actor by the driver;
    workers call ``update``, the display calls ``snapshot``)."""

    def __init__(self):
        self.latest: dict[str, StepProgress] = {}
        self.first_epoch: StepProgress | None = None  # what the study's time estimate is measured on
        self.notes: list[str] = []  # what workers want the user to read (``note``), not yet shown

    def update(self, progress: StepProgress, epoch_ended: bool = False) -> None:
        """Keep ``progress`` as its job's latest; the first ended epoch is also kept for good."""
        self.latest[progress.job] = progress
        if epoch_ended and self.first_epoch is None:
            self.first_epoch = progress

    def snapshot(self) -> tuple[dict[str, StepProgress], StepProgress | None]:
        """Every job's latest progress (by job), and the first epoch that ended (``None`` before one did)."""
        return dict(self.latest), self.first_epoch

    def note(self, text: str) -> None:
        """Keep a line for the terminal (shown once, by the next ``take_notes``)."""
        self.notes.append(text)

    def take_notes(self) -> list[str]:
        """The lines noted since the last call, oldest first."""
        notes, self.notes = self.notes, []
        return notes


class _Sender:
    """Throttled sending to the board of ``$SUPERTICKETS_PROGRESS_BOARD`` (looked up once)."""

    def __init__(self):
        self.job: str | None = None
        self.board = None
        self.last = 0.0

    def begin(self, job: str | None) -> None:
        self.job = job
        name = os.environ.get(BOARD_ENV)
        if name and self.board is None:
            import ray

            try:
                self.board = ray.get_actor(name)
            except ValueError:  # the study that made it is gone
                self.board = None

    def due(self, epoch_ended: bool) -> bool:
        """True when an update should go now (there is a board, and a second has passed or an epoch ended)."""
        now = time.monotonic()
        if self.job is None or self.board is None or (not epoch_ended and now - self.last < 1.0):
            return False
        self.last = now
        return True


_SENDER = _Sender()


def begin(job: str) -> None:
    """Name the fine-tunes this process runs from now on (a Tune trial id, or ``dense_job(seed)``)."""
    _SENDER.begin(job)


#: How the dense fine-tune of a seed names its job on the board.
DENSE_JOB_PREFIX = "dense seed "


def note(text: str) -> None:
    """Show ``text`` on the study's terminal (through its board; without one, e.g. in tests or outside a study,
    the caller's log warning is all there is). Sent at once: notes are rare and matter."""
    try:
        if _SENDER.board is None:
            _SENDER.begin(_SENDER.job)
        if _SENDER.board is not None:
            _SENDER.board.note.remote(text)
    except Exception:  # noqa: BLE001 - the display must never stop a computation
        pass


def dense_job(seed: int) -> str:
    """The board's job name of the dense fine-tune of ``seed``."""
    return f"{DENSE_JOB_PREFIX}{seed}"


def step(seed: int, epoch: int, epochs: int, done: int, steps: int, seconds: float, epoch_ended: bool = False) -> None:
    """Record that a fine-tune of ``seed`` has taken ``done`` of ``steps`` optimiser steps of epoch ``epoch`` (of
    ``epochs``) in ``seconds``; sent to the board at most once a second, and always when an epoch ends."""
    if _SENDER.due(epoch_ended):  # checked first: most steps send nothing and build nothing
        _SENDER.board.update.remote(StepProgress(_SENDER.job, seed, epoch, epochs, done, steps, seconds), epoch_ended)
