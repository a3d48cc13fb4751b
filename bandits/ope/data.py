"""The generic logged bandit format: a typed record, its validation, and a CSV / Parquet loader.

Any logged bandit data fits it, not only sectionrank's decision log: one row per logged decision with the
action the logging policy took, the reward it got, the logging policy's probability of that action
(``pscore``), and optionally context features, a group (for example the section) and the target policy's
probability of the logged action. See docs/replay.md for the file format.

Validation happens here, once, at the boundary: every message names the field or column and the first row at
fault, with expected vs. found ("Expected `pscore` in (0, 1], found 0 at row 17"). Rows are numbered from 0 in
the order given; in a file, row 0 is the first data row after the header.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bandits.ope.errors import ReplayInputError

__all__ = ["LoggedBandit", "from_frame", "load_logged_bandit", "read_table", "table_format"]


@dataclass(frozen=True, eq=False)
class LoggedBandit:
    """B logged bandit decisions with their rewards.

    Arrays are converted to the dtypes below and validated on construction.

    Attributes
    ----------
    action : (B,) int64
        The logged action (arm index), in ``[0, n_actions)``.
    reward : (B,) float64
        The observed reward, finite.
    pscore : (B,) float64
        The logging policy's probability of the logged action, in (0, 1].
    context : (B, d) float64, optional
        Context features, finite. Used only by reward models (DM, DR).
    group : (B,) object (str), optional
        A group label per row, for example the section; estimates are reported per group and overall.
    target_pscore : (B,) float64, optional
        The target policy's probability of the logged action, in [0, 1], when it was stored with the log.
    n_actions : int, optional
        Number of arms. When None, arms are only known to be in ``[0, max(action)]``.
    context_names : tuple of str, optional
        Names of the d context columns.
    """

    action: np.ndarray
    reward: np.ndarray
    pscore: np.ndarray
    context: np.ndarray | None = None
    group: np.ndarray | None = None
    target_pscore: np.ndarray | None = None
    n_actions: int | None = None
    context_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        action = check_action(self.action, "action", n_actions=self.n_actions)
        n = len(action)
        _set(self, "action", action)
        _set(self, "reward", check_reward(self.reward, "reward", length=(n, "action")))
        _set(self, "pscore", check_pscore(self.pscore, "pscore", length=(n, "action")))
        if self.target_pscore is not None:
            tp = check_probability(self.target_pscore, "target_pscore", length=(n, "action"))
            _set(self, "target_pscore", tp)
        if self.group is not None:
            _set(self, "group", check_group(self.group, "group", length=(n, "action")))
        if self.context is not None:
            context = np.asarray(self.context)
            if context.ndim != 2 or context.shape[0] != n:
                raise ReplayInputError(f"Expected `context` of shape ({n}, d), found shape {context.shape}")
            names = self.context_names or tuple(f"context[:, {j}]" for j in range(context.shape[1]))
            if len(names) != context.shape[1]:
                raise ReplayInputError(
                    f"Expected {context.shape[1]} `context_names`, found {len(self.context_names or ())}"
                )
            _set(self, "context", check_context(context, names))
            _set(self, "context_names", tuple(names) if self.context_names is not None else None)

    def __len__(self) -> int:
        return len(self.action)

    def take(self, rows: np.ndarray) -> LoggedBandit:
        """The rows selected by the index array or boolean mask `rows` (indices may repeat)."""

        def pick(arr: np.ndarray | None) -> np.ndarray | None:
            return None if arr is None else arr[rows]

        return LoggedBandit(
            action=self.action[rows],
            reward=self.reward[rows],
            pscore=self.pscore[rows],
            context=pick(self.context),
            group=pick(self.group),
            target_pscore=pick(self.target_pscore),
            n_actions=self.n_actions,
            context_names=self.context_names,
        )

    def content_order(self, *extra: np.ndarray | None) -> np.ndarray:
        """(B,) int64: the row indices in an order that depends only on what each row holds.

        Rows are ordered by the bytes of their fields: action, reward, pscore, the logged target_pscore,
        group (as its rank among the sorted labels), the context, then each of `extra` (per-row arrays of
        shape (B,) or (B, k), such as a target policy's probabilities; None is skipped). This is not a
        numeric order, but a total one on content: a permutation of the rows (and of `extra`) yields the same
        sequence of row contents. Rows equal in every byte keep their given relative order; being equal,
        they are interchangeable to anything that uses the order.

        Estimators deal their random draws (cross-fitting folds, replay's acceptance variates) to the rows in
        this order, so that their estimates do not depend on the order in which the rows are given.
        """
        n = len(self)
        columns = [self.action.astype(np.float64), self.reward, self.pscore]
        if self.target_pscore is not None:
            columns.append(self.target_pscore)
        if self.group is not None:
            columns.append(pd.factorize(self.group, sort=True)[0].astype(np.float64))
        blocks = [np.reshape(c, (n, -1)) for c in columns]
        if self.context is not None:
            blocks.append(self.context)
        blocks.extend(np.asarray(e, dtype=np.float64).reshape(n, -1) for e in extra if e is not None)
        return byte_order(blocks)

    @property
    def n_arms(self) -> int:
        """``n_actions`` when given, else ``max(action) + 1`` (0 for an empty log)."""
        if self.n_actions is not None:
            return self.n_actions
        return int(self.action.max()) + 1 if len(self.action) else 0


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


def byte_order(blocks: Sequence[np.ndarray]) -> np.ndarray:
    """(B,) int64: the stable order of B rows by their bytes, each row being its float64 values in the
    column blocks `blocks` (each (B, k_j)), read left to right.

    Row r precedes row s when its bytes compare lower (unsigned, lexicographic), as a stable ``np.argsort``
    of the rows of ``np.hstack(blocks)`` viewed as one void field each would order them; rows equal in every
    byte keep their given order. The same order is reached faster, without building that matrix. Each
    float64 read as a big-endian uint64 compares as its 8 bytes do; the leading columns, each narrowed to
    the bits its largest word needs (a small integer such as an action or a 0/1 reward needs 16), are
    packed into one uint64 whose numeric order is their lexicographic order, the last one cut to its
    leading bits. One numeric sort by that key orders the rows; only runs of rows that tie on it are
    sorted on their whole row.
    """
    blocks = [np.asarray(b, dtype=np.float64) for b in blocks]
    n = len(blocks[0]) if blocks else 0
    columns = [(b, j) for b in blocks for j in range(b.shape[1])]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    packed = np.zeros(n, dtype=np.uint64)
    free, exact = 64, True
    for position, (block, j) in enumerate(columns):
        # Big-endian: the numeric order of the word is the order of the value's bytes in memory.
        word = block[:, j].view(">u8").astype(np.uint64)
        bits = int(word.max()).bit_length()
        if bits <= free:
            free -= bits
            packed |= word << np.uint64(free)
        else:
            packed |= word >> np.uint64(bits - free)
            free, exact = 0, False
        if free == 0:
            exact = exact and position == len(columns) - 1
            break
    order = np.argsort(packed, kind="stable")
    ranked = packed[order]
    same = ranked[1:] == ranked[:-1]  # same[p]: position p + 1 ties with position p on the key
    if exact or not same.any():
        return order
    in_run = np.zeros(n, dtype=bool)
    in_run[1:] |= same
    in_run[:-1] |= same
    positions = np.flatnonzero(in_run)
    tied = order[positions]
    run = np.cumsum(~np.concatenate([[False], same]))[positions]  # run number of each tied position
    rows = np.empty((len(tied), 1 + len(columns)), dtype=">u8")  # filled by value: stays big-endian
    rows[:, 0] = run
    rows[:, 1:] = np.hstack([b[tied] for b in blocks]).view(">u8")
    whole = rows.view(np.dtype((np.void, rows.shape[1] * 8))).reshape(-1)
    order[positions] = tied[np.argsort(whole, kind="stable")]
    return order


# -- checks shared by the record and the loader -------------------------------------------------------------


def _fmt(value: object) -> str:
    if isinstance(value, float | np.floating):
        return f"{float(value):g}"
    if isinstance(value, int | np.integer | bool | np.bool_):
        return str(value)
    return repr(value)


def _fail_at(mask: np.ndarray, values: np.ndarray, expected: str) -> None:
    """Raise naming the first row where `mask` is True, and how many rows are at fault."""
    bad = np.flatnonzero(mask)
    if len(bad) == 0:
        return
    row = int(bad[0])
    more = f" (and {len(bad) - 1} more rows)" if len(bad) > 1 else ""
    raise ReplayInputError(f"Expected {expected}, found {_fmt(values[row])} at row {row}{more}")


def _as_1d(values: object, name: str, length: tuple[int, str] | None) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ReplayInputError(f"Expected `{name}` of shape (B,), found shape {arr.shape}")
    if length is not None and len(arr) != length[0]:
        raise ReplayInputError(
            f"Expected `{name}` of length {length[0]} (the length of `{length[1]}`), found {len(arr)}"
        )
    return arr


def _as_float(arr: np.ndarray, name: str, what: str) -> np.ndarray:
    if arr.dtype.kind in "biuf":
        return arr.astype(np.float64, copy=False)
    converted = pd.to_numeric(pd.Series(arr), errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(converted) & ~pd.isna(pd.Series(arr)).to_numpy()
    _fail_at(bad, arr, f"numeric `{name}` ({what})")
    return converted


def check_int(value: object, name: str, low: int) -> None:
    """Refuse a `value` that is not an integer (bool excluded) >= `low`."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ReplayInputError(f"Expected `{name}` to be an integer >= {low}, found {value!r}")


def check_action(
    values: object, name: str, *, n_actions: int | None = None, length: tuple[int, str] | None = None
) -> np.ndarray:
    """`values` as (B,) int64 actions: integers in ``[0, n_actions)`` (or >= 0 when n_actions is None)."""
    arr = _as_1d(values, name, length)
    if n_actions is not None and (isinstance(n_actions, bool) or not isinstance(n_actions, int | np.integer)):
        raise ReplayInputError(f"Expected `n_actions` to be a positive integer, found {n_actions!r}")
    if n_actions is not None and n_actions < 1:
        raise ReplayInputError(f"Expected `n_actions` >= 1, found {n_actions}")
    if arr.dtype.kind in "iub":
        ints = arr.astype(np.int64, copy=False)
    else:
        as_float = _as_float(arr, name, "an integer arm index")
        _fail_at(~np.isfinite(as_float) | (as_float != np.round(as_float)), arr, f"integer `{name}`")
        ints = as_float.astype(np.int64)
    _fail_at(ints < 0, ints, f"`{name}` >= 0")
    if n_actions is not None:
        _fail_at(ints >= n_actions, ints, f"`{name}` in [0, {n_actions}) (n_actions={n_actions})")
    return ints


def check_reward(values: object, name: str, *, length: tuple[int, str] | None = None) -> np.ndarray:
    """`values` as (B,) finite float64 rewards."""
    arr = _as_1d(values, name, length)
    out = _as_float(arr, name, "a reward")
    _fail_at(~np.isfinite(out), out, f"a finite `{name}`")
    return out


def check_pscore(values: object, name: str, *, length: tuple[int, str] | None = None) -> np.ndarray:
    """`values` as (B,) float64 logging propensities in (0, 1]."""
    arr = _as_1d(values, name, length)
    out = _as_float(arr, name, "a probability")
    _fail_at(~(np.isfinite(out) & (out > 0.0) & (out <= 1.0)), out, f"`{name}` in (0, 1]")
    return out


def check_probability(values: object, name: str, *, length: tuple[int, str] | None = None) -> np.ndarray:
    """`values` as (B,) float64 probabilities in [0, 1]."""
    arr = _as_1d(values, name, length)
    out = _as_float(arr, name, "a probability")
    _fail_at(~(np.isfinite(out) & (out >= 0.0) & (out <= 1.0)), out, f"`{name}` in [0, 1]")
    return out


def check_group(values: object, name: str, *, length: tuple[int, str] | None = None) -> np.ndarray:
    """`values` as (B,) object array of str group labels; an empty value is refused."""
    arr = _as_1d(values, name, length)
    missing = pd.isna(pd.Series(arr, dtype=object)).to_numpy()
    _fail_at(missing, arr, f"a `{name}` value at every row")
    return arr.astype(str).astype(object)


def check_context(context: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """`context` (B, d) as finite float64; errors name the column (from `names`) and the row."""
    if context.dtype.kind in "biuf":
        out = np.asarray(context, dtype=np.float64)
    else:
        columns = [_as_float(context[:, j], name, "a context feature") for j, name in enumerate(names)]
        out = np.column_stack(columns) if columns else np.zeros((len(context), 0))
    if out.size and not np.isfinite(out).all():
        rows, cols = np.nonzero(~np.isfinite(out))
        j = int(cols[np.argmin(rows)])
        _fail_at(~np.isfinite(out[:, j]), out[:, j], f"finite context column `{names[j]}`")
    return out


# -- frames and files ---------------------------------------------------------------------------------------


def _context_frame(frame: pd.DataFrame, columns: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Numeric columns as they are, bool as 0/1, text or categorical columns one-hot ("col=value")."""
    blocks: list[np.ndarray] = []
    names: list[str] = []
    for col in columns:
        series = frame[col]
        if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
            blocks.append(series.to_numpy(dtype=np.float64, na_value=np.nan)[:, None])
            names.append(str(col))
            continue
        missing = series.isna().to_numpy()
        _fail_at(
            missing, series.to_numpy(dtype=object), f"context column `{col}` to have a value at every row"
        )
        labels = series.astype(str)
        levels = sorted(labels.unique())
        codes = pd.Categorical(labels, categories=levels).codes
        blocks.append((codes[:, None] == np.arange(len(levels))[None, :]).astype(np.float64))
        names.extend(f"{col}={level}" for level in levels)
    if not blocks:
        return np.zeros((len(frame), 0)), ()
    return np.hstack(blocks), tuple(names)


def from_frame(
    frame: pd.DataFrame,
    *,
    action: str = "action",
    reward: str = "reward",
    pscore: str = "pscore",
    context: Sequence[str] | None = None,
    group: str | None = None,
    target_pscore: str | None = None,
    n_actions: int | None = None,
    source: str = "the frame",
) -> LoggedBandit:
    """Build a `LoggedBandit` from the columns of a data frame.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per logged decision.
    action, reward, pscore : str
        Names of the action, reward and logging-propensity columns.
    context : sequence of str, optional
        Context feature columns. None takes every other numeric (or bool) column; ``[]`` takes none.
        Numeric columns are used as they are; text or categorical columns named here are one-hot encoded into
        columns ``"<col>=<value>"``.
    group : str, optional
        Column of group labels (e.g. the section).
    target_pscore : str, optional
        Column holding the target policy's probability of the logged action.
    n_actions : int, optional
        Number of arms; actions outside ``[0, n_actions)`` are refused.
    source : str
        How to name the data in error messages (a file path, for example).

    Returns
    -------
    LoggedBandit

    Raises
    ------
    ReplayInputError
        A column is missing or named twice, or a value is out of range; the message names the column and the
        first row at fault.
    """
    roles = {
        "action": action,
        "reward": reward,
        "pscore": pscore,
        "group": group,
        "target_pscore": target_pscore,
    }
    named = {role: col for role, col in roles.items() if col is not None}
    seen: dict[str, str] = {}
    for role, col in named.items():
        if col in seen:
            raise ReplayInputError(f"Column `{col}` is given as both `{seen[col]}` and `{role}`")
        seen[col] = role
    wanted = list(named.values()) + (list(context) if context is not None else [])
    missing = [col for col in wanted if col not in frame.columns]
    if missing:
        found = ", ".join(map(str, frame.columns)) or "none"
        raise ReplayInputError(f"Column `{missing[0]}` not found in {source}; found columns: {found}")
    if context is None:
        context = [
            col
            for col in frame.columns
            if col not in seen
            and (pd.api.types.is_numeric_dtype(frame[col]) or pd.api.types.is_bool_dtype(frame[col]))
        ]
    else:
        clash = [col for col in context if col in seen]
        if clash:
            raise ReplayInputError(f"Column `{clash[0]}` is given as both `{seen[clash[0]]}` and `context`")

    actions = check_action(frame[action].to_numpy(), action, n_actions=n_actions)
    rewards = check_reward(frame[reward].to_numpy(), reward)
    pscores = check_pscore(frame[pscore].to_numpy(), pscore)
    target = (
        None if target_pscore is None else check_probability(frame[target_pscore].to_numpy(), target_pscore)
    )
    groups = None if group is None else check_group(frame[group].to_numpy(), group)
    matrix, names = _context_frame(frame, context)
    if names:
        matrix = check_context(matrix, names)
    return LoggedBandit(
        action=actions,
        reward=rewards,
        pscore=pscores,
        context=matrix if names else None,
        group=groups,
        target_pscore=target,
        n_actions=n_actions,
        context_names=names or None,
    )


def load_logged_bandit(
    path: str | Path,
    *,
    action: str = "action",
    reward: str = "reward",
    pscore: str = "pscore",
    context: Sequence[str] | None = None,
    group: str | None = None,
    target_pscore: str | None = None,
    n_actions: int | None = None,
    format: str | None = None,
) -> LoggedBandit:
    """Load a logged bandit file (any format of `read_table`) into a `LoggedBandit`.

    The columns are described in docs/replay.md and in `from_frame`, which takes the same keyword options;
    `format` is that of `read_table`.

    Raises
    ------
    ReplayInputError
        The file is missing or of an unknown type, a column is missing, or a value is out of range: the
        message names the column and the first row at fault (row 0 is the first data row).
    """
    frame = read_table(path, format=format)
    return from_frame(
        frame,
        action=action,
        reward=reward,
        pscore=pscore,
        context=context,
        group=group,
        target_pscore=target_pscore,
        n_actions=n_actions,
        source=str(Path(path)),
    )


#: Table formats by file-name ending (checked longest first), as `read_table` reads them.
TABLE_FORMATS = {
    ".csv.gz": "csv",
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "tsv",
    ".tsv.gz": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".jsonl.gz": "jsonl",
    ".ndjson": "jsonl",
}


def table_format(path: str | Path) -> str | None:
    """The format `read_table` reads `path` as, from its name; None for an unknown ending."""
    name = Path(path).name.lower()
    for ending in sorted(TABLE_FORMATS, key=len, reverse=True):
        if name.endswith(ending):
            return TABLE_FORMATS[ending]
    return None


def read_table(path: str | Path, *, format: str | None = None) -> pd.DataFrame:
    """A table file as a data frame: CSV (``.csv``, ``.csv.gz``, ``.txt``), TSV, Parquet (``.parquet``,
    ``.pq``) or JSON lines (``.jsonl``, ``.jsonl.gz``, ``.ndjson``); `format` ("csv", "tsv", "parquet",
    "jsonl") overrides the name. Compressed text is recognised by pandas from the name.
    """
    path = Path(path)
    if not path.is_file():
        raise ReplayInputError(f"Logged bandit file {str(path)!r} does not exist")
    kind = format or table_format(path)
    if kind == "parquet":
        return pd.read_parquet(path)
    if kind in ("csv", "tsv"):
        return pd.read_csv(path, sep="," if kind == "csv" else "\t")
    if kind == "jsonl":
        return pd.read_json(path, lines=True, precise_float=True)
    endings = ", ".join(TABLE_FORMATS)
    raise ReplayInputError(f"Expected a table file ({endings}) or a known `format`, found {path.name!r}")
