"""The input checks that the ranking metrics (`ranker.list_metrics`), their bootstrap intervals
(`ranker.bootstrap`) and `ranker.metrics.evaluate_lists` share.

Each raises `MetricInputError` with a message that names the argument, says what was expected and what was
found, and gives the first bad row: "Expected `labels` >= 0, found -1.0 at row 3".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ranker.errors import MetricInputError


def check_k(k: object) -> int:
    """A cutoff: an integer >= 1."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise MetricInputError(f"Expected `k` to be an integer >= 1, found {py_value(k)!r}")
    return int(k)


def check_choice(name: str, value: object, choices: Sequence[str]) -> None:
    """`value` of the option `name` is one of `choices`."""
    if value not in choices:
        raise MetricInputError(
            f"Expected `{name}` in {', '.join(map(repr, choices))}, found {py_value(value)!r}"
        )


def as_1d_float(name: str, values: object) -> np.ndarray:
    """`values` as a float64 array of shape (N,)."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise MetricInputError(f"Expected `{name}` to hold numbers: {exc}") from None
    if arr.ndim != 1:
        raise MetricInputError(f"Expected `{name}` of shape (N,), found shape {arr.shape}")
    return arr


def py_value(value: object) -> object:
    """A numpy scalar as the Python value, so that messages show ``-1.0`` rather than ``np.float64(-1.0)``."""
    return value.item() if isinstance(value, np.generic) else value


def first_bad(mask: np.ndarray) -> int:
    """The index of the first True of a mask that has one."""
    return int(np.flatnonzero(mask)[0])


def check_labels_scores(labels: object, scores: object) -> tuple[np.ndarray, np.ndarray]:
    """Labels (N,) finite and >= 0 and scores (N,) without NaN, as float64 arrays."""
    y = as_1d_float("labels", labels)
    s = as_1d_float("scores", scores)
    if y.shape != s.shape:
        raise MetricInputError(
            f"Expected `labels` and `scores` of the same length, found {y.shape[0]} and {s.shape[0]}"
        )
    bad = ~np.isfinite(y)
    if bad.any():
        i = first_bad(bad)
        raise MetricInputError(f"Expected finite `labels`, found {py_value(y[i])!r} at row {i}")
    bad = y < 0
    if bad.any():
        i = first_bad(bad)
        raise MetricInputError(f"Expected `labels` >= 0, found {py_value(y[i])!r} at row {i}")
    bad = np.isnan(s)
    if bad.any():
        raise MetricInputError(f"Expected `scores` without NaN, found NaN at row {first_bad(bad)}")
    return y, s


def list_codes(
    n_rows: int, group_ids: object | None, group_sizes: object | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(codes (N,) in 0..G-1, list ids (G,), sizes (G,)) from list ids or group sizes."""
    if (group_ids is None) == (group_sizes is None):
        raise MetricInputError("Expected exactly one of `group_ids` and `group_sizes`")
    if group_sizes is not None:
        sizes = np.asarray(group_sizes)
        if sizes.ndim != 1:
            raise MetricInputError(f"Expected `group_sizes` of shape (G,), found shape {sizes.shape}")
        if sizes.size and not np.issubdtype(sizes.dtype, np.integer):
            raise MetricInputError(f"Expected integer `group_sizes`, found dtype {sizes.dtype}")
        sizes = sizes.astype(np.int64)
        bad = sizes < 1
        if bad.any():
            i = first_bad(bad)
            raise MetricInputError(f"Expected `group_sizes` >= 1, found {py_value(sizes[i])} at position {i}")
        if int(sizes.sum()) != n_rows:
            raise MetricInputError(
                f"Expected `group_sizes` to sum to the number of rows {n_rows}, found {int(sizes.sum())}"
            )
        codes = np.repeat(np.arange(sizes.size, dtype=np.int64), sizes)
        return codes, np.arange(sizes.size, dtype=np.int64), sizes
    ids = np.asarray(group_ids)
    if ids.ndim != 1:
        raise MetricInputError(f"Expected `group_ids` of shape (N,), found shape {ids.shape}")
    if ids.shape[0] != n_rows:
        raise MetricInputError(f"Expected `group_ids` of length {n_rows} (as `labels`), found {ids.shape[0]}")
    missing = np.asarray(pd.isna(ids), dtype=bool)
    if missing.any():
        raise MetricInputError(
            f"Expected `group_ids` without missing values, found one at row {first_bad(missing)}"
        )
    try:
        list_ids, codes = np.unique(ids, return_inverse=True)
    except TypeError as exc:
        raise MetricInputError(f"Expected sortable `group_ids` of one type: {exc}") from None
    codes = codes.reshape(-1).astype(np.int64)
    return codes, list_ids, np.bincount(codes, minlength=list_ids.size).astype(np.int64)


def check_seed(seed: int | np.random.Generator) -> np.random.Generator:
    """The generator of a seed (an integer >= 0) or the generator itself."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise MetricInputError(
            f"Expected `seed` to be an integer >= 0 or a Generator, found {py_value(seed)!r}"
        )
    return np.random.default_rng(int(seed))


def check_bootstrap_options(n_bootstrap: object, alpha: object) -> None:
    """`n_bootstrap` an integer >= 1 and `alpha` in (0, 1)."""
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int | np.integer) or n_bootstrap < 1:
        raise MetricInputError(
            f"Expected `n_bootstrap` to be an integer >= 1, found {py_value(n_bootstrap)!r}"
        )
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 1:
        raise MetricInputError(f"Expected `alpha` in (0, 1), found {py_value(alpha)!r}")
