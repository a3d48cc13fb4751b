"""`sectionrank rerank`: one section's pipeline run on a candidate list (a table or a synthetic sample),
without a model or a world."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import pandas as pd

from heuristics import ContextBatch, SectionPipeline, SectionsConfig
from heuristics.frames import embedding_columns, items_from_frame
from sectionrank.commands.options import config_option
from sectionrank.sample import sample_candidates


def read_candidates(path: Path) -> pd.DataFrame:
    readers = {
        ".csv": pd.read_csv,
        ".parquet": pd.read_parquet,
        ".json": pd.read_json,
        ".jsonl": lambda p: pd.read_json(p, lines=True),
    }
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise click.BadParameter(
            f"expected a .csv, .parquet, .json or .jsonl file, found {path.name}", param_hint="--candidates"
        )
    try:
        return reader(path)
    except (ValueError, OSError) as exc:
        # pandas reports empty and malformed tables as ValueError subclasses, pyarrow as ArrowInvalid.
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise click.BadParameter(f"cannot read {path.name}: {detail}", param_hint="--candidates") from None


@click.command("rerank")
@config_option
@click.option("--section", required=True, help="Section whose pipeline to run.")
@click.option(
    "--arm",
    "arm_ref",
    default=None,
    help="Arm id, or index (negative counts from the end). Default: the section's default arm.",
)
@click.option("--k", type=click.IntRange(min=1), default=None, help="How many to return.")
@click.option(
    "--candidates",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Candidate table (CSV, Parquet, JSON): id, score, category, age_days, promoted, ...",
)
@click.option(
    "--sample",
    type=click.IntRange(min=0, max=100_000),
    help="Instead of --candidates, a synthetic list of this many candidates.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --sample.")
@click.option("--category", type=int, default=None, help="Context: the explored category.")
@click.option(
    "--source-item",
    default=None,
    help="Context: id of the source item in the candidate table (its embedding is the source).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def rerank_command(
    config_path: Path | None,
    section: str,
    arm_ref: str | None,
    k: int | None,
    candidates: Path | None,
    sample: int | None,
    seed: int,
    category: int | None,
    source_item: str | None,
    as_json: bool,
) -> None:
    """Re-rank one candidate list with a section's pipeline under one arm.

    \b
    Example:
        sectionrank rerank --section discover --sample 40 --seed 7 --arm -1 --k 8
    """
    if (candidates is None) == (sample is None):
        raise click.UsageError("give exactly one of --candidates FILE or --sample N")
    config = SectionsConfig.load(config_path)
    cfg = config[section]
    arm = cfg.default_arm if arm_ref is None else cfg.arm(_arm_ref(arm_ref))
    frame = read_candidates(candidates) if candidates is not None else sample_candidates(sample, seed)
    ids, scores, items = items_from_frame(frame)

    if "category" in cfg.required_context and category is None:
        # A sample's context is its top-scored item's category, unless given.
        if sample is None:
            raise click.UsageError(f"section {section!r} needs --category")
        category = int(items.category[0, int(np.argmax(scores))]) if len(ids) else 0
    source_embedding = None
    if "source_item" in cfg.required_context:
        emb_cols = embedding_columns(frame)
        if source_item is None and sample is None:
            raise click.UsageError(f"section {section!r} needs --source-item")
        if not emb_cols:
            raise click.UsageError("--source-item needs emb_* columns in the candidate table")
        row = (
            np.zeros(min(len(ids), 1), dtype=np.int64)
            if source_item is None
            else np.flatnonzero(ids == source_item)
        )
        if np.size(row) == 0 and source_item is not None:
            raise click.BadParameter(f"no candidate with id {source_item!r}", param_hint="--source-item")
        embeddings = frame[emb_cols].to_numpy(np.float64)
        source_embedding = embeddings[row[0]] if np.size(row) else np.zeros(len(emb_cols))
    context = ContextBatch.single(source_embedding=source_embedding, category=category)

    k = cfg.serving.default_k if k is None else k
    ranking = SectionPipeline(cfg).rerank(scores, items, context, arm, k)
    order, final = ranking.order[0], ranking.scores[0]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "section": section,
                    "arm": arm.to_dict(),
                    "items": [
                        {"id": str(ids[i]), "score": float(s), "rank": r + 1}
                        for r, (i, s) in enumerate(zip(order, final, strict=True))
                    ],
                },
                indent=2,
            )
        )
        return
    knobs = ", ".join(f"{k}={v:g}" for k, v in arm.knobs.items())
    click.echo(f"\n{section}: arm {arm.index} {arm.id} ({knobs})")
    click.echo(f"  {'rank':>4}  {'id':<12} {'base':>8} {'final':>8} {'cat':>4} {'age_d':>7} promo")
    for r, (i, s) in enumerate(zip(order, final, strict=True)):
        click.echo(
            f"  {r + 1:>4}  {ids[i]:<12} {scores[i]:>8.3f} {s:>8.3f} {items.category[0, i]:>4} "
            f"{items.age_days[0, i]:>7.1f} {'yes' if items.promoted[0, i] else ''}"
        )


def _arm_ref(ref: str) -> str | int:
    try:
        return int(ref)
    except ValueError:
        return ref
