"""Reader of Vowpal Wabbit DSJSON logs (what VW's learning loop and Azure Personalizer write) for replay.

One JSON object per line, one logged decision each (see VW's ``--dsjson`` and docs/replay.md):

- ``c``: the context. Its ``_multi`` is the list of actions, one object of action features each; every other
  key holds the shared features (nested objects are namespaces).
- ``_label_Action``: the chosen action, a 1-based index into ``c._multi``; ``_labelIndex``, when present,
  is the same 0-based.
- ``_label_cost``: the cost of the chosen action; the reward is ``-cost`` unless told otherwise.
- ``_label_probability``: the logging policy's probability of the chosen action.
- ``a`` and ``p``: the action indices (1-based, in the order the policy ranked them) and their
  probabilities: the logging policy's whole distribution.
- ``EventId`` and ``Timestamp``.

The logged action becomes the 0-based position in ``c._multi`` (``_label_Action - 1``), so a target policy
names actions the same way. Events may offer different numbers of actions: ``n_actions`` is the largest,
and positions an event does not have get probability 0 in every distribution.

Shared features become context columns as VW reads them: a number is a feature's value (column ``ns.key``);
a string is a feature with value 1 (column ``ns.key=value``); ``true`` is 1 and ``false`` absent; an array
of numbers is one column per element (``ns.key[i]``). A feature absent from an event is 0. Keys that start
with ``_`` are not features (VW ignores them) and are skipped.

Parsing is one `orjson.loads` per line: the only per-row loop of replay, unavoidable for a text format.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from bandits.ope.data import LoggedBandit
from bandits.ope.errors import ReplayInputError, TargetPolicyError

__all__ = ["COST_TO_REWARD", "DsjsonLog", "is_dsjson", "load_dsjson", "read_dsjson_lines", "vw_distribution"]

#: How a reward is made from ``_label_cost``.
COST_TO_REWARD = {
    "neg-cost": lambda cost: -cost,
    "one-minus-cost": lambda cost: 1.0 - cost,
    "cost": lambda cost: cost,
}
#: Refuse more shared-feature columns than this unless they are chosen by name.
MAX_CONTEXT_COLUMNS = 2000


def is_dsjson(path: str | Path) -> bool:
    """True for a ``.dsjson`` or ``.dsjson.gz`` file name."""
    name = Path(path).name.lower()
    return name.endswith(".dsjson") or name.endswith(".dsjson.gz")


def read_dsjson_lines(path: str | Path) -> Iterator[tuple[int, bytes]]:
    """(line number from 1, line) of each non-blank line; gzip is recognised by its magic bytes."""
    path = Path(path)
    if not path.is_file():
        raise ReplayInputError(f"DSJSON file {str(path)!r} does not exist")
    with path.open("rb") as probe:
        zipped = probe.read(2) == b"\x1f\x8b"
    with gzip.open(path, "rb") if zipped else path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line


@dataclass(frozen=True, eq=False)
class DsjsonLog:
    """B events of a DSJSON log.

    Attributes
    ----------
    logged : LoggedBandit
        action (0-based position in ``c._multi``), reward, pscore (``_label_probability``), context (the
        shared features, or None), ``n_actions`` the largest number of actions of an event.
    event_id : (B,) object
        ``EventId`` of each event (None when absent).
    timestamp : (B,) object
        ``Timestamp`` of each event (None when absent).
    n_event_actions : (B,) int64
        ``len(c._multi)`` of each event.
    logging_dist : (B, A) float64
        The logging policy's distribution from ``a`` and ``p`` (column ``a[j] - 1`` holds ``p[j]``); NaN rows
        for events without ``a`` and ``p``.
    line : (B,) int64
        The line of each event in the file, from 1.
    """

    logged: LoggedBandit
    event_id: np.ndarray
    timestamp: np.ndarray
    n_event_actions: np.ndarray
    logging_dist: np.ndarray
    line: np.ndarray

    def __len__(self) -> int:
        return len(self.logged)

    def support(self) -> np.ndarray:
        """(B, A) bool: the actions each event offers."""
        return np.arange(self.logged.n_arms)[None, :] < self.n_event_actions[:, None]

    def uniform(self) -> np.ndarray:
        """(B, A) the uniform distribution over each event's actions."""
        return self.support() / self.n_event_actions[:, None].astype(np.float64)

    def fixed(self, action: int) -> np.ndarray:
        """(B, A) always the action at 0-based position `action` of ``c._multi``."""
        short = np.flatnonzero(self.n_event_actions <= action)
        if len(short):
            raise ReplayInputError(
                f"Expected every event to offer action {action} (0-based in `c._multi`), found "
                f"{self.n_event_actions[short[0]]} actions at line {self.line[short[0]]}"
            )
        dist = np.zeros((len(self), self.logged.n_arms))
        dist[:, action] = 1.0
        return dist


