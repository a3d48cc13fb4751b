"""``[experiments]`` in the service config: validation naming the key, and the service serving each user's
variant with its own design, logging the variant of every decision."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bandits.experiment_assign import Experiment, Variant
from bandits.log import DecisionLog
from service.app import create_app, get_state
from service.config import ServiceConfig
from service.errors import LoadError, ServiceConfigError

FEED = ["discover", "similar_items"]


def experiments(**variants: dict[str, Any]) -> dict[str, Any]:
    return {"consolidate": {"sections": FEED, "variants": variants}}


AB = experiments(A={"share": 0.5}, B={"share": 0.5, "design": "consolidated"})


def test_experiments_parsed_with_defaults_left_to_the_config():
    config = ServiceConfig.from_dict({"store": "s.db", "log": "l.db", "experiments": AB}, environ={})
    (experiment,) = config.experiments
    assert experiment.name == "consolidate"
    assert experiment.sections == tuple(FEED)
    a, b = experiment.variants
    assert (a.name, a.share, a.design, a.policy, a.heuristics) == ("A", 0.5, None, None, None)
    assert (b.design, b.share) == ("consolidated", 0.5)
    assert experiment.plan() == Experiment("consolidate", tuple(FEED), (Variant("A", 0.5), Variant("B", 0.5)))


def test_experiments_public_round_trips():
    table = experiments(
        ctl={"share": 0.25},
        fresh={"share": 0.25, "policy": "uniform"},
        raw={"share": 0.5, "heuristics": False, "design": "independent"},
    )
    config = ServiceConfig.from_dict({"store": "s.db", "log": "l.db", "experiments": table}, environ={})
    again = ServiceConfig.from_dict(
        {"store": "s.db", "log": "l.db", "experiments": config.public()["experiments"]}, environ={}
    )
    assert again.experiments == config.experiments


# Invalid [experiments] tables: (table, key named, message).
BAD_EXPERIMENTS = [
    ([1], "experiments", "expected a table"),
    ({"bad name": {"sections": FEED, "variants": {}}}, "experiments.bad name", "expected a name"),
    ({"e": {"variants": {}}}, "experiments.e.sections", "missing"),
    ({"e": {"sections": FEED}}, "experiments.e.variants", "missing"),
    ({"e": {"sections": [], "variants": {}}}, "experiments.e.sections", "non-empty list"),
    ({"e": {"sections": ["discover", "discover"], "variants": {}}}, "experiments.e.sections", "distinct"),
    ({"e": {"sections": FEED, "variants": {}, "weights": 1}}, "experiments.e.weights", "unknown key"),
    (experiments(A={"share": 1.0}), "experiments.consolidate.variants", "at least 2 variants"),
    (
        experiments(A={"share": 0.5}, B={"share": 0.4}),
        "experiments.consolidate.variants",
        r"shares sum to 0.9, expected 1 \(A 0.5, B 0.4\)",
    ),
    (experiments(A={"share": 0.5}, B={}), "experiments.consolidate.variants.B.share", "missing"),
    (experiments(A={"share": 0}, B={"share": 1}), "experiments.consolidate.variants.A.share", r"\(0, 1\]"),
    (
        experiments(A={"share": 0.5}, B={"share": 0.5, "design": "fancy"}),
        "experiments.consolidate.variants.B.design",
        "expected one of base, consolidated, independent, found 'fancy'",
    ),
    (
        experiments(A={"share": 0.5}, B={"share": 0.5, "heuristics": 1}),
        "experiments.consolidate.variants.B.heuristics",
        "true or false",
    ),
    (
        experiments(A={"share": 0.5}, B={"share": 0.5, "policy": ""}),
        "experiments.consolidate.variants.B.policy",
        "policy spec or directory",
    ),
    (
        experiments(A={"share": 0.5}, B={"share": 0.5, "knobs": 1}),
        "experiments.consolidate.variants.B.knobs",
        "unknown key",
    ),
    (
        {
            "one": {"sections": ["discover"], "variants": {"A": {"share": 0.5}, "B": {"share": 0.5}}},
            "two": {"sections": ["discover"], "variants": {"A": {"share": 0.5}, "B": {"share": 0.5}}},
        },
        "experiments.two.sections",
        "section 'discover' is already in experiment 'one'",
    ),
]


@pytest.mark.parametrize(("table", "key", "message"), BAD_EXPERIMENTS)
def test_experiments_invalid_table_names_the_key(table, key, message):
    with pytest.raises(ServiceConfigError, match=message) as caught:
        ServiceConfig.from_dict({"store": "s.db", "log": "l.db", "experiments": table}, environ={})
    assert caught.value.key == key


def test_experiments_unknown_section_and_missing_model_are_serving_problems():
    variants = {"A": {"share": 0.5}, "B": {"share": 0.5, "design": "consolidated"}}
    table = {"e": {"sections": ["discover", "nosuch"], "variants": variants}}
    config = ServiceConfig.from_dict(
        {"store": "s.db", "log": "l.db", "models": {"base": "m", "independent": "i"}, "experiments": table},
        environ={},
    )
    problems = {p.key: p.problem for p in config.serving_problems(["discover", "similar_items"])}
    assert "unknown section 'nosuch'" in problems["experiments.e.sections"]
    assert "no model directory for design 'consolidated'" in problems["experiments.e.variants.B.design"]
    assert config.designs_in_use(["discover"]) == {"base", "consolidated"}


@pytest.fixture(scope="module")
def ab_app(config_dict, tmp_path_factory):
    log_path = tmp_path_factory.mktemp("ab") / "decisions.db"
    application = create_app(ServiceConfig.from_dict(config_dict(log_path, experiments=AB), environ={}))
    yield application
    get_state(application).close()


def test_experiment_users_get_their_hashed_variant_and_its_design(ab_app, rerank_body, user_ids):
    client = ab_app.test_client()
    plan = get_state(ab_app).config.experiments[0].plan()
    expected = {int(u): plan.label(plan.assign_one(int(u))) for u in user_ids[:40]}
    assert set(expected.values()) == {"consolidate/A", "consolidate/B"}
    versions = {}
    for user, label in expected.items():
        for section in FEED:
            body = rerank_body(section, user={"id": user})
            first = client.post("/v1/rerank", json=body).get_json()
            again = client.post("/v1/rerank", json=body).get_json()
            assert first["variant"] == again["variant"] == label
            versions.setdefault((section, label), set()).add(first["model_versions"]["ranker"])
    loaded = get_state(ab_app).loaded
    for section in FEED:
        assert versions[(section, "consolidate/A")] == {loaded.models["base"].version}
        assert versions[(section, "consolidate/B")] == {loaded.models["consolidated"].version}
    # Outside the experiment's sections: no variant, the config's own design.
    out = client.post("/v1/rerank", json=rerank_body("category_explore")).get_json()
    assert "variant" not in out


def test_experiment_decisions_log_their_variant(ab_app, rerank_body, user_ids):
    client = ab_app.test_client()
    sent = {}
    for user in user_ids[:30]:
        for section in ("similar_items", "category_explore"):
            out = client.post("/v1/rerank", json=rerank_body(section, user={"id": int(user)})).get_json()
            sent[out["event_id"]] = out.get("variant", "")
    state = get_state(ab_app)
    assert state.writer.flush()
    with DecisionLog.open(state.config.log) as log:
        frame = log.decisions()
    logged = dict(zip(frame["event_id"], frame["variant"], strict=True))
    assert {e: logged.get(e) for e in sent} == sent


def test_experiment_variant_design_that_cannot_serve_its_section_names_the_key(config_dict, tmp_path):
    table = {"e": {"sections": ["search"], "variants": {"A": {"share": 0.5}, "B": {"share": 0.5}}}}
    table["e"]["variants"]["B"]["design"] = "base"  # the base model does not serve search
    config = ServiceConfig.from_dict(config_dict(tmp_path / "log.db", experiments=table), environ={})
    app = create_app(config)
    state = get_state(app)
    try:
        assert isinstance(state.load_error, LoadError)
        assert state.load_error.field == "experiments.e.variants.B.design"
        assert "search" in state.load_error.message
    finally:
        state.close()


def test_experiment_shares_respected_by_served_users(ab_app):
    plan = get_state(ab_app).config.experiments[0].plan()
    users = np.arange(20_000)
    share_b = float((plan.assign(users) == 1).mean())
    # 0.5 within 4 binomial standard deviations (sqrt(0.25 / 20000) = 0.0035)
    assert abs(share_b - 0.5) < 4 * np.sqrt(0.25 / len(users))
