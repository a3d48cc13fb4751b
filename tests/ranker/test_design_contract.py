"""The contract every ranker design keeps, for each design in the registry (`ranker.designs.DESIGNS`).

Trained on the shared tiny world with few, small trees:

- its models serve exactly the design's sections, grouped as the design says (one shared model, or one per
  section), each trained on its own sections' lists only; a union spec applies exactly to shared designs;
- predicting before `fit` raises the house's `NotFittedError`;
- a list's scores do not depend on the order of its candidates, online (`score`) and offline (`score_lists`),
  and a served request scores as its row of a batch of held-out lists;
- the same config, log and seed give byte-identical model text and the same content hash;
- a save/load round trip gives identical scores, and the artifact's contract (design, sections, features in
  order, dtypes, defaults, task_type categories, model files) obeys the design's feature rules;
- config validation refuses each of the design's required features left out and forbidden features added,
  naming ``designs.<name>.features``;
- an empty candidate list, and an empty batch of lists, score to empty arrays.

New designs are picked up from the registry (and the shipped config's ``[designs.<name>]`` table) without
editing this file.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest

from bandits.errors import NotFittedError as HouseNotFittedError
from ranker.artifact import InferenceContract, library_versions
from ranker.base import EVERY_SECTION, SECTION_CONTEXT_FEATURES, Design
from ranker.config import RankerConfig
from ranker.dataset import TEST
from ranker.designs import DESIGNS
from ranker.errors import ContractMismatchError, NotFittedError, RankerConfigError, UnionSpecError
from ranker.feature_defs import FEATURES, TASK_TYPE
from ranker.labels import LabelledLists
from ranker.model import RankerModel
from ranker.train import LambdaRanker, train_design

NAMES = list(DESIGNS)
#: Few, small trees and a short bootstrap: the contract does not need good models, only real ones.
FAST = {
    "lightgbm": {"num_leaves": [7], "num_boost_round": 12, "early_stopping_rounds": 4, "num_threads": 1},
    "evaluation": {"n_bootstrap": 5},
}
#: Held-out lists per section that the per-request checks score.
LISTS_PER_SECTION = 6


# ------------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def config() -> RankerConfig:
    return RankerConfig.from_dict(FAST)


@pytest.fixture(scope="module")
def results(prepared, tables, config):
    """Each design trained once: name -> TrainResult."""
    catalog, users = tables
    return {name: train_design(name, prepared, catalog, users, config) for name in NAMES}


@pytest.fixture(scope="module")
def again(prepared, tables, config):
    """Each design trained a second time on the same config, log and seed."""
    catalog, users = tables
    return {name: train_design(name, prepared, catalog, users, config) for name in NAMES}


@pytest.fixture(scope="module")
def saved(results, tmp_path_factory):
    root = tmp_path_factory.mktemp("design-contract")
    return {name: result.save(root / name) for name, result in results.items()}


@pytest.fixture(scope="module")
def loaded(saved, tables, config):
    catalog, users = tables
    return {
        name: RankerModel.load(path, catalog=catalog, users=users, config=config)
        for name, path in saved.items()
    }


@pytest.fixture(scope="module")
def held_out(prepared, config):
    """name -> the first held-out lists of each of the design's sections, as one batch."""
    out = {}
    for name in NAMES:
        lists = prepared.lists_in(TEST, config.designs[name].sections)
        picked = [
            np.flatnonzero((lists.requests.section == section) & (lists.sizes >= 2))[:LISTS_PER_SECTION]
            for section in config.designs[name].sections
        ]
        out[name] = lists.take(np.concatenate(picked))
    return out


def context_of(lists: LabelledLists, b: int) -> dict[str, object]:
    """The context dict a served request would carry for list `b` (time included)."""
    r = lists.requests
    context: dict[str, object] = {"time": float(r.time[b])}
    if r.device[b]:
        context["device"] = r.device[b]
    for name in ("source_item", "category"):
        if getattr(r, name)[b] is not None:
            context[name] = getattr(r, name)[b]
    if r.query[b]:
        context["query"] = r.query[b]
    return context


def rows_of(lists: LabelledLists, b: int) -> slice:
    return slice(int(lists.offsets[b]), int(lists.offsets[b + 1]))


def permuted_within_lists(lists: LabelledLists, order: np.ndarray) -> LabelledLists:
    """The same lists with their rows in `order` (a permutation that keeps every row in its list)."""
    rows = ("item_id", "position", "clicked", "converted", "item_revenue", "label")
    return dataclasses.replace(lists, **{name: getattr(lists, name)[order] for name in rows})


def model_files(design: Design, sections: tuple[str, ...]) -> set[str]:
    return {"model.txt" if key == EVERY_SECTION else f"models/{key}.txt" for key in design.models(sections)}


# ------------------------------------------------------------------------------------------------ the kind


