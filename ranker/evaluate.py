"""Evaluation: NDCG@k, MAP@k, recall@k and AUC per section and overall, on each section's held-out lists.

A held-out list is one decision of the log's test window (`ranker.dataset`): its full shown list, labelled
by its section's rule. A model re-ranks those items; the metrics (`ranker.metrics.evaluate_lists`, with
percentile bootstrap intervals over lists) compare its order with the labels. Lists without a positive label
are left out of every metric (``ignore_empty``): they cannot tell two orders apart. ``n_defined`` counts the
lists a metric was computed on (AUC also needs a list with a non-positive row).

`evaluate_models` puts several model directories side by side on the same held-out lists, plus the
``logged`` order (what the logging policy showed, best first) as a reference. The rows of the section
``(all)`` cover every section a model serves, so they differ in scope between a model that serves search and
one that does not; compare designs section by section.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from ranker.config import EvaluationSettings, RankerConfig
from ranker.dataset import TEST, TimeSplit, prepare_log
from ranker.errors import EvaluationError
from ranker.labels import LabelledLists
from ranker.metrics import OVERALL, evaluate_lists
from ranker.model import RankerModel

T = TypeVar("T")
Progress = Callable[[Iterable[T], str], Iterable[T]]

#: The reference column: the logged order of the shown items.
LOGGED = "logged"
COLUMNS = ("model", "design", "section", "metric", "k", "mean", "ci_low", "ci_high", "n_lists", "n_defined")


def evaluate_scores(
    lists: LabelledLists, scores: np.ndarray, settings: EvaluationSettings, *, k: int | None = None
) -> pd.DataFrame:
    """Metrics of `scores` (R,) on `lists`, per section and overall (`ranker.metrics.evaluate_lists` rows).

    Tied scores count as every order of the tied rows for NDCG and recall (``ties="average"``); for MAP the
    rows of each list are first put in a seeded random order, so that ties never inherit the logged order.
    """
    scores = np.asarray(scores, dtype=np.float64)
    order = np.lexsort((np.random.default_rng(settings.seed).random(lists.n_rows), lists.request_of_row))
    return evaluate_lists(
        lists.label[order].astype(np.float64),
        scores[order],
        group_ids=lists.request_of_row[order],
        sections=lists.section_of_row[order],
        k=settings.k if k is None else k,
        ties="average",
        ignore_empty=True,
        n_bootstrap=settings.n_bootstrap,
        alpha=settings.alpha,
        seed=settings.seed,
    )


def _plain(value: object) -> object:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def metric_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Metric rows as JSON-able dicts (NaN and <NA> as None)."""
    return [{key: _plain(value) for key, value in row.items()} for row in frame.to_dict(orient="records")]


@dataclass(frozen=True)
class ModelInfo:
    """A model evaluated: its column name, directory, design, version and sections."""

    name: str
    path: str
    design: str
    version: str
    sections: tuple[str, ...]


