"""Replay of knob policies over a decision-log dataset, partition by partition, on a Dask cluster.

Each partition (whole shipped chunks of about 200,000 decisions, `LogDataset.partitions`) is read, joined
and turned into logged decisions by the worker that owns it, exactly as the in-memory replay
(`bandits.replay`) reads the whole log, decoding only the columns it uses; the worker returns only sums,
per (policy, estimator, section):

    n, sum w, sum w^2, max w, #(w = 0), sum v, sum v^2, sum d, sum d^2, sum v d

where ``v`` and ``d`` are the estimator's per-row values and denominators (`bandits.ope.base.RoundValues`:
IPS ``v = w r, d = 1``; SNIPS ``v = w r, d = w``; DR ``v = sum_a pi(a|x) q(x, a) + w (r - q(x, A)), d = 1``).
The client adds them up. Every estimate is a ratio of sums, ``V = sum v / sum d``, so IPS, SNIPS and their
weight diagnostics (ESS ``(sum w)^2 / sum w^2``, max weight, zero-weight share) equal the in-memory values up
to float summation order.

Intervals come from the same sums, without gathering rows: the delta-method normal interval of a ratio,
``V +- z * sqrt(n / (n - 1) * sum (v - V d)^2) / sum d``, with ``sum (v - V d)^2 = sum v^2 - 2 V sum v d +
V^2 sum d^2``. In memory the intervals are percentile bootstraps; both have the nominal coverage
asymptotically, and they differ by sampling noise.

DR's reward model is fitted once, on a sample of about ``sample_rows`` rows (seeded partitions, then seeded
rows within them: `fit_reward_model`), gathered to the client; the fitted model goes to the workers, which
predict ``q`` for their own rows. The in-memory DR cross-fits on every row instead, so DR at scale is close
to it but not equal (and the sampled rows are also scored by a model that saw them).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from bandits.dataset_read import PARTITION_ROWS, DataFile, LogDataset
from bandits.errors import InvalidArgumentError
from bandits.learn import LearnSettings, LoggedDecisions, context_matrix, decisions_from_frame
from bandits.ope import BaseRewardModel, RidgeRewardModel
from bandits.ope.base import prepare
from bandits.ope.estimators import DoublyRobust, InverseProbabilityWeighting, SelfNormalizedIPS
from bandits.replay import logged_bandit, parse_policy, target_distribution
from heuristics import SectionsConfig

#: Estimators that run from per-partition sums.
PARTITION_ESTIMATORS = ("ips", "snips", "dr")
#: DR's sample reads partitions holding about this many times `sample_rows` rows.
SAMPLE_READ = 4
SUMS = ("n", "sum_w", "sum_w2", "max_w", "n_zero", "sum_v", "sum_v2", "sum_d", "sum_d2", "sum_vd")
_ESTIMATORS = {"ips": InverseProbabilityWeighting(), "snips": SelfNormalizedIPS(), "dr": DoublyRobust()}
#: Decisions a worker decodes at a time: its memory holds one slice's Python dicts and arrays.
SLICE_ROWS = 25_000
#: The joined columns logged decisions are made of (`decisions_from_frame`): all a partition reads.
LOGGED_COLUMNS = (
    "time",
    "section",
    "context",
    "arm_id",
    "arm_index",
    "propensity",
    "arm_probs",
    "has_feedback",
    "clicks",
    "conversions",
    "revenue",
    "reward",
)


@dataclass(frozen=True)
class RewardModelFit:
    """DR's reward model fitted on a sample, and the context columns it was fitted on."""

    model: BaseRewardModel
    names: tuple[str, ...]
    rows: int


def _decisions(
    dataset: LogDataset, files: Sequence[DataFile], sections: SectionsConfig, settings: LearnSettings
) -> Iterator[LoggedDecisions]:
    """The partition's logged decisions, `SLICE_ROWS` at a time (memory holds one slice decoded)."""
    frames = dataset.joined_slices(
        files,
        slice_rows=SLICE_ROWS,
        wait_seconds=settings.wait_seconds,
        since=settings.since,
        until=settings.until,
        columns=LOGGED_COLUMNS,
    )
    for frame in frames:
        yield decisions_from_frame(
            frame, sections, reward=settings.reward, default_reward=settings.default_reward
        )


