"""The stratified union: target shares, whole lists, seeding, shortfall handling and spec validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ranker.errors import RankerError, UnionError, UnionSpecError
from ranker.union import UNION_LIST, UnionSpec, allocate, parse_union_spec, stratified_union

SECTIONS = ["home", "similar", "search"]
LISTS = {"home": 240, "similar": 90, "search": 30}


def make_frame(seed: int = 0, lists: dict[str, int] | None = None) -> pd.DataFrame:
    """Rows of lists of 1..8 candidates per section, rows of all lists shuffled together."""
    lists = LISTS if lists is None else lists
    rng = np.random.default_rng(seed)
    sections = np.concatenate([[name] * n for name, n in lists.items()])
    sizes = rng.integers(1, 9, size=sections.size)
    list_ids = rng.permutation(sections.size) * 5 + 1000
    frame = pd.DataFrame(
        {
            "list_id": np.repeat(list_ids, sizes),
            "section": np.repeat(sections, sizes),
            "item": np.arange(sizes.sum()),
            "label": rng.integers(0, 3, size=sizes.sum()),
        }
    )
    return frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)


def taken_counts(result, frame: pd.DataFrame) -> dict[str, int]:
    return {s.section: s.lists_taken for s in result.summary.sections}


def assert_whole_lists(union: pd.DataFrame, frame: pd.DataFrame) -> None:
    """Every taken list carries all its input rows, in input order, once per time it was taken."""
    input_rows = frame.groupby("list_id")["item"].apply(list)
    for _, rows in union.groupby(UNION_LIST):
        assert rows["list_id"].nunique() == 1
        assert rows["item"].tolist() == input_rows[rows["list_id"].iloc[0]]
    starts = np.flatnonzero(np.diff(union[UNION_LIST].to_numpy()) != 0) + 1
    assert np.all(np.diff(union[UNION_LIST].to_numpy()) >= 0)
    assert starts.size == union[UNION_LIST].nunique() - 1


# ----------------------------------------------------------------------------------------- allocation


@pytest.mark.parametrize("total", [1, 7, 100, 1001])
def test_allocate_sums_to_total_within_one_of_exact(total: int):
    shares = np.array([0.5, 0.3, 0.2 - 1e-12, 1e-12])
    counts = allocate(shares, total)
    assert counts.sum() == total
    assert np.all(np.abs(counts - shares * total) < 1)


# --------------------------------------------------------------------------------------------- shares


def test_union_traffic_default_takes_every_list():
    frame = make_frame()
    result = stratified_union(frame, "traffic", sections=SECTIONS, seed=1)
    assert result.summary.n_lists == sum(LISTS.values())
    assert result.summary.n_rows == len(frame)
    assert sorted(result.frame["item"]) == sorted(frame["item"])
    for share in result.summary.sections:
        assert share.lists_taken == share.lists_available == LISTS[share.section]
        assert share.target_share == pytest.approx(LISTS[share.section] / 360)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("equal", {"home": 1 / 3, "similar": 1 / 3, "search": 1 / 3}),
        ("0.5,0.3,0.2", {"home": 0.5, "similar": 0.3, "search": 0.2}),
        ("5, 3, 2", {"home": 0.5, "similar": 0.3, "search": 0.2}),
        ({"search": 1, "home": 2, "similar": 1}, {"home": 0.5, "similar": 0.25, "search": 0.25}),
        ("traffic", {"home": 240 / 360, "similar": 90 / 360, "search": 30 / 360}),
    ],
)
@pytest.mark.parametrize("n_lists", [None, 60, 61])
def test_union_achieved_shares_hit_targets_within_one_list(spec, expected, n_lists):
    # The tolerance is 1 / total: counts are largest-remainder roundings of share * total.
    frame = make_frame()
    result = stratified_union(frame, spec, sections=SECTIONS, n_lists=n_lists, seed=2)
    total = result.summary.n_lists
    assert total == (n_lists if n_lists is not None else result.summary.n_lists_target)
    for share in result.summary.sections:
        assert share.target_share == pytest.approx(expected[share.section])
        assert abs(share.achieved_share - share.target_share) < 1 / total
        assert share.achieved_share == pytest.approx(share.lists_taken / total)
        assert share.distinct_taken == share.lists_taken
    counted = result.frame.groupby("section")[UNION_LIST].nunique()
    assert counted.to_dict() == {s.section: s.lists_taken for s in result.summary.sections if s.lists_taken}
    assert_whole_lists(result.frame, frame)


def test_union_default_total_is_largest_without_replacement():
    frame = make_frame()
    result = stratified_union(frame, "equal", sections=SECTIONS, seed=0)
    # "search" has 30 lists and a third of the union: n / 3 <= 30 gives 90 lists in all.
    assert result.summary.n_lists == 90
    assert [s.lists_taken for s in result.summary.sections] == [30, 30, 30]
    # At 93 lists every section needs 31.
    with pytest.raises(UnionError, match="'search' has 30 lists but its share of n_lists=93 is 31"):
        stratified_union(frame, "equal", sections=SECTIONS, n_lists=93)
    # "1,1,2": search needs n / 2 <= 30.
    assert stratified_union(frame, "1,1,2", sections=SECTIONS).summary.n_lists == 60


def test_union_zero_weight_section_is_left_out():
    frame = make_frame()
    result = stratified_union(frame, "1,1,0", sections=SECTIONS, seed=0)
    assert set(result.frame["section"]) == {"home", "similar"}
    # Limited by "similar" (90 lists at half the union).
    assert result.summary.n_lists == 180


def test_union_business_shares_from_mapping_and_column():
    frame = make_frame()
    revenue = {"home": 600.0, "similar": 300.0, "search": 100.0}
    by_mapping = stratified_union(frame, "business", sections=SECTIONS, revenue=revenue, n_lists=100)
    assert [s.lists_taken for s in by_mapping.summary.sections] == [60, 30, 10]
    # The same revenue spread over the rows of each section.
    with_column = frame.assign(
        revenue=frame["section"].map(revenue) / frame["section"].map(frame["section"].value_counts())
    )
    by_column = stratified_union(with_column, "business", sections=SECTIONS, n_lists=100)
    for a, b in zip(by_mapping.summary.sections, by_column.summary.sections, strict=True):
        assert a.target_share == pytest.approx(b.target_share)
        assert a.lists_taken == b.lists_taken


def test_union_explicit_string_and_mapping_agree():
    frame = make_frame()
    as_text = stratified_union(frame, "0.6,0.3,0.1", sections=SECTIONS, n_lists=50, seed=4)
    as_mapping = stratified_union(
        frame, {"home": 6, "similar": 3, "search": 1}, sections=SECTIONS, n_lists=50, seed=4
    )
    pd.testing.assert_frame_equal(as_text.frame, as_mapping.frame)


def test_union_default_sections_follow_first_appearance():
    frame = make_frame()
    result = stratified_union(frame, "equal", seed=0)
    assert [s.section for s in result.summary.sections] == list(pd.unique(frame["section"]))


# -------------------------------------------------------------------------------------- whole lists / seeds


def test_union_keeps_whole_lists_in_input_order():
    frame = make_frame(seed=5)
    result = stratified_union(frame, "0.2,0.4,0.4", sections=SECTIONS, seed=9)
    assert_whole_lists(result.frame, frame)
    np.testing.assert_array_equal(result.group_sizes, result.frame.groupby(UNION_LIST).size().to_numpy())
    assert result.frame.index.equals(pd.RangeIndex(len(result.frame)))
    assert list(result.frame.columns) == [*frame.columns, UNION_LIST]


def test_union_same_seed_identical_and_different_seeds_differ():
    frame = make_frame()
    first = stratified_union(frame, "equal", sections=SECTIONS, seed=11)
    pd.testing.assert_frame_equal(
        first.frame, stratified_union(frame, "equal", sections=SECTIONS, seed=11).frame
    )
    assert first.summary == stratified_union(frame, "equal", sections=SECTIONS, seed=11).summary
    other = stratified_union(frame, "equal", sections=SECTIONS, seed=12)
    assert set(first.frame["list_id"]) != set(other.frame["list_id"])
    generator = stratified_union(frame, "equal", sections=SECTIONS, seed=np.random.default_rng(11))
    pd.testing.assert_frame_equal(first.frame, generator.frame)
    assert generator.summary.seed is None


def test_union_sampling_is_uniform_within_a_section():
    # "home" gives 30 of its 240 lists per union: each list should be taken with probability 1/8.
    frame = make_frame()
    home_ids = frame.loc[frame["section"] == "home", "list_id"].unique()
    hits = pd.Series(0, index=home_ids)
    n_seeds = 400
    for seed in range(n_seeds):
        union = stratified_union(frame, "equal", sections=SECTIONS, seed=seed).frame
        hits[union.loc[union["section"] == "home", "list_id"].unique()] += 1
    p = 30 / 240
    sd = np.sqrt(n_seeds * p * (1 - p))
    assert hits.sum() == 30 * n_seeds
    assert np.all(np.abs(hits - n_seeds * p) < 5 * sd)


# ----------------------------------------------------------------------------------------- short sections


def test_union_when_short_cap_takes_all_and_shrinks():
    frame = make_frame()
    result = stratified_union(frame, "equal", sections=SECTIONS, n_lists=150, when_short="cap", seed=0)
    search = result.summary.sections[2]
    assert search.short
    assert search.lists_taken == search.lists_available == 30
    assert result.summary.n_lists_target == 150
    assert result.summary.n_lists == 50 + 50 + 30
    assert_whole_lists(result.frame, frame)


def test_union_when_short_replace_repeats_every_list_evenly():
    frame = make_frame()
    result = stratified_union(frame, "equal", sections=SECTIONS, n_lists=210, when_short="replace", seed=0)
    search = result.summary.sections[2]
    assert search.short
    assert search.lists_taken == 70
    assert search.distinct_taken == 30
    repeats = result.frame[result.frame["section"] == "search"].groupby("list_id")[UNION_LIST].nunique()
    # 70 = 2 * 30 + 10: every list twice, ten of them three times.
    assert sorted(repeats.value_counts().to_dict().items()) == [(2, 20), (3, 10)]
    assert result.frame[UNION_LIST].nunique() == 210
    assert_whole_lists(result.frame, frame)


# ------------------------------------------------------------------------------------------- invalid specs

# (spec, sections, error message pattern)
INVALID_SPECS = [
    ("popularity", SECTIONS, r"unknown strategy 'popularity'"),
    ("", SECTIONS, r"unknown strategy ''"),
    ("0.5,-0.1,0.6", SECTIONS, r"weight >= 0 for section 'similar', found -0.1"),
    ("0.5,0.5", SECTIONS, r"expected 3 numbers \(one per section: home, similar, search\), found 2"),
    ("0.2,0.2,0.3,0.3", SECTIONS, r"expected 3 numbers .* found 4"),
    ("0,0,0", SECTIONS, r"at least one weight > 0, found all zero"),
    ("0.5,x,0.2", SECTIONS, r"expected a number at position 1, found 'x'"),
    ("nan,1,1", SECTIONS, r"finite weight for section 'home'"),
    ("inf,1,1", SECTIONS, r"finite weight for section 'home'"),
    ({"home": 1, "similar": 1, "video": 1}, SECTIONS, r"unknown sections \['video'\]"),
    ({"home": 1, "similar": 1}, SECTIONS, r"missing weights for sections \['search'\]"),
    ({"home": 1, "similar": "1", "search": 1}, SECTIONS, r"number for section 'similar', found '1'"),
    ({"home": 1, "similar": -2, "search": 1}, SECTIONS, r"weight >= 0 for section 'similar', found -2"),
    ("equal", [], r"at least one section"),
    ("equal", ["home", "home"], r"distinct `sections`"),
    ("equal", "home", r"sequence of names"),
    (0.5, SECTIONS, r"strategy name, numbers or a mapping"),
]


@pytest.mark.parametrize(("spec", "sections", "match"), INVALID_SPECS)
def test_parse_union_spec_invalid_specs_raise(spec, sections, match):
    with pytest.raises(UnionSpecError, match=match):
        parse_union_spec(spec, sections)


@pytest.mark.parametrize("text", ["traffic", " Equal ", "BUSINESS"])
def test_parse_union_spec_strategy_names(text):
    spec = parse_union_spec(text, SECTIONS)
    assert spec.strategy == text.strip().lower()
    assert spec.sections == tuple(SECTIONS)
    assert spec.weights is None


# (strategy, weights, error message pattern)
INVALID_SPEC_RECORDS = [
    ("explicit", None, r"weights are given exactly when"),
    ("equal", {"home": 1.0}, r"weights are given exactly when"),
    ("explicit", {"home": 1.0}, r"weights for exactly the sections"),
    ("explicit", {"home": 0.5, "similar": 0.5, "search": 0.5}, r"summing to 1"),
    ("explicit", {"home": 1.5, "similar": -0.5, "search": 0.0}, r"finite weights >= 0"),
    ("random", None, r"unknown strategy 'random'"),
]


@pytest.mark.parametrize(("strategy", "weights", "match"), INVALID_SPEC_RECORDS)
def test_union_spec_invalid_records_raise(strategy, weights, match):
    with pytest.raises(UnionSpecError, match=match):
        UnionSpec(strategy, tuple(SECTIONS), weights)


def test_parse_union_spec_numbers_are_normalised():
    spec = parse_union_spec("2,1,1", SECTIONS)
    assert spec == UnionSpec("explicit", tuple(SECTIONS), spec.weights)
    assert dict(spec.weights) == {"home": 0.5, "similar": 0.25, "search": 0.25}


def _frame_with_mixed_list() -> pd.DataFrame:
    frame = make_frame()
    frame.loc[frame.index[frame["section"] == "home"][0], "list_id"] = frame.loc[
        frame["section"] == "search", "list_id"
    ].iloc[0]
    return frame


# (frame builder, spec, keyword options, error message pattern)
INVALID_UNIONS = [
    (lambda: make_frame().drop(columns="list_id"), "equal", {}, r"missing column 'list_id'"),
    (lambda: make_frame().iloc[:0], "traffic", {"sections": SECTIONS}, r"found an empty frame"),
    (lambda: make_frame().assign(union_list=0), "equal", {}, r"'union_list' is reserved"),
    (lambda: make_frame().assign(section=None), "equal", {}, r"'section' has a missing value at row 0"),
    (_frame_with_mixed_list, "equal", {"sections": SECTIONS}, r"lies in two sections"),
    (make_frame, "equal", {"sections": ["home", "similar"]}, r"section 'search' at row \d+ is not one of"),
    (make_frame, "equal", {"sections": SECTIONS, "n_lists": 0}, r"`n_lists` to be an integer >= 1, found 0"),
    (make_frame, "equal", {"sections": SECTIONS, "when_short": "grow"}, r"`when_short` in"),
    (make_frame, "equal", {"sections": SECTIONS, "seed": -2}, r"`seed` to be an integer >= 0"),
    (make_frame, "0.5,0.3,0.2", {}, r"numbers need `sections`"),
    (
        make_frame,
        "1,1,1,1",
        {"sections": [*SECTIONS, "video"]},
        r"'video' has target share 0.25 but no lists",
    ),
    (make_frame, "business", {"sections": SECTIONS}, r"needs a `revenue` mapping or a 'revenue' column"),
    (make_frame, "business", {"sections": SECTIONS, "revenue": {"home": 1.0}}, r"`revenue` is missing"),
    (
        make_frame,
        "business",
        {"sections": SECTIONS, "revenue": {"home": 0, "similar": 0, "search": 0}},
        r"business: revenue: expected at least one weight > 0",
    ),
    (
        lambda: make_frame().assign(revenue="x"),
        "business",
        {"sections": SECTIONS},
        r"'revenue' needs numbers",
    ),
    (
        make_frame,
        parse_union_spec("equal", SECTIONS),
        {"sections": ["home"]},
        r"`sections` \['home'\] differ from the spec's",
    ),
]


@pytest.mark.parametrize(("build", "spec", "options", "match"), INVALID_UNIONS)
def test_union_invalid_inputs_raise(build, spec, options, match):
    with pytest.raises(UnionError, match=match):
        stratified_union(build(), spec, **options)


def test_union_errors_are_ranker_errors():
    with pytest.raises(RankerError):
        parse_union_spec("0,0,0", SECTIONS)
