"""Which context fields each section's knob model crosses with the knobs, chosen by cross-validation.

The *cells* layout of the VW knob policy (`bandits.vw_policy.VWSettings.cells`) scores arm ``a`` of section
``s`` in context ``x`` as the sum, over the knob values of ``a``, of a weight per (section, cell, knob value),
where the cell of ``x`` joins the values of the fields chosen for ``s`` (`CELL_FIELDS`: user segment, device,
hour bucket), or is the one cell ``all`` when none is chosen. Every arm that shares a knob value informs it,
and a field is crossed with the knobs only in the sections where the log shows that it changes which arm is
best. Each field crossed in vain splits the section's decisions into cells that learn apart, and each cell's
choice is noisier: on the context_flip world a model crossing segment, device and hour in every section
captured about half of the headroom that the same model on segment alone captured (docs/bandits.md).

`select_fields` chooses, per section, on decisions the model did not learn from:

- each decision falls in one of `FOLDS` folds (drawn with the seed), and its importance-weighted reward
  (weight 1/propensity, as in VW's ``mtr`` regression) is summed per (fold, finest cell, arm). The sums
  (`STATS`) make every step below exact, so a log of any size streams through `CellTally` chunk by chunk;
- each reward is taken relative to the mean reward of its finest cell: that level is shared by every arm
  (users on one device may click more whatever the arm), and a field that only moves the level must not be
  chosen, since it cannot change a choice;
- the model of a field set is, per cell, ridge regression of the reward on the arm's knob indicators,
  shrunk toward the section-wide model (itself shrunk toward zero) by `SHRINKAGE` pseudo-decisions of
  weight 1, and learned on the other folds;
- forward selection starts from no field, and adds the field whose out-of-fold weighted squared error is the
  lowest while that error is below the current set's (plain cross-validation). Each step's mean difference
  of the squared error, and its standard error, are kept (`CellChoice.steps`) and saved with the policy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bandits.context import PolicyContext
from bandits.errors import InvalidArgumentError
from heuristics import SectionConfig, SectionsConfig

#: Context fields a cell may join, in the order their values are joined.
CELL_FIELDS = ("segment", "device", "hour")
#: The cell of a section with no field chosen.
ALL_CELL = "all"
#: Folds of the cross-validation.
FOLDS = 5
#: Pseudo-decisions of weight 1 that pull each cell's knob weights toward the section-wide model.
SHRINKAGE = 10.0
#: Sums per (section, fields, fold, arm) group: weights w = 1/propensity, rewards r.
STATS = ("w", "wr", "wr2", "w2", "w2r", "w2r2")
#: Group rows a `CellTally` holds before it sums its chunks together again.
_COMPACT_ROWS = 200_000


def cell_column(context: PolicyContext, name: str) -> np.ndarray:
    """One of the `CELL_FIELDS` of B requests as a string array (the hour as its bucket name)."""
    if name == "hour":
        return context.hour_bucket().astype(str)
    return np.asarray(getattr(context, name), dtype=str)


def cell_columns(context: PolicyContext) -> dict[str, np.ndarray]:
    """The `CELL_FIELDS` of B requests as string arrays."""
    return {name: cell_column(context, name) for name in CELL_FIELDS}


def cell_keys(context: PolicyContext, fields: tuple[str, ...]) -> np.ndarray:
    """(B,) str: each request's cell of `fields`, their values joined by ``|`` (`ALL_CELL` for none)."""
    if not fields:
        return np.full(len(context), ALL_CELL)
    columns = {name: cell_column(context, name) for name in fields}
    keys = columns[fields[0]].astype(object)
    for name in fields[1:]:
        keys = keys + "|" + columns[name].astype(object)
    return keys.astype(str)


def knob_indicators(section: SectionConfig) -> np.ndarray:
    """(A, K) 0/1: arm x ``knob=value`` (every value of every knob of the section's arms)."""
    values = sorted({(name, float(v)) for arm in section.arms for name, v in arm.knobs.items()})
    column = {pair: i for i, pair in enumerate(values)}
    out = np.zeros((len(section.arms), len(values)))
    for arm in section.arms:
        for name, v in arm.knobs.items():
            out[arm.index, column[(name, float(v))]] = 1.0
    return out


