"""Per-request score normalisation, so that a knob value means the same whatever the ranker's score scale.

All methods are invariant to a positive affine transform of one request's scores (a * s + b with a > 0), and a
request whose scores are all equal normalises to zeros.
"""

from __future__ import annotations

import numpy as np

from heuristics.errors import InputError

METHODS = ("minmax", "zscore", "rank", "none")


def normalize_scores(scores: np.ndarray, method: str = "minmax") -> np.ndarray:
    """Normalise each row of `scores` (B, n).

    - ``minmax``: (s - min) / (max - min), in [0, 1]; the scale MMR's similarity penalty is written for.
    - ``zscore``: (s - mean) / std.
    - ``rank``: 1 for the best item down to 0 for the worst, evenly spaced (ties share the mean rank).
    - ``none``: the scores as given.

    A row whose scores are all equal becomes zeros under every method but ``none``.
    """
    if method not in METHODS:
        raise InputError(f"Expected a normalisation in {', '.join(METHODS)}, found {method!r}")
    scores = np.asarray(scores, dtype=np.float64)
    if method == "none" or scores.shape[1] == 0:
        return scores
    low = scores.min(axis=1, keepdims=True)
    span = scores.max(axis=1, keepdims=True) - low
    varies = span > 0
    if method == "minmax":
        return np.divide(scores - low, span, out=np.zeros_like(scores), where=varies)
    if method == "zscore":
        # A constant row is caught by its span, not its std: the mean of equal values can round off them.
        centred = scores - scores.mean(axis=1, keepdims=True)
        std = scores.std(axis=1, keepdims=True)
        return np.divide(centred, std, out=np.zeros_like(scores), where=varies & (std > 0))
    if method == "rank":
        n = scores.shape[1]
        if n == 1:
            return np.zeros_like(scores)
        # Ties share their mean rank: find each tie group's first and last sorted position.
        by_value = np.argsort(scores, axis=1, kind="stable")
        ordered = np.take_along_axis(scores, by_value, axis=1)
        pos = np.broadcast_to(np.arange(n), ordered.shape)
        starts = np.ones(ordered.shape, dtype=bool)
        starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
        ends = np.ones(ordered.shape, dtype=bool)
        ends[:, :-1] = starts[:, 1:]
        first = np.maximum.accumulate(np.where(starts, pos, 0), axis=1)
        last = np.minimum.accumulate(np.where(ends, pos, n - 1)[:, ::-1], axis=1)[:, ::-1]
        ranks = np.empty_like(ordered)
        np.put_along_axis(ranks, by_value, (first + last) / 2.0 / (n - 1), axis=1)
        return np.where(varies, ranks, 0.0)
    return scores