def test_design_registry_names_every_design_by_its_own_name(config):
    assert NAMES
    for name, design in DESIGNS.items():
        assert isinstance(design, Design)
        assert design.name == name
        assert design.description
        assert design.rule
        assert not design.required_features & design.forbidden_features
        assert design.required_features | design.forbidden_features <= set(FEATURES)
    assert list(config.designs) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_design_models_partition_the_sections_as_the_design_groups_them(name, config):
    design = DESIGNS[name]
    sections = config.section_names
    models = design.models(sections)
    assert [s for group in models.values() for s in group] == list(sections)
    if design.shared:
        assert models == {EVERY_SECTION: sections}
    else:
        assert models == {s: (s,) for s in sections}
    assert design.models(()) == {}


def test_design_unknown_name_refused_by_the_contract():
    with pytest.raises(ContractMismatchError, match=r"design: expected one of .*found 'hybrid'"):
        InferenceContract(design="hybrid", features=(), sections=("discover",))


def test_design_every_design_is_documented():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "ranker.md").read_text()
    for name in NAMES:
        assert f"| `{name}` |" in doc, name


def test_design_cli_offers_exactly_the_registered_designs():
    from sectionrank.commands.train import train_command

    (option,) = [p for p in train_command.params if p.name == "design"]
    assert list(option.type.choices) == NAMES


# ----------------------------------------------------------------------------------------- trained models


@pytest.mark.parametrize("name", NAMES)
def test_design_model_serves_exactly_the_design_sections(name, results, config):
    design, spec = DESIGNS[name], config.designs[name]
    model = results[name].model
    assert model.design == name
    assert model.sections == spec.sections
    models = design.models(spec.sections)
    assert list(model.boosters) == list(models)
    for key, sections in models.items():
        for section in sections:
            assert model.serves(section)
            assert model.booster_for(section) is model.boosters[key]
    for section in [*(s for s in config.section_names if s not in spec.sections), "nowhere"]:
        assert not model.serves(section)
        with pytest.raises(ContractMismatchError, match=f"does not serve section '{section}'"):
            model.score(section, 1, {}, [1, 2])


@pytest.mark.parametrize("name", NAMES)
def test_design_each_model_trains_on_its_own_sections_lists_only(name, results, config):
    models = DESIGNS[name].models(config.designs[name].sections)
    training = results[name].metadata["training"]
    assert list(training) == list(models)
    for key, sections in models.items():
        assert set(training[key]["lists_by_section"]) == set(sections)
        assert training[key]["lists"] > 0


@pytest.mark.parametrize("name", NAMES)
def test_design_union_applies_exactly_to_shared_designs(name, results, prepared, tables, config):
    union = results[name].metadata["union"]
    if DESIGNS[name].shared:
        assert [s["section"] for s in union["sections"]] == list(config.designs[name].sections)
        assert union["strategy"] == config.designs[name].union
    else:
        assert union is None
        catalog, users = tables
        with pytest.raises(UnionSpecError, match=f"not {name}$"):
            train_design(name, prepared, catalog, users, config, union="equal")


@pytest.mark.parametrize("name", NAMES)
def test_design_predict_before_fit_raises_the_house_not_fitted_error(name, config):
    features = config.designs[name].features
    ranker = LambdaRanker(config.lightgbm, feature_names=features)
    with pytest.raises(NotFittedError, match="LambdaRanker: call fit before predict") as caught:
        ranker.predict(np.zeros((3, len(features))))
    assert NotFittedError is HouseNotFittedError
    assert isinstance(caught.value, AttributeError)


@pytest.mark.parametrize("name", NAMES)
def test_design_served_scores_follow_their_candidates(name, results, held_out, rng):
    model, lists = results[name].model, held_out[name]
    for b in range(lists.n_requests):
        section, user = lists.requests.section[b], lists.requests.user_id[b]
        items = lists.item_id[rows_of(lists, b)]
        context = context_of(lists, b)
        scores = model.score(section, user, context, items)
        order = rng.permutation(items.size)
        np.testing.assert_array_equal(model.score(section, user, context, items[order]), scores[order])


@pytest.mark.parametrize("name", NAMES)
def test_design_batch_scores_follow_rows_permuted_within_lists(name, results, held_out, rng):
    model, lists = results[name].model, held_out[name]
    scores = model.score_lists(lists)
    order = np.lexsort((rng.random(lists.n_rows), lists.request_of_row))
    assert not np.array_equal(order, np.arange(lists.n_rows))
    np.testing.assert_array_equal(model.score_lists(permuted_within_lists(lists, order)), scores[order])


@pytest.mark.parametrize("name", NAMES)
def test_design_served_request_scores_as_its_row_of_a_batch(name, results, held_out):
    model, lists = results[name].model, held_out[name]
    batch = model.score_lists(lists)
    for b in range(lists.n_requests):
        section, user = lists.requests.section[b], lists.requests.user_id[b]
        alone = model.score(section, user, context_of(lists, b), lists.item_id[rows_of(lists, b)])
        np.testing.assert_array_equal(alone, batch[rows_of(lists, b)])


