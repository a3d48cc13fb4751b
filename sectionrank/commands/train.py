"""`sectionrank train` and `sectionrank evaluate`: from a decision log to model directories and metrics."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

import click
import pandas as pd

from ranker import compiled
from ranker.config import RankerConfig
from ranker.dataset import check_log, prepare_log
from ranker.designs import DESIGNS, union_designs
from ranker.evaluate import LOGGED, evaluate_models, format_table
from ranker.features import read_tables
from ranker.train import train_design
from ranker.union import parse_union_spec
from sectionrank.commands.options import LOG_SOURCE
from sectionrank.progress import progress

T = TypeVar("T")

LOGGED_NOTE = (
    f"{LOGGED}: the order the logging policy showed; click labels favour it (users click where they look), "
    "so compare the designs with each other."
)


def context_blind_sections(config: RankerConfig, design: str, sections: Iterable[str]) -> dict[str, str]:
    """Sections among `sections` whose request context (a source item, a category, a query) the design's
    features never see: section -> its context kind. The base design's are similar_items and
    category_explore."""
    from ranker.feature_defs import FEATURES

    kinds = {FEATURES[f].context for f in config.design(design).features if f in FEATURES}
    contexts = config.section_contexts
    return {s: contexts[s] for s in sections if contexts.get(s, "none") not in {"none", *kinds}}


def context_note(config: RankerConfig, models: Iterable[tuple[str, str, Iterable[str]]]) -> str | None:
    """Why a design without section-context features trails in the sections that have a context, for the
    (name, design, sections) of the models shown; None when no model is blind to a context."""
    notes = []
    for name, design, sections in models:
        blind = context_blind_sections(config, design, sections)
        if blind:
            where = " and ".join(f"{s} ({kind})" for s, kind in blind.items())
            notes.append(
                textwrap.fill(
                    f"{name}: it has no section-context feature, so in {where} it ranks without the "
                    "request's context and trails the designs that have it. In serving, those sections' "
                    "heuristics (shipped: source similarity, category match) add that context on top of "
                    "its order (docs/ranker.md).",
                    width=110,
                )
            )
    return "\n".join(notes) or None


def _bar(iterable: Iterable[T], description: str) -> Iterable[T]:
    return progress(iterable, desc=description)


def _tables(log: Path | str, catalog: Path | None, users: Path | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The catalog and user tables: the given files, or catalog.parquet and users.parquet beside the log."""
    if not isinstance(log, Path) and (catalog is None or users is None):
        raise click.UsageError("a log given as a URL needs --catalog and --users")
    return read_tables(
        str(catalog if catalog is not None else log.parent / "catalog.parquet"),
        str(users if users is not None else log.parent / "users.parquet"),
    )


def tables_options(func):
    func = click.option(
        "--users",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="User profiles (Parquet or CSV). Default: users.parquet beside the log.",
    )(func)
    func = click.option(
        "--catalog",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Item catalog (Parquet or CSV). Default: catalog.parquet beside the log.",
    )(func)
    func = click.option(
        "--ranker-config",
        "ranker_config",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Ranker config (TOML). Default: ranker/ranker.toml shipped with the package.",
    )(func)
    return click.option(
        "--log",
        "log_path",
        type=LOG_SOURCE,
        required=True,
        help="The decision log (SQLite), e.g. log.db written by `sectionrank simulate`, or a Parquet dataset "
        "of logs (a directory, glob or URL).",
    )(func)


@click.command("train")
@click.option("--design", type=click.Choice(tuple(DESIGNS)), required=True, help="Which model to train.")
@tables_options
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Model directory to write (refused if it exists and is not empty, unless --force).",
)
@click.option(
    "--union",
    "union_spec",
    default=None,
    help="Training mix of the sections' lists: traffic, equal, business, or weights a,b,c in the design's "
    "section order. Default: the design's union in the config.",
)
@click.option("--force", is_flag=True, help="Replace an existing model directory at --out.")
@click.option(
    "--dask",
    "dask_spec",
    default=None,
    help="Train with LightGBM's Dask interface on this cluster: a scheduler address, or local:N for N "
    "local worker processes. The model directory is the same as one process writes.",
)
def train_command(
    design: str,
    log_path: Path,
    ranker_config: Path | None,
    catalog: Path | None,
    users: Path | None,
    out: Path,
    union_spec: str | None,
    force: bool,
    dask_spec: str | None,
) -> None:
    """Train a ranker design on a decision log and write its model directory.

    Splits the log by time into stats, train, validation and test windows, labels each section's shown lists
    by its own rule, trains LightGBM lambdarank (early stopping on the validation window), evaluates on the
    held-out test window, and writes the model, its inference contract, item statistics and metrics (also
    OUT/metrics.json). Prints the held-out metrics per section. With --dask, the boosting runs on a Dask
    cluster over partitions of whole lists (docs/scaling.md).

    \b
    Example:
        sectionrank train --design consolidated --log runs/sim/log.db --out runs/models/consolidated
        sectionrank train --design base --log runs/sim/log.db --out runs/models/base --union equal
        sectionrank train --design base --log runs/dataset --out runs/models/base --dask local:2
    """
    config = RankerConfig.load(ranker_config)
    if union_spec is not None:
        if not DESIGNS[design].shared:
            raise click.UsageError(
                f"--union applies to the {' and '.join(union_designs())} designs, not {design}"
            )
        parse_union_spec(union_spec, config.design(design).sections)
    check_log(log_path)
    if out.exists() and any(out.iterdir()):
        if not force:
            raise click.ClickException(f"{out} exists and is not empty; choose another --out or pass --force")
        if not (out / "manifest.json").is_file():
            raise click.ClickException(
                f"{out} is not a model directory; --force only replaces model directories"
            )
    catalog_table, user_table = _tables(log_path, catalog, users)
    click.echo(f"Reading {log_path} ...", err=True)
    if dask_spec is None:
        prepared = prepare_log(log_path, config)
        result = train_design(
            design, prepared, catalog_table, user_table, config, union=union_spec, progress=_bar
        )
    else:
        result = _train_on_dask(dask_spec, design, log_path, catalog_table, user_table, config, union_spec)
    if out.exists() and any(out.iterdir()):
        shutil.rmtree(out)  # a model directory, checked above; replaced only once the new model is trained
    path = result.save(out)
    timings = result.timings
    training = result.metadata["training"]
    iterations = ", ".join(
        f"{key if key != '*' else design}: {info['best_iteration']}" for key, info in training.items()
    )
    click.echo(
        f"Trained {design} on {int(timings['rows']):,} rows in {timings['fit_seconds']:.1f} s "
        f"({timings['rows_per_second']:,.0f} rows/s; best iteration {iterations}); written to {path}"
    )
    click.echo(
        f"Held-out metrics (k = {config.evaluation.k}, {1 - config.evaluation.alpha:.0%} bootstrap CI):"
    )
    click.echo(format_table(result.metrics.assign(model=design), [design], result.model.sections))
    note = context_note(config, [(design, design, result.model.sections)])
    if note:
        click.echo(f"\n{note}")
    if compiled.enabled():
        kinds = compiled.prepare(path)
        click.echo(f"Compiled for serving: scored by {', '.join(sorted(set(kinds.values())))}")