@dataclass(frozen=True)
class EvaluationReport:
    """Several models' metrics on the same held-out lists.

    Attributes
    ----------
    models : tuple of ModelInfo
        In column order (the ``logged`` reference first when included).
    rows : pd.DataFrame
        Columns `COLUMNS`: one row per (model, section, metric).
    sections : tuple of str
        Sections evaluated, in config order.
    settings : EvaluationSettings
    log : str
    split : dict
    held_out : dict
    """

    models: tuple[ModelInfo, ...]
    rows: pd.DataFrame
    sections: tuple[str, ...]
    settings: EvaluationSettings
    log: str
    split: dict[str, Any]
    held_out: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "log": self.log,
            "split": self.split,
            "held_out": self.held_out,
            "settings": asdict(self.settings),
            "models": [asdict(m) | {"sections": list(m.sections)} for m in self.models],
            "rows": metric_records(self.rows),
        }

    def write_json(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    def table(self) -> str:
        return format_table(self.rows, [m.name for m in self.models], self.sections)


def _cell(row: pd.Series | None) -> str:
    if row is None or pd.isna(row["mean"]):
        return "-"
    low, high = row["ci_low"], row["ci_high"]
    return f"{row['mean']:.4f} [{low:.4f}, {high:.4f}]"


def format_table(rows: pd.DataFrame, models: Sequence[str], sections: Sequence[str]) -> str:
    """Per section, one line per metric with each model's mean and interval side by side.

    `rows` holds `COLUMNS` (``model`` naming the column); a model that does not serve a section shows "-".
    """
    lines = []
    width = 25
    for section in [*sections, OVERALL]:
        part = rows[rows["section"] == section]
        if part.empty:
            continue
        n_lists = int(part["n_lists"].max())
        ndcg = part[part["metric"].str.startswith("ndcg")]
        positive = int(ndcg["n_defined"].max()) if len(ndcg) else 0
        title = "all sections each model serves" if section == OVERALL else section
        lines.append(f"\n{title}: {n_lists:,} held-out lists, {positive:,} with a positive label")
        lines.append(("  " + f"{'metric':<10}" + "".join(f"{m:<{width}}" for m in models)).rstrip())
        for metric in pd.unique(part["metric"]):
            cells = []
            for model in models:
                found = part[(part["model"] == model) & (part["metric"] == metric)]
                cells.append(_cell(found.iloc[0] if len(found) else None))
            lines.append("  " + f"{metric:<10}" + "".join(f"{c:<{width}}" for c in cells).rstrip())
    return "\n".join(lines).lstrip("\n")


def _names(designs: Sequence[str], paths: Sequence[Path]) -> list[str]:
    """Column names: the design, or ``design (dir)`` when two models share a design."""
    return [d if designs.count(d) == 1 else f"{d} ({p.name})" for d, p in zip(designs, paths, strict=True)]


def evaluate_models(
    model_dirs: Sequence[str | os.PathLike],
    log_path: str | os.PathLike,
    catalog: pd.DataFrame,
    users: pd.DataFrame,
    config: RankerConfig | None = None,
    *,
    settings: EvaluationSettings | None = None,
    logged: bool = True,
    progress: Progress | None = None,
) -> EvaluationReport:
    """Evaluate model directories side by side on the held-out lists of the log they were trained on.

    Parameters
    ----------
    model_dirs : sequence of paths
        Models trained on the same log with the same split (their recorded cut-offs must agree).
    log_path : path of the decision log
    catalog, users : pd.DataFrame
    config : RankerConfig, optional
        Label rules and the features the code computes (the shipped config by default).
    settings : EvaluationSettings, optional
        Default: the config's ``[evaluation]``.
    logged : bool
        Add the logged order as a reference column.
    progress : callable, optional
        ``progress(models, description)`` wraps the models being scored.

    Raises
    ------
    EvaluationError
        No model, models with different splits, or a log whose held-out window does not hold the recorded
        decisions.
    ContractMismatchError
        A model whose contract does not hold (see `RankerModel.load`).
    """
    config = RankerConfig.load() if config is None else config
    settings = config.evaluation if settings is None else settings
    if not model_dirs:
        raise EvaluationError("expected at least one model directory")
    paths = [Path(p) for p in model_dirs]
    models = [RankerModel.load(p, catalog=catalog, users=users, config=config) for p in paths]
    splits = [m.metadata.get("split") for m in models]
    if any(s is None for s in splits):
        raise EvaluationError(f"{paths[splits.index(None)]}: the model's metadata records no time split")
    if any(s != splits[0] for s in splits[1:]):
        other = next(p for p, s in zip(paths, splits, strict=True) if s != splits[0])
        raise EvaluationError(
            f"{other} was trained with another time split than {paths[0]}; evaluate them separately"
        )
    split = TimeSplit.from_dict(splits[0])
    prepared = prepare_log(log_path, config, split=split)
    held_out = prepared.held_out()
    recorded = models[0].metadata.get("held_out", {})
    if recorded and recorded != held_out:
        raise EvaluationError(
            f"{log_path}: not the log the models were trained on: its held-out window holds "
            f"{held_out['decisions']:,} decisions (fingerprint {held_out['fingerprint'][:12]}), the models "
            f"recorded {recorded.get('decisions', 0):,} (fingerprint {str(recorded.get('fingerprint'))[:12]})"
        )
    sections = tuple(s for s in config.section_names if any(m.serves(s) for m in models))
    test = prepared.lists_in(TEST, sections)
    frames = []
    infos = []
    if logged:
        frames.append(
            evaluate_scores(test, -test.position.astype(np.float64), settings).assign(
                model=LOGGED, design=LOGGED
            )
        )
        infos.append(ModelInfo(LOGGED, "", LOGGED, "", sections))
    names = _names([m.design for m in models], paths)
    pairs = list(zip(names, models, strict=True))
    for name, model in progress(pairs, "evaluating") if progress is not None else pairs:
        part = test.take(
            np.flatnonzero(np.isin(test.requests.section, np.asarray(model.sections, dtype=object)))
        )
        frame = evaluate_scores(part, model.score_lists(part), settings)
        frames.append(frame.assign(model=name, design=model.design))
        infos.append(ModelInfo(name, str(model.path), model.design, model.version, model.sections))
    rows = pd.concat(frames, ignore_index=True)
    return EvaluationReport(
        models=tuple(infos),
        rows=rows[list(COLUMNS)],
        sections=sections,
        settings=settings,
        log=str(log_path),
        split=split.to_dict(),
        held_out=held_out,
    )
