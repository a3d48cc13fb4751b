"""`sectionrank replay --dask`: a decision-log dataset replayed on a Dask cluster (`bandits.replay_dask`)."""

from __future__ import annotations

import pandas as pd

from bandits.dataset_read import LogDataset, is_dataset
from bandits.learn import LearnSettings
from bandits.replay_dask import PARTITION_ESTIMATORS, replay_dataset
from heuristics import SectionsConfig
from sectionrank.commands.options import OneLineUsageError
from sectionrank.dask_cluster import check_dask_spec, dask_client


def replay_on_dask(
    log_path, specs, config_path, window, options, dask_spec: str, sample_rows: int
) -> pd.DataFrame:
    """The replay table of a decision-log dataset from per-partition sums on the cluster `dask_spec`."""
    check_dask_spec(dask_spec)
    if not is_dataset(log_path):
        raise OneLineUsageError(
            f"--dask reads a dataset of decision logs, not the SQLite file {log_path}: ship it with "
            "`sectionrank export --log DB --dataset DIR`"
        )
    if not specs:
        raise OneLineUsageError("a decision log's targets are --policy specs; give at least one")
    outside = [e for e in options["estimators"] if e not in PARTITION_ESTIMATORS]
    if outside:
        raise OneLineUsageError(
            f"--dask computes {', '.join(PARTITION_ESTIMATORS)} from per-partition sums, not "
            f"{', '.join(outside)}"
        )
    sections = SectionsConfig.load(config_path)
    reward, wait_seconds, default_reward, since, until = window
    settings = LearnSettings(
        reward=reward, wait_seconds=wait_seconds, default_reward=default_reward, since=since, until=until
    )
    dataset = LogDataset.open(log_path)
    with dask_client(dask_spec) as client:
        return replay_dataset(
            dataset,
            sections,
            list(specs),
            settings,
            estimators=options["estimators"],
            reward_model=options["reward_model"],
            sample_rows=sample_rows,
            alpha=options["alpha"],
            seed=options["seed"],
            client=client,
        )