class CellTally:
    """The `STATS` sums of logged decisions per (section, finest cell, fold, arm), added chunk by chunk.

    Folds are drawn from a generator seeded with `seed`, in the order the decisions are added, so the same
    decisions in the same order give the same folds.
    """

    def __init__(self, *, seed: int = 0, folds: int = FOLDS) -> None:
        if folds < 2:
            raise InvalidArgumentError(f"Expected `folds` >= 2, found {folds!r}")
        self.folds = folds
        self._rng = np.random.default_rng(seed)
        self._parts: list[pd.DataFrame] = []
        self._rows = 0

    def add(
        self, context: PolicyContext, arm_index: np.ndarray, reward: np.ndarray, propensity: np.ndarray
    ) -> None:
        n = len(arm_index)
        if n == 0:
            return
        w = 1.0 / np.asarray(propensity, dtype=np.float64)
        r = np.asarray(reward, dtype=np.float64)
        frame = pd.DataFrame(
            {
                "section": np.asarray(context.section, dtype=str),
                **cell_columns(context),
                "fold": self._rng.integers(0, self.folds, n),
                "arm": np.asarray(arm_index, dtype=np.int64),
                "w": w,
                "wr": w * r,
                "wr2": w * r * r,
                "w2": w * w,
                "w2r": w * w * r,
                "w2r2": w * w * r * r,
            }
        )
        self._parts.append(self._grouped(frame))
        self._rows += len(self._parts[-1])
        if self._rows > _COMPACT_ROWS and len(self._parts) > 1:
            self._parts = [self._grouped(pd.concat(self._parts, ignore_index=True))]
            self._rows = len(self._parts[0])

    @staticmethod
    def _grouped(frame: pd.DataFrame) -> pd.DataFrame:
        keys = ["section", *CELL_FIELDS, "fold", "arm"]
        return frame.groupby(keys, sort=True, as_index=False)[list(STATS)].sum()

    def table(self) -> pd.DataFrame:
        """One row per (section, finest cell, fold, arm) with its `STATS` sums."""
        if not self._parts:
            return pd.DataFrame(columns=["section", *CELL_FIELDS, "fold", "arm", *STATS])
        return self._grouped(pd.concat(self._parts, ignore_index=True))


def centered(table: pd.DataFrame) -> pd.DataFrame:
    """The sums with each reward less the weighted mean reward of its finest cell (all folds and arms)."""
    level = table.groupby(["section", *CELL_FIELDS])
    m = (level["wr"].transform("sum") / level["w"].transform("sum")).to_numpy()
    w, wr, wr2, w2, w2r, w2r2 = (table[c].to_numpy() for c in STATS)
    out = table.copy()
    out["wr"] = wr - m * w
    out["wr2"] = wr2 - 2 * m * wr + m * m * w
    out["w2r"] = w2r - m * w2
    out["w2r2"] = w2r2 - 2 * m * w2r + m * m * w2
    return out


def _ridge(
    knobs: np.ndarray, weight: np.ndarray, weighted_reward: np.ndarray, shrink: float, prior: np.ndarray
):
    """Per cell c: argmin_b sum_a weight[c,a] (reward - knobs[a] b)^2 + shrink |b - prior|^2, from the sums
    ``weight[c, a]`` and ``weighted_reward[c, a]``; (C, K)."""
    gram = np.einsum("ak,ca,al->ckl", knobs, weight, knobs) + shrink * np.eye(knobs.shape[1])
    rhs = weighted_reward @ knobs + shrink * prior
    return np.linalg.solve(gram, rhs[..., None])[..., 0]


def out_of_fold(table: pd.DataFrame, knobs: np.ndarray, fields: tuple[str, ...], folds: int) -> np.ndarray:
    """Each row's prediction by the model on `fields` learned on the other folds (rows of one section)."""
    if fields:
        cell = table.groupby(list(fields), sort=True).ngroup().to_numpy()
    else:
        cell = np.zeros(len(table), dtype=np.int64)
    fold, arm = table["fold"].to_numpy(), table["arm"].to_numpy()
    sums = np.zeros((folds, int(cell.max(initial=0)) + 1, knobs.shape[0], 2))
    np.add.at(sums, (fold, cell, arm), table[["w", "wr"]].to_numpy())
    total = sums.sum(axis=0)
    out = np.empty(len(table))
    for f in range(folds):
        train = total - sums[f]
        section_wide = train.sum(axis=0, keepdims=True)
        pooled = _ridge(
            knobs, section_wide[..., 0], section_wide[..., 1], SHRINKAGE, np.zeros(knobs.shape[1])
        )[0]
        beta = _ridge(knobs, train[..., 0], train[..., 1], SHRINKAGE, pooled)
        rows = fold == f
        out[rows] = np.einsum("rk,rk->r", beta[cell[rows]], knobs[arm[rows]])
    return out


