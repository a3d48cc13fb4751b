"""Shipped knob policies: the versions a policy directory publishes, and the policy a version serves.

The promotion gate (`bandits.promote`) decides, section by section, whether the learned candidate, the
incumbent or the best logged fixed arm is served, and publishes the result as a new *version*. A policy
directory holds:

::

    DIR/
      current                  the id of the published version, one line ("0003\\n")
      versions/0001/           one directory per version, complete before it gets its name
        version.json           what each section serves, and the gate's decision (window, estimates, margin)
        model-<sha12>.vw       each Vowpal Wabbit model a section serves ...
        model-<sha12>.json     ... with its own metadata (`VWKnobPolicy.load` checks hash, arms, format)
      versions/0002/ ...
      candidates/              where ``sectionrank learn --out DIR/candidates`` puts candidates (by default)

A version is written atomically: its files are written and fsynced in ``versions/.tmp-<id>-<pid>``, which is
renamed to ``versions/<id>`` (and the ``versions`` directory fsynced); then ``current`` is replaced by
writing ``current.tmp``, fsyncing it and renaming it over ``current`` (and fsyncing ``DIR``). A reader that
follows ``current`` therefore sees either the old version or the new one, complete, never a mix; a crash
leaves at most a stray ``.tmp-*`` directory, which is never read.

In ``version.json`` each section names its source: ``{"kind": "vw", "model": "model-<sha12>.vw", "from":
"candidate"}``, ``{"kind": "fixed", "arm": "<arm id>", "from": "best_fixed_logged"}``, or, where the gate kept
the exploring fallback the service served before any version, ``{"kind": "uniform", "from": "fallback"}`` or
``{"kind": "epsilon", "epsilon": 0.1, "from": "fallback"}`` (``from`` is one of `SOURCES`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from bandits.base import KnobPolicy
from bandits.context import PolicyContext
from bandits.errors import PolicyContractError
from bandits.policies import EpsilonGreedyPolicy, FixedArmPolicy, UniformPolicy
from bandits.vw_policy import VWKnobPolicy
from heuristics import SectionsConfig

#: Where a shipped section's policy came from.
SOURCES = ("candidate", "incumbent", "best_fixed_logged", "fallback", "default")
CURRENT = "current"
VERSIONS = "versions"
VERSION_FILE = "version.json"
CANDIDATES = "candidates"
_VERSION_ID = re.compile(r"^\d{4,}$")


def is_policy_dir(path: str | os.PathLike) -> bool:
    """True when `path` is a directory that publishes shipped versions (it has a ``current`` pointer)."""
    return (Path(path) / CURRENT).is_file()


def current_version(directory: str | os.PathLike) -> str | None:
    """The id of the published version of `directory`, or None when nothing was published yet."""
    pointer = Path(directory) / CURRENT
    if not pointer.is_file():
        return None
    version = pointer.read_text().strip()
    if not _VERSION_ID.match(version) or not (Path(directory) / VERSIONS / version / VERSION_FILE).is_file():
        raise PolicyContractError(f"{pointer}: points at {version!r}, which is not a complete version")
    return version


def read_version(directory: str | os.PathLike, version: str | None = None) -> dict[str, Any]:
    """The ``version.json`` of `version` (default: the published one) of a policy directory."""
    directory = Path(directory)
    version = version or current_version(directory)
    if version is None:
        raise PolicyContractError(f"{directory}: no published version ({CURRENT} is missing)")
    path = directory / VERSIONS / version / VERSION_FILE
    if not path.is_file():
        raise PolicyContractError(f"{directory}: no version {version!r}")
    return json.loads(path.read_text())


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_synced(path: Path, data: bytes) -> None:
    """Write `data` to `path` and fsync it before returning."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _next_version(versions: Path) -> str:
    names = [p.name for p in versions.iterdir()] if versions.is_dir() else []
    taken = [int(n) for n in names if _VERSION_ID.match(n)]
    return f"{max(taken, default=0) + 1:04d}"


