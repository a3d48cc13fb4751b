"""`sectionrank replay`: off-policy evaluation of target policies on logged bandit data, from any source.

Sources: sectionrank's decision log (SQLite), a table of logged decisions (.csv, .csv.gz, .tsv, .parquet,
.pq, .jsonl), a Vowpal Wabbit DSJSON log (.dsjson, .dsjson.gz), or the Open Bandit Dataset sample. Each
becomes a `bandits.ope.LoggedBandit` and every target policy one `bandits.ope.evaluate` call; the command
only reads options, builds targets and prints. See docs/replay.md.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import click
import numpy as np
import pandas as pd

from bandits.ope import (
    ESTIMATORS,
    BaseRewardModel,
    LightGBMRewardModel,
    LoggedBandit,
    ReplayInputError,
    RidgeRewardModel,
    TargetPolicyError,
    evaluate,
    from_frame,
    load_obd,
)
from bandits.ope.data import read_table, table_format
from bandits.ope.dsjson import COST_TO_REWARD, DsjsonLog, is_dsjson, load_dsjson, vw_distribution
from bandits.ope.obd import CAMPAIGNS, POLICIES
from sectionrank.commands.learn import log_window_options
from sectionrank.commands.options import LOG_SOURCE, OneLineUsageError, config_option

FORMATS = ("auto", "sqlite", "csv", "tsv", "parquet", "jsonl", "dsjson")
TABLE_POLICIES = "uniform; fixed:ACTION; column:NAME (the target's probability of the logged action only)"
DSJSON_POLICIES = "uniform; fixed:ACTION (0-based in c._multi); a VW cb_explore_adf model file (or vw:PATH)"
PSCORE_ONLY = ("ips", "snips", "replay")


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _target_columns(spec: str, columns: list[str], source: str) -> list[str]:
    """Columns of a target distribution: a comma-separated list, or PREFIX0 .. PREFIX{A-1}."""
    if "," in spec:
        names = _split(spec)
        missing = [c for c in names if c not in columns]
        if missing:
            raise ReplayInputError(f"Target column `{missing[0]}` not found in {source}")
        return names
    numbered = {c[len(spec) :]: c for c in columns if c.startswith(spec) and c[len(spec) :].isdigit()}
    if not numbered:
        raise ReplayInputError(f"Expected target columns {spec}0, {spec}1, ... in {source}, found none")
    indices = sorted(int(k) for k in numbered)
    if indices != list(range(len(indices))):
        raise ReplayInputError(
            f"Expected target columns {spec}0 .. {spec}{len(indices) - 1} without gaps in {source}, "
            f"found {spec}{{{', '.join(map(str, indices))}}}"
        )
    return [numbered[str(i)] for i in indices]


def _aligned(
    frame: pd.DataFrame, columns: list[str], ids: np.ndarray | None, id_col: str | None, source: str
) -> np.ndarray:
    """(B, A) the distribution columns of `frame`, in the log's row order (by `id_col` when given)."""
    if id_col is None:
        if ids is not None and len(frame) != len(ids):
            raise ReplayInputError(
                f"Expected {len(ids)} rows in {source} (one per logged decision, aligned by row), "
                f"found {len(frame)}; or align by an id column with --id-col"
            )
        return frame[columns].to_numpy(dtype=np.float64)
    if id_col not in frame.columns:
        raise ReplayInputError(f"Id column `{id_col}` not found in {source}")
    keys = frame[id_col].astype(str)
    if keys.duplicated().any():
        raise ReplayInputError(
            f"Expected each `{id_col}` once in {source}, found {keys[keys.duplicated()].iloc[0]!r} twice"
        )
    position = pd.Index(keys).get_indexer(pd.Series(ids).astype(str))
    if (position < 0).any():
        missing = ids[np.flatnonzero(position < 0)[0]]
        raise ReplayInputError(f"Logged decision `{id_col}` = {missing!r} not found in {source}")
    return frame[columns].to_numpy(dtype=np.float64)[position]


def _padded(dist: np.ndarray, width: int, source: str) -> np.ndarray:
    if dist.shape[1] > width:
        raise ReplayInputError(
            f"Expected at most {width} target columns (the actions), found {dist.shape[1]} in {source}"
        )
    return np.pad(dist, ((0, 0), (0, width - dist.shape[1])))


