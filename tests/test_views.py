"""The views agree with the verdict (issue 29): the Optuna study, the MLflow runs and the phase-transition plot say
what the terminal says, in the same units, and none calls a ticket best that the verdict does not name.

One small study is driven through the searcher by hand (no Ray, no training): a dense model, a ticket at 0.05 that
is 10 points worse (it ends the winning sequence) and a ticket at 0.10 that is 1 point better (the largest
objective, so optuna-dashboard's "Best Trial", but behind a failing less sparse ticket, so not named).
"""

import io
import json

import numpy as np
import optuna
import pytest
from mlflow.tracking import MlflowClient

from search.records.optuna_storage import record_verdict
from search.records.tracking import (CLASSIC, NOTE_TAG, SHARED_VIEW_PREFIX, VIEW_WIDTHS, _metrics, experiment_id,
                                     log_intervals, share_study_view)
from search.strategy.searcher import OBJECTIVE_NAME, TicketSearch
from search.verdict.analysis import decide, ticket_from_report
from search.verdict.report import ROLE_NAMES, phase_transition_plot, verdict_lines
from trainables.resolution import points_decimals, round_points, round_score
from spaces.search_space import TicketSpace
from spaces.sparsity import SparsityRange
from trainables.config import TrialConfig
from trainables.report import EpochResult, SeedOutcome, TicketFacts, TrialReport

EXAMPLES = 200
SEEDS = (0, 1)


def _predictions(labels, fixed: int, broken: int):
    """Each seed's predictions: the dense model (40 mistakes), with ``fixed`` of them corrected and ``broken``
    correct ones made wrong."""
    out = []
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        dense = labels.copy()
        wrong = rng.choice(EXAMPLES, 40, replace=False)
        dense[wrong] = 1 - dense[wrong]
        ticket = dense.copy()
        ticket[wrong[:fixed]] = labels[wrong[:fixed]]
        right = np.setdiff1d(np.arange(EXAMPLES), wrong)[:broken]
        ticket[right] = 1 - labels[right]
        out.append((dense, ticket))
    return out


