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
    spill_dir = ""                      # spill journal directory; "" = "<log>.spill" beside the log
    reload_timeout_seconds = 60.0       # a reload's validation in a separate process is refused past this
    policy_poll_seconds = 5.0           # how often each worker checks DIR/current of a policy directory
    policy_fallback = "uniform"         # served while the policy directory has published no version yet
    policy_explore = 0.0                # mixes the served policy with this share of uniform exploration
    [loop]                              # the learning loop beside the service (`sectionrank loop`)
    every_seconds = 60.0
    [models]                            # model directories by design; omit the designs you do not serve
    base = "models/base"
    [section_models]                    # which design serves each section (defaults below)
    search = "independent"

Relative paths are resolved against the directory of the TOML file, the shipped one's included (against
the working directory for a dict). The environment overrides the file: ``SECTIONRANK_ADMIN_TOKEN``,
``SECTIONRANK_STORE``, ``SECTIONRANK_LOG``, ``SECTIONRANK_POLICY``, ``SECTIONRANK_SEED``, and
``SECTIONRANK_MODELS`` (a directory whose ``base``, ``consolidated`` and ``independent`` subdirectories
replace ``[models]``); a number given by a variable (``SECTIONRANK_SEED``) is text, converted before it is
checked.

Files and values are read and checked by the house's one config reader (`heuristics.config_reader`); a bad
one raises `service.errors.ServiceConfigError` naming the key.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from bandits.rewards import REWARDS
from heuristics.config_reader import ConfigChecks
from service.errors import ServiceConfigError

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

#: Config keys whose environment value is a number written as text, and its type: the text is converted
#: before the value is checked (text that does not parse is checked as it is, and refused naming the key).
ENVIRONMENT_NUMBERS = MappingProxyType({"seed": int})

#: The environment variable naming a directory of model directories, one per design.
MODELS_ENV = "SECTIONRANK_MODELS"

#: The environment variable naming the config file that `create_app()` reads when given none.
CONFIG_ENV = "SECTIONRANK_CONFIG"

_KNOWN = frozenset(
    {
        "store",
        "log",
        "sections_config",
        "policy",
        "reward_wait_seconds",
        "max_body_bytes",
        "seed",
        "admin_token",
        "heuristics",
        "reload_timeout_seconds",
        "spill_dir",
        "models",
        "section_models",
        "policy_poll_seconds",
        "policy_fallback",
        "policy_explore",
        "loop",
    }
)

#: ``[loop]`` keys (`sectionrank loop`; docs/serve.md) and their defaults.
LOOP_DEFAULTS = MappingProxyType(
    {
        "every_seconds": 60.0,
        "min_decisions": 1000,
        "settle_seconds": 2.0,
        "reward": "clicks",
        "default_reward": 0.0,
        "margin": 0.0,
        "gate_min_decisions": 200,
        "n_bootstrap": 200,
        "fixed_arm_decisions": 100_000,
        "seed": 0,
    }
)

#: Policy specs that are not paths (the others with a ``:`` are specs too, e.g. ``epsilon:0.1``).
_POLICY_NAMES = ("uniform", "default", "logging")

