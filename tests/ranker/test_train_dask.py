"""Training with LightGBM's Dask interface, and replay on a Dask cluster, against one process.

The cluster tests share one LocalCluster of 2 worker processes with 1 thread each (module scope: a cluster
start costs seconds) and run with fewer boosting rounds than the shipped config, on both sides alike.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

import ranker.dataset
from bandits.dataset import ship_log
from bandits.dataset_read import LogDataset
from bandits.learn import LearnSettings, read_decisions
from bandits.log import DecisionLog
from bandits.replay import parse_policy, replay_table
from bandits.replay_dask import replay_dataset
from heuristics import SectionsConfig
from ranker.dataset import STATS, TEST, TRAIN, VALIDATION, prepare_log
from ranker.dataset_dask import prepare_log_on_cluster
from ranker.errors import TrainingDataError
from ranker.features import FeatureBuilder, FeatureTables
from ranker.labels import LabelledLists, concat_lists
from ranker.metrics import OVERALL
from ranker.model import RankerModel
from ranker.stats import item_stats
from ranker.train import InMemoryTraining, _union_lists, train_design
from ranker.train_dask import DaskLambdaRanker, dealt_order, early_stopped, ndcg_history

DESIGNS = ("base", "consolidated", "independent")


@pytest.fixture(scope="module")
def dataset_root(sim_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("train-dask") / "ds"
    with DecisionLog.open(sim_dir / "log.db") as log:
        ship_log(log, root, host="sim", chunk_size=900)
    return root


@pytest.mark.parametrize(("n_lists", "parts"), [(1, 4), (10, 3), (10, 10), (97, 4), (5, 1), (10, 4)])
def test_train_dask_partitions_deal_whole_lists_in_turn(rng, n_lists, parts):
    sizes = rng.integers(1, 9, size=n_lists)
    list_order, row_order, lists = dealt_order(sizes, parts)
    assert len(lists) == min(parts, n_lists)
    assert (lists >= 1).all()
    assert lists.sum() == n_lists
    assert lists.max() - lists.min() <= 1
    # naive reference: partition p holds lists p, p + P, ..., each list's rows whole and in order
    p_count = len(lists)
    expected_lists = [i for p in range(p_count) for i in range(p, n_lists, p_count)]
    np.testing.assert_array_equal(list_order, expected_lists)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    expected_rows = [r for i in expected_lists for r in range(starts[i], starts[i + 1])]
    np.testing.assert_array_equal(row_order, expected_rows)
    edges = np.concatenate([[0], np.cumsum(lists)])
    for p in range(p_count):
        assert (list_order[edges[p] : edges[p + 1]] % p_count == p).all()


def test_train_dask_early_stopping_picks_what_one_process_picks():
    history = [0.1, 0.3, 0.2, 0.3, 0.25, 0.5, 0.4, 0.45, 0.46, 0.47, 0.9]
    # patience 3: the equal 0.3 at iteration 4 is no improvement, and iteration 5 ends the wait
    assert early_stopped(history, 3) == (2, 0.3)
    # patience 4: 0.5 at iteration 6, then 4 rounds without improvement; the 0.9 is never seen
    assert early_stopped(history, 4) == (6, 0.5)
    assert early_stopped(history, 10) == (11, 0.9)
    assert early_stopped([0.2, 0.2, 0.2], 5) == (1, 0.2)  # a tie keeps the earlier iteration


def test_train_dask_validation_history_equals_lightgbm_ndcg(rng):
    import lightgbm as lgb

    sizes = rng.integers(1, 12, size=80)
    n = int(sizes.sum())
    x = rng.normal(size=(n, 4))
    x[:, 3] = np.round(x[:, 3])  # ties in the score
    y = rng.integers(0, 3, size=n) * (rng.random(n) < 0.4)  # lists without a positive label too
    params = {"objective": "lambdarank", "metric": "ndcg", "eval_at": [5], "verbosity": -1, "seed": 1}
    train = lgb.Dataset(x, label=y, group=sizes, params={"verbosity": -1})
    valid = lgb.Dataset(x, label=y, group=sizes, reference=train)
    booster = lgb.Booster(params=params, train_set=train)
    booster.add_valid(valid, "validation")
    reference = []
    for _ in range(15):
        booster.update()
        reference.append(booster.eval_valid()[0][2])
    np.testing.assert_allclose(ndcg_history(booster, x, y, sizes, 5), reference, rtol=1e-12, atol=1e-12)


def test_train_sqlite_log_and_its_dataset_give_identical_labels(sim_dir, dataset_root, ranker_config):
    from_log = prepare_log(sim_dir / "log.db", ranker_config)
    from_dataset = prepare_log(dataset_root, ranker_config)
    for name in ("label", "item_id", "position", "request_of_row", "event_id", "feedback_time"):
        np.testing.assert_array_equal(getattr(from_dataset.lists, name), getattr(from_log.lists, name))
    np.testing.assert_array_equal(from_dataset.window, from_log.window)
    assert from_dataset.split == from_log.split


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", scheduler_port=0
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@pytest.mark.slow
def test_train_labels_on_the_cluster_equal_the_sqlite_logs(
    client, sim_dir, dataset_root, ranker_config, monkeypatch
):
    monkeypatch.setattr(ranker.dataset, "LABEL_PARTITION_ROWS", 900)  # a shipped chunk per partition
    assert len(LogDataset.open(dataset_root).partitions(900)) > 1
    from_log = prepare_log(sim_dir / "log.db", ranker_config)
    from_cluster = prepare_log_on_cluster(dataset_root, ranker_config, client)
    # Every partition's labelled lists, as the workers keep them, gathered here for the check only.
    labelled = concat_lists([lists for lists, _, _ in client.gather(from_cluster.parts)])
    for name in ("label", "item_id", "position", "offsets", "event_id", "feedback_time", "revenue"):
        np.testing.assert_array_equal(getattr(labelled, name), getattr(from_log.lists, name))
    for name in ("section", "user_id", "time", "device", "category", "query"):
        np.testing.assert_array_equal(
            getattr(labelled.requests, name), getattr(from_log.lists.requests, name)
        )
    np.testing.assert_array_equal(from_cluster.window, from_log.window)
    assert from_cluster.split == from_log.split
    assert from_cluster.source == {**from_log.source, "path": str(dataset_root)}


@pytest.fixture(scope="module")
def quick_config(ranker_config):
    lightgbm = dataclasses.replace(ranker_config.lightgbm, num_boost_round=100, num_leaves=(7,))
    return dataclasses.replace(ranker_config, lightgbm=lightgbm)


@pytest.mark.slow
@pytest.mark.parametrize("design", DESIGNS)
def test_train_dask_held_out_ndcg_inside_the_one_process_interval(
    design, client, dataset_root, quick_config, tables, tmp_path
):
    catalog, users = tables
    prepared = prepare_log(dataset_root, quick_config)
    single = train_design(design, prepared, catalog, users, quick_config)
    dask = train_design(
        design,
        prepared,
        catalog,
        users,
        quick_config,
        ranker_factory=lambda *args, **kwargs: DaskLambdaRanker(*args, client=client, **kwargs),
    )
    ndcg = f"ndcg@{quick_config.evaluation.k}"
    one = single.metrics[single.metrics["metric"] == ndcg].set_index("section")
    many = dask.metrics[dask.metrics["metric"] == ndcg].set_index("section")
    assert set(many.index) == set(one.index) >= {OVERALL}
    inside = (many["mean"] >= one["ci_low"]) & (many["mean"] <= one["ci_high"])
    assert inside.all(), pd.concat([one[["mean", "ci_low", "ci_high"]], many["mean"]], axis=1)

    # The same artifact format and inference contract: the normal loader serves it unchanged.
    path = dask.save(tmp_path / design)
    loaded = RankerModel.load(path, catalog=catalog, users=users, config=quick_config)
    assert loaded.contract == single.model.contract
    test = prepared.lists_in(TEST, dask.model.sections)
    np.testing.assert_allclose(loaded.score_lists(test), dask.model.score_lists(test), rtol=0, atol=1e-12)
    frame = LogDataset.open(dataset_root).joined()
    held_out = set(prepared.lists.event_id[prepared.window == TEST].tolist())
    frame = frame[frame["event_id"].isin(held_out) & frame["section"].isin(dask.model.sections)].iloc[:5]
    features, request_of_row = loaded.builder.from_log(frame)
    for i, row in enumerate(frame.itertuples()):
        served = loaded.score(row.section, row.user_id, {**row.context, "time": row.time}, row.shown.tolist())
        offline = dask.model.booster_for(row.section).predict(features[request_of_row == i], num_threads=1)
        np.testing.assert_array_equal(served, offline)


@pytest.mark.slow
def test_train_dask_fits_the_same_rows_again_in_one_client(client, ranker_config, rng):
    # Scattered pieces are not content-hashed: a second fit on identical rows used to share the first fit's
    # keys, which were released under it ("lost dependencies").
    sizes = rng.integers(5, 15, size=120)
    x = rng.normal(size=(int(sizes.sum()), 4))
    y = (x[:, 0] + rng.normal(scale=0.5, size=len(x)) > 0.8).astype(np.int64)
    settings = dataclasses.replace(ranker_config.lightgbm, num_boost_round=10, num_leaves=(7,))
    names = [f"f{i}" for i in range(4)]
    scores = []
    for _ in range(3):
        ranker = DaskLambdaRanker(settings, feature_names=names, position_bias="truncate", client=client)
        scores.append(ranker.fit(x, y, sizes).booster_.predict(x))
        del ranker
    # both learned the signal in f0 (the trees need not be identical: see docs/scaling.md)
    for s in scores:
        assert np.corrcoef(s, x[:, 0])[0, 1] > 0.8


@pytest.mark.slow
def test_replay_on_the_cluster_equals_the_in_memory_ips_and_snips(client, sim_dir, dataset_root):
    sections = SectionsConfig.load()
    settings = LearnSettings(wait_seconds=3600.0)
    specs = ["uniform", "default", "epsilon:0.1"]
    with DecisionLog.open(sim_dir / "log.db") as log:
        decisions = read_decisions(log, sections, settings)
    policies = {spec: parse_policy(spec, sections) for spec in specs}
    expected = replay_table(decisions, sections, policies, estimators=("ips", "snips"), n_bootstrap=10)
    dataset = LogDataset.open(dataset_root)
    assert len(dataset.partitions(900)) >= 3
    got = replay_dataset(
        dataset, sections, specs, settings, estimators=("ips", "snips"), client=client, partition_rows=900
    )
    keys = ["policy", "group", "estimator"]
    expected, got = expected.set_index(keys), got.set_index(keys).loc[expected.set_index(keys).index]
    np.testing.assert_allclose(got["value"], expected["value"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(got["ess"], expected["ess"], rtol=1e-9)
    np.testing.assert_array_equal(got["n"], expected["n"])


@pytest.fixture(scope="module")
def labelled_on_cluster(client, dataset_root, quick_config):
    """The dataset labelled on the cluster, its lists kept on the workers: a shipped chunk per partition."""
    return prepare_log_on_cluster(dataset_root, quick_config, client, partition_rows=900)


@pytest.mark.slow
def test_train_distributed_log_has_the_one_process_windows(
    labelled_on_cluster, sim_dir, dataset_root, quick_config
):
    from_log = prepare_log(sim_dir / "log.db", quick_config)
    on_cluster = labelled_on_cluster
    assert len(on_cluster.parts) > 1
    np.testing.assert_array_equal(on_cluster.window, from_log.window)
    np.testing.assert_array_equal(on_cluster.meta.event_id, from_log.lists.event_id)
    np.testing.assert_array_equal(on_cluster.meta.rows, from_log.lists.sizes)
    assert on_cluster.split == from_log.split
    assert on_cluster.source == {**from_log.source, "path": str(dataset_root)}
    assert on_cluster.window_summary() == from_log.window_summary()
    assert on_cluster.held_out() == from_log.held_out()
    sections = ("discover", "search")
    for window, chosen in ((STATS, None), (VALIDATION, sections), (TEST, sections)):
        gathered, expected = on_cluster.lists_in(window, chosen), from_log.lists_in(window, chosen)
        for name in ("event_id", "offsets", "item_id", "label", "item_revenue"):
            np.testing.assert_array_equal(getattr(gathered, name), getattr(expected, name))
    with pytest.raises(TrainingDataError, match="training window"):
        on_cluster.lists_in(TRAIN)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("design", "union"),
    [("consolidated", "traffic"), ("consolidated", "equal"), ("consolidated", "business"), ("base", "1,3,2")],
)
def test_train_union_on_the_cluster_draws_the_one_process_lists(
    labelled_on_cluster, dataset_root, quick_config, design, union
):
    spec = quick_config.design(design)
    seed = quick_config.lightgbm.seed
    prepared = prepare_log(dataset_root, quick_config)
    expected, expected_summary = _union_lists(prepared.lists_in(TRAIN, spec.sections), spec, union, seed)
    chosen, summary = labelled_on_cluster.union(spec, union, seed)
    np.testing.assert_array_equal(labelled_on_cluster.meta.event_id[chosen], expected.event_id)
    # business: the section revenue is summed list by list on the cluster, row by row in one process
    for got, want in zip(summary["sections"], expected_summary["sections"], strict=True):
        assert got["target_share"] == pytest.approx(want["target_share"], rel=1e-12)
        assert {k: v for k, v in got.items() if k != "target_share"} == {
            k: v for k, v in want.items() if k != "target_share"
        }


@pytest.fixture(scope="module")
def one_process(dataset_root, quick_config, tables):
    """Each design trained in one process on the dataset: design -> TrainResult."""
    prepared = prepare_log(dataset_root, quick_config)
    return {design: train_design(design, prepared, *tables, quick_config) for design in DESIGNS}


@pytest.mark.slow
@pytest.mark.parametrize("design", DESIGNS)
def test_train_on_the_cluster_keeps_the_training_window_there_and_stays_inside_the_interval(
    design, client, labelled_on_cluster, one_process, quick_config, tables, monkeypatch
):
    on_cluster = labelled_on_cluster
    received: list[LabelledLists] = []
    gather = client.gather

    def counting_gather(futures, *args, **kwargs):
        result = gather(futures, *args, **kwargs)
        for value in result if isinstance(result, list) else [result]:
            assert not (isinstance(value, np.ndarray) and value.ndim == 2), "a feature matrix was gathered"
            if isinstance(value, LabelledLists):
                received.append(value)
        return result

    monkeypatch.setattr(client, "gather", counting_gather)
    result = train_design(design, on_cluster, *tables, quick_config)

    # The client received the stats window's lists and the design's validation and test lists, no other.
    sections = np.asarray(quick_config.design(design).sections, dtype=object)
    in_design = np.isin(on_cluster.meta.section, sections)
    windows = on_cluster.window
    expected = on_cluster.meta.event_id[
        (windows == STATS) | (in_design & np.isin(windows, [VALIDATION, TEST]))
    ]
    got = np.concatenate([lists.event_id for lists in received])
    assert sorted(got) == sorted(expected)
    assert not set(got) & set(on_cluster.meta.event_id[windows == TRAIN])

    single = one_process[design]
    for key, info in result.metadata["training"].items():
        assert info["lists"] == single.metadata["training"][key]["lists"] > 0
        assert info["rows"] == single.metadata["training"][key]["rows"]
        assert info["lists_by_section"] == single.metadata["training"][key]["lists_by_section"]
    assert result.metadata["union"] == single.metadata["union"]
    assert result.metadata["held_out"] == single.metadata["held_out"]
    ndcg = f"ndcg@{quick_config.evaluation.k}"
    one = single.metrics[single.metrics["metric"] == ndcg].set_index("section")
    many = result.metrics[result.metrics["metric"] == ndcg].set_index("section")
    assert set(many.index) == set(one.index) >= {OVERALL}
    inside = (many["mean"] >= one["ci_low"]) & (many["mean"] <= one["ci_high"])
    assert inside.all(), pd.concat([one[["mean", "ci_low", "ci_high"]], many["mean"]], axis=1)


@pytest.mark.slow
def test_train_on_the_cluster_spreads_one_partition_over_both_workers(
    client, dataset_root, quick_config, tables
):
    lightgbm = dataclasses.replace(quick_config.lightgbm, num_boost_round=10)
    config = dataclasses.replace(quick_config, lightgbm=lightgbm)
    on_cluster = prepare_log_on_cluster(dataset_root, config, client)
    assert len(on_cluster.parts) == 1 < len(client.nthreads())
    spec = config.design("base")
    prepared = prepare_log(dataset_root, config)
    builder = FeatureBuilder(
        FeatureTables(
            *tables,
            item_stats(
                prepared.lists_in(STATS),
                coec_prior_strength=config.stats.coec_prior_strength,
                cvr_prior_strength=config.stats.cvr_prior_strength,
                window=prepared.split.bounds(STATS),
            ),
        ),
        features=spec.features,
        sections=config.section_contexts,
    )
    window = on_cluster.training_window(spec, spec.union, config, builder)
    rows = window.group(spec.sections, builder, None)
    # two pieces, one per worker, holding between them every chosen list once
    assert rows.x.numblocks[0] == len(client.nthreads())
    owner = client.who_has([on_cluster.parts[0]])[on_cluster.parts[0].key]
    first, second = (where for _, _, where in window._pieces)
    assert first is None  # the first piece stays where the partition is
    assert second is not None
    assert second[0] not in owner
    sizes = rows.group_sizes.compute()
    assert len(sizes) == rows.n_lists == len(window.chosen)
    assert sizes.sum() == rows.n_rows == rows.x.shape[0]
    expected = InMemoryTraining(prepared, spec, spec.union, config).group(spec.sections, builder, None)
    assert (rows.n_lists, rows.n_rows) == (expected.n_lists, expected.n_rows)
    assert rows.lists_by_section == expected.lists_by_section
    result = train_design("base", on_cluster, *tables, config)
    assert result.metadata["training"]["*"]["rows"] == expected.n_rows
    assert result.model.boosters["*"].current_iteration() >= 1
