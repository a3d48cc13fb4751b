"""The context oracle of a comparison seed: the best arm per observable context cell, chosen with the truth.

``base+context_oracle`` is the ceiling of a knob policy with the features the bandit sees. For each section it
keeps, per *cell* of the context as the policy observes it (user segment, device and hour bucket: the
categorical features of the shared VW line, and the fields a cells-layout policy may cross with the knobs,
keyed as it keys them, `bandits.knob_cells.cell_keys`), the arm with the most exact
expected clicks summed over the tuning sample's requests of that cell. The cells back off from fine to coarse
(`ORACLE_LEVELS`): a request whose segment x device x hour cell had fewer than `MIN_CELL` tuning requests uses
its segment x device cell, then its segment, then the section's best fixed arm. The two numeric features of
the shared line (fresh share, category entropy) are not bucketed: the oracle is a ceiling for what the
categorical context can buy, and its headroom over the best fixed arm is what a bandit can hope to capture.

Choosing is vectorised: each level's cell keys are joined strings, looked up with `np.searchsorted` in the
level's sorted table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from bandits.base import KnobPolicy
from bandits.context import PolicyContext
from bandits.knob_cells import cell_keys
from heuristics import SectionsConfig

#: Context fields of each level, finest first; the last level (no field) is the best fixed arm.
ORACLE_LEVELS: tuple[tuple[str, ...], ...] = (
    ("segment", "device", "hour"),
    ("segment", "device"),
    ("segment",),
    (),
)
#: Fewest tuning requests a cell needs to choose its own arm.
MIN_CELL = 20


@dataclass(frozen=True)
class OracleTable:
    """One section's cells of one level: sorted keys and each cell's arm."""

    keys: np.ndarray
    arms: np.ndarray

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """(B,) the cell's arm, -1 where the cell is not in the table."""
        if len(self.keys) == 0:
            return np.full(len(keys), -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return np.where(self.keys[pos] == keys, self.arms[pos], -1)


def fit_tables(context: PolicyContext, values: np.ndarray, *, min_cell: int = MIN_CELL) -> list[OracleTable]:
    """Each level's table for one section: per cell with at least `min_cell` requests, the arm with the most
    summed exact value (ties: the lower arm). The last level's one cell holds the best fixed arm.

    Parameters
    ----------
    context : PolicyContext of m tuning requests of the section
    values : (m, A) float
        Exact expected clicks of each request under each arm.
    """
    tables = []
    for fields in ORACLE_LEVELS:
        keys = cell_keys(context, fields)
        cells, inverse = np.unique(keys, return_inverse=True)
        sums = np.zeros((len(cells), values.shape[1]))
        np.add.at(sums, inverse.ravel(), values)
        counts = np.bincount(inverse.ravel(), minlength=len(cells))
        keep = (counts >= min_cell) | (len(fields) == 0)
        tables.append(OracleTable(keys=cells[keep], arms=np.argmax(sums[keep], axis=1).astype(np.int64)))
    return tables


class ContextOraclePolicy(KnobPolicy):
    """Per request, the arm of its finest cell in the section's tables (module docstring)."""

    def __init__(self, sections: SectionsConfig, tables: Mapping[str, list[OracleTable]]) -> None:
        super().__init__(sections)
        self.tables = dict(tables)

    def arms(self, section: str, context: PolicyContext) -> np.ndarray:
        """(m,) the chosen arm of m requests of `section` (its default arm without a table)."""
        chosen = np.full(len(context), -1, dtype=np.int64)
        for fields, table in zip(ORACLE_LEVELS, self.tables.get(section, []), strict=False):
            todo = chosen < 0
            if not todo.any():
                break
            chosen[todo] = table.lookup(cell_keys(context.take(np.flatnonzero(todo)), fields))
        return np.where(chosen < 0, self.sections[section].default_arm.index, chosen)

    def _section_distribution(self, section: str, context: PolicyContext) -> np.ndarray:
        probs = np.zeros((len(context), len(self.sections[section].arms)))
        probs[np.arange(len(context)), self.arms(section, context)] = 1.0
        return probs
