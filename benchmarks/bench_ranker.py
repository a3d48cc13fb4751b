"""Benchmark: the ranker pipeline on the default world, training time per design and scoring latency.

The full run simulates 100,000 requests of the default world (seed 0) into a temporary decision log, prepares
it (read, label, split), trains the three designs with the shipped ranker config (LightGBM with 2 threads),
and times scoring one served request as the service will: `FeatureBuilder.one` on pre-indexed arrays, then
``Booster.predict`` with ``num_threads=1``, for 100 and 500 candidates (medians and 99th percentiles over many
calls, cycling through held-out requests). ``quick`` uses 20,000 requests and fewer calls.

A last table checks the designs against the world's ground truth, which offline click metrics cannot see:
for held-out requests, every model ranks all of the request's candidates, and NDCG@10 (linear gain) compares
that order with the candidates' true attractiveness (`World.true_relevance`); the logged order (shown items
first, as shown, then the rest) is the reference.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from bandits.log import DecisionLog
from benchmarks import fmt_us, markdown_table, measure
from ranker.config import RankerConfig
from ranker.dataset import TEST, prepare_log
from ranker.features import read_tables
from ranker.metrics import ndcg_at_k
from ranker.model import RankerModel
from ranker.train import train_design
from simulator import RequestBatch, World, simulate

SEED = 0
DESIGNS = ("base", "consolidated", "independent")


def _simulate(out: Path, n: int) -> float:
    world = World.build("default", SEED)
    world.catalog().to_parquet(out / "catalog.parquet", index=False)
    world.users().to_parquet(out / "users.parquet", index=False)
    started = time.perf_counter()
    with DecisionLog.open(out / "log.db", create=True) as log:
        simulate(world, n, seed=SEED, sink=log.append)
    return time.perf_counter() - started


def _logged_requests(world: World, log_path: Path, since: float, n: int) -> tuple[RequestBatch, list, list]:
    """The first n logged requests from `since` on as a RequestBatch, with their contexts and shown lists."""
    with DecisionLog.open(log_path) as log:
        frame = log.decisions(since=since).iloc[:n]
    contexts = frame["context"].tolist()
    vocabulary = {word: i for i, word in enumerate(world.vocabulary.tolist())}
    queries = [str(c.get("query", "")) for c in contexts]
    tokens = np.full((len(frame), 2), -1, dtype=np.int64)
    for i, query in enumerate(queries):
        for j, word in enumerate(query.split()[:2]):
            tokens[i, j] = vocabulary[word]
    batch = RequestBatch(
        section=frame["section"].to_numpy().astype(str),
        user_id=frame["user_id"].to_numpy(np.int64),
        time=frame["time"].to_numpy(np.float64),
        device=np.array([c["device"] for c in contexts]),
        hour=np.array([c["hour"] for c in contexts], dtype=np.int64),
        segment=np.array([c["segment"] for c in contexts]),
        source_item=np.array([c.get("source_item", -1) for c in contexts], dtype=np.int64),
        category=np.array([c.get("category", -1) for c in contexts], dtype=np.int64),
        query=np.array(queries),
        query_tokens=tokens,
        candidates=np.stack(frame["candidates"].to_numpy()),
    )
    return batch, contexts, frame["shown"].tolist()


def _ground_truth(
    world: World,
    log_path: Path,
    since: float,
    models: dict[str, RankerModel],
    n: int,
    order: tuple[str, ...],
) -> str:
    """NDCG@10 of each model's ranking of all candidates against the true attractiveness, per section."""
    batch, contexts, shown = _logged_requests(world, log_path, since, n)
    truth = world.true_relevance(batch)
    size = batch.n_candidates
    logged = np.empty(truth.shape)
    for i, (candidates, slate) in enumerate(zip(batch.candidates.tolist(), shown, strict=True)):
        position = {item: p for p, item in enumerate(slate.tolist())}
        logged[i] = [-position.get(item, size) for item in candidates]
    scores = {"logged order": logged}
    for name, model in models.items():
        out = np.full(truth.shape, np.nan)
        for i in range(len(batch)):
            section = str(batch.section[i])
            if model.serves(section):
                context = {**contexts[i], "time": float(batch.time[i])}
                out[i] = model.score(section, int(batch.user_id[i]), context, batch.candidates[i])
        scores[name] = out
    present = set(batch.section.tolist())
    sections = [s for s in order if s in present]
    rows = []
    for name, values in scores.items():
        cells = []
        for section in sections:
            mask = (batch.section == section) & ~np.isnan(values).any(axis=1)
            if not mask.any():
                cells.append("-")
                continue
            result = ndcg_at_k(
                truth[mask].ravel(),
                values[mask].ravel(),
                group_sizes=np.full(int(mask.sum()), size),
                k=10,
                gain="linear",
            )
            cells.append(f"{result.mean:.3f}")
        rows.append([name, *cells])
    return markdown_table(["ranking of all candidates", *sections], rows)


