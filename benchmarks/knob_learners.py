"""How much of the context oracle's headroom each VW learner layout captures, ungated, valued exactly.

Reproduces the table "The cells layout" of docs/bandits.md. Per world and seed, as one seed of the quick
comparison does (`simulator.compare_knobs`): simulate 20,000 requests, train the base ranker (and an
independent search model), serve 30,000 fresh requests of the test window's period through the pipeline with
knob arms drawn uniformly (the knob window's learning part), learn each layout on those decisions, and value
each learned policy, the best logged fixed arm (DR) and the context oracle exactly on 3,000 tuning requests
(`simulator.compare_knobs.tuning_values`). Also learns the cells layout with its fields fixed (all three, or
the segment alone) instead of chosen, and prints the fields each seed's selection chose. Prints, per section,
each policy's expected clicks per request minus the truth's best fixed arm's, averaged over the seeds, and
the capture (that difference over the oracle's).

    python -m benchmarks.knob_learners --world context_flip --seeds 1,2,3,4,5

Not part of `make bench` (about a minute per seed on 2 cores).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from bandits.knob_cells import CellChoice
from bandits.learn import LearnSettings, learn_policy, read_decisions
from bandits.log import DecisionLog
from bandits.policies import FixedArmPolicy
from bandits.promote import best_logged_arms
from bandits.vw_policy import VWKnobPolicy, VWSettings
from heuristics import SectionsConfig
from ranker.config import RankerConfig
from ranker.dataset import prepare_log
from ranker.rerank.items import ItemAttributes
from simulator.compare_evaluate import sample_window
from simulator.compare_knobs import log_knob_window, tuning_values
from simulator.compare_train import Trainer
from simulator.run import simulate
from simulator.world import World
from simulator.world_config import WorldConfig

#: The layouts compared: the arm layout the comparison learned with before, and the cells layout.
LAYOUTS = {
    "arms (factored knob values, arm id, every context feature)": dict(factored=True),
    "cells (the default)": dict(factored=True, cells=True),
}
#: Field sets the cells layout is also learned with, fixed for every section instead of chosen.
CELLS_FIXED = (("segment", "device", "hour"), ("segment",))


def one_seed(world_name: str, seed: int, directory: Path, *, requests: int, knob_requests: int):
    world = World.build(WorldConfig.load(world_name), seed)
    sections, ranker_config = SectionsConfig.load(), RankerConfig.load()
    catalog, users = world.catalog(), world.users()
    with DecisionLog.open(directory / "log.db", create=True) as log:
        simulate(world, requests, seed=seed, sections_config=sections, sink=log.append)
    prepared = prepare_log(directory / "log.db", ranker_config)
    cut = prepared.split.cutoffs[2]
    trainer = Trainer(directory / "models", catalog, users, ranker_config, 1)
    base = trainer.train("base", prepared)
    search = trainer.train("independent", prepared, section="search")
    rankers = {s: base.model if s in base.model.sections else search.model for s in world.sections}
    knob_window = sample_window(world, knob_requests, np.random.default_rng([seed, 3]), cut)
    log_knob_window(world, knob_window, sections, rankers, directory / "knobs.db", seed=seed)
    tuning = sample_window(world, 3000, np.random.default_rng([seed, 1]), cut)
    truth = tuning_values(world, tuning, sections, ItemAttributes(catalog, users), rankers, seed)

    def value(policy) -> dict[str, float]:
        out = {}
        for name, v in truth.values.items():
            probs = np.stack(policy.distribution(truth.context[name]))[:, : v.shape[1]]
            out[name] = float((probs * v).sum(axis=1).mean() - v.mean(axis=0).max())
        return out

    values = {"context oracle": value(truth.context_oracle(sections))}
    with DecisionLog.open(directory / "knobs.db") as log:
        decisions = read_decisions(log, sections, LearnSettings(since=cut))
        arms = best_logged_arms(decisions, sections, seed=seed)
        fixed = FixedArmPolicy(sections, {s: arm for s, (arm, _) in arms.items()})
        values["best logged fixed arm (DR)"] = value(fixed)
        for label, options in LAYOUTS.items():
            settings = LearnSettings(since=cut, vw=VWSettings(seed=seed, **options))
            policy, _ = learn_policy(log, sections, directory / label.split()[0], settings)
            values[label] = value(policy)
            if policy.cell_choice is not None:
                chosen = {s: " x ".join(f) or "-" for s, f in policy.cell_choice.fields.items()}
                print(f"seed {seed}: cells chosen {chosen}", flush=True)
            policy.close()
    # The cells layout with its fields fixed instead of chosen: every field crossed jointly, and the segment
    # alone (context_flip's answer, by construction).
    for fields in CELLS_FIXED:
        choice = CellChoice(fields={s.name: fields for s in sections})
        settings = VWSettings(seed=seed, factored=True, cells=True)
        policy = VWKnobPolicy(sections, settings, cell_choice=choice).fit(
            decisions.context, decisions.arm_index, decisions.reward, decisions.propensity
        )
        values[f"cells, fields fixed: {' x '.join(fields)}"] = value(policy)
        policy.close()
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", default="context_flip")
    parser.add_argument("--seeds", default="1,2,3,4,5")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--knob-requests", type=int, default=30_000)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = []
    for seed in seeds:
        with tempfile.TemporaryDirectory(prefix="knob-learners-") as tmp:
            runs.append(
                one_seed(
                    args.world, seed, Path(tmp), requests=args.requests, knob_requests=args.knob_requests
                )
            )
        print(f"seed {seed} done", flush=True)
    sections = list(runs[0]["context oracle"])
    print(f"\n{args.world}, seeds {args.seeds}: clicks per request minus the best fixed arm's (capture)\n")
    print("| policy | " + " | ".join(sections) + " |")
    print("| --- |" + " ---: |" * len(sections))
    for label in runs[0]:
        cells = []
        for s in sections:
            gain = np.mean([run[label][s] for run in runs])
            headroom = np.mean([run["context oracle"][s] for run in runs])
            capture = f" ({gain / headroom:.2f})" if headroom > 0.01 else ""
            cells.append(f"{gain:+.4f}{capture}")
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
