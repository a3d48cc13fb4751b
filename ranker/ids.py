"""Id -> table row, for the catalog's and the users' ids: vectorised, and byte for byte for string ids."""

from __future__ import annotations

import numpy as np
from numpy.dtypes import StringDType

from ranker.errors import FeatureTableError


class IdIndex:
    """Id -> row by binary search over the sorted ids; unknown ids get row `missing` (the table's length).

    String ids are compared byte for byte as variable-width numpy strings (`numpy.dtypes.StringDType`):
    numpy's fixed-width strings drop trailing NULs, which would make ``"a\\x00"`` the row of ``"a"``.
    """

    def __init__(self, ids: np.ndarray, what: str) -> None:
        ids = np.asarray(ids)
        self.integer = ids.dtype.kind in "iu"
        keys = ids.astype(np.int64) if self.integer else _string_keys(ids)
        order = np.argsort(keys, kind="stable")
        self.sorted = keys[order]
        self.order = order.astype(np.int64)
        self.missing = len(keys)
        repeated = self.sorted[1:][self.sorted[1:] == self.sorted[:-1]]
        if repeated.size:
            raise FeatureTableError(f"{what}: id {repeated[:1].tolist()[0]!r} appears more than once")

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """(n,) int64 rows of `ids` (n,); `missing` where unknown."""
        ids = np.asarray(ids)
        if ids.size == 0 or self.missing == 0:
            return np.full(ids.shape[0], self.missing, dtype=np.int64)
        if self.integer:
            if ids.dtype.kind not in "iu":
                return self._rows_slow(ids)
            keys = ids.astype(np.int64, copy=False)
        else:
            keys = _string_keys(ids)
        pos = np.minimum(np.searchsorted(self.sorted, keys), self.missing - 1)
        return np.where(self.sorted[pos] == keys, self.order[pos], self.missing)

    def _rows_slow(self, ids: np.ndarray) -> np.ndarray:
        """Object ids against an integer index: the integers among them are looked up, others are unknown."""
        is_int = np.array([isinstance(v, int | np.integer) and not isinstance(v, bool) for v in ids.tolist()])
        out = np.full(ids.shape[0], self.missing, dtype=np.int64)
        if is_int.any():
            out[is_int] = self.rows(np.asarray(ids[is_int].tolist(), dtype=np.int64))
        return out


def _string_keys(ids: np.ndarray) -> np.ndarray:
    """Ids as variable-width strings, each as given (NUL included); non-strings by their ``str``."""
    return ids.astype(StringDType())
