"""The one module that writes Vowpal Wabbit text.

VW's text format separates examples by newlines, namespaces by ``|``, features by whitespace and a
feature's name from its value by ``:``. A malformed line can crash the whole process, so every name and string
value goes through `escape`, which percent-encodes those characters (and ``%`` itself): the encoding is
injective, so distinct inputs stay distinct features. Numeric values must be finite.

Contextual-bandit labels carry a *cost*; the product speaks of *rewards*. The conversion ``cost = -reward``
happens here, in `cost_of`, and nowhere else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bandits.errors import InvalidArgumentError

#: Shared (request context) and action (arm knobs) namespaces; `INTERACTIONS` pairs them for ``-q``.
SHARED_NS = "U"
ACTION_NS = "A"
INTERACTIONS = (SHARED_NS + ACTION_NS,)
#: ``--cubic`` triples: two shared features crossed with an action feature (e.g. section x segment x knob).
CUBIC_INTERACTIONS = (SHARED_NS + SHARED_NS + ACTION_NS,)

_ESCAPES = {"%": "%25", "|": "%7C", ":": "%3A", " ": "%20", "\t": "%09", "\n": "%0A", "\r": "%0D"}
_TABLE = str.maketrans(_ESCAPES)


def escape(token: str) -> str:
    """Percent-encode the characters that VW's text format treats as separators."""
    return str(token).translate(_TABLE)


def escape_series(tokens: pd.Series) -> pd.Series:
    """`escape` over a column of strings."""
    out = tokens.astype(str)
    for char, code in _ESCAPES.items():
        out = out.str.replace(char, code, regex=False)
    return out


def format_value(value: float) -> str:
    value = float(value)
    if not math.isfinite(value):
        raise InvalidArgumentError(f"Expected a finite feature value, found {value!r}")
    return repr(value)


@dataclass(frozen=True)
class Feature:
    """One feature: ``name`` (indicator), ``name=value`` (a string value) or ``name:value`` (a number)."""

    name: str
    value: float | str | None = None

    def render(self) -> str:
        if self.value is None:
            return escape(self.name)
        if isinstance(self.value, str):
            return f"{escape(self.name)}={escape(self.value)}"
        return f"{escape(self.name)}:{format_value(self.value)}"


def cost_of(reward: float | np.ndarray) -> float | np.ndarray:
    """VW minimises cost; the product maximises reward: ``cost = -reward`` (scalars or arrays)."""
    return -reward


@dataclass(frozen=True)
class CBLabel:
    """A contextual-bandit label: the cost of the chosen action and the probability it was chosen with."""

    cost: float
    probability: float

    def __post_init__(self) -> None:
        if not 0.0 < self.probability <= 1.0:
            raise InvalidArgumentError(f"Expected a probability in (0, 1], found {self.probability!r}")
        format_value(self.cost)

    @classmethod
    def from_reward(cls, reward: float, probability: float) -> CBLabel:
        """The label of an action that earned `reward`."""
        return cls(cost=float(cost_of(float(reward))), probability=float(probability))

    def render(self) -> str:
        return f"0:{format_value(self.cost)}:{format_value(self.probability)}"


def namespace(name: str, features: list[Feature]) -> str:
    """``|name f1 f2 ...`` for one of this module's namespace constants."""
    if name not in (SHARED_NS, ACTION_NS):
        raise InvalidArgumentError(f"Expected a namespace in {SHARED_NS!r}, {ACTION_NS!r}, found {name!r}")
    return f"|{name} " + " ".join(f.render() for f in features)


def shared_line(features: list[Feature]) -> str:
    return "shared " + namespace(SHARED_NS, features)


def action_line(features: list[Feature]) -> str:
    return namespace(ACTION_NS, features)