_CHECK = ConfigChecks(ServiceConfigError, file_key="file")


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
        Every section of the sections config must be mapped to a design listed in `models`
        (`serving_problems`, checked before `sectionrank serve` starts and when a pipeline is built).
    policy : str
        A `bandits.replay.parse_policy` spec, or a VW policy directory (resolved to an absolute path when it
        exists relative to the config file).
    policy_poll_seconds : float
        How often each worker looks for a newly published version of a policy directory (0: never).
    policy_fallback : str
        The policy spec (not a path) served while the policy directory has published no version.
    policy_explore : float in [0, 1]
        Share of uniform exploration mixed into the served policy (`bandits.policies.ExploringPolicy`).
    loop : mapping
        The ``[loop]`` table, every key of `LOOP_DEFAULTS` present and checked.
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
    reload_timeout_seconds: float = 60.0
    spill_dir: Path | None = None
    policy_poll_seconds: float = 5.0
    policy_fallback: str = "uniform"
    policy_explore: float = 0.0
    loop: Mapping[str, Any] = field(default_factory=lambda: dict(LOOP_DEFAULTS))
    source: str = "<dict>"

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, *, environ: Mapping[str, str] | None = None):
        """Read a TOML file (the shipped `service/service.toml` when None), then apply the environment."""
        if path is None:
            shipped = resources.files("service").joinpath("service.toml")
            source, base = "service/service.toml", Path(str(shipped)).parent
            data = _CHECK.parse_toml(shipped.read_text(), source)
        else:
            path = Path(path)
            source, base = str(path), path.parent
            data = _CHECK.read_toml(path)
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
        values = dict(_CHECK.keys("", data, _KNOWN))
        environ = os.environ if environ is None else environ
        for variable, key in ENVIRONMENT.items():
            if environ.get(variable):
                values[key] = _from_text(environ[variable], ENVIRONMENT_NUMBERS.get(key))
        base = Path.cwd() if base_dir is None else Path(base_dir)
        if environ.get(MODELS_ENV):
            root = Path(environ[MODELS_ENV])
            values["models"] = {d: str(root / d) for d in DESIGNS if (root / d).is_dir()}
        for key in ("store", "log"):
            if key not in values:
                raise ServiceConfigError(key, "missing (a path)")
        sections_config = values.get("sections_config") or None
        models = _models(values.get("models", {}), base)
        section_models = {**DEFAULT_SECTION_MODELS, **_section_models(values.get("section_models", {}))}
        return cls(
            store=_path("store", values["store"], base),
            log=_path("log", values["log"], base),
            models=MappingProxyType(models),
            section_models=MappingProxyType(section_models),
            sections_config=None
            if sections_config is None
            else _path("sections_config", sections_config, base),
            policy=_policy(values.get("policy", "default"), base),
            reward_wait_seconds=_CHECK.number(
                "reward_wait_seconds", values.get("reward_wait_seconds", 1800.0), low=0.0
            ),
            max_body_bytes=_CHECK.integer(
                "max_body_bytes", values.get("max_body_bytes", 1_048_576), low=1024
            ),
            seed=_CHECK.integer("seed", values.get("seed", 0), low=0),
            admin_token=_CHECK.string("admin_token", values.get("admin_token", "")),
            heuristics=_CHECK.boolean("heuristics", values.get("heuristics", True)),
            reload_timeout_seconds=_CHECK.number(
                "reload_timeout_seconds", values.get("reload_timeout_seconds", 60.0), low=1.0
            ),
            spill_dir=_path("spill_dir", values["spill_dir"], base) if values.get("spill_dir") else None,
            policy_poll_seconds=_CHECK.number(
                "policy_poll_seconds", values.get("policy_poll_seconds", 5.0), low=0.0
            ),
            policy_fallback=_fallback(values.get("policy_fallback", "uniform")),
            policy_explore=_CHECK.number(
                "policy_explore", values.get("policy_explore", 0.0), low=0.0, high=1.0
            ),
            loop=MappingProxyType(_loop(values.get("loop", {}))),
            source=source,
        )

    def with_reload(self, overrides: Mapping[str, Any]) -> ServiceConfig:
        """This config with a reload's `overrides` applied and checked: ``models`` (design -> directory,
        merged into `models`), ``policy`` and ``section_models`` (section -> design, merged). Paths are
        taken as given (absolute, or relative to the working directory)."""
        models = {**self.models, **_models(overrides.get("models", {}), Path.cwd())}
        section_models = {**self.section_models, **_section_models(overrides.get("section_models", {}))}
        policy = _policy(overrides["policy"], Path.cwd()) if "policy" in overrides else self.policy
        return replace(
            self,
            models=MappingProxyType(models),
            section_models=MappingProxyType(section_models),
            policy=policy,
        )

    def serving_problems(self, sections: Iterable[str]) -> list[ServiceConfigError]:
        """What stops this config from serving `sections` (the names in the sections config): each section no
        design serves, each design in use without a model directory. Empty when nothing does."""
        names = list(sections)
        problems = [
            ServiceConfigError(f"section_models.{name}", f"no design serves section {name!r}")
            for name in names
            if name not in self.section_models
        ]
        unserved: dict[str, list[str]] = {}
        for name in names:
            design = self.section_models.get(name)
            if design is not None and design not in self.models:
                unserved.setdefault(design, []).append(name)
        for design, served in unserved.items():
            listing = ", ".join(map(repr, served))
            problems.append(
                ServiceConfigError(f"models.{design}", f"no model directory, but it serves {listing}")
            )
        return problems

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
            "reload_timeout_seconds": self.reload_timeout_seconds,
            "spill_dir": "" if self.spill_dir is None else str(self.spill_dir),
            "policy_poll_seconds": self.policy_poll_seconds,
            "policy_fallback": self.policy_fallback,
            "policy_explore": self.policy_explore,
            "loop": dict(self.loop),
        }


