"""What a live run shows: the value per section and per variant over time, and before against after.

- `value_series`: the served requests cut into consecutive windows of `window` requests (in the order they
  were sent); per window, per section (and ``all``) and per variant, the mean exact expected clicks,
  conversions and revenue per request.
- `quarter_change`: the mean exact expected clicks per request of the last quarter of the served requests
  minus the first quarter's, per section and overall, with a 95% normal (Welch) interval:
  ``d = mean_last - mean_first``, ``se = sqrt(var_last / n_last + var_first / n_first)``,
  ``[d - 1.96 se, d + 1.96 se]``. Requests are independent draws of the world, so the two quarters are
  independent samples.
- `write_live`: records.parquet (one row per request), series.parquet, summary.json and value.png.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from simulator.errors import SimulationInputError
from simulator.live import LiveResult

ALL = "all"
Z95 = 1.959963984540054
VALUES = ("expected_clicks", "expected_conversions", "expected_revenue")


def served(records: pd.DataFrame) -> pd.DataFrame:
    """The requests answered with a slate, in the order they were sent."""
    return records[(records["status"] == 200) & records["expected_clicks"].notna()].sort_values("request")


def value_series(records: pd.DataFrame, window: int) -> pd.DataFrame:
    """Mean value per request by window of `window` served requests, section (and ``all``) and variant.

    Columns: ``window``, ``first_request``, ``last_request``, ``sent_s`` (mean send time, seconds from the
    start), ``section``, ``variant`` ("" without experiments), ``requests``, and the mean of each of
    `VALUES`.
    """
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise SimulationInputError(f"Expected `window` to be an integer >= 1, found {window!r}")
    rows = served(records).reset_index(drop=True)
    rows["window"] = np.arange(len(rows)) // window
    both = pd.concat([rows, rows.assign(section=ALL)], ignore_index=True)
    grouped = both.groupby(["window", "section", "variant"], sort=True)
    out = grouped.agg(
        first_request=("request", "min"),
        last_request=("request", "max"),
        sent_s=("sent_s", "mean"),
        requests=("request", "size"),
        **{name: (name, "mean") for name in VALUES},
    )
    return out.reset_index()


@dataclass(frozen=True)
class QuarterChange:
    """Mean exact expected clicks per request, first and last quarter of the served requests.

    ``difference`` is last minus first, ``low`` and ``high`` its 95% interval (NaN with fewer than two
    requests in a quarter).
    """

    first: float
    last: float
    difference: float
    low: float
    high: float
    n_first: int
    n_last: int


def _change(first: np.ndarray, last: np.ndarray) -> QuarterChange:
    nan = math.nan
    a = float(first.mean()) if first.size else nan
    b = float(last.mean()) if last.size else nan
    if first.size < 2 or last.size < 2:
        return QuarterChange(a, b, b - a, nan, nan, int(first.size), int(last.size))
    se = math.sqrt(first.var(ddof=1) / first.size + last.var(ddof=1) / last.size)
    d = b - a
    return QuarterChange(a, b, d, d - Z95 * se, d + Z95 * se, int(first.size), int(last.size))


def quarter_change(records: pd.DataFrame, value: str = "expected_clicks") -> dict[str, QuarterChange]:
    """First against last quarter of the served requests (by send order), per section and ``all``.

    The quarters are cut over all served requests, then split by section.
    """
    if value not in VALUES:
        raise SimulationInputError(f"Expected `value` in {', '.join(VALUES)}, found {value!r}")
    rows = served(records)
    quarter = len(rows) // 4
    first, last = rows.iloc[:quarter], rows.iloc[len(rows) - quarter :]
    out = {ALL: _change(first[value].to_numpy(), last[value].to_numpy())}
    for section in sorted(rows["section"].unique().tolist()):
        out[section] = _change(
            first.loc[first["section"] == section, value].to_numpy(),
            last.loc[last["section"] == section, value].to_numpy(),
        )
    return out


def value_plot(series: pd.DataFrame) -> bytes:
    """PNG: mean exact expected clicks per request over the run, a line per section (``all`` thicker) and a
    line style per variant."""
    figure = Figure(figsize=(10, 4.5))
    ax = figure.add_subplot()
    styles = ("-", "--", ":", "-.")
    variants = sorted(series["variant"].unique().tolist()) if len(series) else []
    sections = sorted(series["section"].unique().tolist()) if len(series) else []
    for v, variant in enumerate(variants):
        for section in sections:
            part = series[(series["section"] == section) & (series["variant"] == variant)]
            label = section if not variant else f"{section} / {variant}"
            ax.plot(
                part["last_request"] + 1,
                part["expected_clicks"],
                styles[v % len(styles)],
                color="black" if section == ALL else None,
                linewidth=2.5 if section == ALL else 1.2,
                label=label,
            )
    ax.set_xlabel("requests sent")
    ax.set_ylabel("exact expected clicks per request")
    ax.set_title("Value of the served slates over the run (click model truth)")
    if variants:
        ax.legend(loc="best", fontsize="small", ncol=2)
    ax.grid(alpha=0.3)
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def summary(result: LiveResult) -> dict:
    """The run's counts, settings and first-against-last quarter change, as JSON-able data."""
    counts = result.counts
    return {
        "settings": asdict(result.settings),
        "sent": counts.sent,
        "served": counts.served,
        "failed": counts.failed,
        "server_errors": counts.server_errors,
        "statuses": {str(k): v for k, v in counts.statuses.items()},
        "feedback_statuses": {str(k): v for k, v in counts.feedback_statuses.items()},
        "feedback_retries": counts.feedback_retries,
        "seconds": counts.seconds,
        "requests_per_second": counts.requests_per_second,
        "policy_versions": sorted(set(result.records["policy_version"].tolist()) - {""}),
        "quarters": {k: asdict(v) for k, v in quarter_change(result.records).items()},
    }


def write_live(result: LiveResult, out: Path, *, window: int = 500) -> dict[str, Path]:
    """records.parquet, series.parquet, summary.json and value.png in `out` (created); their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    series = value_series(result.records, window)
    paths = {
        "records": out / "records.parquet",
        "series": out / "series.parquet",
        "summary": out / "summary.json",
        "plot": out / "value.png",
    }
    result.records.to_parquet(paths["records"], index=False)
    series.to_parquet(paths["series"], index=False)
    paths["summary"].write_text(json.dumps(summary(result), indent=2, allow_nan=True) + "\n")
    paths["plot"].write_bytes(value_plot(series))
    return paths
