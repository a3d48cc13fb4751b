"""`sectionrank sections`: list the sections config, which also checks it."""

from __future__ import annotations

import json
from pathlib import Path

import click

from heuristics import SectionsConfig
from sectionrank.commands.options import config_option


@click.command("sections")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a listing.")
def sections_command(config_path: Path | None, as_json: bool) -> None:
    """List the configured sections with their pipelines, knobs and arms.

    \b
    Example:
        sectionrank sections --config my-sections.toml
    """
    config = SectionsConfig.load(config_path)
    if as_json:
        out = {
            s.name: {
                "description": s.description,
                "required_context": list(s.required_context),
                "normalize": s.normalize,
                "pipeline": list(s.pipeline),
                "params": {k: dict(v) for k, v in s.params.items()},
                "knobs": {k: list(v) for k, v in s.knob_values.items()},
                "arms": [arm.to_dict() for arm in s.arms],
                "default_arm": s.default_arm.id,
                "serving": vars(s.serving),
            }
            for s in config
        }
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(f"Sections config: {config.source}")
    for s in config:
        click.echo(f"\n[{s.name}] {s.description}")
        click.echo(f"  pipeline: {' -> '.join(s.pipeline)}  (scores normalised by {s.normalize})")
        if s.required_context:
            click.echo(f"  required context: {', '.join(s.required_context)}")
        varying = [k for k, v in s.knob_values.items() if len(v) > 1]
        for name, values in s.knob_values.items():
            mark = "" if name in varying else "  (fixed)"
            click.echo(f"  knob {name:<28} {', '.join(f'{v:g}' for v in values)}{mark}")
        click.echo(f"  arms: {len(s.arms)}; default arm {s.default_arm.id}")
        for arm in s.arms:
            star = "*" if arm.id == s.default_arm.id else " "
            knobs = " ".join(f"{k}={arm.knobs[k]:g}" for k in varying)
            click.echo(f"   {star}{arm.index:>3}  {arm.id}  {knobs}")
