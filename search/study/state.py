"""A study's state file (``<storage>/<study>/supertickets.json``): what ``--resume`` and ``search.tools.compare`` read.

Written once, when the study's MLflow parent run is created: the run's id, the tracking URI, the study's settings
(``StudySettings.params()``, as strings) and the command line that started it, so a resume can be checked against
the settings it would continue.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATE_FILE = "supertickets.json"


@dataclass(frozen=True)
class StudyState:
    """What a study stores for its resume.

    Attributes:
        parent_run_id: the study's MLflow parent run.
        tracking_uri: the absolute tracking URI the study logs to.
        params: ``StudySettings.params()`` with every value as a string (empty for studies from before this file
            held them).
        command: the command line that started the study (empty when unknown).
    """

    parent_run_id: str
    tracking_uri: str
    params: dict[str, str] = field(default_factory=dict)
    command: str = ""

    def write(self, study_dir: Path) -> None:
        """Write the state into ``study_dir`` (created if needed), atomically (a reader never sees half a file)."""
        study_dir.mkdir(parents=True, exist_ok=True)
        partial = study_dir / f".{STATE_FILE}.partial"
        partial.write_text(json.dumps(asdict(self), indent=2))
        os.replace(partial, study_dir / STATE_FILE)

    @classmethod
    def read(cls, study_dir: Path) -> StudyState | None:
        """The state in ``study_dir``, or ``None`` when there is none (or it is unreadable)."""
        try:
            data = json.loads((study_dir / STATE_FILE).read_text())
            return cls(data["parent_run_id"], data["tracking_uri"], data.get("params", {}), data.get("command", ""))
        except (OSError, ValueError, KeyError, TypeError):
            return None


def stringify(params: dict) -> dict[str, str]:
    """``params`` with every value as the string MLflow would log (so stored and new settings compare)."""
    return {key: str(value) for key, value in params.items()}


def studies_under(storage: Path) -> list[str]:
    """The names of the studies stored under ``storage`` (folders with a state file), sorted."""
    if not storage.is_dir():
        return []
    return sorted(p.parent.name for p in storage.glob(f"*/{STATE_FILE}"))
