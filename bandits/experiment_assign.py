"""Assigning users to the variants of an A/B experiment by a stable hash.

A user's variant depends on nothing but the user id and the experiment's name: no seed, no process, no
clock. So every worker of every service, before and after a restart, puts a user in the same variant, and
the user is the randomisation unit of the analysis (`bandits.experiment_stats`).

The hash (the same for int and str ids)::

    text = experiment_name + "/" + str(user_id)              # UTF-8 bytes; an int id in decimal
    h    = fmix64(FNV-1a-64(text))                           # FNV-1a, then MurmurHash3's 64-bit finaliser
    u    = (h >> 11) / 2**53                                 # uniform in [0, 1)
    variant = first i with u < share_0 + ... + share_i

FNV-1a-64 starts from 0xcbf29ce484222325 and, per byte b, sets ``h = (h ^ b) * 0x100000001b3 mod 2**64``;
fmix64 is ``h ^= h >> 33; h *= 0xff51afd7ed558ccd; h ^= h >> 33; h *= 0xc4ceb9fe1a85ec53; h ^= h >> 33``.
Any language can reproduce it. `assign` hashes a whole array of ids at once in numpy (a loop over byte
positions, not over users). Ids that differ only by trailing NUL characters hash alike.

Example::

    experiment = Experiment("consolidate", ("similar_items",), (Variant("A", 0.5), Variant("B", 0.5)))
    experiment.assign(np.array([17, 18, 19]))  # -> array of variant indices, e.g. [1, 0, 0]
    experiment.label(0)                        # -> "consolidate/A", what the decision log stores
"""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass, field

import numpy as np

from bandits.errors import InvalidArgumentError

__all__ = ["NAME_PATTERN", "SHARE_TOLERANCE", "Experiment", "Variant", "hash_unit", "split_label"]

#: Experiment and variant names: letters, digits and ``_ . + -``; ``/`` separates them in a label.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.+-]{1,64}$")
#: How far the variants' shares may sum from 1.
SHARE_TOLERANCE = 1e-9

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK = 2**64 - 1


@dataclass(frozen=True)
class Variant:
    """One arm of an experiment: its `name` and the `share` of users it gets, in (0, 1]."""

    name: str
    share: float

    def __post_init__(self) -> None:
        _check_name("variant", self.name)
        if not (isinstance(self.share, int | float) and 0 < self.share <= 1):
            raise InvalidArgumentError(
                f"Expected `share` in (0, 1] for variant {self.name!r}, found {self.share!r}"
            )


@dataclass(frozen=True)
class Experiment:
    """An experiment over some sections: users are split among `variants` by `hash_unit`.

    Attributes
    ----------
    name : str
        Hashed with the user id: two experiments split the same users independently.
    sections : tuple of str
        The sections whose requests it assigns.
    variants : tuple of Variant
        At least two, distinct names, shares summing to 1 (within `SHARE_TOLERANCE`).
    """

    name: str
    sections: tuple[str, ...]
    variants: tuple[Variant, ...]
    _bounds: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _prefix: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_name("experiment", self.name)
        if len(self.variants) < 2:
            raise InvalidArgumentError(
                f"Expected at least 2 variants in experiment {self.name!r}, found {len(self.variants)}"
            )
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise InvalidArgumentError(
                f"Expected distinct variant names in experiment {self.name!r}, found {names}"
            )
        total = math.fsum(v.share for v in self.variants)
        if abs(total - 1.0) > SHARE_TOLERANCE:
            raise InvalidArgumentError(
                f"Expected the shares of experiment {self.name!r} to sum to 1, found {total:.12g}"
            )
        if not self.sections:
            raise InvalidArgumentError(f"Expected at least one section in experiment {self.name!r}")
        cum = np.cumsum([v.share for v in self.variants], dtype=np.float64)
        cum[-1] = 1.0
        object.__setattr__(self, "_bounds", tuple(cum.tolist()))
        object.__setattr__(self, "_prefix", _fnv1a(_FNV_OFFSET, f"{self.name}/".encode()))

    @property
    def bounds(self) -> np.ndarray:
        """The variants' upper bounds (V,) on [0, 1): cumulative shares, the last one exactly 1."""
        return np.array(self._bounds)

    def assign(self, user_ids: np.ndarray) -> np.ndarray:
        """The variant index (B,) int64 of each user id (int or str ids, a (B,) array)."""
        u = hash_unit(self.name, user_ids)
        return np.minimum(np.searchsorted(self.bounds, u, side="right"), len(self.variants) - 1)

    def assign_one(self, user_id: int | str) -> int:
        """The variant index of one user id: the same as `assign`, in plain integers (one request's path)."""
        if isinstance(user_id, bool) or not isinstance(user_id, int | str | np.integer | np.str_):
            raise InvalidArgumentError(f"Expected an int or str user id, found {user_id!r}")
        h = _fnv1a(self._prefix, str(user_id).encode().rstrip(b"\0"))
        for shift, factor in ((33, 0xFF51AFD7ED558CCD), (33, 0xC4CEB9FE1A85EC53)):
            h = ((h ^ (h >> shift)) * factor) & _MASK
        u = ((h ^ (h >> 33)) >> 11) * 2.0**-53
        return min(bisect.bisect_right(self._bounds, u), len(self.variants) - 1)

    def label(self, index: int) -> str:
        """``"EXPERIMENT/VARIANT"``: the variant as the decision log stores it."""
        return f"{self.name}/{self.variants[index].name}"


def split_label(label: str) -> tuple[str, str]:
    """``"EXPERIMENT/VARIANT"`` -> (experiment, variant); ``""`` (no experiment) -> ("", "")."""
    experiment, _, variant = str(label).partition("/")
    return experiment, variant


def hash_unit(experiment: str, user_ids: np.ndarray) -> np.ndarray:
    """Each user id's point (B,) float64 in [0, 1) for `experiment` (the module docstring's hash)."""
    ids = np.asarray(user_ids)
    if ids.ndim != 1:
        raise InvalidArgumentError(f"Expected `user_ids` of shape (B,), found {ids.shape}")
    if ids.dtype.kind == "f" or ids.dtype == np.bool_:
        raise InvalidArgumentError(f"Expected int or str user ids, found dtype {ids.dtype}")
    prefix = _fnv1a(_FNV_OFFSET, f"{experiment}/".encode())
    h = np.full(len(ids), prefix, dtype=np.uint64)
    if len(ids):
        text = np.char.encode(ids.astype(str), "utf-8")
        width = text.dtype.itemsize
        if width:
            data = np.frombuffer(text.tobytes(), dtype=np.uint8).reshape(len(ids), width)
            length = np.char.str_len(text)
            prime = np.uint64(_FNV_PRIME)
            for j in range(width):  # over byte positions: vectorised over the users
                step = (h ^ data[:, j].astype(np.uint64)) * prime
                h = np.where(j < length, step, h)
    h = _fmix64(h)
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _fnv1a(h: int, data: bytes) -> int:
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & _MASK
    return h


def _fmix64(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


def _check_name(what: str, name: object) -> None:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise InvalidArgumentError(
            f"Expected {what} name of 1 to 64 characters among A-Z a-z 0-9 _ . + -, found {name!r}"
        )
