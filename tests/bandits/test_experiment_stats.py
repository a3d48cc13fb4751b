"""The A/B statistics: Welch's interval as the one-request-per-user case, a naive per-user reference of the
delta method, the SQL and pandas paths agreeing, coverage under no difference, and the reversal check."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bandits.errors import InvalidArgumentError
from bandits.experiment_report import write_report
from bandits.experiment_stats import (
    ALL,
    OPPOSITE,
    REVERSAL,
    analyse,
    ratio_difference,
    user_totals,
    user_totals_from_log,
)
from bandits.log import DecisionLog
from bandits.records import FeedbackBatch
from tests.bandits.log_factories import make_decisions

COLUMNS = ["experiment", "variant", "section", "user_id", "requests", "clicks", "conversions", "revenue"]


def test_ratio_difference_is_welch_with_one_request_per_user(rng):
    a = rng.poisson(1.0, size=300).astype(float)
    b = rng.poisson(1.2, size=200).astype(float)
    diff, low, high, se, df = ratio_difference(np.ones(300), a, np.ones(200), b)
    welch = stats.ttest_ind(b, a, equal_var=False)
    ci = welch.confidence_interval(0.95)
    assert diff == pytest.approx(b.mean() - a.mean())
    assert (low, high) == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert df == pytest.approx(welch.df, rel=1e-10)
    assert se == pytest.approx(np.sqrt(a.var(ddof=1) / 300 + b.var(ddof=1) / 200))


def naive_ratio(rows: list[tuple[object, float, float]]) -> tuple[float, float, int]:
    """(R, Var R, users) of (user, requests, metric) rows: per-user sums in a dict, then the residuals."""
    users: dict[object, list[float]] = {}
    for user, n, y in rows:
        users.setdefault(user, [0.0, 0.0])
        users[user][0] += n
        users[user][1] += y
    big_n = sum(n for n, _ in users.values())
    r = sum(y for _, y in users.values()) / big_n
    u = len(users)
    residual = sum((y - r * n) ** 2 for n, y in users.values())
    return r, u / (u - 1) * residual / big_n**2, u


def clustered_totals(rng, n_users=600, effect=0.0, sections=("discover", "search")) -> pd.DataFrame:
    rows = []
    for user in range(n_users):
        variant = "B" if rng.random() < 0.4 else "A"
        taste = rng.gamma(2.0, 0.25)  # users differ: their requests are correlated
        for section in sections:
            n = int(rng.integers(1, 6))
            rate = taste * (1 + (effect if variant == "B" and section == sections[0] else 0.0))
            clicks = rng.poisson(rate * n)
            rows.append(("exp", variant, section, user, n, float(clicks), float(clicks // 3), clicks * 2.5))
    return pd.DataFrame(rows, columns=COLUMNS)


def test_analyse_matches_the_naive_reference(rng):
    totals = clustered_totals(rng, effect=0.3)
    (analysis,) = analyse(totals)
    assert analysis.control == "A"
    assert analysis.variants == ("A", "B")
    assert analysis.metrics == ("clicks", "conversions", "revenue")
    for metric in analysis.metrics:
        for section in ("discover", "search", ALL):
            scoped = totals if section == ALL else totals[totals["section"] == section]
            ref = {}
            for variant in ("A", "B"):
                part = scoped[scoped["variant"] == variant]
                ref[variant] = naive_ratio(
                    list(zip(part["user_id"], part["requests"], part[metric], strict=True))
                )
            (ra, va, ua), (rb, vb, ub) = ref["A"], ref["B"]
            d = analysis.difference(section, metric, "B")
            se = math.sqrt(va + vb)
            df = (va + vb) ** 2 / (va**2 / (ua - 1) + vb**2 / (ub - 1))
            t = stats.t.ppf(0.975, df)
            assert d.difference == pytest.approx(rb - ra, rel=1e-9, abs=1e-12)
            assert d.se == pytest.approx(se, rel=1e-9)
            assert d.df == pytest.approx(df, rel=1e-9)
            assert (d.low, d.high) == pytest.approx((rb - ra - t * se, rb - ra + t * se), rel=1e-9)
            stat_a = next(
                s for s in analysis.stats if (s.section, s.variant, s.metric) == (section, "A", metric)
            )
            assert stat_a.per_request == pytest.approx(ra)
            assert stat_a.users == ua
            assert stat_a.requests == int(scoped.loc[scoped["variant"] == "A", "requests"].sum())


def test_analyse_interval_covers_zero_about_95_percent_without_a_difference():
    covered = 0
    reps = 400
    rng = np.random.default_rng(5)
    for _ in range(reps):
        n_a, n_b = rng.integers(1, 5, size=150).astype(float), rng.integers(1, 5, size=150).astype(float)
        taste_a, taste_b = rng.gamma(2.0, 0.3, size=150), rng.gamma(2.0, 0.3, size=150)
        _, low, high, _, _ = ratio_difference(
            n_a, rng.poisson(taste_a * n_a), n_b, rng.poisson(taste_b * n_b)
        )
        covered += low <= 0 <= high
    # 95% of 400 = 380, binomial sd 4.4: within 4 sd
    assert abs(covered - 0.95 * reps) <= 4 * math.sqrt(reps * 0.95 * 0.05)


def test_analyse_flags_a_significant_reversal_only():
    rng = np.random.default_rng(11)
    rows = []
    for user in range(4000):
        variant = "B" if user % 2 else "A"
        for section, lift in (("big", 0.5), ("small", -0.4), ("flat", -0.02)):
            n = 4 if section == "big" else 1
            rate = 0.5 * (1 + (lift if variant == "B" else 0.0))
            rows.append(("exp", variant, section, user, n, float(rng.poisson(rate * n)), 0.0, 0.0))
    (analysis,) = analyse(pd.DataFrame(rows, columns=COLUMNS))
    assert analysis.metrics == ("clicks",)
    assert analysis.difference(ALL, "clicks", "B").verdict == "better"
    small = analysis.difference("small", "clicks", "B")
    assert small.verdict == "worse"
    assert small.reversal == REVERSAL
    assert analysis.difference("big", "clicks", "B").reversal == ""
    for d in analysis.differences:  # the rule, restated: flags only against a significant overall
        if d.section == ALL:
            continue
        expected = ""
        if d.verdict == "worse":
            expected = REVERSAL
        elif d.difference < 0:
            expected = OPPOSITE
        assert d.reversal == expected, d.section
    assert analysis.reversals() == (small,)


def test_analyse_no_flags_when_the_overall_difference_is_a_tie(rng):
    (analysis,) = analyse(clustered_totals(rng, n_users=200, effect=0.0))
    assert analysis.difference(ALL, "clicks", "B").verdict == "tie"  # the seeded draw has no difference
    assert all(
        d.reversal == ""
        for d in analysis.differences
        if analysis.difference(ALL, d.metric, d.variant).verdict == "tie"
    )


def test_analyse_control_option_and_errors(rng):
    totals = clustered_totals(rng, n_users=100)
    (analysis,) = analyse(totals, control="B")
    assert analysis.control == "B"
    assert analysis.difference(ALL, "clicks", "A").difference == pytest.approx(
        -analyse(totals)[0].difference(ALL, "clicks", "B").difference
    )
    with pytest.raises(InvalidArgumentError, match=r"Expected `control` among the variants .* found 'C'"):
        analyse(totals, control="C")
    with pytest.raises(InvalidArgumentError, match="at least 2 variants"):
        analyse(totals[totals["variant"] == "A"])


def test_analyse_one_user_gives_no_interval():
    rows = [("exp", "A", "s", 1, 3, 1.0, 0.0, 0.0), ("exp", "B", "s", 2, 2, 1.0, 0.0, 0.0)]
    (analysis,) = analyse(pd.DataFrame(rows, columns=COLUMNS))
    d = analysis.difference(ALL, "clicks", "B")
    assert d.difference == pytest.approx(0.5 - 1 / 3)
    assert math.isnan(d.low)
    assert math.isnan(d.high)
    assert d.verdict == "tie"


@pytest.mark.parametrize("wait_seconds", [None, 0.5])
def test_user_totals_sql_equals_pandas_path(log: DecisionLog, wait_seconds):
    batch = make_decisions(300, seed=21, sections=("discover", "search"))
    rng = np.random.default_rng(22)
    labels = np.array(["", "exp/A", "exp/B", "other/x", "other/y"], dtype=object)
    users = rng.integers(0, 40, size=len(batch))
    batch = dataclasses.replace(
        batch, variant=labels[rng.integers(len(labels), size=len(batch))], user_id=users
    )
    log.append_decisions(batch)
    has = rng.random(len(batch)) < 0.6
    shown = [s for s, h in zip(batch.shown, has, strict=True) if h]
    clicks = [s[: rng.integers(0, len(s) + 1)] for s in [np.arange(len(x)) for x in shown]]
    feedback = FeedbackBatch(
        event_id=batch.event_id[has],
        time=batch.time[has] + rng.random(int(has.sum())),
        clicks=clicks,
        conversions=[c[:1] for c in clicks],
        revenue=rng.random(int(has.sum())) * 10,
    )
    log.append_feedback(feedback)
    sql = user_totals_from_log(log, wait_seconds=wait_seconds)
    frame = user_totals(log.joined(wait_seconds))
    keys = ["experiment", "variant", "section", "user_id"]
    sql = sql.sort_values(keys).reset_index(drop=True)
    frame = frame.sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(sql, frame, check_dtype=False)
    assert set(sql["experiment"]) == {"exp", "other"}
    assert sql["requests"].sum() == int((batch.variant != "").sum())


def test_write_report_files(tmp_path, rng):
    analyses = analyse(clustered_totals(rng, effect=0.3))
    files = write_report(analyses, tmp_path / "out", source="log.db", wait_seconds=None)
    text = files.report.read_text()
    assert "## Experiment `exp`" in text
    assert "How to read this report" in text
    assert files.plots[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    data = json.loads(files.results.read_text())
    (exp,) = data["experiments"]
    assert exp["name"] == "exp"
    assert exp["control"] == "A"
    first = exp["differences"][0]
    assert first["difference"] == pytest.approx(analyses[0].differences[0].difference)


def test_write_report_with_a_variant_missing_from_a_section(tmp_path):
    rows = [
        ("exp", v, s, u, 1, float(u % 3), 0.0, 0.0) for u in range(40) for v, s in (("A", "x"), ("B", "y"))
    ]
    rows += [("exp", "B", "x", 100 + u, 1, 1.0, 0.0, 0.0) for u in range(5)]
    (analysis,) = analyse(pd.DataFrame(rows, columns=COLUMNS))
    assert {d.section for d in analysis.differences} == {"x", ALL}  # y has no control: no difference
    files = write_report((analysis,), tmp_path, source="log.db", wait_seconds=3600.0)
    assert files.plots[0].stat().st_size > 0
    assert "| y | B | 40 | 40 |" in files.report.read_text()