def _reports(labels, pairs, sparsity: float) -> list[dict]:
    """Tune results of a trial that runs seeds 0 and 1 for 2 epochs each; seed 1's curve sits 20 points below
    seed 0's, so joining them would draw a sawtooth."""
    results, finished = [], []
    for seed, (dense, ticket) in zip(SEEDS, pairs):
        final = float((ticket == labels).mean())
        for epoch in (1, 2):
            score = final - (0.05 if epoch == 1 else 0.0) - 0.2 * seed
            if epoch == 2:
                finished.append(SeedOutcome(seed, final, ticket.tolist(), float((dense == labels).mean()),
                                            dense.tolist(), [0.6, 0.5]))
                score = final
            current = EpochResult(epoch, score, {"accuracy": score}, 0.5, ticket.tolist())
            results.append(TrialReport(seed, epoch, 2, SEEDS, current, list(finished), labels.tolist(),
                                       TicketFacts({"achieved_sparsity": sparsity / 5})).to_tune())
    return results


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The study, run through ``TicketSearch`` into a SQLite Optuna storage, with its tickets and verdict."""
    folder = tmp_path_factory.mktemp("views")
    url = f"sqlite:///{folder}/optuna.db"
    labels = np.array([0, 1] * (EXAMPLES // 2))
    space = TicketSpace(SparsityRange(0.05, 0.1, 0.05))
    search = TicketSearch(space, "grid", 0, "accuracy", 0.95, 0.01, storage=url, study_name="views")
    plans = {0.0: (0, 0), 0.05: (0, 20), 0.1: (2, 0)}
    tickets, finals = [], {}
    for index in range(3):
        trial_id = f"t{index}"
        config = TrialConfig.from_tune(search.suggest(trial_id))
        results = _reports(labels, _predictions(labels, *plans[config.sparsity]), config.sparsity)
        for result in results:
            search.on_trial_result(trial_id, result)
        search.on_trial_complete(trial_id, results[-1])
        finals[config.sparsity] = results
        tickets.append(ticket_from_report(trial_id, None, config, TrialReport.from_tune(results[-1]), "FINISHED"))
    verdict = decide(tickets, "rte", grid=[space.config(p) for p in space.grid_points()])
    lines = verdict_lines(verdict, "accuracy")
    return {"url": url, "tickets": tickets, "verdict": verdict, "lines": lines, "finals": finals, "folder": folder}


def test_the_study_is_the_one_described(study):
    by_sparsity = {t.sparsity: t for t in study["tickets"]}
    assert sorted(by_sparsity) == [0.0, 0.05, 0.1]
    assert by_sparsity[0.1].difference.mean == pytest.approx(0.01)  # the largest objective ...
    assert study["verdict"].kind == "none" and not study["verdict"].named  # ... named by nothing
    assert study["verdict"].beyond is by_sparsity[0.05]


def test_optuna_names_its_objective_and_holds_the_verdict_beside_the_best_trial(study):
    attrs = record_verdict(study["url"], "views", study["verdict"], study["lines"], ROLE_NAMES, OBJECTIVE_NAME)
    stored = optuna.load_study(study_name="views", storage=study["url"])
    assert stored.metric_names == [OBJECTIVE_NAME]
    assert stored.user_attrs["verdict"] == study["lines"][0] == attrs["verdict"]
    assert stored.user_attrs["verdict_kind"] == "none"
    assert stored.user_attrs["named_by_verdict"].startswith("none")
    assert "fraction" in stored.user_attrs["objective"] and OBJECTIVE_NAME in stored.user_attrs["objective"]
    best = stored.best_trial  # what optuna-dashboard's "Best Trial" card shows: the 0.10 ticket
    assert best.params["sparsity"] == 0.1 and best.value == 0.01  # rounded, not 0.010000000000000009
    card = stored.user_attrs["best_trial_card"]
    assert f"({best.number})" in card and "does not name it" in card
    served = _dashboard(study["url"])  # what optuna-dashboard's study page shows
    assert [a["key"] for a in served["user_attrs"]][:3] == ["verdict", "named_by_verdict", "best_trial_card"]
    assert [t["number"] for t in served["best_trials"]] == [best.number]
    assert served["objective_names"] == [OBJECTIVE_NAME]
    assert study["lines"][0] in served["note"]["body"] and card in served["note"]["body"]


def _dashboard(url: str) -> dict:
    """The study detail optuna-dashboard's web page is drawn from (its ``/api/studies/<id>``), asked in-process."""
    from optuna_dashboard import wsgi

    study_id = optuna.storages.get_storage(url).get_study_id_from_name("views")
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": f"/api/studies/{study_id}", "QUERY_STRING": "after=0",
           "wsgi.input": io.BytesIO(), "wsgi.errors": io.StringIO(), "SERVER_NAME": "localhost", "SERVER_PORT": "80",
           "wsgi.url_scheme": "http"}
    status = []
    body = b"".join(wsgi(url)(env, lambda code, headers, exc_info=None: status.append(code)))
    assert status == ["200 OK"]
    return json.loads(body)


def test_the_best_trial_card_says_when_the_verdict_names_it(study):
    named = decide([t for t in study["tickets"] if t.sparsity != 0.05], "rte")  # without the failing ticket
    assert named.kind == "winning" and named.winning.sparsity == 0.1
    attrs = record_verdict(study["url"], "views", named, verdict_lines(named, "accuracy"), ROLE_NAMES, OBJECTIVE_NAME)
    number = optuna.load_study(study_name="views", storage=study["url"]).best_trial.number
    assert attrs["named_by_verdict"].startswith(f"trial {number} (s=0.10 structured good, +1.0 points [")
    assert attrs["best_trial_card"].endswith("the verdict names it: sparsest winning ticket")
    record_verdict(study["url"], "views", study["verdict"], study["lines"], ROLE_NAMES, OBJECTIVE_NAME)  # back to the study's own verdict


def test_intermediate_values_are_one_seeds_epochs_not_a_sawtooth(study):
    stored = optuna.load_study(study_name="views", storage=study["url"])
    served = {t["number"]: t for t in _dashboard(study["url"])["trials"]}
    for trial in stored.trials:
        assert [v["step"] for v in served[trial.number]["intermediate_values"]] == [1, 2]
        first_seed = [TrialReport.from_tune(r) for r in study["finals"][trial.params["sparsity"]]
                      if TrialReport.from_tune(r).seed == 0]
        assert trial.intermediate_values == {r.epoch: pytest.approx(r.current.dev_score) for r in first_seed}
        assert trial.user_attrs["intermediate_seed"] == 0
        assert "first seed" in stored.user_attrs["intermediate_values"]
    ticket = next(t for t in stored.trials if t.params["sparsity"] == 0.1)
    verdict_ticket = next(t for t in study["tickets"] if t.sparsity == 0.1)
    assert ticket.user_attrs["difference"] == verdict_ticket.difference.points()  # the terminal's words
    low, high = ticket.user_attrs["difference_low"], ticket.user_attrs["difference_high"]
    assert f"[{low:+.1f}, {high:+.1f}]" in verdict_ticket.difference.points()  # in points, as in MLflow


