"""Acceptance of the A/B experiments: on a world whose answer is known (simulator/worlds/ab_consolidate.toml),
simulated users are served through the service (Flask test client, the whole app in process), click as the
world's click model says, and `sectionrank experiment-report` reads the answer back from the decision log:
the consolidated model wins in similar_items (interval above 0) and ties in discover (interval around 0),
where the world makes every slate of the same length worth the same."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from bandits.log import DecisionLog
from ranker.config import RankerConfig
from ranker.dataset import prepare_log
from ranker.train import train_design
from sectionrank.cli import main
from service.app import create_app, get_state
from service.config import ServiceConfig
from service.store import ServiceStore
from simulator import World, WorldConfig, simulate

WORLD = Path(__file__).parents[2] / "simulator" / "worlds" / "ab_consolidate.toml"
SEED = 7
LOGGED = 6000  # requests logged under exploration, to train the two designs on
SERVED = 3000  # requests served in the A/B test
EXPERIMENT = {
    "ab": {
        "sections": ["discover", "similar_items"],
        "variants": {
            "A": {"share": 0.5},  # the base ranker with the knob policy and heuristics
            "B": {
                "share": 0.5,
                "design": "consolidated",
                "heuristics": False,
            },  # the consolidated model's order
        },
    }
}


def request_body(requests, i: int) -> dict:
    context = {"device": str(requests.device[i]), "time": float(requests.time[i])}
    if requests.section[i] == "similar_items":
        context["source_item"] = int(requests.source_item[i])
    return {
        "section": str(requests.section[i]),
        "user": {"id": int(requests.user_id[i])},
        "context": context,
        "candidates": requests.candidates[i].tolist(),
    }


@pytest.fixture(scope="module")
def served_ab(tmp_path_factory):
    """Train base and consolidated on the world's logged traffic, serve SERVED fresh requests through the
    app with the experiment, post the sampled clicks as feedback; returns (log path, requests, variants,
    exact expected clicks of each served slate, exact clicks of the candidates' first k)."""
    root = tmp_path_factory.mktemp("ab-accept")
    world = World.build(WorldConfig.load(WORLD), SEED)
    catalog, users = world.catalog(), world.users()
    catalog.to_parquet(root / "catalog.parquet", index=False)
    users.to_parquet(root / "users.parquet", index=False)
    with DecisionLog.open(root / "train.db", create=True) as log:
        simulate(world, LOGGED, seed=SEED, sink=log.append)
    ranker_config = RankerConfig.load()
    prepared = prepare_log(root / "train.db", ranker_config)
    models = {
        design: train_design(design, prepared, catalog, users, ranker_config).save(root / design)
        for design in ("base", "consolidated")
    }
    store = ServiceStore(root / "store.db")
    store.load("catalog", catalog)
    store.load("users", users)
    config = ServiceConfig.from_dict(
        {
            "store": str(root / "store.db"),
            "log": str(root / "served.db"),
            "models": {d: str(p) for d, p in models.items()},
            "section_models": {"search": "consolidated"},
            "policy": "default",
            "experiments": EXPERIMENT,
        },
        environ={},
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SECTIONRANK_COMPILED", "0")  # LightGBM scores: no seconds spent compiling
        app = create_app(config)
    client = app.test_client()
    rng = np.random.default_rng(SEED + 1)
    drawn = world.sample_requests(SERVED * 2, rng)  # the experiment's two sections: 90% of the traffic
    requests = drawn.take(np.flatnonzero(np.isin(drawn.section, EXPERIMENT["ab"]["sections"]))[:SERVED])
    slates, variants, event_ids = [], [], []
    for i in range(SERVED):
        out = client.post("/v1/rerank", json=request_body(requests, i))
        assert out.status_code == 200, out.get_json()
        payload = out.get_json()
        slates.append([item["id"] for item in payload["items"]])
        variants.append(payload["variant"])
        event_ids.append(payload["event_id"])
    slates = np.array(slates, dtype=np.int64)  # every slate has the sections' default k items
    outcomes = world.sample_clicks(requests, slates, rng)
    for i in np.flatnonzero(outcomes.clicks.any(axis=1)):
        feedback = {
            "event_id": event_ids[i],
            "clicks": [{"position": int(p)} for p in np.flatnonzero(outcomes.clicks[i])],
            "conversions": [{"position": int(p)} for p in np.flatnonzero(outcomes.conversions[i])],
            "revenue": float(outcomes.revenue[i]),
            "time": float(requests.time[i]) + 5.0,
        }
        assert client.post("/v1/feedback", json=feedback).status_code == 200
    state = get_state(app)
    assert state.writer.flush()
    state.close()
    exact = world.expected_outcomes(requests, slates).clicks
    first_k = world.expected_outcomes(requests, requests.candidates[:, : slates.shape[1]]).clicks
    return root / "served.db", requests, np.array(variants), exact, first_k


@pytest.mark.slow
def test_experiment_report_finds_the_known_answer(served_ab, tmp_path):
    log_path, requests, variants, exact, first_k = served_ab
    assert set(variants) == {"ab/A", "ab/B"}
    discover = requests.section == "discover"
    # The world's claim, exactly: in discover every slate of k items is worth the same.
    np.testing.assert_allclose(exact[discover], first_k[discover], rtol=1e-12)
    # In similar_items the consolidated model's slates are worth more, exactly.
    similar = requests.section == "similar_items"
    exact_gain = exact[similar & (variants == "ab/B")].mean() - exact[similar & (variants == "ab/A")].mean()
    assert exact_gain > 0.1

    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["experiment-report", "--log", str(log_path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    print(f"exact gain in similar_items {exact_gain:+.4f} clicks/request\n{result.output}")  # pytest -s
    (experiment,) = json.loads((out / "results.json").read_text())["experiments"]
    assert experiment["name"] == "ab"
    assert experiment["control"] == "A"
    diffs = {(d["section"], d["metric"]): d for d in experiment["differences"] if d["variant"] == "B"}
    won = diffs[("similar_items", "clicks")]
    assert won["verdict"] == "better"
    assert won["low"] > 0
    # The sampled difference estimates the exact one: the exact gain lies within its interval.
    assert won["low"] <= exact_gain <= won["high"]
    tied = diffs[("discover", "clicks")]
    assert tied["verdict"] == "tie"
    assert tied["low"] <= 0 <= tied["high"]
    sizes = pd.DataFrame(experiment["stats"])
    sizes = sizes[(sizes["metric"] == "clicks") & (sizes["section"] != "all")]
    assert sizes["requests"].sum() == SERVED
    assert (out / "experiment-ab.png").stat().st_size > 0
    assert "reversal" in (out / "report.md").read_text().lower()
