"""LightGBM text models compiled to native code (lleaves), with LightGBM itself as the fallback.

A ranker scores a served request with one `Predictor` per booster: `CompiledPredictor` when the model compiles
and agrees with LightGBM, `LightGBMPredictor` (``Booster.predict`` at one thread) otherwise. Both return the
same raw scores; the compiled one is 5-15x faster on 100-500 rows (docs/performance.md has the numbers).

The compiled code is an object file cached beside the artifact, ``<model dir>/compiled/<model>-<key>.o``,
where the key hashes the model file's bytes (its content hash), the lleaves and llvmlite versions and the
host CPU (the code is built for it): a changed model, library or machine compiles anew, never a stale file.
Nothing is pickled; the file is written to a temporary name and renamed, so a reader never sees half of it.

Before a compiled predictor serves, it scores the artifact's smoke rows (``smoke_rows.npy``: held-out feature
rows saved at training) and must agree with ``Booster.predict`` within `TOLERANCE`; otherwise the booster
serves. Compiling takes seconds to tens of seconds, so it happens once: when `sectionrank train` saves a model
and when `sectionrank serve` starts (before gunicorn forks its workers, which then only load the cached file).

Fallbacks log one line each: lleaves or llvmlite not importable (once per process), no smoke rows in the
artifact, a compile that fails, predictions that disagree. Setting ``SECTIONRANK_COMPILED=0`` in the
environment turns the compiled predictor off.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from types import ModuleType
from typing import Protocol

import lightgbm as lgb
import numpy as np

LOGGER = logging.getLogger(__name__)

#: The environment variable that turns the compiled predictor off ("0", "false", "no" or "off").
ENV = "SECTIONRANK_COMPILED"
#: Where the compiled object files live, inside the model directory (not covered by its manifest).
CACHE_DIR = "compiled"
#: The artifact's held-out feature rows (float64 .npy, read with allow_pickle=False) that a compiled model
#: must score as LightGBM does.
SMOKE_ROWS_FILE = "smoke_rows.npy"
#: Largest absolute difference from ``Booster.predict`` on the smoke rows that a compiled model may show.
TOLERANCE = 1e-9


def enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the compiled predictor is wanted (``SECTIONRANK_COMPILED`` is not 0/false/no/off)."""
    value = (os.environ if environ is None else environ).get(ENV, "1")
    return value.strip().lower() not in ("0", "false", "no", "off")


