"""Arms as a reader knows them: by their knob values (``freshness 0.5, mmr 0.8, cap 4``), not by index or id.

`arm_label(section, arm)` is the one way the console and the reports name an arm. It shows the knobs that
vary between the section's arms (a knob with one allowed value says nothing about the arm), each by a short
name: the heuristic's name for its strength knob (``weight``, ``lambda``), else the knob's own name (``cap``,
``half_life_days``); a short name that two knobs of the section would share falls back to the dotted name.
"""

from __future__ import annotations

from collections import Counter

from heuristics.config import Arm, SectionConfig

#: Knob names that stand for "how strongly this heuristic acts": they are shown as the heuristic's name.
STRENGTH_KNOBS = frozenset({"weight", "lambda"})


def knob_short_names(knobs: list[str]) -> dict[str, str]:
    """Dotted knob names (``"mmr.lambda"``) -> short names (``"mmr"``), unique among `knobs`."""
    short = {}
    for knob in knobs:
        heuristic, _, name = knob.partition(".")
        short[knob] = heuristic if name in STRENGTH_KNOBS else name
    counts = Counter(short.values())
    return {knob: name if counts[name] == 1 else knob for knob, name in short.items()}


def arm_label(section: SectionConfig, arm: Arm) -> str:
    """The arm's varying knob values, in pipeline order: ``"freshness 0.5, promoted 0.1, mmr 0.8"``.

    A section with a single arm has no varying knob; its label lists every knob instead.
    """
    varying = [knob for knob, values in section.knob_values.items() if len(values) > 1]
    shown = varying or list(section.knob_values)
    names = knob_short_names(shown)
    return ", ".join(f"{names[knob]} {arm.knobs[knob]:g}" for knob in shown)


__all__ = ["STRENGTH_KNOBS", "arm_label", "knob_short_names"]
