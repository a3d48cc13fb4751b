"""A trained ranker ready to score: its boosters, its inference contract and the feature function.

`RankerModel.load(directory, catalog=..., users=...)` is what the service and `sectionrank evaluate` call. It
loads the artifact (`ranker.artifact.load_artifact`: manifest, hashes, LightGBM version), rebuilds the
`FeatureBuilder` from the artifact's own item statistics and the given catalog and user tables with the
features the *code's* config lists for the design, and checks that they equal the contract: the same names
in the same order, dtypes, defaults and categories (segment, device, and the task_type categories, which are
the configured sections). Any difference is refused with `ContractMismatchError`.

Scoring a served request: ``model.score(section, user_id, context, candidates)`` returns one score per
candidate (higher is better), computed on the calling thread by the booster's `ranker.compiled` predictor:
the model compiled to native code when loaded with ``compiled=True`` (as the service does) and it agrees
with LightGBM on the artifact's smoke rows, ``Booster.predict(num_threads=1)`` otherwise
(``SECTIONRANK_COMPILED=0`` turns compiling off). A model serves only its contract's sections:
the base ranker serves the relevance sections and not ``search`` (`serves` says which); the service pairs it
with another model for the sections it does not serve.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from ranker.artifact import InferenceContract, check_contract, load_artifact
from ranker.compiled import (
    SMOKE_ROWS_FILE,
    LightGBMPredictor,
    Predictor,
    model_file,
    predictor,
    read_smoke_rows,
)
from ranker.config import RankerConfig
from ranker.errors import ContractMismatchError
from ranker.features import FeatureBuilder, FeatureTables
from ranker.labels import LabelledLists
from ranker.stats import ItemStats

ITEM_STATS_FILE = "item_stats.parquet"
METRICS_FILE = "metrics.json"


class RankerModel:
    """Boosters by section (``"*"``: one for every section) with the feature function they were trained on.

    Parameters
    ----------
    contract : InferenceContract
    boosters : dict of str to lightgbm.Booster
    builder : FeatureBuilder
        Computes exactly the contract's features.
    metadata : dict, optional
    version : str
        ``<design>-<content hash prefix>`` for a saved model, ``<design>-unsaved`` otherwise.
    """

    def __init__(
        self,
        contract: InferenceContract,
        boosters: Mapping[str, lgb.Booster],
        builder: FeatureBuilder,
        *,
        metadata: Mapping[str, Any] | None = None,
        version: str | None = None,
        path: Path | None = None,
    ) -> None:
        if tuple(s.name for s in builder.specs) != tuple(contract.feature_names):
            raise ContractMismatchError(
                f"the feature builder computes {list(builder.features)}, the contract needs "
                f"{contract.feature_names}"
            )
        self.contract = contract
        self.boosters = dict(boosters)
        self.builder = builder
        self.metadata = dict(metadata or {})
        self.version = version or f"{contract.design}-unsaved"
        self.path = path
        self.predictors: dict[str, Predictor] = {
            key: LightGBMPredictor(booster) for key, booster in self.boosters.items()
        }

    @classmethod
    def load(
        cls,
        directory: str | os.PathLike,
        *,
        catalog: pd.DataFrame,
        users: pd.DataFrame,
        config: RankerConfig | None = None,
        compiled: bool = False,
    ) -> RankerModel:
        """Load a model directory and check its contract against the code and the given tables.

        `compiled` (the service's choice) scores with the compiled models (`ranker.compiled.predictor`:
        loaded from the cache beside the artifact or compiled now, checked on the smoke rows) where they are
        available and agree; without it (offline evaluation, the simulator's many short-lived models) the
        boosters score.

        Raises
        ------
        ContractMismatchError
            A corrupted or edited artifact, another LightGBM major version, or features (names, order, dtypes,
            defaults, categories) or task_type categories that differ from what this code computes.
        """
        config = RankerConfig.load() if config is None else config
        artifact = load_artifact(directory)
        design = artifact.contract.design
        stats_path = artifact.files.get(ITEM_STATS_FILE)
        if stats_path is None:
            raise ContractMismatchError(f"{artifact.path}: no {ITEM_STATS_FILE} in the manifest")
        builder = FeatureBuilder(
            FeatureTables(catalog, users, ItemStats.read(stats_path)),
            features=config.design(design).features,
            sections=config.section_contexts,
        )
        check_contract(
            artifact.path,
            artifact.contract,
            expected_features=builder.specs,
            expected_task_types=builder.task_types,
        )
        model = cls(
            artifact.contract,
            artifact.boosters,
            builder,
            metadata=artifact.metadata,
            version=artifact.version,
            path=artifact.path,
        )
        if compiled:
            smoke = read_smoke_rows(artifact.files.get(SMOKE_ROWS_FILE))
            model.predictors = {
                key: predictor(model_file(artifact.path, key), booster, smoke)
                for key, booster in model.boosters.items()
            }
        return model

    @property
    def design(self) -> str:
        return self.contract.design

    @property
    def sections(self) -> tuple[str, ...]:
        """The sections this model serves."""
        return self.contract.sections

    def serves(self, section: str) -> bool:
        return section in self.contract.sections

    def booster_for(self, section: str) -> lgb.Booster:
        if section not in self.contract.sections:
            raise ContractMismatchError(
                f"the {self.design} model does not serve section {section!r} "
                f"(serves {', '.join(self.contract.sections)})"
            )
        return self.boosters[section] if section in self.boosters else self.boosters["*"]

    def predictor_for(self, section: str) -> Predictor:
        """What scores `section` on the calling thread: the compiled model or the booster at one thread."""
        self.booster_for(section)
        return self.predictors[section] if section in self.predictors else self.predictors["*"]

    def predict(self, section: str, features: np.ndarray, *, num_threads: int = 1) -> np.ndarray:
        """Scores (R,) of feature rows (R, F) of `section`: its predictor at one thread, else the booster."""
        if num_threads == 1:
            return self.predictor_for(section).predict(features)
        return self.booster_for(section).predict(features, num_threads=num_threads)

    def score(
        self,
        section: str,
        user_id: object,
        context: Mapping[str, object] | None,
        candidates: Sequence[object] | np.ndarray,
        *,
        now: float | None = None,
        num_threads: int = 1,
    ) -> np.ndarray:
        """Scores (n,) of one served request's candidates (see `FeatureBuilder.one`)."""
        self.booster_for(section)
        features = self.builder.one(section, user_id, context, candidates, now=now)
        if features.shape[0] == 0:
            return np.zeros(0)
        return self.predict(section, features, num_threads=num_threads)

    def score_lists(self, lists: LabelledLists, *, features: np.ndarray | None = None) -> np.ndarray:
        """Scores (R,) of every row of labelled lists (of sections this model serves)."""
        if features is None:
            features = self.builder.transform(lists.requests, lists.item_id, lists.request_of_row)
        scores = np.zeros(lists.n_rows)
        section_of_row = lists.section_of_row
        for section in pd.unique(lists.requests.section):
            rows = np.flatnonzero(section_of_row == section)
            if rows.size:
                scores[rows] = self.booster_for(str(section)).predict(features[rows])
        return scores