def run(quick: bool = False) -> str:
    n = 20_000 if quick else 100_000
    repeats = 300 if quick else 3000
    config = RankerConfig.load()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        _simulate(out, n)
        started = time.perf_counter()
        prepared = prepare_log(out / "log.db", config)
        prepare_seconds = time.perf_counter() - started
        catalog, users = read_tables(str(out / "catalog.parquet"), str(out / "users.parquet"))
        results = {}
        for design in DESIGNS:
            start = time.perf_counter()
            results[design] = train_design(design, prepared, catalog, users, config)
            results[design].timings["wall_seconds"] = time.perf_counter() - start
        truth_requests = 1000 if quick else 4000
        truth = _ground_truth(
            World.build("default", SEED),
            out / "log.db",
            prepared.split.cutoffs[2],
            {design: result.model for design, result in results.items()},
            truth_requests,
            config.section_names,
        )

    rows = []
    for design, result in results.items():
        t = result.timings
        iterations = ", ".join(str(info["best_iteration"]) for info in result.metadata["training"].values())
        rows.append(
            [
                design,
                f"{int(t['rows']):,}",
                f"{t['feature_seconds']:.2f}",
                f"{t['fit_seconds']:.2f}",
                f"{t['rows_per_second']:,.0f}",
                iterations,
                f"{t['wall_seconds']:.2f}",
            ]
        )
    training = markdown_table(
        [
            "design",
            "training rows",
            "features (s)",
            "LightGBM fit (s)",
            "rows/s (fit)",
            "best iteration(s)",
            "whole design (s)",
        ],
        rows,
    )

    model = results["consolidated"].model
    test = prepared.lists_in(TEST)
    rng = np.random.default_rng(SEED)
    picks = rng.choice(test.n_requests, size=min(200, test.n_requests), replace=False)
    req = test.requests
    item_ids = catalog["item_id"].to_numpy()
    cases = []
    for size in (100, 500):
        requests = [
            (
                str(req.section[b]),
                int(req.user_id[b]),
                {
                    "device": req.device[b],
                    "time": float(req.time[b]),
                    **({"source_item": req.source_item[b]} if req.source_item[b] is not None else {}),
                    **({"category": req.category[b]} if req.category[b] is not None else {}),
                    **({"query": req.query[b]} if req.query[b] else {}),
                },
                rng.choice(item_ids, size=size, replace=False).tolist(),
            )
            for b in picks.tolist()
        ]
        matrices = [model.builder.one(*r) for r in requests]
        boosters = [model.booster_for(r[0]) for r in requests]
        k = len(requests)
        cases += [
            measure(
                f"features, {size} candidates (`FeatureBuilder.one`)",
                lambda i, rs=requests, k=k: model.builder.one(*rs[i % k]),
                repeats=repeats,
            ),
            measure(
                f"predict, {size} candidates (`Booster.predict`, 1 thread)",
                lambda i, ms=matrices, bs=boosters, k=k: bs[i % k].predict(ms[i % k], num_threads=1),
                repeats=repeats,
            ),
            measure(
                f"score, {size} candidates (`RankerModel.score`: both)",
                lambda i, rs=requests, k=k: model.score(*rs[i % k], num_threads=1),
                repeats=repeats,
            ),
        ]
    latency = markdown_table(
        ["step (consolidated model)", "median µs", "p99 µs"],
        [[c.label, fmt_us(c.median_us()), fmt_us(c.p99_us())] for c in cases],
    )
    trees = model.boosters["*"].num_trees()
    chosen = results["consolidated"].metadata["training"]["*"]["num_leaves"]
    leaves = f"{chosen} leaves (chosen from {', '.join(map(str, config.lightgbm.num_leaves))})"
    return "\n".join(
        [
            "## Ranker: training and scoring",
            "",
            f"Default world, {n:,} simulated requests (seed {SEED}); the shipped `ranker/ranker.toml` "
            f"(LightGBM {config.lightgbm.num_threads} threads, learning rate "
            f"{config.lightgbm.learning_rate:g}, {leaves}, early stopping after "
            f"{config.lightgbm.early_stopping_rounds} rounds). Reading, labelling and splitting the log took "
            f"{prepare_seconds:.1f} s. Each design also builds its item statistics and evaluates itself on "
            "the held-out window (in *whole design*).",
            "",
            training,
            "",
            f"Scoring one request, consolidated model ({trees} trees of at most {chosen} leaves, "
            f"{len(model.builder.features)} features), {repeats:,} calls per row cycling through "
            f"{len(picks)} held-out requests with random catalog items as candidates:",
            "",
            latency,
            "",
            f"Against the world's ground truth: the first {truth_requests:,} held-out requests, each model "
            "ranks all of the request's candidates, and NDCG@10 (linear gain) compares that order with the "
            "candidates' true attractiveness (`World.true_relevance`); the logged order puts the shown items "
            "first, as shown. Offline click metrics cannot see this: they only re-rank the shown items.",
            "",
            truth,
        ]
    )
