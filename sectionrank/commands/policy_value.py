"""`sectionrank policy-value`: the exact value of knob policies in a simulated world."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import click
import numpy as np

from bandits.replay import POLICY_SPECS, parse_policy
from heuristics import SectionsConfig
from heuristics.arm_labels import arm_label
from sectionrank.commands.options import config_option, world_option
from sectionrank.progress import progress
from simulator.compare_settings import FULL, QUICK
from simulator.policy_eval import OUTCOMES, arm_values
from simulator.world import World
from simulator.world_config import WorldConfig


@click.command("policy-value")
@world_option
@click.option("--seed", type=int, default=0, show_default=True, help="The world's seed (as simulated).")
@click.option(
    "--policy",
    "policy_specs",
    multiple=True,
    help="Knob policy to value (repeatable): " + "; ".join(p for p in POLICY_SPECS if p != "logging") + ".",
)
@click.option("--requests", "n_requests", type=click.IntRange(min=1), default=10_000, show_default=True)
@click.option("--request-seed", type=int, default=1, show_default=True, help="Seeds the evaluation requests.")
@click.option("--since", type=float, default=None, help="Only requests at or after this time (Unix seconds).")
@click.option("--until", type=float, default=None, help="Only requests before this time (Unix seconds).")
@click.option("--outcome", type=click.Choice(OUTCOMES), default="clicks", show_default=True)
@config_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write JSON here.")
def policy_value_command(
    world_ref: str,
    seed: int,
    policy_specs: tuple[str, ...],
    n_requests: int,
    request_seed: int,
    since: float | None,
    until: float | None,
    outcome: str,
    config_path: Path | None,
    out: Path | None,
) -> None:
    """Exact expected outcome per request of knob policies, from the world's click model.

    Draws --requests fresh requests (optionally within [--since, --until)), computes every arm's exact
    expected outcome on each, and prints per section the value of each --policy, of the best fixed arm, of
    the default arm, of uniform random arms, of the best arm per segment x device (how much context can
    gain) and of the per-request oracle. No sampling noise from arms or
    clicks: every policy is valued on the same requests.

    \b
    Example:
        sectionrank policy-value --world default --policy runs/policy --policy default --requests 20000
    """
    sections = SectionsConfig.load(config_path)
    world = World.build(WorldConfig.load(world_ref), seed)
    rng = np.random.default_rng(request_seed)
    times = world.sample_times(n_requests * 4, rng)
    keep = np.ones(len(times), dtype=bool)
    if since is not None:
        keep &= times >= since
    if until is not None:
        keep &= times < until
    times = times[keep]
    if len(times) == 0:
        raise click.ClickException("no simulated time falls in [--since, --until)")
    # A uniform subsample of the window (not its first requests), in time order.
    times = np.sort(rng.choice(times, size=min(n_requests, len(times)), replace=False))
    requests = world.sample_requests(len(times), rng, times=times)
    values = arm_values(world, requests, sections, progress=lambda w: progress(w, desc="valuing arms"))
    policies = {spec: parse_policy(spec, sections) for spec in policy_specs}
    policies.setdefault("uniform", parse_policy("uniform", sections))
    policies.setdefault("default", parse_policy("default", sections))
    result: dict[str, dict] = {}
    for section in values.sections:
        fixed = values.fixed_arm_values(section, outcome)
        best = int(np.argmax(fixed))
        best_per_request = values.values[section][outcome][:, best]
        per_request = {name: values.per_request(p, section, outcome) for name, p in policies.items()}
        row = {
            "requests": len(values.rows[section]),
            "best_fixed_arm": {
                "index": best,
                "id": sections[section].arms[best].id,
                "knobs": arm_label(sections[section], sections[section].arms[best]),
                "value": float(fixed[best]),
            },
            "oracle": values.oracle_value(section, outcome),
            "context_oracle": values.context_oracle_value(section, outcome),
            "policies": {name: float(v.mean()) for name, v in per_request.items()},
            "gain_vs_best_fixed": {
                name: paired_gain(v, best_per_request)._asdict() for name, v in per_request.items()
            },
        }
        result[section] = row
    click.echo(f"Exact expected {outcome} per request on {len(requests):,} requests")
    for section, row in result.items():
        best = row["best_fixed_arm"]
        fixed_name = "best fixed arm: " + best["knobs"]
        width = max(40, len(fixed_name), *(len(name) for name in row["policies"]))
        click.echo(f"\n[{section}] {row['requests']:,} requests")
        for name, value in row["policies"].items():
            gain = row["gain_vs_best_fixed"][name]
            click.echo(
                f"  {name:<{width}} {value:8.4f}  ({gain['mean']:+.4f} [{gain['low']:+.4f}, "
                f"{gain['high']:+.4f}] vs best fixed arm)"
            )
        click.echo(f"  {fixed_name:<{width}} {best['value']:8.4f}")
        click.echo(
            f"  {'best arm per segment x device (truth)':<{width}} {row['context_oracle']:8.4f}  "
            f"({row['context_oracle'] - best['value']:+.4f}: what context can gain)"
        )
        click.echo(f"  {'per-request oracle':<{width}} {row['oracle']:8.4f}")
    click.echo(
        "\n" + READING_NOTE.format(requests=len(requests), full=FULL.log_requests, quick=QUICK.log_requests)
    )
    if out is not None:
        out.write_text(json.dumps({"outcome": outcome, "sections": result}, indent=2))
        click.echo(f"\nWrote {out}")


#: Printed under the values: what they measure, and why `sectionrank compare` gives the bandit another number.
READING_NOTE = """\
How to read these numbers: every value is exact on these {requests:,} requests (the world's click model, no
click noise). A learned policy is valued as it serves, exploration included (with `learn`'s default epsilon
0.05, a random arm on 5% of requests costs about 5% of the gap between the best fixed arm and `uniform`).
A gain is paired with the best fixed arm, picked with hindsight on the same requests; its 95% interval
covers only which requests were drawn, not the log a learned policy came from. `sectionrank compare` values
the bandit again over several seeds, each with its own world, log ({full:,} requests, {quick:,} with
--quick) and requests, against a fixed arm tuned on separate requests: its interval covers those too, so
its number for the bandit differs from this one.\
"""


class Gain(NamedTuple):
    """A mean paired difference per request with its 95% normal interval."""

    mean: float
    low: float
    high: float


def paired_gain(values: np.ndarray, reference: np.ndarray, *, z: float = 1.959964) -> Gain:
    """Mean of ``values - reference`` (both (m,), the same requests) with the interval ``mean ± z * s / √m``,
    ``s`` the sample standard deviation of the differences (ddof 1); a zero-width interval when m < 2."""
    diff = np.asarray(values, dtype=np.float64) - np.asarray(reference, dtype=np.float64)
    mean = float(diff.mean())
    half = float(z * diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
    return Gain(mean, mean - half, mean + half)