@pytest.mark.parametrize("name", NAMES)
def test_design_same_seed_gives_byte_identical_models(name, results, again, tmp_path):
    first, second = results[name].model.boosters, again[name].model.boosters
    assert list(first) == list(second)
    for key, booster in first.items():
        assert second[key].model_to_string() == booster.model_to_string()
    a, b = results[name].save(tmp_path / "a"), again[name].save(tmp_path / "b")
    for file in model_files(DESIGNS[name], results[name].model.sections):
        assert (a / file).read_bytes() == (b / file).read_bytes()
    assert json.loads((a / "manifest.json").read_text()) == json.loads((b / "manifest.json").read_text())


@pytest.mark.parametrize("name", NAMES)
def test_design_round_trip_gives_identical_scores(name, results, loaded, prepared, config):
    lists = prepared.lists_in(TEST, config.designs[name].sections)
    trained, model = results[name].model, loaded[name]
    np.testing.assert_array_equal(model.score_lists(lists), trained.score_lists(lists))
    assert model.contract == trained.contract
    assert set(model.boosters) == set(trained.boosters)


@pytest.mark.parametrize("name", NAMES)
def test_design_artifact_contract_obeys_the_design_rules(name, saved, loaded, config):
    design, spec = DESIGNS[name], config.designs[name]
    contract = loaded[name].contract
    names = contract.feature_names
    assert contract.design == name
    assert contract.sections == spec.sections
    assert names == list(spec.features)
    assert design.feature_problem(names) is None
    assert design.required_features <= set(names)
    assert not design.forbidden_features & set(names)
    assert contract.task_types == (config.section_names if TASK_TYPE in names else ())
    for feature in contract.features:
        known = FEATURES[feature.name]
        assert feature.dtype == known.dtype
        if known.default is not None:
            assert feature.default == known.default
        assert bool(feature.categories) == (known.dtype == "category")
    manifest = json.loads((saved[name] / "manifest.json").read_text())
    written = {f for f in manifest["files"] if f == "model.txt" or f.startswith("models/")}
    assert written == model_files(design, spec.sections)
    assert contract.library_versions["lightgbm"] == library_versions()["lightgbm"]


def test_design_rules_of_the_three_shipped_designs():
    """task_type in the consolidated model only; no section-context feature in the base ranker."""
    base, consolidated, independent = DESIGNS["base"], DESIGNS["consolidated"], DESIGNS["independent"]
    assert [base.shared, consolidated.shared, independent.shared] == [True, True, False]
    assert base.forbidden_features == {TASK_TYPE, *SECTION_CONTEXT_FEATURES}
    assert not base.required_features
    assert consolidated.required_features == {TASK_TYPE}
    assert not consolidated.forbidden_features
    assert independent.forbidden_features == {TASK_TYPE}
    assert not independent.required_features
    context = {"source_similarity", "category_match", "query_match", "query_similarity"}
    assert context == SECTION_CONTEXT_FEATURES


@pytest.mark.parametrize("name", NAMES)
def test_design_empty_input_scores_to_an_empty_array(name, results, held_out):
    model, lists = results[name].model, held_out[name]
    for section in model.sections:
        scores = model.score(section, 1, {}, [])
        assert scores.shape == (0,)
    empty = lists.take(np.zeros(0, dtype=np.int64))
    assert model.score_lists(empty).shape == (0,)


# -------------------------------------------------------------------------------------- config validation


def _rule_cases() -> list:
    cases = []
    for name, design in DESIGNS.items():
        cases += [
            pytest.param(name, f, "needs", id=f"{name}-needs-{f}") for f in sorted(design.required_features)
        ]
        cases += [
            pytest.param(name, f, "cannot use", id=f"{name}-forbids-{f}")
            for f in sorted(design.forbidden_features)
        ]
    return cases


@pytest.mark.parametrize(
    ("name", "feature", "verb"),
    # Every required feature left out of, and every forbidden feature added to, the shipped design's features.
    _rule_cases(),
)
def test_design_feature_rules_refused_by_config_validation_naming_the_key(name, feature, verb):
    data = RankerConfig.load().to_dict()
    features = [f for f in data["designs"][name]["features"] if f != feature]
    if verb == "cannot use":
        features.append(feature)
    features = features or sorted(set(FEATURES) - DESIGNS[name].forbidden_features)[:1]
    data["designs"][name]["features"] = features
    key = f"designs.{name}.features"
    with pytest.raises(
        RankerConfigError, match=rf"^{re.escape(key)}: the {name} design {verb} \['{feature}'\]"
    ) as caught:
        RankerConfig.from_dict(data)
    assert caught.value.key == key
    assert str(features) in str(caught.value)