def _from_text(text: str, kind: type | None) -> Any:
    """An environment variable's text as `kind` (None: the text itself); text that does not parse stays."""
    if kind is None:
        return text
    try:
        return kind(text.strip())
    except ValueError:
        return text


def _path(key: str, value: Any, base: Path) -> Path:
    if not isinstance(value, str | os.PathLike) or str(value) == "":
        raise ServiceConfigError(key, f"expected a path, found {value!r}")
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _models(table: Any, base: Path) -> dict[str, Path]:
    """``[models]``: design -> model directory."""
    _CHECK.keys("models", table, DESIGNS)
    return {design: _path(f"models.{design}", value, base) for design, value in table.items()}


def _section_models(table: Any) -> dict[str, str]:
    """``[section_models]``: section -> design."""
    if not isinstance(table, Mapping):
        raise ServiceConfigError("section_models", f"expected a table section -> design, found {table!r}")
    return {
        str(section): _CHECK.string(f"section_models.{section}", design, choices=DESIGNS)
        for section, design in table.items()
    }


def _policy(value: Any, base: Path) -> str:
    """A policy spec, or a policy directory resolved against `base`."""
    if not isinstance(value, str) or not value:
        raise ServiceConfigError("policy", f"expected a policy spec or directory, found {value!r}")
    if ":" in value or value in _POLICY_NAMES:
        return value
    return str(_path("policy", value, base))


def _fallback(value: Any) -> str:
    """``policy_fallback``: a policy spec that is not a path (uniform, default, epsilon:EPS, fixed:...)."""
    spec = _CHECK.string("policy_fallback", value)
    if (spec not in _POLICY_NAMES and ":" not in spec) or spec == "logging":
        raise ServiceConfigError(
            "policy_fallback", f"expected uniform, default, epsilon:EPS or fixed:SECTION=ARM, found {spec!r}"
        )
    return spec


def _loop(table: Any) -> dict[str, Any]:
    """``[loop]``: every key of `LOOP_DEFAULTS`, checked, the defaults filling those not given."""
    given = {**LOOP_DEFAULTS, **_CHECK.keys("loop", table, LOOP_DEFAULTS)}
    out: dict[str, Any] = {}
    for key, value in given.items():
        name = f"loop.{key}"
        if key == "reward":
            out[key] = _CHECK.string(name, value, choices=REWARDS)
        elif isinstance(LOOP_DEFAULTS[key], int):
            out[key] = _CHECK.integer(name, value, low={"seed": 0, "n_bootstrap": 10}.get(key, 1))
        elif key == "default_reward":
            out[key] = _CHECK.number(name, value)
        else:
            out[key] = _CHECK.number(name, value, low=0.0, low_open=key == "every_seconds")
    return out
