"""The service's configuration: a TOML file (or a dict) plus environment overrides, validated once.

Keys (docs/serve.md lists them with their defaults)::

    store = "store.db"                  # the catalog/user store (filled by `sectionrank load-catalog`)
    log = "decisions.db"                # the decision log
    sections_config = ""                # sections TOML; "" = the one shipped with the package
    policy = "default"                  # knob policy spec or a VW policy directory
    reward_wait_seconds = 1800.0        # feedback later than this after its decision is stored late
    max_body_bytes = 1048576            # larger request bodies get 413
    seed = 0
    admin_token = ""                    # bearer token of POST /v1/models/reload; "" disables it
    heuristics = true                   # false serves the ranker's order
    [models]                            # model directories by design; omit the designs you do not serve
    base = "models/base"
    [section_models]                    # which design serves each section (defaults below)
    search = "independent"

Relative paths are resolved against the directory of the TOML file (against the working directory for a
dict). The environment overrides the file: ``SECTIONRANK_ADMIN_TOKEN``, ``SECTIONRANK_STORE``,
``SECTIONRANK_LOG``, ``SECTIONRANK_POLICY``, ``SECTIONRANK_SEED``, and ``SECTIONRANK_MODELS`` (a directory
whose ``base``, ``consolidated`` and ``independent`` subdirectories replace ``[models]``).
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

DESIGNS = ("base", "consolidated", "independent")

#: Which design serves each section unless configured: the base model does not serve search.
DEFAULT_SECTION_MODELS = MappingProxyType(
    {"discover": "base", "similar_items": "base", "category_explore": "base", "search": "independent"}
)

#: Environment variable -> config key.
ENVIRONMENT = MappingProxyType(
    {
        "SECTIONRANK_ADMIN_TOKEN": "admin_token",
        "SECTIONRANK_STORE": "store",
        "SECTIONRANK_LOG": "log",
        "SECTIONRANK_POLICY": "policy",
        "SECTIONRANK_SEED": "seed",
    }
)

#: The environment variable naming a directory of model directories, one per design.
MODELS_ENV = "SECTIONRANK_MODELS"

#: The environment variable naming the config file that `create_app()` reads when given none.
CONFIG_ENV = "SECTIONRANK_CONFIG"

_KNOWN = {
    "store",
    "log",
    "sections_config",
    "policy",
    "reward_wait_seconds",
    "max_body_bytes",
    "seed",
    "admin_token",
    "heuristics",
    "models",
    "section_models",
}


class ServiceConfigError(ValueError):
    """An invalid service config; the message names the key."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(f"service config: {key}: {message}")