def loss_difference(table: pd.DataFrame, before: np.ndarray, after: np.ndarray) -> tuple[float, float]:
    """Mean (per unit weight) of ``(r - before)^2 - (r - after)^2`` over the decisions summed in `table`,
    and its standard error: positive when `after` predicts better. Exact from the sums, since within a row
    both predictions are constants."""
    total, step = before + after, after - before
    w, wr, w2, w2r, w2r2 = (table[c].to_numpy() for c in ("w", "wr", "w2", "w2r", "w2r2"))
    weight = w.sum()
    mean = float((step * (2 * wr - total * w)).sum() / weight)
    sum_w2d2 = (step**2 * (4 * w2r2 - 4 * total * w2r + total * total * w2)).sum()
    sum_w2d = (step * (2 * w2r - total * w2)).sum()
    spread = sum_w2d2 - 2 * mean * sum_w2d + mean * mean * w2.sum()
    return mean, float(np.sqrt(max(spread, 0.0)) / weight)


@dataclass(frozen=True)
class CellChoice:
    """The fields chosen per section, and the selection's steps (each candidate field's mean decrease of
    the out-of-fold squared error and its standard error) per section."""

    fields: dict[str, tuple[str, ...]]
    steps: dict[str, list[dict]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"fields": {s: list(f) for s, f in self.fields.items()}, "steps": self.steps}

    @classmethod
    def from_dict(cls, data: Mapping) -> CellChoice:
        fields = {str(s): tuple(str(x) for x in f) for s, f in dict(data.get("fields", {})).items()}
        for section, chosen in fields.items():
            unknown = [x for x in chosen if x not in CELL_FIELDS]
            if unknown:
                raise InvalidArgumentError(
                    f"Expected cell fields of section {section!r} in {', '.join(CELL_FIELDS)}, "
                    f"found {unknown}"
                )
        return cls(fields=fields, steps=dict(data.get("steps", {})))


def select_fields(tally: CellTally, sections: SectionsConfig) -> CellChoice:
    """Each section's cell fields by forward selection on the tally (module docstring); a section without
    decisions gets none."""
    table = tally.table()
    fields: dict[str, tuple[str, ...]] = {}
    steps: dict[str, list[dict]] = {}
    for section in sections:
        rows = centered(table[table["section"] == section.name].reset_index(drop=True))
        chosen: tuple[str, ...] = ()
        steps[section.name] = []
        if len(rows) and rows["w"].sum() > 0:
            knobs = knob_indicators(section)
            current = out_of_fold(rows, knobs, chosen, tally.folds)
            while len(chosen) < len(CELL_FIELDS):
                tried = []
                for name in (f for f in CELL_FIELDS if f not in chosen):
                    candidate = tuple(f for f in CELL_FIELDS if f in chosen or f == name)
                    predicted = out_of_fold(rows, knobs, candidate, tally.folds)
                    gain, se = loss_difference(rows, current, predicted)
                    tried.append((gain, name, candidate, predicted))
                    steps[section.name].append(
                        {"with": list(chosen), "field": name, "gain": gain, "standard_error": se}
                    )
                gain, _, candidate, predicted = max(tried, key=lambda t: t[0])
                if not gain > 0:
                    break
                chosen, current = candidate, predicted
        fields[section.name] = chosen
    return CellChoice(fields=fields, steps=steps)


def choose_fields(
    chunks: Iterable[tuple[PolicyContext, np.ndarray, np.ndarray, np.ndarray]],
    sections: SectionsConfig,
    *,
    seed: int,
) -> CellChoice:
    """`select_fields` on logged decisions given chunk by chunk, ``(context, arm_index, reward, propensity)``
    each (the chunks of `bandits.vw_policy.VWKnobPolicy.fit_chunks`), summed in one `CellTally`."""
    tally = CellTally(seed=seed)
    for chunk in chunks:
        tally.add(*chunk)
    return select_fields(tally, sections)