def test_mlflow_runs_carry_the_interval_in_points_as_the_terminal_writes_it(study):
    client = MlflowClient(f"sqlite:///{study['folder']}/mlflow.db")
    experiment = experiment_id(client, "rte")
    for ticket in study["tickets"]:
        ticket.run_id = client.create_run(experiment).info.run_id
    log_intervals(client, study["tickets"])
    for ticket in study["tickets"]:
        metrics = client.get_run(ticket.run_id).data.metrics
        if ticket.is_dense:
            assert "difference" not in metrics  # paired with itself
            continue
        text = f"{metrics['difference']:+.1f} points [{metrics['difference_low']:+.1f}, {metrics['difference_high']:+.1f}]"
        assert text == ticket.difference.points()
        assert all(metrics[k] == round(metrics[k], 1) for k in ("difference", "difference_low", "difference_high"))


def test_mlflow_scores_are_rounded_to_what_the_dev_set_resolves():
    labels = [0, 1] * 138 + [1]  # 277 dev examples, as RTE
    current = EpochResult(2, 0.76834862, {"accuracy": 0.76834862}, 0.512345678, [1] * 277)
    done = [SeedOutcome(0, 0.76834862, [1] * 277, 0.7653429, [1] * 277, [0.6, 0.5])]
    report = TrialReport(0, 2, 2, (0,), current, done, labels, TicketFacts({"achieved_sparsity": 0.1}))
    rows = {key: value for key, value, _ in _metrics(report, [], "accuracy")}
    assert rows["dev_score"] == 0.7683 and rows["train_loss"] == 0.5123
    assert rows["paired_difference"] == 0.003  # 0.30 points: 0.1-point resolution on 277 examples
    assert (points_decimals(277), points_decimals(277, 3), points_decimals(9815), points_decimals(64)) == (1, 1, 2, 1)
    assert round_points(0.0031234, 277) == 0.3 and round_score(0.76834862, 277) == 0.7683
    assert round_score(0.7683486, 9815, 3) == 0.76835


def test_the_experiment_opens_on_its_runs_and_the_study_view_shows_verdict_and_role_first(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = experiment_id(client, "rte")
    tags = client.get_experiment(experiment).tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    assert f"(#/experiments/{experiment}/runs?{CLASSIC})" in tags[NOTE_TAG]
    client.set_experiment_tag(experiment, NOTE_TAG, "the user's own words")
    experiment_id(client, "rte")  # opened again: a description the user wrote stays
    assert client.get_experiment(experiment).tags[NOTE_TAG] == "the user's own words"

    share_study_view(client, experiment, "s1", "parent")
    view = json.loads(client.get_experiment(experiment).tags[SHARED_VIEW_PREFIX + "s1"])
    assert view["columnOrder"][:2] == ["tags.`verdict`", "tags.`role`"]
    assert view["selectedColumns"] == view["columnOrder"] and set(view["columnWidths"]) == set(view["columnOrder"])
    assert {"metrics.`difference`", "metrics.`difference_low`", "metrics.`difference_high`"} <= set(view["columnOrder"])
    assert sum(VIEW_WIDTHS.values()) <= 1200  # with the run name and MLflow's left bar, within 1,600 px


def test_the_plot_labels_each_point_with_the_sparsity_its_run_is_named_by(study):
    figure = phase_transition_plot(study["tickets"], study["verdict"], "accuracy", "views")
    axes = figure.axes[0]
    labels = {text.get_text() for text in axes.texts}
    assert {"s=0.05", "s=0.10"} <= labels
    assert "requested sparsity" in axes.get_xlabel() and "achieved" in axes.get_xlabel()
    named = decide([t for t in study["tickets"] if t.sparsity != 0.05], "rte")
    legend = phase_transition_plot(study["tickets"], named, "accuracy", "views").axes[0].get_legend()
    assert any(t.get_text().startswith("sparsest winning ticket (s=0.10, 2% of weights masked)")
               for t in legend.get_texts())