def aligned_context(decisions: LoggedDecisions, names: Sequence[str]) -> np.ndarray:
    """(B, len(names)) the context matrix (`context_matrix`) with the columns `names`, in that order; a
    level this partition lacks is a column of zeros, a level the names lack is left out."""
    matrix, own = context_matrix(decisions.context)
    position = {name: j for j, name in enumerate(own)}
    out = np.zeros((len(decisions), len(names)))
    pairs = [(i, position[name]) for i, name in enumerate(names) if name in position]
    if pairs:
        target, source = (np.array(p) for p in zip(*pairs, strict=True))
        out[:, target] = matrix[:, source]
    return out


def partition_sample(
    dataset: LogDataset,
    files: Sequence[DataFile],
    *,
    sections: SectionsConfig,
    settings: LearnSettings,
    fraction: float,
    seed: int,
    index: int,
) -> pd.DataFrame:
    """The rows of one partition kept with probability `fraction` (seeded by ``[seed, index]``), as what a
    reward model needs of them: the context matrix (`context_matrix`, one column per name), then
    ``_arm_index`` and ``_reward``."""
    rng = np.random.default_rng([seed, index])  # one stream over the slices, as over the whole partition
    frames = []
    for decisions in _decisions(dataset, files, sections, settings):
        keep = np.flatnonzero(rng.random(len(decisions)) < fraction)
        sample = decisions.take(keep)
        matrix, names = context_matrix(sample.context) if len(sample) else (np.empty((0, 0)), ())
        frame = pd.DataFrame(matrix, columns=list(names))
        frame["_arm_index"] = sample.arm_index
        frame["_reward"] = sample.reward
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["_arm_index", "_reward"])
    # A level one slice lacks is a column of zeros there (as `aligned_context` gives).
    return pd.concat(frames, ignore_index=True).fillna(0.0)


def partition_sums(
    dataset: LogDataset,
    files: Sequence[DataFile],
    *,
    sections: SectionsConfig,
    settings: LearnSettings,
    policies: Sequence[str],
    estimators: Sequence[str],
    reward_fit: RewardModelFit | None = None,
) -> pd.DataFrame:
    """One row of `SUMS` per (policy, estimator, section) present in one slice of one partition (the
    sums of a partition are those of its slices added)."""
    targets = {spec: parse_policy(spec, sections) for spec in policies}
    records: list[dict[str, Any]] = []
    for decisions in _decisions(dataset, files, sections, settings):
        if len(decisions):
            records += _slice_sums(decisions, sections, targets, estimators, reward_fit)
    return pd.DataFrame.from_records(records, columns=["policy", "estimator", "group", *SUMS])


def _slice_sums(
    decisions: LoggedDecisions,
    sections: SectionsConfig,
    targets: dict[str, Any],
    estimators: Sequence[str],
    reward_fit: RewardModelFit | None,
) -> list[dict[str, Any]]:
    logged = logged_bandit(decisions, sections)
    qhat = None
    if reward_fit is not None:
        context = aligned_context(decisions, reward_fit.names)
        qhat = reward_fit.model.predict(context, len(decisions))
        width = logged.n_arms
        qhat = np.pad(qhat, ((0, 0), (0, max(width - qhat.shape[1], 0))))[:, :width]
    labels, group = np.unique(decisions.context.section.astype(str), return_inverse=True)
    k = len(labels)
    records = []
    for spec, target in targets.items():
        data = prepare(logged, target_distribution(target, decisions, sections), qhat=qhat)
        w = data.weight
        per_group = {
            "n": np.bincount(group, minlength=k).astype(np.float64),
            "sum_w": np.bincount(group, w, k),
            "sum_w2": np.bincount(group, w * w, k),
            "n_zero": np.bincount(group, (w == 0).astype(np.float64), k),
        }
        max_w = np.full(k, -np.inf)
        np.maximum.at(max_w, group, w)
        for name in estimators:
            values = _ESTIMATORS[name].round_values(data)
            v = values.value
            d = np.ones_like(v) if values.weight is None else values.weight
            sums = {
                "sum_v": np.bincount(group, v, k),
                "sum_v2": np.bincount(group, v * v, k),
                "sum_d": np.bincount(group, d, k),
                "sum_d2": np.bincount(group, d * d, k),
                "sum_vd": np.bincount(group, v * d, k),
            }
            for g, label in enumerate(labels):
                row: dict[str, Any] = {"policy": spec, "estimator": name, "group": str(label)}
                row.update({key: float(arr[g]) for key, arr in per_group.items()})
                row["max_w"] = float(max_w[g])
                row.update({key: float(arr[g]) for key, arr in sums.items()})
                records.append(row)
    return records


