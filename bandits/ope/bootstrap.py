"""Nonparametric bootstrap of ratio-of-sums statistics over logged rows, vectorised and seeded.

Every estimator here has the form ``sum_i v_i / sum_i d_i`` over rows (``d_i = 1`` for plain means such as
IPS, DM and DR; ``d_i = w_i`` for SNIPS; ``d_i = kept_i`` for rejection replay). A resample draws B row
indices uniformly with replacement and recomputes the ratio on them, so self-normalised estimators are
renormalised in every resample. The per-row values are held fixed, as in Open Bandit Pipeline: for DM and
DR the cross-fitted reward model is fitted once and not refitted per resample (the interval leaves out the
reward model's own fitting variance), and for replay the acceptance draws are not redrawn.

Large logs: with more than `MAX_UNITS` rows, the rows are first dealt at random (seeded) into `MAX_UNITS`
buckets, and the buckets are resampled: replicate r is ``sum_j c_rj V_j / sum_j c_rj D_j`` with ``V_j`` and
``D_j`` the bucket sums of v and d (``D_j`` the bucket's row count for a plain mean). The resampled totals
have the same expectation as with rows, and their variance, skewness and higher cumulants match those of
row resampling up to a relative ``1/MAX_UNITS`` (cumulants of a sum of independent rows add up bucket by
bucket), while a resample costs ``MAX_UNITS`` draws instead of B. At or below `MAX_UNITS` rows, each row is
its own unit and nothing is approximated.

Index matrices are drawn in chunks of at most ``2**24`` entries from one ``np.random.Generator``, so the same
seed gives the same resamples whatever the chunking, and several statistics over the same rows share the same
resamples (paired).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bandits.ope.errors import ReplayInputError

__all__ = ["bootstrap_ratios", "check_options", "percentile_interval"]

_CHUNK_ENTRIES = 1 << 24
#: Above this many rows, rows are dealt into this many buckets and the buckets are resampled.
MAX_UNITS = 1 << 15


def check_options(n_bootstrap: int, alpha: float) -> None:
    """Refuse ``n_bootstrap < 1`` or an `alpha` outside (0, 1)."""
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int | np.integer) or n_bootstrap < 1:
        raise ReplayInputError(f"Expected `n_bootstrap` to be an integer >= 1, found {n_bootstrap!r}")
    if not (isinstance(alpha, float | int) and 0.0 < alpha < 1.0):
        raise ReplayInputError(f"Expected `alpha` in (0, 1), found {alpha!r}")


def bootstrap_ratios(
    numerators: Sequence[np.ndarray],
    denominators: Sequence[np.ndarray | None],
    *,
    n_bootstrap: int,
    rng: np.random.Generator | int,
    chunk_entries: int = _CHUNK_ENTRIES,
    max_units: int = MAX_UNITS,
) -> np.ndarray:
    """Bootstrap replicates of ``sum(v) / sum(d)`` for k statistics over the same B rows.

    Parameters
    ----------
    numerators : sequence of k arrays of shape (B,)
        Per-row values v of each statistic.
    denominators : sequence of k arrays of shape (B,) or None
        Per-row weights d of each statistic; None means ``d_i = 1`` (a plain mean).
    n_bootstrap : int
        Number of resamples, >= 1.
    rng : numpy.random.Generator or int
        Source of the resampling indices (an int is used as a seed).
    chunk_entries : int
        Largest index matrix drawn at once (resamples x B entries); it changes memory use, not the result.
    max_units : int
        With more rows than this, rows are dealt into `max_units` random buckets first and buckets are
        resampled (see the module docstring).

    Returns
    -------
    (k, n_bootstrap) float64
        Replicate ``r`` of statistic ``j`` is ``sum_i c_ri v_ji / sum_i c_ri d_ji`` where ``c_r`` counts how
        often each row was drawn. A replicate whose denominator is 0 is NaN.

    Raises
    ------
    ReplayInputError
        No rows, arrays of different lengths, or ``n_bootstrap < 1``.
    """
    check_options(n_bootstrap, 0.05)
    if len(numerators) != len(denominators):
        raise ReplayInputError(
            f"Expected as many `denominators` as `numerators` ({len(numerators)}), found {len(denominators)}"
        )
    values = [np.asarray(v, dtype=np.float64) for v in numerators]
    weights = [None if d is None else np.asarray(d, dtype=np.float64) for d in denominators]
    n_rows = len(values[0]) if values else 0
    if n_rows == 0:
        raise ReplayInputError("Expected at least one row to bootstrap, found 0")
    for arr in [*values, *(d for d in weights if d is not None)]:
        if arr.shape != (n_rows,):
            raise ReplayInputError(f"Expected per-row arrays of shape ({n_rows},), found {arr.shape}")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    if n_rows > max_units:
        bucket = gen.integers(0, max_units, size=n_rows)
        count = np.bincount(bucket, minlength=max_units).astype(np.float64)
        bucketed: dict[int, np.ndarray] = {}

        def bucket_sum(arr: np.ndarray) -> np.ndarray:
            if id(arr) not in bucketed:
                bucketed[id(arr)] = np.bincount(bucket, weights=arr, minlength=max_units)
            return bucketed[id(arr)]

        values = [bucket_sum(v) for v in values]
        weights = [count if d is None else bucket_sum(d) for d in weights]
        n_rows = max_units
    index_dtype = np.int32 if n_rows < 2**31 else np.int64
    per_chunk = max(1, min(n_bootstrap, chunk_entries // n_rows))
    # Resample each distinct per-row array once (IPS and SNIPS share their numerator, for example).
    distinct: list[np.ndarray] = []
    slot_of: list[int] = []
    for arr in [*values, *(d for d in weights if d is not None)]:
        slot = next((i for i, seen in enumerate(distinct) if seen is arr or np.array_equal(seen, arr)), None)
        if slot is None:
            slot = len(distinct)
            distinct.append(arr)
        slot_of.append(slot)
    sums = np.empty((len(distinct), n_bootstrap))
    for start in range(0, n_bootstrap, per_chunk):
        stop = min(n_bootstrap, start + per_chunk)
        idx = gen.integers(0, n_rows, size=(stop - start, n_rows), dtype=index_dtype)
        for i, arr in enumerate(distinct):
            sums[i, start:stop] = arr[idx].sum(axis=1)
    num = sums[slot_of[: len(values)]]
    den = np.full_like(num, float(n_rows))
    den_slots = iter(slot_of[len(values) :])
    for j, d in enumerate(weights):
        if d is not None:
            den[j] = sums[next(den_slots)]
    out = np.full_like(num, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def percentile_interval(replicates: np.ndarray, *, alpha: float = 0.05) -> np.ndarray:
    """Percentile bootstrap interval ``[q(alpha/2), q(1 - alpha/2)]`` of each row of `replicates`.

    Parameters
    ----------
    replicates : (k, n_bootstrap) float
        Bootstrap replicates; NaN replicates (zero denominators) are left out.
    alpha : float
        1 - nominal coverage, in (0, 1).

    Returns
    -------
    (k, 2) float64
        Low and high ends (linear interpolation between order statistics); NaN where every replicate is NaN.
    """
    check_options(1, alpha)
    reps = np.atleast_2d(np.asarray(replicates, dtype=np.float64))
    out = np.full((reps.shape[0], 2), np.nan)
    for j, row in enumerate(reps):
        finite = row[~np.isnan(row)]
        if len(finite):
            out[j] = np.quantile(finite, [alpha / 2.0, 1.0 - alpha / 2.0])
    return out
