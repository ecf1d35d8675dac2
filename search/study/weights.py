"""Keep the fine-tuned weights that matter once the verdict is known (``--keep-weights``).

Every good trial writes its fine-tuned ticket per seed under ``<study>/weights/<ticket key>/`` while the study runs
(``trainables.trial``; a replayed ticket, such as the dense model, points at its cache entry instead). Once the
verdict names its tickets, the dense run's weights and the named tickets' are logged to their MLflow child runs
(artifacts ``weights/seed-<k>.safetensors``, tag ``weights=logged``), where ``python -m search.export`` finds them;
with ``named`` every other file under ``<study>/weights`` is deleted (a study may not keep the weights of every
trial: a BERT-base ticket is 440 MB per seed).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlflow.tracking import MlflowClient

from search.verdict.analysis import TicketResult, Verdict
from trainables import mirror


#: The child-run tag set on a run whose weights were logged.
WEIGHTS_TAG = "weights"


@dataclass(frozen=True)
class KeptWeights:
    """What ``keep_weights`` did.

    Attributes:
        logged: ``{run_id: number of seeds logged}`` for the dense run and the named tickets.
        deleted_bytes: bytes freed under ``<study>/weights``.
    """

    logged: dict
    deleted_bytes: int


def keep_weights(client: MlflowClient, verdict: Verdict, tickets: list[TicketResult], weights_dir: Path,
                 mode: str) -> KeptWeights:
    """Log the kept weights to their child runs: with ``mode`` ``named`` the dense run's and the named tickets',
    deleting the rest of ``weights_dir``; with ``all`` every trial's that wrote some.

    Args:
        client: the study's MLflow client.
        verdict: the study's verdict (``search.verdict.analysis.decide``); its ``dense`` and ``named`` tickets are kept.
        tickets: every trial of the study.
        weights_dir: ``<study>/weights``.
        mode: ``named``, ``all`` or ``none`` (nothing was written; nothing logged).

    Returns:
        what was logged and freed.
    """
    if mode == "none":
        return KeptWeights({}, 0)
    chosen = tickets if mode == "all" else (verdict.dense, *verdict.named.values())
    kept: list[TicketResult] = [t for t in chosen if t is not None and t.run_id and t.weight_files]
    logged, keep_paths = {}, set()
    for ticket in {t.run_id: t for t in kept}.values():
        files = {seed: Path(f) for seed, f in ticket.weight_files.items() if mirror.available(f)}
        with tempfile.TemporaryDirectory(prefix="supertickets-weights-") as scratch:
            for seed, path in sorted(files.items()):
                named = Path(scratch) / f"seed-{seed}.safetensors"  # MLflow logs a file under its own name
                named.symlink_to(path.resolve())
                client.log_artifact(ticket.run_id, str(named), "weights")
                keep_paths.add(path.resolve())
        if files:
            client.set_tag(ticket.run_id, WEIGHTS_TAG, "logged")
            logged[ticket.run_id] = len(files)
    freed = 0
    written = {Path(f).parent for t in tickets for f in t.weight_files.values()} if mode == "named" else set()
    # under a storage URI: the copies of the weights not kept, wherever they were written (not cache entries a
    # replayed ticket points at)
    for folder in (f for f in written if f.is_relative_to(weights_dir)):
        found = mirror.mirror_for(folder)
        if found is not None and not any(f.resolve() in keep_paths for f in folder.glob("*")):
            found.delete(folder)
    if mode == "named" and weights_dir.is_dir():
        for folder in weights_dir.iterdir():
            files = list(folder.glob("*")) if folder.is_dir() else [folder]
            if any(f.resolve() in keep_paths for f in files):
                continue
            freed += sum(f.stat().st_size for f in files if f.is_file())
            shutil.rmtree(folder) if folder.is_dir() else folder.unlink()
    return KeptWeights(logged, freed)

