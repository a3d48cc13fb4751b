"""The ranker designs, by name: the shared base ranker, the consolidated multi-task model, and independent
per-section models (`ranker.base.Design` says what a design is).

`DESIGNS` is the one list of designs that the config, training, the artifact's contract and the CLI read; a
design added here is picked up by all of them and by the design contract suite
(tests/ranker/test_design_contract.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ranker.base import EVERY_SECTION, SECTION_CONTEXT_FEATURES, Design
from ranker.feature_defs import TASK_TYPE


class BaseDesign(Design):
    """One ranker shared by the relevance sections, blind to which section asks: no task_type and no
    section-context features, so that per-section heuristics on top of it do the section-specific part."""

    name = "base"
    description = "one shared ranker for the relevance sections, without task_type or section context"
    shared = True
    forbidden_features = frozenset({TASK_TYPE, *SECTION_CONTEXT_FEATURES})
    rule = "one ranker blind to the section: no task_type or section-context features"

    def _model_of(self, section: str) -> str:
        return EVERY_SECTION


class ConsolidatedDesign(Design):
    """One multi-task model over the stratified union of every section's lists; task_type tells it the
    section, and section-context features may describe the request's context."""

    name = "consolidated"
    description = "one multi-task model for every section, with task_type and section-context features"
    shared = True
    required_features = frozenset({TASK_TYPE})
    rule = "one model for several sections needs task_type to tell them apart"

    def _model_of(self, section: str) -> str:
        return EVERY_SECTION


class IndependentDesign(Design):
    """One model per section, each trained on that section's lists alone."""

    name = "independent"
    description = "one model per section, each trained on that section's lists only"
    shared = False
    forbidden_features = frozenset({TASK_TYPE})
    rule = "each model serves one section, so task_type would be constant"

    def _model_of(self, section: str) -> str:
        return section


#: Every design, by name, in the order the config, the CLI and reports list them.
DESIGNS: Mapping[str, Design] = MappingProxyType(
    {design.name: design for design in (BaseDesign(), ConsolidatedDesign(), IndependentDesign())}
)


def union_designs() -> tuple[str, ...]:
    """The names of the shared designs: those a union spec applies to."""
    return tuple(name for name, design in DESIGNS.items() if design.shared)