def publish_version(
    directory: str | os.PathLike,
    sources: Mapping[str, Mapping[str, Any]],
    models: Mapping[str, str | os.PathLike],
    decision: Mapping[str, Any],
) -> str:
    """Write a new version atomically and point ``current`` at it; returns its id.

    Parameters
    ----------
    sources : mapping section -> source
        What each section serves (see the module docstring).
    models : mapping file name -> path
        The VW model files the sources name; each is copied with its ``.json`` metadata beside it.
    decision : mapping
        The gate's record (window, estimates, margin, ...), stored as ``decision`` in ``version.json``.
    """
    directory = Path(directory)
    versions = directory / VERSIONS
    versions.mkdir(parents=True, exist_ok=True)
    version = _next_version(versions)
    staging = versions / f".tmp-{version}-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    for name, source in models.items():
        source = Path(source)
        write_synced(staging / name, source.read_bytes())
        write_synced((staging / name).with_suffix(".json"), source.with_suffix(".json").read_bytes())
    meta = {
        "version": version,
        "created_at": time.time(),
        "sections": {s: dict(v) for s, v in sources.items()},
        "decision": dict(decision),
    }
    write_synced(staging / VERSION_FILE, json.dumps(meta, indent=2, sort_keys=True).encode())
    fsync_dir(staging)
    staging.rename(versions / version)
    fsync_dir(versions)
    _point_current(directory, version)
    return version


def _point_current(directory: Path, version: str) -> None:
    """Replace ``current`` atomically: write ``current.tmp``, fsync it, rename it over, fsync `directory`."""
    pointer = directory / (CURRENT + ".tmp")
    write_synced(pointer, f"{version}\n".encode())
    pointer.replace(directory / CURRENT)
    fsync_dir(directory)


def list_versions(directory: str | os.PathLike) -> list[str]:
    """The complete versions of a policy directory (those with a ``version.json``), oldest first."""
    versions = Path(directory) / VERSIONS
    if not versions.is_dir():
        return []
    found = [p.name for p in versions.iterdir() if _VERSION_ID.match(p.name) and (p / VERSION_FILE).is_file()]
    return sorted(found, key=int)


def rollback(directory: str | os.PathLike) -> tuple[str, str]:
    """Point ``current`` at the version before the published one (the highest complete id below it).

    The pointer is replaced atomically, as `publish_version` does; the rolled-back version stays on disk.
    Rolling back again goes one further back. The next version published still gets a new, higher id.

    Returns
    -------
    (the version published before, the version published now)

    Raises
    ------
    PolicyContractError
        Nothing is published, or the published version is the first one.
    """
    directory = Path(directory)
    version = current_version(directory)
    if version is None:
        raise PolicyContractError(f"{directory}: no published version to roll back ({CURRENT} is missing)")
    earlier = [v for v in list_versions(directory) if int(v) < int(version)]
    if not earlier:
        raise PolicyContractError(f"{directory}: version {version} is the first one; nothing to roll back to")
    _point_current(directory, earlier[-1])
    return version, earlier[-1]


def fallback_source(policy: KnobPolicy, section: str) -> dict[str, Any]:
    """The ``version.json`` source of a section served by a fallback policy (uniform, epsilon-greedy around
    the default arm, or a fixed arm).

    Raises
    ------
    PolicyContractError
        For any other kind of policy (a fallback is one of these three).
    """
    if isinstance(policy, UniformPolicy):
        return {"kind": "uniform"}
    if isinstance(policy, EpsilonGreedyPolicy):
        return {"kind": "epsilon", "epsilon": policy.epsilon}
    if isinstance(policy, FixedArmPolicy):
        return {"kind": "fixed", "arm": policy.sections[section].arms[policy.arm_index[section]].id}
    raise PolicyContractError(
        f"a fallback policy must be uniform, epsilon-greedy or a fixed arm, found {type(policy).__name__}"
    )


def is_version_dir(path: str | os.PathLike) -> bool:
    """True when `path` is one version of a policy directory (``DIR/versions/<id>``, complete)."""
    path = Path(path)
    return (
        path.parent.name == VERSIONS
        and bool(_VERSION_ID.match(path.name))
        and (path / VERSION_FILE).is_file()
    )