def _flatten(value: object, name: str, out: dict[str, float]) -> None:
    if isinstance(value, bool):
        if value:
            out[name] = 1.0
    elif isinstance(value, int | float):
        out[name] = float(value)
    elif isinstance(value, str):
        out[f"{name}={value}"] = 1.0
    elif isinstance(value, dict):
        for key, inner in value.items():
            if not key.startswith("_"):
                _flatten(inner, f"{name}.{key}" if name else key, out)
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            _flatten(inner, f"{name}[{i}]", out)


def _number(event: dict, key: str, number: int) -> float:
    value = event.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ReplayInputError(f"Expected a number `{key}` at line {number}, found {value!r}")
    return float(value)


def load_dsjson(
    path: str | Path,
    *,
    reward: str = "neg-cost",
    context: Sequence[str] | None = None,
) -> DsjsonLog:
    """Read a DSJSON log (plain or gzipped) into a `DsjsonLog`.

    Parameters
    ----------
    path : path
        The file; gzip is recognised by its content, whatever the name.
    reward : {"neg-cost", "one-minus-cost", "cost"}
        The reward made from ``_label_cost``: ``-cost`` (VW's and Personalizer's convention, the default),
        ``1 - cost``, or the cost itself.
    context : sequence of str, optional
        Shared-feature columns to keep (names as in the module docstring); None keeps every one, ``[]``
        none.

    Raises
    ------
    ReplayInputError
        A line is not JSON or lacks a field, ``_label_Action`` is outside ``c._multi``, ``_labelIndex``
        disagrees with it, or ``a`` and ``p`` differ in length: the message gives the line.
    """
    if reward not in COST_TO_REWARD:
        raise ReplayInputError(f"Expected `reward` in {', '.join(COST_TO_REWARD)}, found {reward!r}")
    lines, actions, costs, probs, ids, stamps, sizes, features, ranked = [], [], [], [], [], [], [], [], []
    for number, raw in read_dsjson_lines(path):
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ReplayInputError(f"Expected a JSON object at line {number} of {path}: {exc}") from None
        if not isinstance(event, dict):
            raise ReplayInputError(f"Expected a JSON object at line {number}, found {type(event).__name__}")
        shared = event.get("c")
        multi = shared.get("_multi") if isinstance(shared, dict) else None
        if not isinstance(multi, list) or not multi:
            raise ReplayInputError(f"Expected a non-empty `c._multi` list of actions at line {number}")
        chosen = event.get("_label_Action")
        if isinstance(chosen, bool) or not isinstance(chosen, int) or not 1 <= chosen <= len(multi):
            raise ReplayInputError(
                f"Expected `_label_Action` in [1, {len(multi)}] (1-based in `c._multi`) at line {number}, "
                f"found {chosen!r}"
            )
        if "_labelIndex" in event and event["_labelIndex"] != chosen - 1:
            raise ReplayInputError(
                f"Expected `_labelIndex` = `_label_Action` - 1 = {chosen - 1} at line {number}, "
                f"found {event['_labelIndex']!r}"
            )
        order, weights = event.get("a"), event.get("p")
        if order is not None or weights is not None:
            if not isinstance(order, list) or not isinstance(weights, list) or len(order) != len(weights):
                raise ReplayInputError(f"Expected lists `a` and `p` of the same length at line {number}")
            if any(not isinstance(i, int) or not 1 <= i <= len(multi) for i in order):
                raise ReplayInputError(f"Expected `a` in [1, {len(multi)}] at line {number}, found {order}")
        lines.append(number)
        actions.append(chosen - 1)
        costs.append(_number(event, "_label_cost", number))
        probs.append(_number(event, "_label_probability", number))
        ids.append(event.get("EventId"))
        stamps.append(event.get("Timestamp"))
        sizes.append(len(multi))
        ranked.append((order, weights))
        row: dict[str, float] = {}
        _flatten({k: v for k, v in shared.items() if k != "_multi"}, "", row)
        features.append(row)
    n = len(lines)
    width = max(sizes, default=1)
    logging = np.full((n, width), np.nan)
    for i, (order, weights) in enumerate(ranked):  # per event: the lists differ in length
        if order is not None:
            logging[i, :] = 0.0
            logging[i, np.asarray(order, dtype=np.int64) - 1] = weights
    matrix, names = _context(features, context)
    cost = np.asarray(costs, dtype=np.float64)
    logged = LoggedBandit(
        action=np.asarray(actions, dtype=np.int64),
        reward=COST_TO_REWARD[reward](cost) + 0.0,  # + 0.0: a cost of 0 is a reward of 0, not -0
        pscore=np.asarray(probs, dtype=np.float64),
        context=matrix,
        n_actions=width,
        context_names=names,
    )
    return DsjsonLog(
        logged=logged,
        event_id=np.asarray(ids, dtype=object),
        timestamp=np.asarray(stamps, dtype=object),
        n_event_actions=np.asarray(sizes, dtype=np.int64),
        logging_dist=logging,
        line=np.asarray(lines, dtype=np.int64),
    )