@dataclass(frozen=True)
class ServiceConfig:
    """A validated service config (see the module docstring for the keys).

    Attributes
    ----------
    store, log : Path
    sections_config : Path or None
        None: the sections config shipped with the package.
    models : mapping design -> Path
    section_models : mapping section -> design
        Every section of the sections config must be mapped to a design listed in `models` (checked when the
        pipeline is built, where the sections are known).
    policy : str
        A `bandits.replay.parse_policy` spec, or a VW policy directory (resolved to an absolute path when it
        exists relative to the config file).
    """

    store: Path
    log: Path
    models: Mapping[str, Path]
    section_models: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_SECTION_MODELS))
    sections_config: Path | None = None
    policy: str = "default"
    reward_wait_seconds: float = 1800.0
    max_body_bytes: int = 1_048_576
    seed: int = 0
    admin_token: str = ""
    heuristics: bool = True
    source: str = "<dict>"

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, *, environ: Mapping[str, str] | None = None):
        """Read a TOML file (the shipped `service/service.toml` when None), then apply the environment."""
        if path is None:
            text = resources.files("service").joinpath("service.toml").read_text()
            source, base = "service/service.toml", Path.cwd()
        else:
            path = Path(path)
            try:
                text = path.read_text()
            except OSError as exc:
                raise ServiceConfigError("file", f"cannot read {path}: {exc.strerror or exc}") from None
            source, base = str(path), path.parent
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ServiceConfigError("file", f"{source} is not valid TOML: {exc}") from None
        return cls.from_dict(data, base_dir=base, environ=environ, source=source)

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        base_dir: str | os.PathLike | None = None,
        environ: Mapping[str, str] | None = None,
        source: str = "<dict>",
    ) -> ServiceConfig:
        """Validate a mapping of config keys; `environ` (default: os.environ) overrides them."""
        if not isinstance(data, Mapping):
            raise ServiceConfigError("config", f"expected a table, found {type(data).__name__}")
        unknown = sorted(set(data) - _KNOWN)
        if unknown:
            raise ServiceConfigError(unknown[0], f"unknown key (known: {', '.join(sorted(_KNOWN))})")
        values = dict(data)
        environ = os.environ if environ is None else environ
        for variable, key in ENVIRONMENT.items():
            if environ.get(variable):
                values[key] = environ[variable]
        base = Path.cwd() if base_dir is None else Path(base_dir)
        if environ.get(MODELS_ENV):
            root = Path(environ[MODELS_ENV])
            values["models"] = {d: str(root / d) for d in DESIGNS if (root / d).is_dir()}

        def path_of(key: str, value: Any) -> Path:
            if not isinstance(value, str | os.PathLike) or str(value) == "":
                raise ServiceConfigError(key, f"expected a path, found {value!r}")
            p = Path(value).expanduser()
            return p if p.is_absolute() else base / p

        for key in ("store", "log"):
            if key not in values:
                raise ServiceConfigError(key, "missing (a path)")
        sections_config = values.get("sections_config") or None
        models_table = values.get("models", {})
        if not isinstance(models_table, Mapping):
            raise ServiceConfigError("models", f"expected a table design -> path, found {models_table!r}")
        models = {}
        for design, value in models_table.items():
            if design not in DESIGNS:
                raise ServiceConfigError(f"models.{design}", f"unknown design (expected one of {DESIGNS})")
            models[design] = path_of(f"models.{design}", value)
        section_table = values.get("section_models", {})
        if not isinstance(section_table, Mapping):
            raise ServiceConfigError(
                "section_models", f"expected a table section -> design, found {section_table!r}"
            )
        section_models = dict(DEFAULT_SECTION_MODELS)
        for section, design in section_table.items():
            if design not in DESIGNS:
                raise ServiceConfigError(
                    f"section_models.{section}", f"expected one of {DESIGNS}, found {design!r}"
                )
            section_models[section] = design
        policy = values.get("policy", "default")
        if not isinstance(policy, str) or not policy:
            raise ServiceConfigError("policy", f"expected a policy spec or directory, found {policy!r}")
        if ":" not in policy and policy not in ("uniform", "default", "logging"):
            policy = str(path_of("policy", policy))
        return cls(
            store=path_of("store", values["store"]),
            log=path_of("log", values["log"]),
            models=MappingProxyType(models),
            section_models=MappingProxyType(section_models),
            sections_config=None if sections_config is None else path_of("sections_config", sections_config),
            policy=policy,
            reward_wait_seconds=_number(
                "reward_wait_seconds", values.get("reward_wait_seconds", 1800.0), 0.0
            ),
            max_body_bytes=_integer("max_body_bytes", values.get("max_body_bytes", 1_048_576), 1024),
            seed=_integer("seed", values.get("seed", 0), 0),
            admin_token=_string("admin_token", values.get("admin_token", "")),
            heuristics=_boolean("heuristics", values.get("heuristics", True)),
            source=source,
        )

    def with_overrides(self, **changes: Any) -> ServiceConfig:
        """A copy with some fields replaced (e.g. the model directories of a reload)."""
        return replace(self, **changes)

    def public(self) -> dict[str, Any]:
        """The config without the admin token, JSON-able."""
        return {
            "store": str(self.store),
            "log": str(self.log),
            "models": {d: str(p) for d, p in self.models.items()},
            "section_models": dict(self.section_models),
            "sections_config": None if self.sections_config is None else str(self.sections_config),
            "policy": self.policy,
            "reward_wait_seconds": self.reward_wait_seconds,
            "max_body_bytes": self.max_body_bytes,
            "seed": self.seed,
            "heuristics": self.heuristics,
        }


def _number(key: str, value: Any, low: float) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ServiceConfigError(key, f"expected a number, found {value!r}") from None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < low
    ):
        raise ServiceConfigError(key, f"expected a finite number >= {low:g}, found {value!r}")
    return float(value)


def _integer(key: str, value: Any, low: int) -> int:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ServiceConfigError(key, f"expected an integer >= {low}, found {value!r}")
    return value


def _string(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ServiceConfigError(key, f"expected a string, found {value!r}")
    return value


def _boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ServiceConfigError(key, f"expected true or false, found {value!r}")
    return value
