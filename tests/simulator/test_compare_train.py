"""What the designs of a comparison seed cost and which rankers serve each section, on stand-in models (no
training: `train_designs` and the costs only read what `Trainer.train` returns)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from simulator.compare_train import TrainedDesigns, TrainedModel, strategy_costs, train_designs
from simulator.errors import CompareInputError

SECTIONS = ("discover", "similar_items", "category_explore", "search")


@dataclass(frozen=True)
class _Model:
    """Stands in for a RankerModel: the sections it serves."""

    sections: tuple[str, ...]


def trained(sections, seconds: float, boosters: int, size: int, lists: dict[str, int]) -> TrainedModel:
    return TrainedModel(
        model=_Model(tuple(sections)), seconds=seconds, boosters=boosters, artifact_bytes=size, lists=lists
    )


class _Trainer:
    """Stands in for `Trainer`: each design serves what the shipped ranker config gives it."""

    def __init__(self, base_sections=SECTIONS[:3]) -> None:
        self.base_sections = base_sections
        self.calls: list[tuple[str, str | None, str | None]] = []

    def train(self, design, prepared, *, union=None, section=None) -> TrainedModel:
        self.calls.append((design, union, section))
        served = {"independent": (section,), "consolidated": SECTIONS, "base": self.base_sections}[design]
        return trained(served, 1.0, 3, 100, {s: 10 for s in served})


@pytest.fixture
def designs() -> TrainedDesigns:
    return train_designs(_Trainer(), None, SECTIONS, ("traffic", "equal"))


def test_train_designs_trains_each_design_once_in_order():
    trainer = _Trainer()
    train_designs(trainer, None, SECTIONS, ("traffic", "equal"))
    assert trainer.calls == [
        *(("independent", None, s) for s in SECTIONS),
        ("consolidated", "traffic", None),
        ("consolidated", "equal", None),
        ("base", None, None),
    ]


def test_train_designs_refuses_a_section_the_base_ranker_cannot_pair():
    with pytest.raises(CompareInputError, match="does not serve section 'similar_items', nor is it 'search'"):
        train_designs(_Trainer(base_sections=("discover", "category_explore")), None, SECTIONS, ("traffic",))


def test_base_rankers_pair_the_base_ranker_with_the_independent_search_model(designs):
    rankers = designs.base_rankers()
    assert [rankers[s] is designs.base.model for s in SECTIONS] == [True, True, True, False]
    assert rankers["search"] is designs.independent["search"].model


def test_training_lists_of_each_ranker_strategy(designs):
    lists = designs.training_lists()
    assert lists["independent"] == dict.fromkeys(SECTIONS, 10)
    assert lists["base"] == dict.fromkeys(SECTIONS[:3], 10)
    assert set(lists) == {"independent", "base", "consolidated", "consolidated[equal]"}


def test_strategy_costs_add_up_the_models_each_strategy_deploys(designs):
    costs = strategy_costs(designs, learn_seconds=5.0, tune_seconds=2.0, policy_bytes=40)
    # Every stand-in model: 1 s, 3 boosters, 100 bytes. The base strategies deploy the base ranker and the
    # independent search model.
    assert (costs["independent"].models, costs["independent"].artifacts) == (12, 4)
    assert (costs["consolidated"].models, costs["consolidated"].artifact_bytes) == (3, 100)
    assert costs["base+default"].train_seconds == pytest.approx(2.0)
    assert costs["base+best_fixed"].train_seconds == pytest.approx(2.0 + 2.0)
    bandit = costs["base+bandit"]
    assert (bandit.models, bandit.artifacts, bandit.artifact_bytes) == (7, 3, 240)
    assert bandit.train_seconds == pytest.approx(2.0 + 5.0)
    assert costs["consolidated+bandit"].artifact_bytes == 140