def _reward_model(name: str, ridge_alpha: float, seed: int) -> BaseRewardModel:
    return RidgeRewardModel(alpha=ridge_alpha) if name == "ridge" else LightGBMRewardModel(seed=seed)


def _json_value(value: object) -> object:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, np.integer | int) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, np.floating | float):
        return None if math.isnan(value) else float(value)
    return value


@click.command("replay")
@click.option(
    "--log",
    "log_path",
    type=LOG_SOURCE,
    default=None,
    help="Logged decisions: a decision log (SQLite) or a Parquet dataset of logs (a directory, glob or URL), "
    "a table (.csv, .csv.gz, .tsv, .parquet, .pq, "
    ".jsonl) or a VW DSJSON log (.dsjson, .dsjson.gz).",
)
@click.option("--format", "input_format", type=click.Choice(FORMATS), default="auto", show_default=True)
@click.option(
    "--obd",
    "obd_campaign",
    type=click.Choice(CAMPAIGNS),
    default=None,
    help="Instead of --log: the Open Bandit Dataset sample of this campaign.",
)
@click.option(
    "--obd-policy",
    type=click.Choice(POLICIES),
    default="bts",
    show_default=True,
    help="Whose OBD logs to read.",
)
@click.option(
    "--obd-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder or obp-0.5.7.tar.gz holding the OBD, in any layout. Default: the cache.",
)
@click.option(
    "--obd-download", is_flag=True, help="Fetch the OBD into the cache with pip when it is not there."
)
@click.option(
    "--policy",
    "policy_specs",
    multiple=True,
    help="Target policy (repeatable). Decision log: uniform; logging; default; epsilon:EPS; "
    "fixed:SECTION=ARM[,...]; a policy directory or .vw file. Table or OBD: "
    + TABLE_POLICIES
    + ". DSJSON: "
    + DSJSON_POLICIES
    + ".",
)
@click.option(
    "--target-cols",
    default=None,
    help="The target's whole distribution, one column per action: PREFIX (PREFIX0, PREFIX1, ...) or a "
    "comma-separated list; in the log, or in --target-file.",
)
@click.option(
    "--target-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A table of the target's distribution, aligned with the log by row or by --id-col.",
)
@click.option(
    "--id-col",
    default=None,
    help="Align --target-file by this id column (for a DSJSON log it matches EventId).",
)
@click.option(
    "--estimators",
    default=",".join(ESTIMATORS),
    show_default=True,
    help="Comma-separated, among " + ", ".join(ESTIMATORS) + ".",
)
@click.option(
    "--context-cols",
    default=None,
    help="Comma-separated context columns of the reward model (DSJSON: shared-feature names such as "
    "User.age). Default: every numeric column in no other role.",
)
@click.option("--no-context", is_flag=True, help="No context: the reward model is per action only.")
@click.option(
    "--reward-model",
    type=click.Choice(["ridge", "lightgbm"]),
    default="ridge",
    show_default=True,
    help="Reward model of DM and DR.",
)
@click.option("--ridge-alpha", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True)
@click.option(
    "--n-folds",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Cross-fitting folds of the reward model.",
)
@click.option(
    "--dsjson-reward",
    type=click.Choice(list(COST_TO_REWARD)),
    default="neg-cost",
    show_default=True,
    help="DSJSON: the reward made from _label_cost.",
)
@click.option(
    "--precision",
    type=click.IntRange(0, 17),
    default=4,
    show_default=True,
    help="Decimals in the printed table (--out has full precision).",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write JSON here.")
@config_option
@log_window_options
@click.option(
    "--n-bootstrap",
    type=click.IntRange(min=0),
    default=200,
    show_default=True,
    help="Resamples of the intervals; 0: point estimates only.",
)
@click.option(
    "--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05, show_default=True
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--action-col", default="action", show_default=True, help="Table input: the action column.")
@click.option("--reward-col", default="reward", show_default=True, help="Table input: the reward column.")
@click.option("--pscore-col", default="pscore", show_default=True, help="Table input: the propensity column.")
@click.option("--group-col", default=None, help="Table input: a group column (e.g. section).")
@click.option("--n-actions", type=click.IntRange(min=1), default=None, help="Table input: number of arms.")
@click.option(
    "--dask",
    "dask_spec",
    default=None,
    help="Decision-log dataset: replay partition by partition on this Dask cluster (a scheduler address, "
    "or local:N for N local worker processes), from per-partition sums; estimators ips, snips, dr.",
)
@click.option(
    "--sample-rows",
    type=click.IntRange(min=1),
    default=200_000,
    show_default=True,
    help="With --dask: rows sampled to fit DR's reward model.",
)
def replay_command(
    log_path,
    input_format,
    obd_campaign,
    obd_policy,
    obd_dir,
    obd_download,
    policy_specs,
    target_cols,
    target_file,
    id_col,
    estimators,
    context_cols,
    no_context,
    reward_model,
    ridge_alpha,
    n_folds,
    dsjson_reward,
    precision,
    out,
    config_path,
    reward,
    wait_seconds,
    default_reward,
    since,
    until,
    n_bootstrap,
    alpha,
    seed,
    action_col,
    reward_col,
    pscore_col,
    group_col,
    n_actions,
    dask_spec,
    sample_rows,
) -> None:
    """Estimate target policies' values offline from logged decisions (off-policy evaluation).

    Prints, per section (or group) and overall, each estimator's value with its bootstrap interval, the
    effective sample size and the largest importance weight. Reads a decision log, a table of logged
    decisions, a VW DSJSON log or the Open Bandit Dataset; the target is a named policy, or its whole
    distribution as columns (--target-cols) or a file (--target-file).

    \b
    Example:
        sectionrank replay --log runs/sim/log.db --policy runs/policy --policy default --out replay.json
        sectionrank replay --log events.dsjson.gz --policy uniform --policy model.vw
        sectionrank replay --log log.parquet --target-cols target_ --context-cols hour,device
        sectionrank replay --obd all --obd-policy bts --obd-dir ~/obd --policy uniform
        sectionrank replay --log runs/dataset --dask local:2 --policy runs/policy --policy default
    """
    if dask_spec is not None and estimators == ",".join(ESTIMATORS):
        from bandits.replay_dask import PARTITION_ESTIMATORS

        estimators = ",".join(PARTITION_ESTIMATORS)
    names = tuple(_split(estimators))
    unknown = [e for e in names if e not in ESTIMATORS]
    if unknown or not names:
        raise OneLineUsageError(
            f"--estimators: expected one or more of {', '.join(ESTIMATORS)}, found {estimators!r}"
        )
    if (log_path is None) == (obd_campaign is None):
        raise OneLineUsageError("give the logged decisions with --log FILE or --obd CAMPAIGN (one of them)")
    if not policy_specs and target_cols is None and target_file is None:
        raise OneLineUsageError("give a target policy: --policy, --target-cols or --target-file")
    if no_context and context_cols is not None:
        raise OneLineUsageError("give --context-cols or --no-context, not both")
    context = [] if no_context else (_split(context_cols) if context_cols is not None else None)
    kind = input_format
    if log_path is not None and kind == "auto":
        kind = "dsjson" if is_dsjson(log_path) else table_format(log_path) or "sqlite"
    options = {
        "estimators": names,
        "reward_model": _reward_model(reward_model, ridge_alpha, seed),
        "n_folds": n_folds,
        "n_bootstrap": n_bootstrap,
        "alpha": alpha,
        "seed": seed,
    }
    if dask_spec is not None and kind != "sqlite":
        raise OneLineUsageError("--dask replays a dataset of decision logs (give --log DIR, a glob or a URL)")
    if kind == "sqlite":
        if target_cols is not None or target_file is not None or context is not None:
            raise OneLineUsageError(
                "--target-cols, --target-file, --context-cols and --no-context apply to table, DSJSON and "
                "OBD input; a decision log's targets are --policy specs"
            )
        window = (reward, wait_seconds, default_reward, since, until)
        if dask_spec is not None:
            from sectionrank.commands.replay_dask import replay_on_dask

            table = replay_on_dask(
                log_path, policy_specs, config_path, window, options, dask_spec, sample_rows
            )
        else:
            table = _replay_decision_log(log_path, policy_specs, config_path, *window, options)
        label = "section"
    else:
        if obd_campaign is not None:
            logged = load_obd(obd_policy, obd_campaign, path=obd_dir, download=obd_download)
            logged, ids, dsjson, frame = _with_context(logged, context), None, None, None
        elif kind == "dsjson":
            dsjson = load_dsjson(log_path, reward=dsjson_reward, context=context)
            logged, ids, frame = dsjson.logged, dsjson.event_id, None
        else:
            frame, dsjson = read_table(log_path, format=kind), None
            logged, ids = _table_log(
                frame,
                log_path,
                policy_specs,
                target_cols if target_file is None else None,
                id_col,
                context,
                action_col,
                reward_col,
                pscore_col,
                group_col,
                n_actions,
            )
        targets = _targets(
            logged, dsjson, frame, ids, log_path, policy_specs, target_cols, target_file, id_col
        )
        table = _evaluate_targets(logged, targets, options)
        label = "group"
    print_replay(table, alpha=alpha, precision=precision, label=label)
    if out is not None:
        rows = [{k: _json_value(v) for k, v in row.items()} for row in table.to_dict(orient="records")]
        document = {"alpha": alpha, "n_bootstrap": n_bootstrap, "seed": seed, "rows": rows}
        out.write_text(json.dumps(document, indent=2, allow_nan=False))
        click.echo(f"\nWrote {out}")


def _with_context(logged: LoggedBandit, context: list[str] | None) -> LoggedBandit:
    """`logged` with only the named context columns (None: as it is; []: none)."""
    if context is None:
        return logged
    names = list(logged.context_names or ())
    missing = [c for c in context if c not in names]
    if missing:
        raise ReplayInputError(
            f"Context column `{missing[0]}` not found; found: {', '.join(names) or 'none'}"
        )
    keep = [names.index(c) for c in context]
    return LoggedBandit(
        action=logged.action,
        reward=logged.reward,
        pscore=logged.pscore,
        context=logged.context[:, keep] if keep else None,
        group=logged.group,
        n_actions=logged.n_actions,
        context_names=tuple(context) or None,
    )


def _table_log(
    frame, path, specs, target_cols, id_col, context, action_col, reward_col, pscore_col, group_col, n_actions
):
    """The logged decisions of a table; by default the context leaves out the target's and id columns."""
    used = {c for c in (action_col, reward_col, pscore_col, group_col, id_col) if c}
    used |= {spec[len("column:") :] for spec in specs if spec.startswith("column:")}
    if target_cols is not None:
        used |= set(_target_columns(target_cols, list(map(str, frame.columns)), str(path)))
    if context is None:
        context = [
            c
            for c in frame.columns
            if c not in used
            and (pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]))
        ]
    logged = from_frame(
        frame,
        action=action_col,
        reward=reward_col,
        pscore=pscore_col,
        context=context,
        group=group_col,
        n_actions=n_actions,
        source=str(path),
    )
    ids = frame[id_col].to_numpy() if id_col is not None and id_col in frame.columns else None
    return logged, ids


