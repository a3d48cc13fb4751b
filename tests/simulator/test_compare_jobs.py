"""The comparison's seeds in worker processes (`compare(jobs=...)`): the same results as one after another."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from bandits.errors import LogError
from heuristics import SectionsConfig
from heuristics.errors import ConfigError
from ranker.errors import RankerConfigError
from simulator.compare import _dumps, compare, usable_cores
from simulator.compare_results import CompareResults
from simulator.compare_run import STEPS
from simulator.compare_settings import CompareSettings
from simulator.errors import CompareInputError, WorldConfigError
from simulator.report import render_html, render_markdown
from simulator.world_config import WorldConfig

WORLD_TINY = Path(__file__).parents[1] / "fixtures" / "world_tiny.toml"
SETTINGS = CompareSettings(
    log_requests=2000,
    knob_requests=1000,
    eval_requests=120,
    tune_requests=80,
    curve_shares=(0.2,),
    n_bootstrap=10,
)


def _without_timings(results: CompareResults, *, artifact_bytes: dict[str, float]) -> dict:
    """results.json with what measures time (or the moment of the run) blanked, and the artifacts' sizes
    replaced by `artifact_bytes` (a policy file's metadata holds its creation time: its size varies by a
    few bytes from run to run)."""
    data = results.to_json()
    data["created"] = ""
    data["runtime"] = {"seconds": 0.0, "steps": {}, "python": data["runtime"]["python"]}
    for name, cost in data["costs"].items():
        seconds = cost["train_seconds"]
        seconds.update(mean=0.0, low=0.0, high=0.0, per_seed=[0.0] * len(seconds["per_seed"]))
        assert cost["artifact_bytes"] == pytest.approx(artifact_bytes[name], abs=8)
        cost["artifact_bytes"] = artifact_bytes[name]
    return data


def _run(jobs: int) -> tuple[CompareResults, list[int]]:
    drawn: list[int] = []

    def progress(items):
        for item in items:
            drawn.append(item)
            yield item

    return compare(WORLD_TINY, seeds=[3, 1], settings=SETTINGS, jobs=jobs, progress=progress), drawn


@pytest.mark.slow
def test_compare_jobs_two_workers_give_the_bytes_of_one_process(monkeypatch):
    one, drawn_one = _run(1)

    def in_this_process(*_args, **_kwargs):
        raise AssertionError("with 2 jobs no seed runs in the calling process")

    monkeypatch.setattr("simulator.compare.run_seed", in_this_process)  # spawned workers import their own
    two, drawn_two = _run(2)
    sizes = {name: cost.artifact_bytes for name, cost in one.costs.items()}
    first, second = _without_timings(one, artifact_bytes=sizes), _without_timings(two, artifact_bytes=sizes)
    assert json.dumps(first, indent=2) == json.dumps(second, indent=2)
    assert two.seeds == (3, 1)  # the order asked for, whichever seed finished first
    # The reports carry the training times; with those blanked they are the same bytes too.
    for render in (render_markdown, render_html):
        assert render(CompareResults.from_json(first)) == render(CompareResults.from_json(second))
    # Every seed draws one progress item per step, in order in one process, interleaved or not in two.
    assert drawn_one == [0] * len(STEPS) + [1] * len(STEPS)
    assert Counter(drawn_two) == Counter(drawn_one)
    # The timings are real: each worker timed its own seed's steps.
    assert two.runtime.steps["train"] > 0


@pytest.mark.slow
def test_compare_jobs_an_error_in_a_worker_reaches_the_caller_as_raised():
    assert "search" in WorldConfig.load(WORLD_TINY).sections
    sections = SectionsConfig.load()
    without_search = SectionsConfig(
        sections={k: v for k, v in sections.sections.items() if k != "search"}, source="<dict>"
    )
    for jobs in (1, 2):
        with pytest.raises(CompareInputError, match="World section 'search' is not in the sections config"):
            compare(WORLD_TINY, seeds=2, settings=SETTINGS, sections=without_search, jobs=jobs)


# Errors whose constructors take other arguments than their message: (error, attributes kept).
ERRORS = [
    (WorldConfigError("items.count", "expected an integer >= 1, found 0"), ("key", "problem")),
    (RankerConfigError("lightgbm.num_leaves", "expected a list"), ("key", "problem")),
    (ConfigError("sections.discover.arms", "no arm with id 'x'"), ("key", "problem")),
    (LogError("/tmp/log.db", "is locked"), ()),
]


@pytest.mark.parametrize(("error", "attributes"), ERRORS)
def test_compare_jobs_errors_travel_between_processes_whole(error, attributes):
    import pickle

    copy = pickle.loads(_dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.args == error.args
    for name in attributes:
        assert getattr(copy, name) == getattr(error, name)


def test_compare_jobs_configs_travel_between_processes_equal():
    import pickle

    sections = SectionsConfig.load()
    assert pickle.loads(_dumps(sections)) == sections


# Invalid job counts: (jobs, message).
BAD_JOBS = [(0, "found 0"), (-2, "found -2"), (True, "found True"), (1.5, "found 1.5")]


@pytest.mark.parametrize(("jobs", "message"), BAD_JOBS)
def test_compare_jobs_refuses_a_bad_count(jobs, message):
    with pytest.raises(CompareInputError, match=f"Expected `jobs` to be an integer >= 1, {message}"):
        compare(WORLD_TINY, seeds=2, settings=SETTINGS, jobs=jobs)


def test_compare_jobs_usable_cores_is_the_affinity_mask():
    import os

    assert usable_cores() == len(os.sched_getaffinity(0)) >= 1
