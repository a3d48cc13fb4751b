"""`sectionrank serve`, `load-catalog`, `load-users`: run the HTTP API under gunicorn and fill its store."""

from __future__ import annotations

import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import click

from heuristics import HeuristicsError, SectionsConfig
from service.config import CONFIG_ENV, MODELS_ENV, ServiceConfig
from service.errors import StoreError
from service.gunicorn_conf import BANNER_ENV, MULTIPROC_ENV
from service.store import ServiceStore, read_input

#: The WSGI target gunicorn loads in each worker, after the fork.
WSGI_APP = "service.app:create_app()"


def gunicorn_argv(host: str, port: int, workers: int, timeout: int = 30) -> list[str]:
    """The gunicorn command line (without ``--preload``: each worker loads its models after the fork).

    gunicorn runs through `sectionrank.gunicorn_main` under ``python -P``: neither puts the working directory
    on ``sys.path``, so a ``service/`` or ``ranker/`` directory where the command is run is not imported in
    place of ours."""
    return [
        sys.executable,
        "-P",
        "-m",
        "sectionrank.gunicorn_main",
        "--config",
        "python:service.gunicorn_conf",
        "--bind",
        f"{host}:{port}",
        "--workers",
        str(workers),
        "--timeout",
        str(timeout),
        WSGI_APP,
    ]


def curl_example(config: ServiceConfig, host: str, port: int) -> str:
    """A curl command that works against this config's store (real item and user ids, if loaded)."""
    items: list[int | str] = [1, 2, 3, 4, 5]
    user: int | str = 1
    try:
        catalog, users = ServiceStore(config.store).tables()
        items = catalog["item_id"].head(8).tolist()
        user = users["user_id"].head(1).tolist()[0]
    except StoreError:
        pass
    body = {
        "section": "discover",
        "user": {"id": user},
        "context": {"device": "mobile"},
        "candidates": items,
        "k": 5,
    }
    host_part = f"[{host}]" if ":" in host else host
    return (
        f"curl -s -X POST http://{host_part}:{port}/v1/rerank -H 'Content-Type: application/json' "
        f"-d {shlex.quote(json.dumps(body))}"
    )


def preflight(config: ServiceConfig) -> list[str]:
    """Problems a worker would hit at start, found without loading a model (no LightGBM before the fork):
    a store without its tables, a missing log directory, a sections config that does not load, a section
    no design serves, a design in use without a model directory."""
    problems = []
    info = ServiceStore(config.store).info() if config.store.is_file() else {}
    for table, command in (("catalog", "load-catalog"), ("users", "load-users")):
        if table not in info:
            problems.append(f"store {config.store}: no {table} table (run `sectionrank {command}`)")
    if not config.log.parent.is_dir():
        problems.append(f"log {config.log}: directory {str(config.log.parent)!r} does not exist")
    try:
        sections = [section.name for section in SectionsConfig.load(config.sections_config)]
    except HeuristicsError as exc:
        return [*problems, f"sections_config: {exc}"]
    problems += [f"{problem.key}: {problem.problem}" for problem in config.serving_problems(sections)]
    in_use = config.designs_in_use(sections)
    for design in sorted(in_use & set(config.models)):
        if not config.models[design].is_dir():
            problems.append(f"models.{design}: {config.models[design]} is not a directory")
    return problems


def sections_in_use(config: ServiceConfig) -> list[str]:
    try:
        return [section.name for section in SectionsConfig.load(config.sections_config)]
    except HeuristicsError:
        return []


def compile_models(config: ServiceConfig, sections: list[str]) -> None:
    """Compile the models in use before gunicorn starts (`ranker.compiled.prepare`), so that its workers only
    load the cached native code: compiling takes seconds to tens of seconds, past a worker's timeout. This
    process loads LightGBM, then replaces itself with gunicorn (exec, no fork), so no booster crosses a fork.
    A model that cannot be loaded is left to the workers, which report it on GET /readyz."""
    from ranker import compiled
    from ranker.errors import RankerError

    if not compiled.enabled():
        click.echo(f"  compiled predictor off ({compiled.ENV}=0): LightGBM scores")
        return
    in_use = config.designs_in_use(sections)
    for design in sorted(in_use & set(config.models)):
        started = time.perf_counter()
        try:
            kinds = compiled.prepare(config.models[design])
        except (RankerError, OSError, ValueError) as exc:
            click.echo(f"  models.{design}: not compiled ({exc})")
            continue
        served = ", ".join(sorted(set(kinds.values())))
        click.echo(f"  models.{design}: scored by {served} ({time.perf_counter() - started:.1f} s)")