def _targets(
    logged, dsjson: DsjsonLog | None, frame, ids, path, specs, target_cols, target_file, id_col
) -> dict[str, dict]:
    """Each target policy by its name: ``{"action_dist": (B, A)}`` or ``{"target_pscore": (B,)}``."""
    width = logged.n_arms
    n = len(logged)
    targets: dict[str, dict] = {}
    for spec in specs:
        if spec == "uniform":
            dist = dsjson.uniform() if dsjson is not None else np.full((n, width), 1.0 / width)
            targets[spec] = {"action_dist": dist}
        elif spec.startswith("fixed:"):
            ref = spec[len("fixed:") :]
            if not ref.isdigit() or int(ref) >= width:
                raise ReplayInputError(f"policy {spec!r}: expected fixed:ACTION with ACTION in [0, {width})")
            if dsjson is not None:
                targets[spec] = {"action_dist": dsjson.fixed(int(ref))}
            else:
                dist = np.zeros((n, width))
                dist[:, int(ref)] = 1.0
                targets[spec] = {"action_dist": dist}
        elif spec.startswith("column:") and frame is not None:
            column = spec[len("column:") :]
            if column not in frame.columns:
                raise ReplayInputError(f"policy {spec!r}: column `{column}` not found in {path}")
            targets[spec] = {"target_pscore": frame[column].to_numpy()}
        elif dsjson is not None and (spec.startswith("vw:") or Path(spec).is_file()):
            model = spec[len("vw:") :] if spec.startswith("vw:") else spec
            targets[spec] = {"action_dist": vw_distribution(path, model, dsjson)}
        else:
            allowed = DSJSON_POLICIES if dsjson is not None else TABLE_POLICIES
            raise ReplayInputError(f"policy {spec!r}: expected one of: {allowed}")
    if target_file is not None:
        other = read_table(target_file)
        columns = (
            _target_columns(target_cols, list(map(str, other.columns)), str(target_file))
            if target_cols
            else [c for c in other.columns if c != id_col and pd.api.types.is_numeric_dtype(other[c])]
        )
        dist = _aligned(other, columns, ids if id_col else np.empty(n), id_col, str(target_file))
        targets[f"file:{target_file}"] = {"action_dist": _padded(dist, width, str(target_file))}
    elif target_cols is not None:
        if frame is None:
            raise OneLineUsageError(
                "--target-cols without --target-file needs a table log (the columns are in it)"
            )
        columns = _target_columns(target_cols, list(map(str, frame.columns)), str(path))
        targets[f"cols:{target_cols}"] = {
            "action_dist": _padded(frame[columns].to_numpy(dtype=np.float64), width, str(path))
        }
    if dsjson is not None:
        for name, target in targets.items():
            dist = target.get("action_dist")
            outside = dist is not None and (dist * ~dsjson.support()).any(axis=1)
            if dist is not None and outside.any():
                row = int(np.flatnonzero(outside)[0])
                raise ReplayInputError(
                    f"policy {name!r}: gives probability to an action the event at line {dsjson.line[row]} "
                    f"does not offer ({dsjson.n_event_actions[row]} actions)"
                )
    return targets


