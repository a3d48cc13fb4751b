"""The design comparison: every serving strategy on the same simulated requests, over seeds, with intervals.

`compare(world, seeds=5, settings=FULL, jobs=1)` runs `simulator.compare_run.run_seed` for every seed
(with ``jobs`` > 1 in that many worker processes: the seeds are independent and seeded) and summarises the
seeds (`simulator.compare_stats`): exact clicks, conversions and revenue per request, NDCG@k against the true
attractiveness, intra-list diversity, mean item age and catalog coverage, per section and overall, for each
strategy, and the answers to the questions a team asks before it consolidates its models.
The results are typed (`simulator.compare_results.CompareResults`); `write_outputs(results, out)` writes
``results.json`` (`CompareResults.to_json`) and the reports generated from the results (``report.md``,
``report.html``: `simulator.report`), and `read_results(path)` reads a results.json back. docs/compare.md
describes the method and the output.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import multiprocessing
import os
import pickle
import platform
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

from threadpoolctl import threadpool_limits

from bandits.errors import BanditsError
from bandits.learn import LearnSettings
from bandits.vw_policy import VWSettings
from heuristics import SectionsConfig
from heuristics.errors import HeuristicsError
from ranker.config import RankerConfig
from ranker.errors import RankerError
from simulator.compare_headroom import knob_headroom
from simulator.compare_results import (
    SCHEMA_VERSION,
    CompareResults,
    ConfigLines,
    ConfigSources,
    Runtime,
    SectionTraffic,
    WorldInfo,
)
from simulator.compare_run import STEPS, run_seed
from simulator.compare_seed import SeedResult
from simulator.compare_settings import (
    FULL,
    KNOB_CURVE_SHARES,
    PRIMARY,
    CompareSettings,
    curve_section,
    knob_curve_strategy,
)
from simulator.compare_stats import summarize
from simulator.errors import CompareInputError, SimulatorError
from simulator.feature_check import split_sections, strategy_descriptions
from simulator.feature_check_stats import summarize_feature_check
from simulator.world_config import WorldConfig

Progress = Callable[[Iterable[int]], Iterable[int]]
#: The errors a seed can raise that a worker process hands back to the comparison as they are.
_SEED_ERRORS = (HeuristicsError, BanditsError, RankerError, SimulatorError)

#: What each strategy serves; results.json carries it so that the report needs nothing else.
STRATEGY_DESCRIPTIONS = {
    "random": "random order of the candidates (a lower bound)",
    "independent": "one LightGBM model per section, trained on that section's lists only; its own order",
    "consolidated": "one multi-task LightGBM model (task_type, section-context features, traffic union); "
    "its own order",
    "base": "the shared base ranker (search: the independent search model) in its own order, heuristics "
    "off (no knobs): what the ranker alone serves",
    "base+default": "the shared base ranker (search: the independent search model) with each section's "
    "hand-set default knob arm",
    "base+best_fixed": "the base ranker with each section's best fixed arm, chosen on a separate tuning "
    "sample of fresh requests (never on the evaluation requests)",
    "base+best_fixed_logged": "the base ranker with each section's fixed arm chosen from the log's learning "
    "window by doubly robust estimates (as a team without a simulator would)",
    "base+bandit": "the base ranker with the knob policy the promotion gate ships: per section, the VW "
    "contextual bandit learned from the log (with its 5% exploration) when its paired DR lower bound on the "
    "log's test window is not below the best logged fixed arm's, else that fixed arm",
    "base+context_oracle": "the base ranker with, per request, the best arm for its observable context cell "
    "(segment x device x hour bucket, backing off to coarser cells), chosen with the world's truth on the "
    "tuning sample: the ceiling of a knob policy with these features",
    "consolidated+bandit": "the consolidated model with the knob policy the gate ships",
    **{
        knob_curve_strategy(share): f"base+bandit learned on the latest {share:.0%} of its learning window"
        for share in KNOB_CURVE_SHARES
    },
    "oracle": "the candidates ordered by their true attractiveness in isolation (a bound: greedy, it "
    "ignores satiation)",
    "consolidated[equal]": "the consolidated model trained on the equal-share union",
    "consolidated[business]": "the consolidated model trained on the revenue-share union",
}
#: Tables of ranker.toml every trained design reads.
_SHARED_RANKER_TABLES = ("labels", "split", "stats", "lightgbm", "evaluation")


def compare(
    world: WorldConfig | str | Path = "default",
    *,
    seeds: int | Sequence[int] = 5,
    settings: CompareSettings = FULL,
    sections: SectionsConfig | None = None,
    ranker_config: RankerConfig | None = None,
    progress: Progress | None = None,
    jobs: int = 1,
) -> CompareResults:
    """Run the comparison on a world over seeds and return its results (`CompareResults.to_json()` is the
    content of results.json).

    Parameters
    ----------
    world : WorldConfig, world name or path
    seeds : int or sequence of int
        A count n (seeds 0..n-1) or the seeds themselves; at least 2 (intervals need two).
    settings : CompareSettings
    sections : SectionsConfig, optional
        The heuristics' config (the shipped one by default).
    ranker_config : RankerConfig, optional
        The ranker config (the shipped one by default).
    progress : callable, optional
        Wraps an iterable of ``len(seeds) * len(STEPS)`` items; one item is drawn as each step of each seed
        finishes, and the item is the position of that seed in `seeds` (steps of seeds that run in parallel
        interleave; every seed draws ``len(STEPS)`` items, its last one as the seed finishes).
    jobs : int
        Worker processes that run the seeds (at most one per seed); 1 runs them one after another in this
        process. Each worker starts a fresh interpreter (the spawn method: LightGBM's OpenMP pool does not
        survive a fork) and its pools keep ``settings.threads`` threads. The results are the same for any
        number of jobs, timings apart.

    Raises
    ------
    CompareInputError, WorldConfigError, RankerError, BanditsError
    """
    started = time.perf_counter()
    world_config = world if isinstance(world, WorldConfig) else WorldConfig.load(world)
    seed_list = _seeds(seeds)
    sections = SectionsConfig.load() if sections is None else sections
    ranker_config = RankerConfig.load() if ranker_config is None else ranker_config
    curve_section(world_config, settings)  # an unknown curve section is refused before any work
    for feature in settings.feature_check:  # so is a feature the check cannot remove
        split_sections(feature, list(world_config.sections), ranker_config)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise CompareInputError(f"Expected `jobs` to be an integer >= 1, found {jobs!r}")
    ticks = _StepTicks(progress, len(seed_list))
    args = (world_config, settings, sections, ranker_config)
    if min(jobs, len(seed_list)) == 1:
        results: list[SeedResult] = []
        with threadpool_limits(limits=settings.threads):
            for position, seed in enumerate(seed_list):
                step = ticks.starter(position)
                results.append(run_seed(world_config, seed, settings, sections, ranker_config, step=step))
                ticks.seed_done(position)
    else:
        results = _run_in_workers(seed_list, args, min(jobs, len(seed_list)), ticks)
    ticks.close()
    return assemble_results(
        results,
        world_config=world_config,
        settings=settings,
        sections=sections,
        ranker_config=ranker_config,
        seconds=time.perf_counter() - started,
    )


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity mask; the CPU count where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity masks on this platform
        return os.cpu_count() or 1


class _StepTicks:
    """Draws one item of the `progress` wrapper per finished step: the position of that step's seed.

    A seed's step k has finished when its step k + 1 starts, and its last step when the seed returns. The
    wrapper pulls the items from this object, one per draw, so each draw finds the item just queued.
    """

    def __init__(self, progress: Progress | None, seeds: int) -> None:
        self._queued: deque[int] = deque()
        self._started = [0] * seeds
        self._finished = [0] * seeds
        self._draws = None if progress is None else iter(progress(self._items()))

    def _items(self) -> Iterator[int]:
        while self._queued:
            yield self._queued.popleft()

    def starter(self, position: int) -> Callable[[str], None]:
        """The `run_seed` step callback of the seed at `position`."""
        return lambda _name: self.step_started(position)

    def step_started(self, position: int) -> None:
        self._started[position] += 1
        self._advance(position, self._started[position] - 1)

    def seed_done(self, position: int) -> None:
        self._advance(position, len(STEPS))

    def _advance(self, position: int, finished: int) -> None:
        while self._finished[position] < min(finished, len(STEPS)):
            self._finished[position] += 1
            if self._draws is not None:
                self._queued.append(position)
                next(self._draws, None)

    def close(self) -> None:
        """Exhaust the wrapper (a progress bar closes)."""
        if self._draws is not None:
            for _ in self._draws:
                pass


# --- worker processes ---------------------------------------------------------------------------------------
# The seeds' inputs (frozen configs) and results (per-seed means) travel between the processes of one run
# pickled in memory, never written anywhere. `_dumps` pickles a configuration's read-only mappings as dicts
# (a mappingproxy does not pickle) and an error of the project's families with its message and attributes
# (their constructors take other arguments than the message).

#: The queue a worker process announces its seeds' steps on (set by `_start_worker`).
_step_queue: Any = None


def _start_worker(queue: Any) -> None:
    global _step_queue
    _step_queue = queue


def _read_only(data: dict[str, Any]) -> MappingProxyType[str, Any]:
    return MappingProxyType(data)


def _error(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> BaseException:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is MappingProxyType:
            return _read_only, (dict(obj),)
        if isinstance(obj, _SEED_ERRORS):
            return _error, (type(obj), obj.args, dict(obj.__dict__))
        return NotImplemented


def _dumps(obj: Any) -> bytes:
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buffer.getvalue()


def _seed_in_worker(payload: bytes, position: int) -> bytes:
    """Run one seed in a worker process: its `SeedResult`, or the project error it raised, pickled."""
    world_config, seed, settings, sections, ranker_config = pickle.loads(payload)
    with threadpool_limits(limits=settings.threads):
        try:
            result = run_seed(
                world_config,
                seed,
                settings,
                sections,
                ranker_config,
                step=lambda _name: _step_queue.put(position),
            )
        except _SEED_ERRORS as error:
            return _dumps(error)
    return _dumps(result)


def _run_in_workers(
    seed_list: Sequence[int],
    args: tuple[WorldConfig, CompareSettings, SectionsConfig, RankerConfig],
    jobs: int,
    ticks: _StepTicks,
) -> list[SeedResult]:
    """Run the seeds in `jobs` spawned worker processes; their results in the order of `seed_list`."""
    world_config, settings, sections, ranker_config = args
    context = multiprocessing.get_context("spawn")
    queue = context.SimpleQueue()
    results: dict[int, SeedResult] = {}
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_worker, initargs=(queue,)) as pool:
        pending = {
            pool.submit(
                _seed_in_worker, _dumps((world_config, seed, settings, sections, ranker_config)), i
            ): i
            for i, seed in enumerate(seed_list)
        }
        try:
            while pending:
                done, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                while not queue.empty():
                    ticks.step_started(queue.get())
                for future in done:
                    position = pending.pop(future)
                    outcome = pickle.loads(future.result())
                    if isinstance(outcome, BaseException):
                        raise outcome
                    results[position] = outcome
                    ticks.seed_done(position)
        except BaseException:
            # Seeds not started are dropped; leaving the pool waits for the running ones.
            for future in pending:
                future.cancel()
            raise
    return [results[i] for i in range(len(seed_list))]


def assemble_results(
    results: Sequence[SeedResult],
    *,
    world_config: WorldConfig,
    settings: CompareSettings,
    sections: SectionsConfig,
    ranker_config: RankerConfig,
    seconds: float,
) -> CompareResults:
    """The comparison's results from the seeds' results."""
    names = tuple(world_config.sections)
    target = curve_section(world_config, settings)
    summary = summarize(results, settings, sections, sections=names, curve_section=target)
    seeds = tuple(r.seed for r in results)
    return CompareResults(
        schema_version=SCHEMA_VERSION,
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        world=_world_info(world_config),
        seeds=seeds,
        settings=settings,
        primary_metric=PRIMARY,
        interval=(
            f"95% Student-t interval over the {len(seeds)} per-seed means; differences between "
            "strategies are paired (the same evaluation requests in each seed) and their interval is taken "
            "over the per-seed differences"
        ),
        sections=names,
        strategies={
            name: text
            for name, text in {
                **STRATEGY_DESCRIPTIONS,
                **strategy_descriptions(settings.feature_check, leak=settings.feature_leak),
            }.items()
            if name in summary.metrics
        },
        metrics=summary.metrics,
        headline=summary.headline,
        designs=summary.designs,
        cross_learning=summary.cross_learning,
        reversals=summary.reversals,
        stratification=summary.stratification,
        bandit=summary.bandit,
        replay=summary.replay,
        costs=summary.costs,
        conclusions=summary.conclusions,
        config_lines=config_lines_by_strategy(sections, ranker_config),
        log=tuple(r.log for r in results),
        runtime=Runtime(
            seconds=seconds,
            steps={k: sum(r.seconds.get(k, 0.0) for r in results) for k in _step_names(results)},
            python=platform.python_version(),
        ),
        feature_check=summarize_feature_check(results, settings, sections=names, ranker_config=ranker_config),
        bandit_headroom=knob_headroom(results, sections=names),
        arm_knobs={
            s: {arm.id: {k: float(v) for k, v in arm.knobs.items()} for arm in sections[s].arms}
            for s in names
            if s in sections.sections
        },
        knob_windows=tuple(r.knob_window for r in results),
    )


def _seeds(seeds: int | Sequence[int]) -> list[int]:
    if isinstance(seeds, bool):
        raise CompareInputError(f"Expected `seeds` to be a count or a list of seeds, found {seeds!r}")
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if len(seed_list) < 2:
        raise CompareInputError(f"Expected at least 2 seeds (intervals need two), found {len(seed_list)}")
    if len(set(seed_list)) != len(seed_list) or min(seed_list) < 0:
        raise CompareInputError(f"Expected distinct seeds >= 0, found {seed_list}")
    return seed_list


def _step_names(results: Sequence[SeedResult]) -> list[str]:
    names: list[str] = []
    for r in results:
        names += [k for k in r.seconds if k not in names]
    return names


def _world_info(config: WorldConfig) -> WorldInfo:
    return WorldInfo(
        name=config.name,
        source=str(config.source),
        items=config.items.count,
        users=config.users.count,
        candidates=config.candidates.count,
        days=config.period.days,
        sections={
            name: SectionTraffic(traffic=s.traffic, context=s.context) for name, s in config.sections.items()
        },
    )


# --- config lines -------------------------------------------------------------------------------------------


def config_lines(path: str | Path, tables: Iterable[str]) -> int:
    """Non-blank, non-comment lines of the TOML tables `tables` (and their sub-tables) in the file `path`,
    header lines included; 0 when the file cannot be read."""
    wanted = tuple(tables)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError:
        return 0
    count = 0
    current: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("[") and not line.startswith("[["):
            current = line.strip("[]").strip()
        if not line or line.startswith("#") or current is None:
            continue
        if any(current == t or current.startswith(t + ".") for t in wanted):
            count += 1
    return count


def config_lines_by_strategy(sections: SectionsConfig, ranker_config: RankerConfig) -> ConfigLines:
    """Config lines a team maintains for each strategy (docs/compare.md: Cost)."""
    ranker_path = ranker_config.source
    sections_path = sections.source
    names = list(sections.sections)

    def ranker(designs: Iterable[str]) -> int:
        designs = list(designs)
        served = {s for d in designs for s in ranker_config.design(d).sections}
        tables = (
            [f"designs.{d}" for d in designs]
            + [f"sections.{s}" for s in served]
            + list(_SHARED_RANKER_TABLES)
        )
        return config_lines(ranker_path, tables)

    heuristics = config_lines(sections_path, [f"sections.{s}" for s in names])
    bandit = len(fields(LearnSettings)) - 1 + len(fields(VWSettings))
    base = ranker(["base", "independent"])
    counts = {
        "independent": ranker(["independent"]),
        "consolidated": ranker(["consolidated"]),
        "base": base,
        "base+default": base + heuristics,
        "base+best_fixed": base + heuristics + len(names),
        "base+bandit": base + heuristics + bandit,
        "consolidated+bandit": ranker(["consolidated"]) + heuristics + bandit,
    }
    sources = ConfigSources(ranker=str(ranker_path), sections=str(sections_path), learn_settings=bandit)
    return ConfigLines(by_strategy=counts, sources=sources)


# --- output -------------------------------------------------------------------------------------------------


def write_outputs(results: CompareResults, out: str | Path) -> dict[str, Path]:
    """Write results.json, report.md and report.html into `out` (created); returns their paths."""
    from simulator.report import render_html, render_markdown

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"results": out / "results.json", "markdown": out / "report.md", "html": out / "report.html"}
    text = json.dumps(results.to_json(), indent=2, allow_nan=False)
    paths["results"].write_text(text + "\n", encoding="utf-8")
    paths["markdown"].write_text(render_markdown(results), encoding="utf-8")
    paths["html"].write_text(render_html(results), encoding="utf-8")
    return paths


def read_results(path: str | Path) -> CompareResults:
    """A results.json (or the directory holding it) read back as `CompareResults`.

    Raises
    ------
    CompareInputError
        When the file cannot be read or is not a comparison's results.
    """
    path = Path(path)
    path = path / "results.json" if path.is_dir() else path
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CompareInputError(f"Expected a readable results.json at {path}, found: {exc}") from None
    return CompareResults.from_json(data)
