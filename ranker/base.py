"""The ranker design kind: which sections share a model, and which features its models may use.

A design is a rule, not a model: it says how the sections it serves are grouped into LightGBM models (one
model for all of them, or one per section) and which features those models need or must not see. The config
(`ranker.config`) names the sections and features of each design and asks the design to check them; training
(`ranker.train`) asks it for its models' groups; the CLI lists the designs. `ranker.designs.DESIGNS` holds
every design by name. A new design writes one private method, `_model_of`, and states its feature rules.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from ranker.errors import RankerConfigError
from ranker.feature_defs import FEATURES

#: The model key of a model that serves every section of its design (``model.txt`` in the artifact).
EVERY_SECTION = "*"
#: The features that apply in one kind of section only (``FeatureDef.context`` set).
SECTION_CONTEXT_FEATURES = frozenset(name for name, spec in FEATURES.items() if spec.context is not None)


class Design(ABC):
    """A ranker design: how its sections are grouped into models, and its models' feature rules.

    Attributes
    ----------
    name : str
        The design's name in the config (``[designs.<name>]``), the CLI and the artifact's contract.
    description : str
        One line for humans.
    shared : bool
        True when one model serves every section of the design: it trains on a stratified union of the
        sections' lists (`ranker.union`), so a union spec applies. False: one model per section, each on that
        section's lists alone.
    required_features, forbidden_features : frozenset of str
        Features every model of the design must have, and must not have.
    rule : str
        Why: the reason the feature rules give in their error messages.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    shared: ClassVar[bool]
    required_features: ClassVar[frozenset[str]] = frozenset()
    forbidden_features: ClassVar[frozenset[str]] = frozenset()
    rule: ClassVar[str]

    @abstractmethod
    def _model_of(self, section: str) -> str:
        """The key of the model that serves `section`: `EVERY_SECTION` for a shared model, else its own."""

    def models(self, sections: Sequence[str]) -> dict[str, tuple[str, ...]]:
        """Model key -> the sections that model serves, in the order of `sections` (keys in order of first
        appearance): ``{"*": sections}`` for a shared design, ``{s: (s,) for s in sections}`` otherwise."""
        groups: dict[str, list[str]] = {}
        for section in sections:
            groups.setdefault(self._model_of(section), []).append(section)
        return {key: tuple(members) for key, members in groups.items()}

    def feature_problem(self, features: Sequence[str]) -> str | None:
        """Why the design's models cannot use `features`, or None when they can."""
        missing = sorted(self.required_features.difference(features))
        if missing:
            return f"the {self.name} design needs {missing}, found {list(features)} ({self.rule})"
        bad = [f for f in features if f in self.forbidden_features]
        if bad:
            return f"the {self.name} design cannot use {bad}, found in {list(features)} ({self.rule})"
        return None

    def validate(self, where: str, *, sections: Sequence[str], features: Sequence[str]) -> None:
        """The config hook: refuse the sections and features a ``[designs.<name>]`` table gives.

        `where` is the table's dotted key; the error names ``<where>.features`` (or ``.sections``) and says
        what was expected and found. Sections and features are already known names, distinct and non-empty.

        Raises
        ------
        RankerConfigError
        """
        problem = self.feature_problem(features)
        if problem is not None:
            raise RankerConfigError(f"{where}.features", problem)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