def estimates_from_sums(sums: pd.DataFrame, *, alpha: float = 0.05) -> pd.DataFrame:
    """The replay table from summed `SUMS` rows: per policy, an ``overall`` row (the sum over sections)
    then each section, per estimator; columns as `bandits.replay.replay_table` (``n_accepted`` missing).

    ``value = sum_v / sum_d`` (NaN when ``sum_d`` is 0); the interval is the delta-method normal interval
    of the ratio (see the module docstring), NaN with fewer than 2 rows.
    """
    keys = ["policy", "estimator", "group"]
    adding = [c for c in SUMS if c != "max_w"]
    grouped = sums.groupby(keys, sort=False)
    per_group = grouped[adding].sum().join(grouped["max_w"].max()).reset_index()
    overall = per_group.groupby(["policy", "estimator"], sort=False)
    total = overall[adding].sum().join(overall["max_w"].max()).reset_index().assign(group="overall")
    table = pd.concat([total, per_group], ignore_index=True)
    table["_order"] = table["group"].ne("overall").astype(int)
    policies = {p: i for i, p in enumerate(pd.unique(sums["policy"]))}
    estimators = {e: i for i, e in enumerate(pd.unique(sums["estimator"]))}
    table = table.assign(
        _policy=table["policy"].map(policies), _estimator=table["estimator"].map(estimators)
    ).sort_values(["_policy", "_order", "group", "_estimator"], kind="stable")
    z = NormalDist().inv_cdf(1 - alpha / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where(table["sum_d"] != 0, table["sum_v"] / table["sum_d"], np.nan)
        n = table["n"].to_numpy()
        residual = table["sum_v2"] - 2 * value * table["sum_vd"] + value**2 * table["sum_d2"]
        se = np.sqrt(np.maximum(residual.to_numpy(), 0) * n / (n - 1)) / np.abs(table["sum_d"].to_numpy())
        se = np.where(n >= 2, se, np.nan)
        ess = np.where(table["sum_w2"] > 0, table["sum_w"] ** 2 / table["sum_w2"], 0.0)
    out = pd.DataFrame(
        {
            "policy": table["policy"].to_numpy(),
            "group": table["group"].to_numpy(),
            "estimator": table["estimator"].to_numpy(),
            "value": value,
            "ci_low": value - z * se,
            "ci_high": value + z * se,
            "ess": ess,
            "max_weight": table["max_w"].to_numpy(),
            "zero_weight_share": (table["n_zero"] / table["n"]).to_numpy(),
            "n": table["n"].to_numpy().astype(np.int64),
            "n_accepted": pd.array([pd.NA] * len(table), dtype="Int64"),
        }
    )
    return out.reset_index(drop=True)


def _run(client: Any, function: Any, chunks: list[list[DataFile]], **kwargs: Any) -> list[Any]:
    """`function(files=chunk, index=i, **kwargs)` over the chunks: on the Dask `client`'s workers, or here
    without one. The arguments common to every task (the dataset's file list among them) are sent to the
    workers once, not once per task."""
    if client is None:
        return [function(files=files, index=i, **kwargs) for i, files in enumerate(chunks)]
    shared = client.scatter(kwargs, broadcast=True)
    futures = [
        client.submit(_with_shared, function, shared, files=files, index=i, pure=False)
        for i, files in enumerate(chunks)
    ]
    return client.gather(futures)


def _with_shared(function: Any, shared: dict[str, Any], **kwargs: Any) -> Any:
    return function(**shared, **kwargs)


def _sample_task(*, dataset, files, index, **kwargs):
    return partition_sample(dataset, files, index=index, **kwargs)


def _sums_task(*, dataset, files, index, **kwargs):
    return partition_sums(dataset, files, **kwargs)


def fit_reward_model(
    dataset: LogDataset,
    sections: SectionsConfig,
    settings: LearnSettings,
    *,
    reward_model: BaseRewardModel | None = None,
    sample_rows: int = 200_000,
    seed: int = 0,
    client: Any = None,
    partition_rows: int = PARTITION_ROWS,
) -> RewardModelFit:
    """DR's reward model, fitted on about `sample_rows` rows.

    The rows are drawn in two seeded stages, so that only about four times the sample is read: a random
    choice of partitions (every partition when the dataset holds fewer than four samples' worth), then each
    of their rows with the same probability.
    """
    chunks = dataset.partitions(partition_rows)
    total = dataset.count()
    if total <= sample_rows:
        fraction = 1.0
    else:
        m = min(len(chunks), math.ceil(len(chunks) * SAMPLE_READ * sample_rows / total))
        picked = np.sort(np.random.default_rng(seed).permutation(len(chunks))[:m])
        fraction = min(1.0, sample_rows / total * len(chunks) / m)
        chunks = [chunks[i] for i in picked]
    frames = _run(
        client,
        _sample_task,
        chunks,
        dataset=dataset,
        sections=sections,
        settings=settings,
        fraction=fraction,
        seed=seed,
    )
    frames = [f for f in frames if len(f)]
    if not frames:
        raise InvalidArgumentError(f"{dataset.path}: no decisions to fit DR's reward model on")
    # A level one partition lacks is a column of zeros there (as `aligned_context` gives the workers).
    sample = pd.concat(frames, ignore_index=True).fillna(0.0)
    names = tuple(c for c in sample.columns if c not in ("_arm_index", "_reward"))
    model = reward_model if reward_model is not None else RidgeRewardModel()
    model.fit(
        sample[list(names)].to_numpy(np.float64),
        sample["_arm_index"].to_numpy(np.int64),
        sample["_reward"].to_numpy(np.float64),
        n_actions=max(len(s.arms) for s in sections),
    )
    return RewardModelFit(model=model, names=names, rows=len(sample))


def replay_dataset(
    dataset: LogDataset,
    sections: SectionsConfig,
    policies: Sequence[str],
    settings: LearnSettings,
    *,
    estimators: Sequence[str] = PARTITION_ESTIMATORS,
    reward_model: BaseRewardModel | None = None,
    sample_rows: int = 200_000,
    alpha: float = 0.05,
    seed: int = 0,
    client: Any = None,
    partition_rows: int = PARTITION_ROWS,
) -> pd.DataFrame:
    """Estimates of every policy (a spec of `bandits.replay.parse_policy`) from per-partition sums.

    Parameters
    ----------
    dataset : LogDataset
    sections : SectionsConfig
    policies : target policy specs, parsed on the workers
    settings : the reward, wait window, default reward and time window (`LearnSettings`; `vw` unused)
    estimators : among `PARTITION_ESTIMATORS`
    reward_model : DR's reward model (default `RidgeRewardModel`), fitted on a sample of `sample_rows`
    alpha : intervals have nominal coverage ``1 - alpha``
    seed : seeds the DR sample
    client : a ``distributed.Client``; None runs the partitions one after the other in this process
    partition_rows : decisions per partition (`LogDataset.partitions`: whole shipped chunks, grouped)

    Returns
    -------
    DataFrame
        As `estimates_from_sums`.
    """
    unknown = [e for e in estimators if e not in PARTITION_ESTIMATORS]
    if unknown or not estimators:
        raise InvalidArgumentError(
            f"Expected estimators among {', '.join(PARTITION_ESTIMATORS)} over partitions, found "
            f"{', '.join(estimators) or 'none'}"
        )
    if not policies:
        raise InvalidArgumentError("Expected at least one target policy, found none")
    for spec in policies:
        parse_policy(spec, sections)  # a bad spec fails here, once, not on every worker
    reward_fit = None
    if "dr" in estimators:
        reward_fit = fit_reward_model(
            dataset,
            sections,
            settings,
            reward_model=reward_model,
            sample_rows=sample_rows,
            seed=seed,
            client=client,
            partition_rows=partition_rows,
        )
    sums = _run(
        client,
        _sums_task,
        dataset.partitions(partition_rows),
        dataset=dataset,
        sections=sections,
        settings=settings,
        policies=list(policies),
        estimators=list(estimators),
        reward_fit=reward_fit,
    )
    sums = [s for s in sums if len(s)]
    if not sums:
        raise InvalidArgumentError(f"{dataset.path}: no decisions in this window")
    return estimates_from_sums(pd.concat(sums, ignore_index=True), alpha=alpha)