def _train_on_dask(dask_spec, design, log_path, catalog_table, user_table, config, union_spec):
    """`train_design` on the cluster. A dataset's partitions are labelled by the workers and stay there
    (`ranker.dataset_dask.prepare_log_on_cluster`): the union is drawn from the lists' metadata, the features
    of the training window are built on the workers, and each model is boosted by
    `ranker.train_dask.DaskLambdaRanker` on them. A SQLite log is read and labelled in this process and its
    training rows scattered to the workers."""
    from functools import partial

    from bandits.dataset_read import is_dataset
    from ranker.dataset_dask import prepare_log_on_cluster
    from ranker.train_dask import DaskLambdaRanker
    from sectionrank.dask_cluster import check_dask_spec, dask_client

    check_dask_spec(dask_spec)
    with dask_client(dask_spec) as client:
        if is_dataset(log_path):
            prepared = prepare_log_on_cluster(log_path, config, client)
        else:
            prepared = prepare_log(log_path, config)
        result = train_design(
            design,
            prepared,
            catalog_table,
            user_table,
            config,
            union=union_spec,
            progress=_bar,
            ranker_factory=partial(DaskLambdaRanker, client=client),
        )
        result.metadata["dask"] = {"cluster": dask_spec, "workers": len(client.nthreads())}
    return result


@click.command("evaluate")
@click.argument("model_dirs", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
@tables_options
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the metrics as JSON to this file.",
)
@click.option("--k", type=click.IntRange(min=1), default=None, help="Cutoff of NDCG, MAP and recall.")
@click.option(
    "--bootstrap",
    "n_bootstrap",
    type=click.IntRange(min=1),
    default=None,
    help="Bootstrap replicates of the confidence intervals.",
)
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Seed of the bootstrap.")
@click.option("--no-logged", is_flag=True, help="Leave out the logged order's reference column.")
def evaluate_command(
    model_dirs: tuple[Path, ...],
    log_path: Path,
    ranker_config: Path | None,
    catalog: Path | None,
    users: Path | None,
    out: Path | None,
    k: int | None,
    n_bootstrap: int | None,
    seed: int | None,
    no_logged: bool,
) -> None:
    """Evaluate model directories side by side on the held-out lists of the log they were trained on.

    NDCG@k, MAP@k, recall@k and AUC per section and over all sections a model serves, with percentile
    bootstrap intervals, on each section's own held-out lists (the test window recorded with the models).

    \b
    Example:
        sectionrank evaluate runs/models/base runs/models/consolidated runs/models/independent \\
            --log runs/sim/log.db --out runs/models/comparison.json
    """
    config = RankerConfig.load(ranker_config)
    check_log(log_path)
    settings = config.evaluation
    changes = {"k": k, "n_bootstrap": n_bootstrap, "seed": seed}
    settings = type(settings)(**{**vars(settings), **{key: v for key, v in changes.items() if v is not None}})
    catalog_table, user_table = _tables(log_path, catalog, users)
    report = evaluate_models(
        list(model_dirs),
        log_path,
        catalog_table,
        user_table,
        config,
        settings=settings,
        logged=not no_logged,
        progress=_bar,
    )
    for model in report.models:
        if model.name != LOGGED:
            click.echo(f"{model.name}: {model.path} ({model.version}; serves {', '.join(model.sections)})")
    click.echo(f"Held-out metrics (k = {settings.k}, {1 - settings.alpha:.0%} bootstrap CI):")
    click.echo(report.table())
    if not no_logged:
        click.echo(f"\n{LOGGED_NOTE}")
    note = context_note(config, [(m.name, m.design, m.sections) for m in report.models if m.name != LOGGED])
    if note:
        click.echo(f"\n{note}")
    if out is not None:
        report.write_json(out)
        click.echo(f"Metrics written to {out}")


__all__ = ["evaluate_command", "train_command"]