class Predictor(Protocol):
    """Raw scores (R,) float64 of feature rows (R, F), on the calling thread."""

    kind: str

    def predict(self, features: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class LightGBMPredictor:
    """``Booster.predict`` at a fixed thread count (1 on the request path)."""

    booster: lgb.Booster
    num_threads: int = 1
    kind: str = "lightgbm"

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.booster.predict(features, num_threads=self.num_threads)


class CompiledPredictor:
    """A model compiled by lleaves, called on the calling thread (``n_jobs=1``: lleaves' default builds a
    thread pool per call)."""

    kind = "lleaves"

    def __init__(self, model: object, path: Path) -> None:
        self._model = model
        self.path = path

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self._model.predict(np.ascontiguousarray(features, dtype=np.float64), n_jobs=1)


@functools.cache
def _lleaves() -> ModuleType | None:
    """The lleaves module, or None (logged once per process) when it or its compiler cannot be imported."""
    try:
        import lleaves
    except (ImportError, OSError) as exc:  # OSError: llvmlite's shared library cannot be loaded
        LOGGER.warning("compiled predictor unavailable (%s): scoring with LightGBM", exc)
        return None
    return lleaves


def _versions() -> str:
    parts = []
    for name in ("lleaves", "llvmlite"):
        try:
            parts.append(f"{name}={package_version(name)}")
        except PackageNotFoundError:
            parts.append(f"{name}=?")
    return ",".join(parts)


@functools.cache
def _host() -> str:
    """The CPU the compiled code targets: name and features as LLVM sees them."""
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    try:
        features = llvm.get_host_cpu_features().flatten()
    except RuntimeError:
        features = ""
    return f"{llvm.get_host_cpu_name()}:{features}"


def cache_path(model_file: Path) -> Path:
    """``<dir>/compiled/<stem>-<key>.o``: the key hashes the model's bytes, the compiler versions and the
    host CPU."""
    model_file = Path(model_file)
    digest = hashlib.sha256(model_file.read_bytes())
    digest.update(f"|{_versions()}|{_host()}".encode())
    root = model_file.parent.parent if model_file.parent.name == "models" else model_file.parent
    return root / CACHE_DIR / f"{model_file.stem}-{digest.hexdigest()[:24]}.o"


def _compile(lleaves: ModuleType, model_file: Path, target: Path) -> object:
    """Compile `model_file`, writing its object file to `target` atomically (temporary name, rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=".o", dir=target.parent)
    os.close(fd)
    os.unlink(tmp)  # lleaves writes the object file only to a path that does not exist
    try:
        model = lleaves.Model(model_file=str(model_file))
        model.compile(cache=tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return model


def predictor(
    model_file: Path,
    booster: lgb.Booster,
    smoke_rows: np.ndarray | None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Predictor:
    """The fastest predictor of one model file that agrees with `booster` on `smoke_rows`.

    Loads the cached compiled model (compiling it first when missing), checks it on the smoke rows against
    ``booster.predict`` and returns it; returns a `LightGBMPredictor` when the compiled predictor is disabled,
    unavailable or disagrees (each logged in one line).
    """
    fallback = LightGBMPredictor(booster)
    if not enabled(environ):
        return fallback
    lleaves = _lleaves()
    if lleaves is None:
        return fallback
    model_file = Path(model_file)
    if smoke_rows is None or len(smoke_rows) == 0:
        LOGGER.warning("%s: no smoke rows to check a compiled model on; scoring with LightGBM", model_file)
        return fallback
    try:
        path = cache_path(model_file)
        if path.is_file():
            model = lleaves.Model(model_file=str(model_file))
            model.compile(cache=str(path))
        else:
            model = _compile(lleaves, model_file, path)
    except (OSError, RuntimeError, ValueError, KeyError, NotImplementedError) as exc:
        # What llvmlite (RuntimeError) and lleaves' model parser raise on a model they cannot compile.
        LOGGER.warning("%s: compiling failed (%s); scoring with LightGBM", model_file, exc)
        return fallback
    compiled = CompiledPredictor(model, path)
    rows = np.ascontiguousarray(smoke_rows, dtype=np.float64)
    gap = float(np.max(np.abs(compiled.predict(rows) - booster.predict(rows, num_threads=1))))
    if not gap <= TOLERANCE:
        LOGGER.warning(
            "%s: the compiled model differs from LightGBM by %.3g on the smoke rows (tolerance %g); "
            "scoring with LightGBM",
            model_file,
            gap,
            TOLERANCE,
        )
        path.unlink(missing_ok=True)
        return fallback
    return compiled


def model_file(directory: Path, key: str) -> Path:
    """The text model of booster `key` in a model directory (``"*"``: the one model of every section)."""
    return Path(directory) / ("model.txt" if key == "*" else f"models/{key}.txt")


def read_smoke_rows(path: Path | None) -> np.ndarray | None:
    """The smoke rows (R, F) float64 of an artifact's ``smoke_rows.npy``, or None without one."""
    if path is None:
        return None
    rows = np.load(path, allow_pickle=False)
    if rows.ndim != 2 or rows.dtype != np.float64:
        raise ValueError(f"{path}: expected a 2-d float64 array, found {rows.ndim}-d {rows.dtype}")
    return rows


def smoke_sample(features: np.ndarray, *, rows: int = 256, seed: int = 0) -> np.ndarray:
    """Up to `rows` feature rows (R, F) float64 drawn from `features` (seeded, kept in their order)."""
    features = np.asarray(features, dtype=np.float64)
    if len(features) > rows:
        features = features[np.sort(np.random.default_rng(seed).choice(len(features), rows, replace=False))]
    return np.ascontiguousarray(features)


def smoke_rows_bytes(rows: np.ndarray) -> bytes:
    """The bytes of ``smoke_rows.npy`` (no pickle)."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(rows, dtype=np.float64), allow_pickle=False)
    return buffer.getvalue()


def prepare(directory: Path) -> dict[str, str]:
    """Compile (or load from the cache) and check every model of a model directory; what serves each booster
    (``"lleaves"`` or ``"lightgbm"``). `sectionrank train` and `sectionrank serve` call it, so that serving
    workers find the compiled files ready."""
    from ranker.artifact import load_artifact

    artifact = load_artifact(directory)
    smoke = read_smoke_rows(artifact.files.get(SMOKE_ROWS_FILE))
    return {
        key: predictor(model_file(artifact.path, key), booster, smoke).kind
        for key, booster in artifact.boosters.items()
    }
