"""Super-ticket analysis: which ticket beats the dense baseline by the most (Liang et al. 2021).

Only trials that ran all their epochs (FINISHED) compete: a trial ASHA stopped early has a truncated
score. The dense baseline is the finished trial that pruned nothing. The super ticket is the pruned
ticket with the highest mean dev score *above* the dense baseline (ties go to the sparser one). When none
is above, the winning ticket is the sparsest one that still *matches* the dense model: mean dev score at
least the dense mean minus its standard deviation over seeds (Chen et al.'s criterion; with one seed
the std is 0) minus ``tolerance``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from spaces.sparsity import grid_value


@dataclass
class TicketResult:
    """One trial's outcome.

    Attributes:
        sparsity: the requested sparsity (fraction).
        achieved_sparsity: the fraction of the encoder's prunable weights the ticket masks (structured: the
            weights its pruned heads and FFN blocks disable); ``head_sparsity``/``ffn_sparsity`` for structured
            tickets, ``weights_kept``/``total_weights`` for unstructured ones.
        seed_scores: final dev score per seed; ``dev_score`` is their mean, ``dev_std`` their std.
        status: FINISHED, KILLED (stopped early) or FAILED.
        epochs: epochs the trial reported.
    """

    trial_id: str
    run_id: str | None
    sparsity: float
    rewind: str
    status: str
    control: str = "good"
    method: str = "structured"
    achieved_sparsity: float | None = None
    weights_kept: int | None = None
    total_weights: int | None = None
    heads_kept: int | None = None
    total_heads: int | None = None
    ffn_kept: int | None = None
    total_ffn: int | None = None
    head_sparsity: float | None = None
    ffn_sparsity: float | None = None
    dev_score: float | None = None
    dev_std: float | None = None
    seed_scores: dict = field(default_factory=dict)
    epochs: int = 0

    @property
    def is_dense(self) -> bool:
        """True when the ticket masked nothing (the dense baseline)."""
        if self.achieved_sparsity is not None:
            return self.achieved_sparsity == 0.0
        return self.heads_kept == self.total_heads and self.ffn_kept == self.total_ffn

    @property
    def kept(self) -> str:
        """What the ticket kept, in its own units (``51/72 heads, 5/6 FFN`` or ``62.9% of weights``)."""
        if self.heads_kept is not None:
            return f"{self.heads_kept}/{self.total_heads} heads, {self.ffn_kept}/{self.total_ffn} FFN"
        if self.weights_kept is not None:
            return f"{100 * self.weights_kept / self.total_weights:.1f}% of weights"
        return "-"

    def to_dict(self) -> dict:
        """JSON-ready form (as in ``summary.json``)."""
        return asdict(self)


def ticket_from_result(trial_id: str, run_id: str | None, config: dict, result: dict | None, status: str,
                       seeds: tuple[int, ...]) -> TicketResult:
    """A ``TicketResult`` from a trial's configuration and last reported result (``None`` if it never reported)."""
    ticket = TicketResult(trial_id, run_id, grid_value(config["sparsity"]), config.get("rewind", "pretrained"), status,
                          config.get("control", "good"), config.get("method", "structured"))
    if result:
        for key in ("heads_kept", "total_heads", "ffn_kept", "total_ffn", "head_sparsity", "ffn_sparsity",
                    "achieved_sparsity", "weights_kept", "total_weights"):
            if key in result:
                setattr(ticket, key, result[key])
        ticket.dev_score, ticket.dev_std = result["dev_score"], result["dev_score_std"]
        ticket.seed_scores = {seed: result[f"dev_score_seed{seed}"] for seed in seeds}
        ticket.epochs = int(result.get("training_iteration", 0))
    return ticket


@dataclass
class Verdict:
    """The dense baseline, the super ticket (or ``None``) and the winning ticket (or ``None``)."""

    dense: TicketResult | None
    super_ticket: TicketResult | None
    winning_ticket: TicketResult | None


def find_super_ticket(tickets: list[TicketResult], tolerance: float = 0.0) -> Verdict:
    """Pick the dense baseline, the super ticket and the sparsest matching (winning) ticket.

    Args:
        tickets: every trial of a study.
        tolerance: extra slack (in dev-score units) for "matching" the dense model.
    """
    finished = [t for t in tickets if t.status == "FINISHED" and t.dev_score is not None]
    dense = next((t for t in finished if t.is_dense), None)
    if dense is None:
        return Verdict(None, None, None)
    pruned = [t for t in finished if not t.is_dense]
    above = [t for t in pruned if t.dev_score > dense.dev_score]
    super_ticket = max(above, key=lambda t: (t.dev_score, _sparsity(t)), default=None)
    threshold = dense.dev_score - dense.dev_std - tolerance
    matching = [t for t in pruned if t.dev_score >= threshold]
    winning = max(matching, key=lambda t: (_sparsity(t), t.dev_score), default=None)
    return Verdict(dense, super_ticket, winning)


def _sparsity(ticket: TicketResult) -> float:
    return ticket.achieved_sparsity if ticket.achieved_sparsity is not None else ticket.head_sparsity
