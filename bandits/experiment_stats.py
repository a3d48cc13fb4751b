"""The statistics of an A/B experiment read from the decision log: per section and overall, each variant's
clicks (conversions, revenue) per request, and each variant's difference from the control with a 95%
interval over users.

Users are the randomisation unit (`bandits.experiment_assign`), so requests of one user are not independent
draws: the interval treats each user as one cluster. For a variant with users u = 1..U, each with n_u
requests and y_u of the metric (clicks summed over those requests), the value per request is the ratio

    R = sum(y_u) / sum(n_u)

and its variance by the delta method (linearisation of a ratio of means, cluster-robust)::

    Var(R) = U / (U - 1) * sum((y_u - R n_u)^2) / (sum n_u)^2

The difference D = R_B - R_A of two variants (independent groups of users) has SE = sqrt(Var_A + Var_B), and
the interval is D ± t(0.975, df) SE with Welch-Satterthwaite degrees of freedom
``df = (Var_A + Var_B)^2 / (Var_A^2 / (U_A - 1) + Var_B^2 / (U_B - 1))``. With one request per user this is
exactly Welch's two-sample t interval of the per-request values. A difference is ``better`` when its
interval lies above 0, ``worse`` below, ``tie`` otherwise (or with fewer than 2 users in a variant).

A decision without feedback counts as a request with no click. Only decisions served in an experiment
(``variant`` not ``""``) are read.

Reversal check: when a variant's overall difference is significant, each section whose own interval lies
entirely on the other side of 0 is flagged ``reversal``; a section whose estimate has the other sign but
whose interval contains 0 is marked ``opposite, not significant``. With an overall tie no section is flagged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import stdtrit

from bandits.errors import InvalidArgumentError
from bandits.log import DecisionLog

__all__ = [
    "ALL",
    "METRICS",
    "ExperimentAnalysis",
    "VariantDifference",
    "VariantStat",
    "analyse",
    "ratio_difference",
    "user_totals",
    "user_totals_from_log",
]

#: The section name of the rows over every section of an experiment.
ALL = "all"
#: The metrics per request, in report order; conversions and revenue only where the log has some.
METRICS = ("clicks", "conversions", "revenue")
BETTER, WORSE, TIE = "better", "worse", "tie"
REVERSAL, OPPOSITE = "reversal", "opposite, not significant"
_TOTAL_COLUMNS = ["experiment", "variant", "section", "user_id", "requests", *METRICS]

_USER_TOTALS_SQL = """
SELECT d.variant, d.section, d.user_id, COUNT(*),
       SUM(CASE WHEN f.event_id IS NULL THEN 0 ELSE json_array_length(f.clicks) END),
       SUM(CASE WHEN f.event_id IS NULL THEN 0 ELSE json_array_length(f.conversions) END),
       SUM(COALESCE(f.revenue, 0.0))