def _evaluate_targets(logged: LoggedBandit, targets: dict[str, dict], options: dict) -> pd.DataFrame:
    frames = []
    for name, target in targets.items():
        if "target_pscore" in target:
            needing = [e for e in options["estimators"] if e not in PSCORE_ONLY]
            if needing:
                enough = ",".join(e for e in options["estimators"] if e in PSCORE_ONLY) or "ips,snips"
                raise TargetPolicyError(
                    f"policy {name!r} gives only the probability of the logged action, and "
                    f"{', '.join(needing)} need the target's whole distribution: give it with --target-cols "
                    f"or --target-file, or use --estimators {enough}"
                )
        table = evaluate(logged, **target, **options)
        table.insert(0, "policy", name)
        frames.append(table)
    return pd.concat(frames, ignore_index=True)


def _replay_decision_log(
    log_path, specs, config_path, reward, wait_seconds, default_reward, since, until, options
) -> pd.DataFrame:
    from bandits.dataset_read import open_log
    from bandits.learn import LearnSettings, read_decisions
    from bandits.replay import parse_policy, replay_table
    from heuristics import SectionsConfig
    from sectionrank.progress import progress

    if not specs:
        raise OneLineUsageError("a decision log's targets are --policy specs; give at least one")
    sections = SectionsConfig.load(config_path)
    settings = LearnSettings(
        reward=reward, wait_seconds=wait_seconds, default_reward=default_reward, since=since, until=until
    )
    with open_log(log_path) as log:
        decisions = read_decisions(log, sections, settings)
    if len(decisions) == 0:
        raise click.ClickException(f"{log_path}: no decisions in this window")
    policies = {spec: parse_policy(spec, sections) for spec in specs}
    return replay_table(
        decisions, sections, policies, progress=lambda steps: progress(steps, desc="replaying"), **options
    )


def print_replay(
    table: pd.DataFrame, *, alpha: float = 0.05, precision: int = 4, label: str = "section"
) -> None:
    """The table, one block per policy; values with `precision` decimals."""
    width = max(9, precision + 4)
    level = f"{100 * (1 - alpha):g}% interval"
    for policy, rows in table.groupby("policy", sort=False):
        click.echo(f"\npolicy {policy}")
        header = f"  {label:<18} {'estimator':<9} {'value':>{width}} {level:>{2 * width + 4}}"
        click.echo(f"{header} {'ESS':>10} {'max w':>8} {'n':>8}")
        for row in rows.itertuples():
            click.echo(
                f"  {row.group:<18} {row.estimator:<9} {row.value:>{width}.{precision}f} "
                f"[{row.ci_low:>{width}.{precision}f}, {row.ci_high:>{width}.{precision}f}] {row.ess:>10.1f} "
                f"{row.max_weight:>8.2f} {row.n:>8,}"
            )
