"""Fault injection shared by the service's tests: a log held locked by another writer, what a log holds, a
bounded wait, and bad artifacts for a reload (files edited and their manifest hashes recomputed)."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from importlib.metadata import version as package_version
from pathlib import Path

import numpy as np

from bandits.log import DecisionLog
from bandits.vw_policy import FEATURE_FORMAT, VWSettings
from heuristics import SectionsConfig


@contextmanager
def locked(path: str | Path, timeout: float = 0.1) -> Iterator[None]:
    """Another connection holding the log's write lock (``BEGIN EXCLUSIVE``) until the block ends; it waits up
    to `timeout` seconds for a writer that holds the lock now."""
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def in_log(path: Path) -> tuple[set[str], set[str]]:
    """Event ids of the decisions and of the feedback in the log."""
    with DecisionLog.open(path) as log:
        return set(log.decisions()["event_id"]), set(log.feedback()["event_id"])


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    """Poll `predicate` until it holds or `timeout` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def rehash(directory: Path) -> Path:
    """Rewrite a model directory's manifest so that every file's hash matches again (an edited artifact
    that the hash check alone would accept)."""
    manifest_path = directory / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    files = {name: hashlib.sha256((directory / name).read_bytes()).hexdigest() for name in manifest["files"]}
    content = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    manifest_path.write_text(json.dumps({"files": files, "content_hash": content}, indent=2, sort_keys=True))
    return directory


def edited_model(saved, root: Path, name: str, edit) -> Path:
    directory = root / name
    shutil.copytree(saved["base"], directory)
    model = directory / "model.txt"
    model.write_bytes(edit(model.read_bytes()))
    return rehash(directory)


def bad_artifacts(saved: Mapping[str, Path], root: Path) -> dict[str, tuple[dict, str]]:
    """Bad artifacts in `root` whose hashes match, each a reload that must be refused: name -> (reload body,
    the config key the refusal names). `saved`: design -> model directory (tests/conftest.py)."""
    truncated = edited_model(saved, root, "truncated", lambda data: data[: len(data) // 3])
    garbage = edited_model(saved, root, "garbage", lambda data: np.random.default_rng(0).bytes(4096))
    policy_dir = root / "policy"
    policy_dir.mkdir()
    junk = b"\x00\x01not a vw model" * 100
    (policy_dir / "policy-0001.vw").write_bytes(junk)
    sections = SectionsConfig.load()
    meta = {
        "version": 1,
        "vowpalwabbit": package_version("vowpalwabbit"),
        "settings": asdict(VWSettings()),
        "arms": {s.name: [arm.id for arm in s.arms] for s in sections},
        "feature_format": FEATURE_FORMAT,
        "sha256": hashlib.sha256(junk).hexdigest(),
    }
    (policy_dir / "policy-0001.json").write_text(json.dumps(meta))
    return {
        "truncated model": ({"models": {"base": str(truncated)}}, "models.base"),
        "garbage model": ({"models": {"base": str(garbage)}}, "models.base"),
        "garbage policy": ({"policy": str(policy_dir)}, "policy"),
        "consolidated model in the base slot": (
            {"models": {"base": str(saved["consolidated"])}},
            "models.base",
        ),
        "base model in the independent slot": (
            {"models": {"independent": str(saved["base"])}},
            "models.independent",
        ),
        "unknown section": ({"section_models": {"nosuch": "base"}}, "section_models.nosuch"),
    }