FROM decisions d LEFT JOIN feedback f ON f.event_id = d.event_id {window}
WHERE d.variant <> ''
GROUP BY d.variant, d.section, d.user_id
"""


@dataclass(frozen=True)
class VariantStat:
    """One variant's value per request in one section (or `ALL`) for one metric.

    Attributes
    ----------
    users, requests : int
    per_request : float
        R = sum(y_u) / sum(n_u); NaN without requests.
    se : float
        Its delta-method standard error over users; NaN with fewer than 2 users.
    """

    experiment: str
    section: str
    variant: str
    metric: str
    users: int
    requests: int
    per_request: float
    se: float


@dataclass(frozen=True)
class VariantDifference:
    """``variant - control`` per request in one section (or `ALL`) for one metric, with its 95% interval.

    Attributes
    ----------
    difference, low, high, se, df : float
        NaN ends (and ``tie``) when a side has fewer than 2 users.
    relative : float
        difference / control's per-request value (NaN when that is 0).
    verdict : str
        ``better``, ``worse`` or ``tie``.
    reversal : str
        In a section: ``reversal``, ``opposite, not significant`` or ``""`` (see the module); ``""`` in `ALL`.
    """

    experiment: str
    section: str
    metric: str
    variant: str
    control: str
    difference: float
    low: float
    high: float
    se: float
    df: float
    relative: float
    verdict: str
    reversal: str = ""


@dataclass(frozen=True)
class ExperimentAnalysis:
    """Every number of one experiment: `stats` per (section, variant, metric) and `differences` from the
    control per (section, metric, variant); sections in log order of name, `ALL` last."""

    name: str
    control: str
    variants: tuple[str, ...]
    sections: tuple[str, ...]
    metrics: tuple[str, ...]
    stats: tuple[VariantStat, ...]
    differences: tuple[VariantDifference, ...]

    def difference(self, section: str, metric: str, variant: str) -> VariantDifference:
        for d in self.differences:
            if (d.section, d.metric, d.variant) == (section, metric, variant):
                return d
        raise KeyError((section, metric, variant))

    def reversals(self) -> tuple[VariantDifference, ...]:
        """The sections flagged ``reversal``."""
        return tuple(d for d in self.differences if d.reversal == REVERSAL)


# ---------------------------------------------------------------------------------------------------------
# Per-user totals


def user_totals_from_log(log: DecisionLog, *, wait_seconds: float | None = None) -> pd.DataFrame:
    """Each (experiment, variant, section, user)'s requests and summed clicks, conversions and revenue, from
    the log's decisions served in an experiment (one SQL aggregation; nothing is decoded in Python).

    `wait_seconds`: feedback later than this after its decision is left out (None: all feedback).
    """
    window, params = "", []
    if wait_seconds is not None:
        if not (isinstance(wait_seconds, int | float) and math.isfinite(wait_seconds) and wait_seconds >= 0):
            raise InvalidArgumentError(f"Expected `wait_seconds` >= 0 or None, found {wait_seconds!r}")
        window, params = "AND f.time - d.time <= ?", [float(wait_seconds)]
    rows = log.db.execute(_USER_TOTALS_SQL.format(window=window), params).fetchall()
    columns = list(zip(*rows, strict=True)) if rows else [()] * 7
    frame = pd.DataFrame(
        {
            "label": pd.Series(columns[0], dtype=object),
            "section": pd.Series(columns[1], dtype=object),
            "user_id": pd.Series(columns[2], dtype=object),
            "requests": np.asarray(columns[3], dtype=np.int64),
            "clicks": np.asarray(columns[4], dtype=np.float64),
            "conversions": np.asarray(columns[5], dtype=np.float64),
            "revenue": np.asarray(columns[6], dtype=np.float64),
        }
    )
    return _split_labels(frame)


def user_totals(joined: pd.DataFrame) -> pd.DataFrame:
    """`user_totals_from_log` of a joined frame (`DecisionLog.joined`, `LogDataset.joined`)."""
    frame = joined.loc[joined["variant"] != "", ["variant", "section", "user_id"]]
    rows = (joined["variant"] != "").to_numpy()
    frame = pd.DataFrame(
        {
            "label": frame["variant"].to_numpy(dtype=object),
            "section": frame["section"].to_numpy(dtype=object),
            "user_id": frame["user_id"].to_numpy(dtype=object),
            "requests": np.ones(int(rows.sum()), dtype=np.int64),
            "clicks": np.fromiter(map(len, joined["clicks"][rows]), np.float64, count=int(rows.sum())),
            "conversions": np.fromiter(
                map(len, joined["conversions"][rows]), np.float64, count=int(rows.sum())
            ),
            "revenue": joined["revenue"].to_numpy(np.float64)[rows],
        }
    )
    summed = frame.groupby(["label", "section", "user_id"], sort=False, as_index=False).sum()
    return _split_labels(summed)


def _split_labels(frame: pd.DataFrame) -> pd.DataFrame:
    labels = frame["label"].to_numpy(dtype=object).astype(str)
    experiment, _, variant = np.char.partition(labels, "/").T if len(labels) else (labels, labels, labels)
    out = frame.drop(columns="label")
    out.insert(0, "variant", variant.astype(object))
    out.insert(0, "experiment", experiment.astype(object))
    return out[_TOTAL_COLUMNS].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------------------
# Ratio estimates and differences


def ratio_difference(
    n_a: np.ndarray, y_a: np.ndarray, n_b: np.ndarray, y_b: np.ndarray
) -> tuple[float, float, float, float, float]:
    """``R_B - R_A`` per request of two groups of users (the module's formulas), from per-user requests
    `n_*` (U_*,) and metric totals `y_*` (U_*,).

    Returns
    -------
    (difference, low, high, se, df)
        The 95% interval ends, the standard error and the Welch-Satterthwaite degrees of freedom; the last
        four NaN when a group has fewer than 2 users.
    """
    ra, va, ua = _ratio(np.sum(n_a), np.sum(y_a), np.sum(n_a**2), np.sum(y_a**2), np.sum(n_a * y_a), len(n_a))
    rb, vb, ub = _ratio(np.sum(n_b), np.sum(y_b), np.sum(n_b**2), np.sum(y_b**2), np.sum(n_b * y_b), len(n_b))
    low, high, se, df = _interval(rb - ra, va, vb, ua, ub)
    return rb - ra, low, high, se, df


def _ratio(n, y, nn, yy, ny, users):
    """R and Var(R) from per-group sums (arrays or scalars): sum n, sum y, sum n^2, sum y^2, sum n*y."""
    n = np.asarray(n, dtype=np.float64)
    users = np.asarray(users, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(n > 0, np.asarray(y, np.float64) / np.where(n > 0, n, 1.0), np.nan)
        residual = np.maximum(yy - 2.0 * r * ny + r * r * nn, 0.0)
        var = np.where(
            users >= 2, users / np.maximum(users - 1.0, 1.0) * residual / np.where(n > 0, n, 1.0) ** 2, np.nan
        )
    return r, var, users


def _interval(diff, va, vb, ua, ub):
    """95% ends, SE and Welch-Satterthwaite df of a difference of two independent ratio estimates."""
    v = va + vb
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = va**2 / np.maximum(ua - 1.0, 1.0) + vb**2 / np.maximum(ub - 1.0, 1.0)
        df = np.where(denom > 0, v**2 / np.where(denom > 0, denom, 1.0), np.maximum(ua + ub - 2.0, 1.0))
        df = np.where(np.isnan(v), np.nan, df)
        half = np.where(np.isnan(df), np.nan, stdtrit(np.where(np.isnan(df), 1.0, df), 0.975)) * np.sqrt(v)
    return diff - half, diff + half, np.sqrt(v), df


def _verdict(low: float, high: float) -> str:
    if low > 0:
        return BETTER
    if high < 0:
        return WORSE
    return TIE


def analyse(totals: pd.DataFrame, *, control: str | None = None) -> tuple[ExperimentAnalysis, ...]:
    """Every experiment of `totals` (`user_totals_from_log`) analysed, experiments by name.

    Parameters
    ----------
    totals : DataFrame
        Columns ``experiment, variant, section, user_id, requests, clicks, conversions, revenue``.
    control : str, optional
        The variant the others are compared with; its name in every experiment. None: each experiment's
        first variant by name.

    Raises
    ------
    InvalidArgumentError
        `control` is not a variant of an experiment, or an experiment has a single variant in the log.
    """
    out = []
    for name, rows in totals.groupby("experiment", sort=True):
        out.append(_analyse_one(str(name), rows, control))
    return tuple(out)


def _analyse_one(name: str, rows: pd.DataFrame, control: str | None) -> ExperimentAnalysis:
    variants = tuple(sorted(rows["variant"].unique()))
    if len(variants) < 2:
        raise InvalidArgumentError(
            f"Expected at least 2 variants of experiment {name!r} in the log, found {list(variants)}"
        )
    chosen = variants[0] if control is None else control
    if chosen not in variants:
        raise InvalidArgumentError(
            f"Expected `control` among the variants of experiment {name!r} ({', '.join(variants)}), "
            f"found {chosen!r}"
        )
    metrics = tuple(m for m in METRICS if m == "clicks" or rows[m].to_numpy().any())
    overall = rows.groupby(["variant", "user_id"], sort=False, as_index=False)[["requests", *metrics]].sum()
    overall.insert(0, "section", ALL)
    scoped = pd.concat([rows[["section", "variant", "user_id", "requests", *metrics]], overall])
    sections = (*sorted(rows["section"].unique()), ALL)
    n = scoped["requests"].to_numpy(np.float64)
    keys = ["section", "variant"]
    stats, diffs = [], []
    for metric in metrics:
        y = scoped[metric].to_numpy(np.float64)
        sums = pd.DataFrame(
            {"section": scoped["section"].to_numpy(), "variant": scoped["variant"].to_numpy(), "users": 1.0}
        ).assign(n=n, y=y, nn=n * n, yy=y * y, ny=n * y)
        g = sums.groupby(keys, sort=False).sum()
        r, var, users = _ratio(g["n"], g["y"], g["nn"], g["yy"], g["ny"], g["users"])
        table = pd.DataFrame({"r": r, "var": var, "users": users, "n": g["n"].to_numpy()}, index=g.index)
        for section in sections:
            for variant in variants:
                if (section, variant) not in table.index:
                    continue
                row = table.loc[(section, variant)]
                stats.append(
                    VariantStat(
                        name, section, variant, metric, int(row["users"]), int(row["n"]), float(row["r"]),
                        float(np.sqrt(row["var"])),
                    )
                )  # fmt: skip
        for section in sections:
            if (section, chosen) not in table.index:
                continue
            a = table.loc[(section, chosen)]
            for variant in variants:
                if variant == chosen or (section, variant) not in table.index:
                    continue
                b = table.loc[(section, variant)]
                diff = float(b["r"] - a["r"])
                low, high, se, df = (
                    float(x) for x in _interval(diff, a["var"], b["var"], a["users"], b["users"])
                )
                relative = diff / float(a["r"]) if a["r"] else math.nan
                diffs.append(
                    VariantDifference(
                        name, section, metric, variant, chosen, diff, low, high, se, df, relative,
                        _verdict(low, high),
                    )
                )  # fmt: skip
    return ExperimentAnalysis(
        name, chosen, variants, sections, metrics, tuple(stats), tuple(_flag_reversals(diffs))
    )


def _flag_reversals(diffs: list[VariantDifference]) -> list[VariantDifference]:
    overall = {(d.metric, d.variant): d for d in diffs if d.section == ALL}
    out = []
    for d in diffs:
        total = overall.get((d.metric, d.variant))
        flag = ""
        if d.section != ALL and total is not None and total.verdict != TIE:
            sign = 1.0 if total.verdict == BETTER else -1.0
            if d.verdict not in (TIE, total.verdict):
                flag = REVERSAL
            elif sign * d.difference < 0:
                flag = OPPOSITE
        out.append(d if not flag else VariantDifference(**{**vars(d), "reversal": flag}))
    return out
