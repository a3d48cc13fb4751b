"""Model artifacts that carry their inference contract, and refuse to load when it no longer holds.

A model directory holds:

- ``model.txt`` (or ``models/<section>.txt`` for the independent design): LightGBM text models;
- ``contract.json``: the design, the feature list with order, dtypes, defaults and categories, the sections
  served and the ``task_type`` categories, and the library versions it was trained with;
- ``metadata.json``: training-data summary, training settings and metrics (free-form);
- extra files the caller adds (e.g. ``item_stats.parquet``, the item statistics the features were computed
  from, and ``metrics.json``), listed in `RankerArtifact.files`;
- ``manifest.json``: the SHA-256 of every other file and one content hash over all of them.

Nothing is pickled. `load_artifact` checks the manifest, the LightGBM major version, that every booster's
feature names equal the contract's, and, when the caller passes the features its code computes, that they
equal the contract's (same names, order, dtypes, defaults and categories); `check_contract` runs the last
check on its own, for callers that need a file of the artifact to know their features.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import lightgbm as lgb

from ranker.designs import DESIGNS
from ranker.errors import ContractMismatchError

FORMAT_VERSION = 1


@dataclass(frozen=True)
class FeatureSpec:
    """One model input.

    Attributes
    ----------
    name : str
    dtype : str
        ``"float"`` or ``"category"`` (integer codes into `categories`).
    default : float
        The value used where the feature does not apply (e.g. a section-context feature in another
        section) or its source is unknown.
    categories : tuple of str
        For ``"category"`` features: the category of each code, in code order.
    description : str
    """

    name: str
    dtype: str = "float"
    default: float = 0.0
    categories: tuple[str, ...] = ()
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["categories"] = list(self.categories)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        return cls(**{**data, "categories": tuple(data.get("categories", ()))})


@dataclass(frozen=True)
class InferenceContract:
    """What a model needs at serving time, and what it was built with."""

    design: str
    features: tuple[FeatureSpec, ...]
    sections: tuple[str, ...]
    task_types: tuple[str, ...] = ()
    library_versions: dict[str, str] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.design not in DESIGNS:
            raise ContractMismatchError(
                f"design: expected one of {', '.join(DESIGNS)}, found {self.design!r}"
            )

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "design": self.design,
            "features": [f.to_dict() for f in self.features],
            "sections": list(self.sections),
            "task_types": list(self.task_types),
            "library_versions": dict(self.library_versions),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InferenceContract:
        return cls(
            design=data["design"],
            features=tuple(FeatureSpec.from_dict(f) for f in data["features"]),
            sections=tuple(data["sections"]),
            task_types=tuple(data.get("task_types", ())),
            library_versions=dict(data.get("library_versions", {})),
            format_version=int(data.get("format_version", FORMAT_VERSION)),
        )


def library_versions() -> dict[str, str]:
    return {name: package_version(name) for name in ("lightgbm", "numpy", "sectionrank")}


@dataclass
class RankerArtifact:
    """A loaded model directory: boosters by section (``"*"`` for one model serving every section)."""

    path: Path
    contract: InferenceContract
    boosters: dict[str, lgb.Booster]
    metadata: dict[str, Any]
    content_hash: str
    files: dict[str, Path] = field(default_factory=dict)
    """The extra files by name (their hashes checked), e.g. ``{"item_stats.parquet": <path>}``."""

    @property
    def version(self) -> str:
        """``<design>-<first 12 hex digits of the content hash>``."""
        return f"{self.contract.design}-{self.content_hash[:12]}"

    def booster_for(self, section: str) -> lgb.Booster:
        if section in self.boosters:
            return self.boosters[section]
        if "*" in self.boosters and section in self.contract.sections:
            return self.boosters["*"]
        raise ContractMismatchError(
            f"{self.path}: the {self.contract.design} model does not serve section {section!r} "
            f"(serves {', '.join(self.contract.sections)})"
        )


def _model_files(boosters: dict[str, lgb.Booster]) -> dict[str, lgb.Booster]:
    if set(boosters) == {"*"}:
        return {"model.txt": boosters["*"]}
    return {f"models/{section}.txt": booster for section, booster in boosters.items()}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


#: Names an extra file may not take: the artifact's own files.
RESERVED_FILES = ("model.txt", "contract.json", "metadata.json", "manifest.json")


def _check_extra_name(name: str) -> None:
    parts = Path(name).parts
    if (
        not name
        or Path(name).is_absolute()
        or ".." in parts
        or name in RESERVED_FILES
        or (parts and parts[0] == "models")
        or name != Path(name).as_posix()
    ):
        raise ContractMismatchError(
            f"extra file {name!r}: expected a relative path other than "
            f"{', '.join(RESERVED_FILES)} and models/"
        )


def save_artifact(
    directory: str | os.PathLike,
    contract: InferenceContract,
    boosters: dict[str, lgb.Booster],
    metadata: dict[str, Any] | None = None,
    *,
    extra_files: dict[str, bytes] | None = None,
) -> Path:
    """Write a model directory and return its path.

    `boosters` maps each section to its model, or ``"*"`` to one model serving every section.
    `extra_files` maps relative file names to their bytes; they are written beside the model and covered by
    the manifest and the content hash.
    """
    directory = Path(directory)
    extra_files = dict(extra_files or {})
    for name in extra_files:
        _check_extra_name(name)
    directory.mkdir(parents=True, exist_ok=True)
    if set(boosters) != {"*"}:
        (directory / "models").mkdir(exist_ok=True)
    for booster in boosters.values():
        if booster.feature_name() != contract.feature_names:
            raise ContractMismatchError(
                f"booster features {booster.feature_name()} differ from the contract's "
                f"{contract.feature_names}"
            )
    files: dict[str, str] = {}
    for name, booster in _model_files(boosters).items():
        booster.save_model(directory / name)
    (directory / "contract.json").write_text(json.dumps(contract.to_dict(), indent=2))
    (directory / "metadata.json").write_text(json.dumps(metadata or {}, indent=2, default=str))
    for name, data in extra_files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(data)
    for name in [*_model_files(boosters), "contract.json", "metadata.json", *extra_files]:
        files[name] = _sha256(directory / name)
    content = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    (directory / "manifest.json").write_text(
        json.dumps({"files": files, "content_hash": content}, indent=2, sort_keys=True)
    )
    return directory


def load_artifact(
    directory: str | os.PathLike,
    *,
    expected_features: tuple[FeatureSpec, ...] | None = None,
    expected_task_types: tuple[str, ...] | None = None,
) -> RankerArtifact:
    """Load a model directory, refusing it with `ContractMismatchError` when its contract does not hold.

    Parameters
    ----------
    expected_features : tuple of FeatureSpec, optional
        The features the loading code computes, in order; must equal the contract's exactly.
    expected_task_types : tuple of str, optional
        The task_type categories the loading code will send (the configured sections).
    """
    directory = Path(directory)
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        raise ContractMismatchError(f"{directory}: not a model directory (no manifest.json)")
    try:
        manifest = json.loads(manifest_path.read_text())
        files: dict[str, str] = manifest["files"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ContractMismatchError(f"{manifest_path}: unreadable manifest ({exc})") from None
    for name, digest in files.items():
        path = directory / name
        if not path.is_file():
            raise ContractMismatchError(f"{directory}: {name} is missing")
        if _sha256(path) != digest:
            raise ContractMismatchError(f"{directory}: {name} does not match its hash (corrupted or edited)")
    content = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    if content != manifest.get("content_hash"):
        raise ContractMismatchError(f"{manifest_path}: content hash does not match the files")

    contract = InferenceContract.from_dict(json.loads((directory / "contract.json").read_text()))
    if contract.format_version != FORMAT_VERSION:
        raise ContractMismatchError(
            f"{directory}: artifact format {contract.format_version}, this code reads {FORMAT_VERSION}"
        )
    saved = contract.library_versions.get("lightgbm", "")
    installed = package_version("lightgbm")
    if saved.split(".")[0] != installed.split(".")[0]:
        raise ContractMismatchError(
            f"{directory}: trained with lightgbm {saved or '?'}, installed {installed} "
            "(major versions differ)"
        )
    check_contract(
        directory, contract, expected_features=expected_features, expected_task_types=expected_task_types
    )

    boosters: dict[str, lgb.Booster] = {}
    extra: dict[str, Path] = {}
    for name in files:
        if name == "model.txt":
            boosters["*"] = lgb.Booster(model_file=str(directory / name))
        elif name.startswith("models/"):
            boosters[Path(name).stem] = lgb.Booster(model_file=str(directory / name))
        elif name not in RESERVED_FILES:
            extra[name] = directory / name
    if not boosters:
        raise ContractMismatchError(f"{directory}: no model file in the manifest")
    for section, booster in boosters.items():
        if booster.feature_name() != contract.feature_names:
            raise ContractMismatchError(
                f"{directory}: model {section!r} has features {booster.feature_name()}, "
                f"contract says {contract.feature_names}"
            )
    metadata = json.loads((directory / "metadata.json").read_text())
    return RankerArtifact(directory, contract, boosters, metadata, content, extra)


def check_contract(
    directory: str | os.PathLike,
    contract: InferenceContract,
    *,
    expected_features: tuple[FeatureSpec, ...] | None = None,
    expected_task_types: tuple[str, ...] | None = None,
) -> None:
    """Refuse (`ContractMismatchError`) a contract whose features or task_type categories are not the code's.

    The same check as `load_artifact` runs, for callers that know their features only after loading.

    Parameters
    ----------
    directory : path
        Named in the messages.
    contract : InferenceContract
    expected_features : tuple of FeatureSpec, optional
        The features the code computes, in order: names, order, dtypes, defaults and categories must equal.
    expected_task_types : tuple of str, optional
        The task_type categories the code sends (the configured sections when task_type is a feature).
    """
    directory = Path(directory)
    if expected_features is not None:
        _check_features(directory, contract.features, tuple(expected_features))
    if expected_task_types is not None and tuple(expected_task_types) != contract.task_types:
        raise ContractMismatchError(
            f"{directory}: task_type categories {list(contract.task_types)} differ from the configured "
            f"{list(expected_task_types)}"
        )


def _check_features(
    directory: Path, saved: tuple[FeatureSpec, ...], expected: tuple[FeatureSpec, ...]
) -> None:
    saved_names = [f.name for f in saved]
    expected_names = [f.name for f in expected]
    missing = [n for n in saved_names if n not in expected_names]
    extra = [n for n in expected_names if n not in saved_names]
    if missing or extra:
        raise ContractMismatchError(
            f"{directory}: features differ: the model needs {missing or 'nothing more'} that the code "
            f"does not compute; the code computes {extra or 'nothing more'} that the model does not know"
        )
    if saved_names != expected_names:
        raise ContractMismatchError(f"{directory}: feature order differs from the code's")
    for old, new in zip(saved, expected, strict=True):
        if old != new:
            what = next(k for k in ("dtype", "default", "categories") if getattr(old, k) != getattr(new, k))
            raise ContractMismatchError(
                f"{directory}: feature {old.name!r} {what} changed: model {getattr(old, what)!r}, "
                f"code {getattr(new, what)!r}"
            )