class ShippedPolicy(KnobPolicy):
    """The knob policy of a shipped version: each section served by its own source policy.

    Attributes
    ----------
    sources : mapping section -> KnobPolicy
        The policy that serves each section (a `VWKnobPolicy` or a `FixedArmPolicy`).
    specs : mapping section -> dict
        Each section's source as ``version.json`` records it.
    metadata : dict
        The whole ``version.json``.
    """

    def __init__(
        self,
        sections: SectionsConfig,
        sources: Mapping[str, KnobPolicy],
        specs: Mapping[str, Mapping[str, Any]],
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(sections)
        missing = [s.name for s in sections if s.name not in sources]
        if missing:
            raise PolicyContractError(f"shipped policy: no source for section(s) {', '.join(missing)}")
        self.sources = dict(sources)
        self.specs = {s: dict(v) for s, v in specs.items()}
        self.metadata = dict(metadata or {})
        #: The version's directory, once loaded.
        self.root: Path | None = None

    def _section_distribution(self, section: str, context: PolicyContext) -> np.ndarray:
        return self.sources[section]._section_distribution(section, context)

    @property
    def version(self) -> str:
        """``shipped-NNNN`` (the version id), or ``shipped-unsaved``."""
        return f"shipped-{self.metadata.get('version', 'unsaved')}"

    def close(self) -> None:
        """Release the VW workspaces of the sources."""
        for policy in {id(p): p for p in self.sources.values()}.values():
            if isinstance(policy, VWKnobPolicy):
                policy.close()

    @classmethod
    def load(
        cls, directory: str | os.PathLike, sections: SectionsConfig, version: str | None = None
    ) -> ShippedPolicy:
        """The published version (or `version`) of a policy directory.

        Each VW model is loaded once, with `VWKnobPolicy.load`'s checks; a fixed arm must be an arm of the
        section in `sections`. A section of `sections` the version does not name is refused.
        """
        directory = Path(directory)
        meta = read_version(directory, version)
        root = directory / VERSIONS / meta["version"]
        models: dict[str, VWKnobPolicy] = {}
        sources: dict[str, KnobPolicy] = {}
        specs = meta["sections"]
        for section in sections:
            spec = specs.get(section.name)
            if spec is None:
                raise PolicyContractError(
                    f"{root}: version names no source for section {section.name!r} of the sections config"
                )
            if spec["kind"] == "vw":
                if spec["model"] not in models:
                    models[spec["model"]] = VWKnobPolicy.load(root / spec["model"], sections)
                sources[section.name] = models[spec["model"]]
            elif spec["kind"] == "fixed":
                if spec["arm"] not in {a.id for a in section.arms}:
                    raise PolicyContractError(
                        f"{root}: arm {spec['arm']!r} of section {section.name!r} is not in the sections "
                        "config"
                    )
                sources[section.name] = FixedArmPolicy(sections, {section.name: spec["arm"]})
            elif spec["kind"] == "uniform":
                sources[section.name] = UniformPolicy(sections)
            elif spec["kind"] == "epsilon":
                sources[section.name] = EpsilonGreedyPolicy(sections, float(spec["epsilon"]))
            else:
                raise PolicyContractError(f"{root}: unknown source kind {spec['kind']!r} of {section.name!r}")
        policy = cls(sections, sources, specs, meta)
        policy.root = root
        return policy

    def model_files(self) -> dict[str, Path]:
        """The VW model files the version's sections name, by file name (needs a loaded version)."""
        if self.root is None:
            raise PolicyContractError("shipped policy: not loaded from a policy directory")
        return {
            spec["model"]: self.root / spec["model"] for spec in self.specs.values() if spec["kind"] == "vw"
        }


__all__ = [
    "CANDIDATES",
    "SOURCES",
    "ShippedPolicy",
    "current_version",
    "is_policy_dir",
    "is_version_dir",
    "list_versions",
    "publish_version",
    "read_version",
    "rollback",
]
