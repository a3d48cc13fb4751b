"""The request context a knob policy sees: who asks, where, when, and a summary of the candidate set.

`build_policy_context` is the one place a decision's context is made (the rerank pipeline calls it for the
service, the simulator's logging policy, the exact policy evaluation and the design comparison alike), with
one rounding rule: the policy chooses on exactly the values the decision log stores, so that learning from
the log and replay see what the policy saw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Candidates younger than this count as fresh in `fresh_share`.
FRESH_DAYS = 7.0
#: Hour-of-day buckets: [0, 6) night, [6, 12) morning, [12, 18) afternoon, [18, 24) evening.
HOUR_BUCKETS = ("night", "morning", "afternoon", "evening")
#: Decimals `fresh_share` and `category_entropy` keep (``np.round``), both to choose on and to log.
SUMMARY_DECIMALS = 6
#: The device of a request that names none.
UNKNOWN_DEVICE = "unknown"


@dataclass(frozen=True)
class PolicyContext:
    """Context features of B requests.

    Attributes
    ----------
    section, segment, device : (B,) str
    hour : (B,) int64
        Hour of day of the request time (UTC), 0..23.
    fresh_share : (B,) float64
        Share of the candidates younger than `FRESH_DAYS`.
    category_entropy : (B,) float64
        Shannon entropy (nats) of the candidates' category distribution.
    """

    section: np.ndarray
    segment: np.ndarray
    device: np.ndarray
    hour: np.ndarray
    fresh_share: np.ndarray
    category_entropy: np.ndarray

    def __len__(self) -> int:
        return len(self.section)

    def hour_bucket(self) -> np.ndarray:
        """(B,) str: the hour's bucket name."""
        return np.asarray(HOUR_BUCKETS)[np.clip(np.asarray(self.hour, dtype=np.int64), 0, 23) // 6]

    def take(self, rows: np.ndarray) -> PolicyContext:
        """The contexts of the given rows."""
        return PolicyContext(**{name: getattr(self, name)[rows] for name in self.__dataclass_fields__})

    @classmethod
    def from_records(cls, records: list[dict], sections: np.ndarray | list[str]) -> PolicyContext:
        """Contexts from logged context dicts (missing fields take neutral defaults)."""
        return cls(
            section=np.asarray(sections, dtype=str),
            segment=np.asarray([str(r.get("segment", "unknown")) for r in records], dtype=str),
            device=np.asarray([str(r.get("device", "unknown")) for r in records], dtype=str),
            hour=np.asarray([int(r.get("hour", 12)) for r in records], dtype=np.int64),
            fresh_share=np.asarray([float(r.get("fresh_share", 0.0)) for r in records]),
            category_entropy=np.asarray([float(r.get("category_entropy", 0.0)) for r in records]),
        )


def candidate_summary(
    age_days: np.ndarray, category: np.ndarray, *, fresh_days: float = FRESH_DAYS
) -> tuple[np.ndarray, np.ndarray]:
    """Share of fresh candidates and category entropy of B candidate sets.

    Parameters
    ----------
    age_days : (B, n) float
    category : (B, n) int, non-negative

    Returns
    -------
    fresh_share : (B,) float64
        ``mean(age_days < fresh_days)``; 0 for an empty set.
    category_entropy : (B,) float64
        ``-sum_c p_c log p_c`` over the categories' shares p_c; 0 for an empty set.
    """
    age_days = np.asarray(age_days, dtype=np.float64)
    category = np.asarray(category, dtype=np.int64)
    batch, n = category.shape
    if n == 0:
        return np.zeros(batch), np.zeros(batch)
    fresh_share = (age_days < fresh_days).mean(axis=1)
    # Count categories per row with one bincount over (row, category) pairs; sparse ids are densified first.
    width = int(category.max()) + 1
    if width <= 4 * n:
        dense = category
    else:
        _, dense = np.unique(category, return_inverse=True)
        dense = dense.reshape(batch, n)
        width = int(dense.max()) + 1
    counts = np.bincount(
        (np.arange(batch)[:, None] * width + dense).ravel(), minlength=batch * width
    ).reshape(batch, width)
    shares = counts / n
    logs = np.log(shares, out=np.zeros_like(shares), where=shares > 0)
    return fresh_share, -(shares * logs).sum(axis=1)


def build_policy_context(
    *,
    section: np.ndarray,
    segment: np.ndarray,
    device: np.ndarray,
    time: np.ndarray,
    age_days: np.ndarray,
    category: np.ndarray,
) -> PolicyContext:
    """The context of B requests, as a knob policy chooses on it and as the decision log stores it.

    Parameters
    ----------
    section, segment : (B,) str
    device : (B,) str or object
        ``""`` or None (a request that names no device) becomes ``"unknown"``.
    time : (B,) float
        Request times, Unix seconds; ``hour = (time // 3600) % 24``.
    age_days : (B, n) float
        The candidates' ages at the request time.
    category : (B, n) int
        The candidates' category codes; negative codes (items outside the catalog) are counted with code 0.

    Returns
    -------
    PolicyContext
        ``fresh_share`` and ``category_entropy`` from `candidate_summary`, rounded with
        ``np.round(x, SUMMARY_DECIMALS)``: the one rounding rule, applied before the policy sees them.
    """
    device = np.asarray(device, dtype=object)
    named = np.not_equal(device, None) & np.not_equal(device, "")
    fresh_share, category_entropy = candidate_summary(age_days, np.maximum(np.asarray(category), 0))
    return PolicyContext(
        section=np.asarray(section).astype(str),
        segment=np.asarray(segment).astype(str),
        device=np.where(named, device, UNKNOWN_DEVICE).astype(str),
        hour=((np.asarray(time, dtype=np.float64) // 3600) % 24).astype(np.int64),
        fresh_share=np.round(fresh_share, SUMMARY_DECIMALS),
        category_entropy=np.round(category_entropy, SUMMARY_DECIMALS),
    )