def adf_example(shared: str, actions: list[str], chosen: int | None = None, label: CBLabel | None = None):
    """The lines of one multi-line ADF example.

    Exactly one action line carries a label when learning (`chosen` and `label` given), none when predicting.
    """
    if (chosen is None) != (label is None):
        raise InvalidArgumentError("Give both `chosen` and `label` to learn, or neither to predict")
    lines = [shared, *actions]
    if chosen is not None:
        if not 0 <= chosen < len(actions):
            raise InvalidArgumentError(f"Expected `chosen` in [0, {len(actions)}), found {chosen}")
        lines[1 + chosen] = f"{label.render()} {actions[chosen]}"
    return lines


#: Below this many rows, `shared_lines` formats row by row: pandas' per-call overhead dominates small batches.
SMALL_BATCH = 64


def shared_lines(columns: dict[str, pd.Series | np.ndarray]) -> list[str]:
    """Shared lines for a batch, built column-wise.

    String columns become ``name=value`` features, numeric columns ``name:value``. Small batches (a served
    request) are formatted row by row through `Feature`, large ones with vectorised string operations; both
    give the same text.
    """
    arrays = {name: np.asarray(values) for name, values in columns.items()}
    numeric = {name: values.dtype.kind in "fiub" for name, values in arrays.items()}
    for name, values in arrays.items():
        if numeric[name] and not np.isfinite(values.astype(np.float64)).all():
            raise InvalidArgumentError(f"Expected finite values in context feature {name!r}")
    n_rows = len(next(iter(arrays.values()))) if arrays else 0
    if n_rows < SMALL_BATCH:
        rows = []
        for i in range(n_rows):
            features = [
                Feature(name, float(values[i]) if numeric[name] else str(values[i]))
                for name, values in arrays.items()
            ]
            rows.append(shared_line(features))
        return rows
    parts: list[pd.Series] = []
    for name, values in arrays.items():
        series = pd.Series(values)
        if numeric[name]:
            parts.append(escape(name) + ":" + series.astype(np.float64).map(repr))
        else:
            parts.append(escape(name) + "=" + escape_series(series))
    body = parts[0]
    for part in parts[1:]:
        body = body + " " + part
    return (f"shared |{SHARED_NS} " + body).tolist()


def labelled_blocks(
    shared: list[str] | pd.Series,
    keys: np.ndarray,
    chosen: np.ndarray,
    rewards: np.ndarray,
    propensities: np.ndarray,
    action_sets: dict[str, list[str]],
) -> str:
    """A whole training file: one labelled ADF example per row, examples separated by blank lines.

    Parameters
    ----------
    shared : (B,) str
        Shared lines, from `shared_lines`.
    keys : (B,) str
        Which action set each row uses (its section).
    chosen : (B,) int
        Index of the logged action within its action set.
    rewards, propensities : (B,) float
        Reward of the logged action and the probability it was chosen with, in (0, 1].
    action_sets : mapping key -> action lines
        The (prebuilt) action lines of each action set.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    propensities = np.asarray(propensities, dtype=np.float64)
    if not np.isfinite(rewards).all():
        raise InvalidArgumentError("Expected finite rewards")
    if not ((propensities > 0) & (propensities <= 1)).all():
        raise InvalidArgumentError("Expected propensities in (0, 1]")
    costs = pd.Series(cost_of(rewards)).map(repr)
    labels = "0:" + costs + ":" + pd.Series(propensities).map(repr) + " "
    # Text before and after the chosen action's label, per (action set, chosen index), built once each.
    pairs = pd.Series(np.asarray(keys, dtype=str)) + "\x00" + pd.Series(np.asarray(chosen)).astype(str)
    before, after = {}, {}
    for pair in pairs.unique():
        key, index = pair.split("\x00")
        actions, index = action_sets[key], int(index)
        if not 0 <= index < len(actions):
            raise InvalidArgumentError(
                f"Expected a chosen action in [0, {len(actions)}) for {key!r}, found {index}"
            )
        before[pair] = "".join(line + "\n" for line in actions[:index])
        after[pair] = "\n".join(actions[index:])
    blocks = pd.Series(shared).reset_index(drop=True) + "\n" + pairs.map(before) + labels + pairs.map(after)
    return "\n\n".join(blocks) + "\n\n"