@click.command("serve")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Service config (TOML). Default: the one shipped with the package (service/service.toml).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True, help="Port.")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=2,
    show_default=True,
    help="gunicorn worker processes; each loads its own models.",
)
@click.option(
    "--timeout",
    type=click.IntRange(1, 3600),
    default=30,
    show_default=True,
    help="Seconds a silent worker lives before gunicorn restarts it.",
)
@click.option(
    "--store",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Overrides the config's store (filled by load-catalog / load-users).",
)
@click.option(
    "--log",
    "log_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Overrides the config's decision log.",
)
@click.option(
    "--models",
    "models_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Overrides [models]: a directory with base/, consolidated/, independent/ model directories.",
)
@click.option(
    "--policy", default=None, help="Overrides the config's knob policy (spec or VW policy directory)."
)
@click.option(
    "--note",
    "notes",
    multiple=True,
    help="A line to add to the banner (repeatable), such as where a report is; the banner is printed again "
    "once every worker is ready.",
)
@click.option(
    "--dry-run", is_flag=True, help="Check the config and print the gunicorn command; do not start."
)
def serve_command(
    config_path: Path | None,
    host: str,
    port: int,
    workers: int,
    timeout: int,
    store: Path | None,
    log_path: Path | None,
    models_dir: Path | None,
    policy: str | None,
    notes: tuple[str, ...],
    dry_run: bool,
) -> None:
    """Serve the HTTP API with gunicorn: POST /v1/rerank, /v1/feedback, GET /v1/sections, /metrics, ...

    Each worker builds its pipeline after the fork (no --preload). SIGTERM drains every worker's decision
    queue into the log before it exits. Prints where it listens and a curl command to try (with the --note
    lines), and again once every worker is ready.

    \b
    Example:
        sectionrank serve --config service.toml --host 127.0.0.1 --port 8000 --workers 2
        sectionrank serve --store .demo/store.db --log .demo/served.db --models .demo/models \\
            --policy .demo/policy
    """
    env = dict(os.environ)
    if config_path is not None:
        env[CONFIG_ENV] = str(config_path.resolve())
    overrides = {"SECTIONRANK_STORE": store, "SECTIONRANK_LOG": log_path, MODELS_ENV: models_dir}
    for variable, value in overrides.items():
        if value is not None:
            env[variable] = str(value.resolve())
    if policy is not None:
        env["SECTIONRANK_POLICY"] = str(Path(policy).resolve()) if Path(policy).exists() else policy
    config = ServiceConfig.load(config_path, environ=env)
    problems = preflight(config)
    if problems:
        raise click.ClickException("; ".join(problems))
    argv = gunicorn_argv(host, port, workers, timeout)
    banner = "\n".join(
        [
            f"sectionrank: serving {config.source} on http://{host}:{port} with {workers} workers",
            f"  decisions -> {config.log}; policy {config.policy}",
            *(f"  {note}" for note in notes),
            "Try:",
            f"  {curl_example(config, host, port)}",
        ]
    )
    click.echo(banner)
    if dry_run:
        click.echo(" ".join(shlex.quote(a) for a in argv))
        return
    compile_models(config, sections_in_use(config))
    create_log(config.log)
    # Metrics summed over every worker (service.metrics): gunicorn's on_starting hook empties this directory.
    if not env.get(MULTIPROC_ENV):
        env[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="sectionrank-metrics-")
    click.echo(f"  metrics of all workers -> {env[MULTIPROC_ENV]}")
    env[BANNER_ENV] = banner
    sys.stdout.flush()
    os.execve(sys.executable, argv, env)


def create_log(path: Path) -> None:
    """Create the decision log (its schema, WAL mode) before the workers start. Workers that found no log
    created it at the same moment and raced for its write lock; the one that lost failed to boot, and a
    worker that fails to boot makes gunicorn's master stop."""
    from bandits.errors import LogError
    from bandits.log import DecisionLog

    try:
        with DecisionLog.open(path, create=True, busy_timeout=30.0):
            pass
    except LogError as exc:
        raise click.ClickException(f"log: {exc}") from None


def _load(table: str, store: Path, file: Path) -> None:
    rows = ServiceStore(store).load(table, read_input(file), source=str(file))
    click.echo(f"Loaded {rows:,} rows into the {table} table of {store} (from {file})")


def store_option(func):
    return click.option(
        "--store",
        type=click.Path(dir_okay=False, path_type=Path),
        required=True,
        help="The service store (SQLite); created if missing.",
    )(func)


@click.command("load-catalog")
@store_option
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def load_catalog_command(store: Path, file: Path) -> None:
    """Replace the store's item catalog with FILE (Parquet or CSV), atomically.

    Required columns: item_id, category, tags, publish_time, price, promoted, popularity and emb_0..emb_{d-1}.
    Running workers pick it up on their next POST /v1/models/reload.

    \b
    Example:
        sectionrank load-catalog --store store.db .demo/sim/catalog.parquet
    """
    _load("catalog", store, file)


@click.command("load-users")
@store_option
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def load_users_command(store: Path, file: Path) -> None:
    """Replace the store's user profiles with FILE (Parquet or CSV), atomically.

    Required columns: user_id, segment and u_emb_0..u_emb_{d-1}.

    \b
    Example:
        sectionrank load-users --store store.db .demo/sim/users.parquet
    """
    _load("users", store, file)


__all__ = ["load_catalog_command", "load_users_command", "serve_command"]
