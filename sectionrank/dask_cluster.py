"""``--dask ADDRESS|local:N``: the Dask cluster a command runs its partitions on.

``local:N`` starts a `distributed.LocalCluster` of N worker processes with one thread each (LightGBM and
Vowpal Wabbit bring their own threads; processes keep them apart), on free ports, for the command's
duration. Anything else is a scheduler address (``tcp://host:8786``) of a running cluster, whose workers
must reach the dataset at the same path or URL the command was given (docs/scaling.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

_LOCAL = re.compile(r"^local:(\d+)$")


def check_dask_spec(spec: str) -> str:
    """`spec` if it is ``local:N`` (N >= 1) or a scheduler address; a one-line usage error otherwise."""
    match = _LOCAL.match(spec)
    if match and int(match.group(1)) >= 1:
        return spec
    if spec.startswith("local") or not spec.strip():
        raise click.BadParameter(f"expected local:N with N >= 1 or a scheduler address, found {spec!r}")
    return spec


@contextmanager
def dask_client(spec: str) -> Iterator[Any]:
    """A ``distributed.Client`` on the cluster `spec` names, closed (and a local cluster stopped) after."""
    from distributed import Client, LocalCluster

    check_dask_spec(spec)
    match = _LOCAL.match(spec)
    if match:
        with (
            LocalCluster(
                n_workers=int(match.group(1)),
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                scheduler_port=0,
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client
        return
    try:
        client = Client(spec, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise click.ClickException(f"--dask {spec}: cannot reach the scheduler ({exc})") from None
    with client:
        yield client