def _context(
    features: list[dict[str, float]], wanted: Sequence[str] | None
) -> tuple[np.ndarray | None, tuple[str, ...] | None]:
    """Dense (B, d) shared features, absent ones 0, columns sorted by name (or in the order `wanted`)."""
    found = sorted({name for row in features for name in row})
    if wanted is None:
        if len(found) > MAX_CONTEXT_COLUMNS:
            raise ReplayInputError(
                f"Expected at most {MAX_CONTEXT_COLUMNS} shared-feature columns, found {len(found):,}; "
                "choose them by name (`context=[...]`, `--context-cols`) or use none (`--no-context`)"
            )
        names = found
    else:
        missing = [name for name in wanted if name not in set(found)]
        if missing:
            shown = ", ".join(found[:20]) + (" ..." if len(found) > 20 else "")
            raise ReplayInputError(f"Shared feature `{missing[0]}` not found; found: {shown or 'none'}")
        names = list(wanted)
    if not names:
        return None, None
    column = {name: j for j, name in enumerate(names)}
    rows, cols, values = [], [], []
    for i, row in enumerate(features):  # per event: each holds its own sparse features
        for name, value in row.items():
            j = column.get(name)
            if j is not None:
                rows.append(i)
                cols.append(j)
                values.append(value)
    matrix = np.zeros((len(features), len(names)))
    matrix[np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)] = values
    return matrix, tuple(names)


def vw_distribution(path: str | Path, model: str | Path, log: DsjsonLog) -> np.ndarray:
    """(B, A) the action distribution a VW ``cb_explore_adf`` model gives each event of the DSJSON file.

    The model file is loaded with ``--dsjson`` and each event's line is handed to VW's own JSON parser
    (every line was already read and checked by `load_dsjson`); VW's probability mass function is in the
    order of ``c._multi``. Its float32 entries are renormalised to sum to 1.

    Raises
    ------
    TargetPolicyError
        The model file does not exist, or does not give a probability per action (not ``cb_explore_adf``).
    """
    model = Path(model)
    if not model.is_file():
        raise TargetPolicyError(f"VW model file {str(model)!r} does not exist")
    import vowpalwabbit  # imported here: only this target needs it

    dist = np.zeros((len(log), log.logged.n_arms))
    workspace = vowpalwabbit.Workspace(f"--initial_regressor {model} --dsjson --quiet --no_stdin")
    try:
        wanted = iter(log.line)
        row, next_line = 0, next(wanted, None)
        for number, raw in read_dsjson_lines(path):  # per event: VW predicts one multi-line example at a time
            if number != next_line:
                continue
            examples = workspace.parse(raw.decode())
            try:
                pmf = np.asarray(workspace.predict(examples), dtype=np.float64)
            finally:
                workspace.finish_example(examples)
            size = log.n_event_actions[row]
            if pmf.shape != (size,) or (pmf < 0).any() or abs(pmf.sum() - 1.0) > 1e-3:
                raise TargetPolicyError(
                    f"Expected VW model {model.name} to give a probability for each of the {size} actions at "
                    f"line {number} (a --cb_explore_adf model), found {pmf.tolist()!r}"
                )
            dist[row, :size] = pmf / pmf.sum()
            row, next_line = row + 1, next(wanted, None)
    finally:
        workspace.finish()
    return dist
