"""A contextual bandit over each section's knob arms, built on Vowpal Wabbit ``--cb_explore_adf``.

One VW workspace serves every section: the shared namespace holds the request context (section, user segment,
device, hour bucket, the candidate set's fresh share and category entropy), each action line holds one arm
(its id and its numeric knob values), and ``-q UA`` crosses the two, so the learned choice depends on the
context. With ``VWSettings.cells`` (what ``sectionrank learn`` and the comparison learn with) the shared line
holds one feature instead, the request's *cell* of the context fields chosen for its section by
cross-validation (`bandits.knob_cells`), and each action line holds the arm's knob values as indicators named
after the section; ``-q UA`` without the action features' own weights (``--ignore_linear A``) then learns one
weight per (section, cell, knob value). Exploration is VW's (epsilon-greedy, softmax or SquareCB); the arm
is drawn from VW's distribution with the caller's seeded generator (`KnobPolicy.choose`).

Learning follows scikit-learn's contract: `__init__` stores settings, `fit` learns from logged decisions and
returns self, learned state ends in ``_``; predicting before fitting raises `NotFittedError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import numpy as np
import vowpalwabbit

from bandits.base import KnobPolicy
from bandits.context import PolicyContext
from bandits.errors import InvalidArgumentError, NotFittedError, PolicyContractError
from bandits.knob_cells import ALL_CELL, CellChoice, cell_keys, choose_fields
from bandits.vw_format import (
    ACTION_NS,
    CUBIC_INTERACTIONS,
    INTERACTIONS,
    Feature,
    action_line,
    labelled_blocks,
    shared_lines,
)
from heuristics import SectionsConfig

EXPLORATIONS = ("epsilon", "softmax", "squarecb")
#: VW's contextual-bandit reductions (``--cb_type``).
CB_TYPES = ("mtr", "dr", "ips")


#: The example format the policy's features are written in; a model is only valid with the format it learned
#: with, so the version is saved with it and checked at load. Bump it whenever the shared or action features
#: change. With ``VWSettings.factored`` the action lines carry one indicator per knob value instead of the
#: knob's number (`FACTORED_FORMAT`), so every arm that shares a knob value informs that value's weights.
FEATURE_FORMAT = "context-v1+arm-id-knob-values-v1"
FACTORED_FORMAT = "context-v1+arm-id-knob-indicators-v1"
#: With ``VWSettings.cells``: one ``cell=`` shared feature, section-named knob indicators, no arm id.
CELLS_FORMAT = "cell-v1+section-knob-indicators-v1"


def feature_format(settings: VWSettings) -> str:
    """The feature format a policy with `settings` writes."""
    if settings.cells:
        return CELLS_FORMAT
    return FACTORED_FORMAT if settings.factored else FEATURE_FORMAT


POLICY_FILE = re.compile(r"^policy-(\d{4,})\.vw$")


@dataclass(frozen=True)
class VWSettings:
    """VW options of a knob policy; they are stored with the model and must agree at load.

    The defaults are those of the first saved format (a model saved before a setting existed loads with
    that setting's default); ``sectionrank learn`` and the comparison learn with ``factored=True``
    (docs/bandits.md has what each setting gained, measured). ``cb_type``: VW's reduction (mtr, dr, ips);
    ``factored``: each knob as a ``knob=value`` indicator instead of its number; ``section_interactions``:
    VW's ``--cubic UUA``, pairs of context features crossed with the action features; ``passes``: passes
    over a cache with VW's held-out early stop; ``l2``: VW's L2 penalty; ``cells``: the cells layout (module
    docstring; ``factored``, ``section_interactions`` and the arm id do not apply to it).
    """

    exploration: str = "epsilon"
    epsilon: float = 0.05
    softmax_lambda: float = 10.0
    squarecb_gamma: float = 10.0
    bits: int = 18
    learning_rate: float = 0.1
    interactions: bool = True
    seed: int = 0
    cb_type: str = "mtr"
    factored: bool = False
    section_interactions: bool = False
    passes: int = 1
    l2: float = 0.0
    cells: bool = False

    def __post_init__(self) -> None:
        if self.cb_type not in CB_TYPES:
            raise InvalidArgumentError(f"Expected `cb_type` in {', '.join(CB_TYPES)}, found {self.cb_type!r}")
        if not 1 <= self.passes <= 100:
            raise InvalidArgumentError(f"Expected `passes` in [1, 100], found {self.passes!r}")
        if not self.l2 >= 0:
            raise InvalidArgumentError(f"Expected `l2` >= 0, found {self.l2!r}")
        if self.exploration not in EXPLORATIONS:
            raise InvalidArgumentError(
                f"Expected `exploration` in {', '.join(EXPLORATIONS)}, found {self.exploration!r}"
            )
        if not 0.0 <= self.epsilon <= 1.0:
            raise InvalidArgumentError(f"Expected `epsilon` in [0, 1], found {self.epsilon!r}")
        if not 1 <= self.bits <= 30:
            raise InvalidArgumentError(f"Expected `bits` in [1, 30], found {self.bits!r}")

    def arguments(self) -> list[str]:
        args = [
            "--cb_explore_adf",
            "--quiet",
            f"--bit_precision={self.bits}",
            f"--random_seed={self.seed}",
            f"--learning_rate={self.learning_rate!r}",
        ]
        args.append(f"--cb_type={self.cb_type}")
        if self.interactions or self.cells:
            args += [f"--quadratic={pair}" for pair in INTERACTIONS]
        if self.cells:
            # The knob values weigh only through their cell: a weight of their own would be collinear with
            # the cells' weights, and one pass of VW's updates splits collinear weights badly.
            args.append(f"--ignore_linear={ACTION_NS}")
        elif self.section_interactions:
            args += [f"--cubic={triple}" for triple in CUBIC_INTERACTIONS]
        if self.l2 > 0:
            args.append(f"--l2={self.l2!r}")
        if self.exploration == "epsilon":
            args.append(f"--epsilon={self.epsilon!r}")
        elif self.exploration == "softmax":
            args += ["--softmax", f"--lambda={self.softmax_lambda!r}"]
        else:
            args += ["--squarecb", f"--gamma_scale={self.squarecb_gamma!r}"]
        return args


def arm_action_lines(
    sections: SectionsConfig, *, factored: bool = False, cells: bool = False
) -> dict[str, list[str]]:
    """Each section's action lines: the arm id as an indicator, and every knob as a number or, `factored`,
    as a ``knob=value`` indicator (the same feature in every arm and section with that value). With `cells`,
    only the knob indicators, named ``section.knob=value`` (each section's own)."""
    if cells:
        return {
            s.name: [
                action_line([Feature(f"{s.name}.{name}", repr(float(v))) for name, v in arm.knobs.items()])
                for arm in s.arms
            ]
            for s in sections
        }
    return {
        s.name: [
            action_line(
                [Feature("arm", arm.id)]
                + [Feature(name, repr(float(v)) if factored else float(v)) for name, v in arm.knobs.items()]
            )
            for arm in s.arms
        ]
        for s in sections
    }


def context_lines(context: PolicyContext, cells: CellChoice | None = None) -> list[str]:
    """The shared lines of B requests; with `cells`, each request's ``cell=`` feature of the fields chosen
    for its section (`bandits.knob_cells.ALL_CELL` in a section without fields)."""
    if cells is not None:
        keys = np.full(len(context), ALL_CELL, dtype=object)
        section = np.asarray(context.section, dtype=str)
        for name, fields in cells.fields.items():
            rows = np.flatnonzero(section == name)
            if fields and len(rows):
                keys[rows] = cell_keys(context.take(rows), fields)
        return shared_lines({"cell": keys.astype(str)})
    return shared_lines(
        {
            "section": context.section,
            "segment": context.segment,
            "device": context.device,
            "hour": context.hour_bucket(),
            "fresh_share": np.asarray(context.fresh_share, dtype=np.float64),
            "category_entropy": np.asarray(context.category_entropy, dtype=np.float64),
        }
    )


class VWKnobPolicy(KnobPolicy):
    """Contextual bandit over knob arms; one VW workspace for all sections."""

    def __init__(
        self,
        sections: SectionsConfig,
        settings: VWSettings | None = None,
        *,
        cell_choice: CellChoice | None = None,
    ) -> None:
        super().__init__(sections)
        self.settings = settings or VWSettings()
        self.actions = arm_action_lines(sections, factored=self.settings.factored, cells=self.settings.cells)
        # The cells layout's fields per section: given (learned on an earlier pass over the log, or a
        # warm start's), or chosen by `fit` from the decisions it learns from.
        self.cell_choice = cell_choice
        self._lock = threading.Lock()

    # -- learning ---------------------------------------------------------------------------------------
    def fit(
        self,
        context: PolicyContext,
        arm_index: np.ndarray,
        reward: np.ndarray,
        propensity: np.ndarray,
        *,
        warm_start: str | os.PathLike | None = None,
    ) -> VWKnobPolicy:
        """Learn from B logged decisions (one pass, VW's own file reader).

        Parameters
        ----------
        context : PolicyContext of B requests
        arm_index : (B,) int
            The logged arm of each decision.
        reward : (B,) float
            Its reward (cost = -reward is applied by `bandits.vw_format`).
        propensity : (B,) float in (0, 1]
            The probability the logging policy chose that arm with.
        warm_start : path, optional
            A model file to continue from (its options are used; they must match `settings`).
        """
        return self.fit_chunks([(context, arm_index, reward, propensity)], warm_start=warm_start)

    def fit_chunks(
        self,
        chunks: Iterable[tuple[PolicyContext, np.ndarray, np.ndarray, np.ndarray]],
        *,
        warm_start: str | os.PathLike | None = None,
    ) -> VWKnobPolicy:
        """`fit` on logged decisions given chunk by chunk, ``(context, arm_index, reward, propensity)`` each:
        every chunk is written to VW's input file as it comes, so only one chunk is held in memory. The
        model equals `fit` on the chunks concatenated in order (the same examples, in the same order).

        The cells layout needs its fields before the first example is written: give them as `cell_choice`
        (`bandits.learn.learn_policy` chooses them on a first pass over the log); without them the chunks are
        held in memory and the fields chosen on them.
        """
        if self.settings.cells and self.cell_choice is None:
            chunks = list(chunks)
            self.cell_choice = choose_fields(chunks, self.sections, seed=self.settings.seed)
        with tempfile.TemporaryDirectory(prefix="sectionrank-vw-") as tmp:
            data, model = os.path.join(tmp, "train.vw.txt"), os.path.join(tmp, "model.vw")
            with open(data, "w", encoding="utf-8") as handle:
                for context, arm_index, reward, propensity in chunks:
                    if len(arm_index) == 0:
                        continue
                    handle.write(self._examples(context, arm_index, reward, propensity))
            if warm_start is not None:
                args = ["--quiet", f"--initial_regressor={os.fspath(warm_start)}", "--save_resume"]
            else:
                args = [*self.settings.arguments(), "--save_resume"]
            if self.settings.passes > 1:
                # Several passes over a cache; VW holds out every 10th example and stops after 3 passes
                # without improvement on them (its defaults), so more passes cannot overfit silently.
                args += [f"--passes={self.settings.passes}", f"--cache_file={data}.cache", "--kill_cache"]
            workspace = vowpalwabbit.Workspace(
                " ".join([*args, f"--data={data}", f"--final_regressor={model}", "--no_stdin"])
            )
            workspace.run_parser()
            examples = workspace.get_weighted_examples()
            self.progressive_loss_ = workspace.get_sum_loss() / examples if examples else float("nan")
            self.n_examples_ = int(examples)
            workspace.finish()
            with open(model, "rb") as handle:
                self.model_bytes_ = handle.read()
        self._open_workspace()
        return self

    def _examples(
        self, context: PolicyContext, arm_index: np.ndarray, reward: np.ndarray, propensity: np.ndarray
    ) -> str:
        """The VW text of logged decisions, their arms checked against the sections config."""
        arm_index = np.asarray(arm_index, dtype=np.int64)
        for section in np.unique(context.section):
            n_arms = len(self.sections[str(section)].arms)
            rows = context.section == section
            if rows.any() and (arm_index[rows].min() < 0 or arm_index[rows].max() >= n_arms):
                raise InvalidArgumentError(
                    f"Expected `arm_index` in [0, {n_arms}) for section {str(section)!r}"
                )
        return labelled_blocks(
            self._context_lines(context), context.section, arm_index, reward, propensity, self.actions
        )

    def _context_lines(self, context: PolicyContext) -> list[str]:
        return context_lines(context, self.cell_choice if self.settings.cells else None)

    def _open_workspace(self) -> None:
        old = getattr(self, "workspace_", None)
        fd, path = tempfile.mkstemp(prefix="sectionrank-policy-", suffix=".vw")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(self.model_bytes_)
            self.workspace_ = vowpalwabbit.Workspace(f"--quiet --initial_regressor={path}")
        finally:
            os.unlink(path)
        if old is not None:
            old.finish()

    def close(self) -> None:
        """Release the VW workspace."""
        workspace = getattr(self, "workspace_", None)
        if workspace is not None:
            workspace.finish()
            del self.workspace_

    # -- predicting -------------------------------------------------------------------------------------
    def _section_distribution(self, section: str, context: PolicyContext) -> np.ndarray:
        if not hasattr(self, "workspace_"):
            raise NotFittedError("VWKnobPolicy: call fit or load before distribution or choose")
        actions = self.actions[section]
        shared = self._context_lines(context)
        probs = np.empty((len(context), len(actions)))
        with self._lock:
            for i, line in enumerate(shared):
                probs[i] = self.workspace_.predict([line, *actions])
        return probs / probs.sum(axis=1, keepdims=True)

    # -- artifacts -------------------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike, metadata: dict[str, Any] | None = None) -> Path:
        """Write the next version ``policy-NNNN.vw`` with its ``policy-NNNN.json`` metadata; returns the file.

        The metadata holds the settings, the arms of every section (the policy's inference contract), the VW
        version, the model's SHA-256, the training counts and progressive validation loss, and `metadata`.
        """
        if not hasattr(self, "model_bytes_"):
            raise NotFittedError("VWKnobPolicy: call fit or load before save")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        versions = [int(m.group(1)) for p in directory.iterdir() if (m := POLICY_FILE.match(p.name))]
        version = max(versions, default=0) + 1
        model_path = directory / f"policy-{version:04d}.vw"
        meta = {
            "version": version,
            "created_at": time.time(),
            "vowpalwabbit": package_version("vowpalwabbit"),
            "settings": asdict(self.settings),
            "arms": {s.name: [arm.id for arm in s.arms] for s in self.sections},
            "feature_format": feature_format(self.settings),
            "sha256": hashlib.sha256(self.model_bytes_).hexdigest(),
            "n_examples": getattr(self, "n_examples_", 0),
            "progressive_loss": getattr(self, "progressive_loss_", None),
            **({"cells": self.cell_choice.to_dict()} if self.settings.cells and self.cell_choice else {}),
            **(metadata or {}),
        }
        # Metadata last: a version without its JSON is incomplete and `latest_policy` skips it.
        tmp = model_path.with_suffix(".vw.tmp")
        tmp.write_bytes(self.model_bytes_)
        tmp.replace(model_path)
        meta_tmp = model_path.with_suffix(".json.tmp")
        meta_tmp.write_text(json.dumps(meta, indent=2, sort_keys=True))
        meta_tmp.replace(model_path.with_suffix(".json"))
        self.metadata_ = meta
        return model_path

    @classmethod
    def load(cls, path: str | os.PathLike, sections: SectionsConfig) -> VWKnobPolicy:
        """Load a policy file, or the latest version in a directory, checking its contract.

        Refused with `PolicyContractError`: a model whose bytes do not match the recorded hash, a VW major
        version other than the installed one, or arms that differ from `sections`.
        """
        model_path = latest_policy(path)
        meta_path = model_path.with_suffix(".json")
        if not meta_path.exists():
            raise PolicyContractError(f"{model_path}: no metadata file {meta_path.name}")
        meta = json.loads(meta_path.read_text())
        model_bytes = model_path.read_bytes()
        if hashlib.sha256(model_bytes).hexdigest() != meta.get("sha256"):
            raise PolicyContractError(f"{model_path}: content hash does not match its metadata")
        saved_major = str(meta.get("vowpalwabbit", "")).split(".")[0]
        installed = package_version("vowpalwabbit")
        if saved_major != installed.split(".")[0]:
            raise PolicyContractError(
                f"{model_path}: saved with vowpalwabbit {meta.get('vowpalwabbit')}, installed {installed}"
            )
        settings = VWSettings(**meta["settings"])
        if meta.get("feature_format") != feature_format(settings):
            raise PolicyContractError(
                f"{model_path}: written in feature format {meta.get('feature_format')!r}, this code writes "
                f"{feature_format(settings)!r}"
            )
        expected = {s.name: [arm.id for arm in s.arms] for s in sections}
        for name, arms in expected.items():
            if meta["arms"].get(name) != arms:
                raise PolicyContractError(
                    f"{model_path}: arms of section {name!r} differ from the sections config"
                )
        choice = None
        if settings.cells:
            try:
                choice = CellChoice.from_dict(meta["cells"])
            except (KeyError, TypeError, InvalidArgumentError) as exc:
                raise PolicyContractError(
                    f"{model_path}: the cells layout's fields are missing or invalid ({exc})"
                ) from exc
        policy = cls(sections, settings, cell_choice=choice)
        policy.model_bytes_ = model_bytes
        policy.metadata_ = meta
        policy.n_examples_ = meta.get("n_examples", 0)
        policy.progressive_loss_ = meta.get("progressive_loss")
        policy._open_workspace()
        return policy

    @property
    def version(self) -> str:
        """``vw-policy-NNNN`` once saved or loaded, else ``vw-policy-unsaved``."""
        meta = getattr(self, "metadata_", None)
        return f"vw-policy-{meta['version']:04d}" if meta else "vw-policy-unsaved"


def latest_policy(path: str | os.PathLike) -> Path:
    """`path` if it is a policy file, else the highest-numbered complete ``policy-NNNN.vw`` in it."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise PolicyContractError(f"{path}: no such policy file or directory")
    found = sorted(
        (int(m.group(1)), p)
        for p in path.iterdir()
        if (m := POLICY_FILE.match(p.name)) and p.with_suffix(".json").exists()
    )
    if not found:
        raise PolicyContractError(f"{path}: no policy-NNNN.vw with its metadata")
    return found[-1][1]


__all__ = [
    "ACTION_NS",
    "NotFittedError",
    "PolicyContractError",
    "VWKnobPolicy",
    "VWSettings",
    "latest_policy",
]
