"""A decision log whose best arm is known: uniform logging over two sections, reward 1 with probability 0.8
on the `policy_factories.best_arm` of the context and 0.2 elsewhere, one shown item clicked or not."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bandits.log import DecisionLog
from bandits.policies import UniformPolicy
from bandits.records import DecisionBatch, FeedbackBatch
from tests.bandits.policy_factories import CONFIG, best_arm, make_context

GATE_SECTIONS = ("discover", "search")
T0 = 1_700_000_000.0


def write_gate_log(path: Path, n: int, *, seed: int, start: float = T0, first_id: int = 0) -> np.ndarray:
    """Append n uniformly logged decisions one second apart from `start`; returns their times."""
    rng = np.random.default_rng(seed)
    context = make_context(n, seed=seed)
    context = context.__class__(**{**context.__dict__, "section": rng.choice(np.array(GATE_SECTIONS), n)})
    choice = UniformPolicy(CONFIG).choose(context, rng)
    good = choice.arm_index == best_arm(context)
    clicked = rng.random(n) < np.where(good, 0.8, 0.2)
    times = start + np.arange(n, dtype=np.float64)
    arms = [CONFIG[s].arms[a] for s, a in zip(context.section, choice.arm_index, strict=True)]
    decisions = DecisionBatch(
        event_id=np.array([f"gate-{first_id + i}" for i in range(n)]),
        time=times,
        section=context.section.astype(str),
        user_id=np.arange(n, dtype=np.int64),
        context=[
            {
                "segment": str(context.segment[i]),
                "device": str(context.device[i]),
                "hour": int(context.hour[i]),
                "fresh_share": float(context.fresh_share[i]),
                "category_entropy": float(context.category_entropy[i]),
            }
            for i in range(n)
        ],
        candidates=[np.array([7, 8], dtype=np.int64)] * n,
        shown=[np.array([7], dtype=np.int64)] * n,
        arm_id=np.array([a.id for a in arms]),
        arm_index=choice.arm_index,
        knobs=[dict(a.knobs) for a in arms],
        propensity=choice.propensity,
        arm_probs=choice.probs,
        model_versions=[{"policy": "uniform"}] * n,
    )
    feedback = FeedbackBatch(
        event_id=decisions.event_id.copy(),
        time=times + 1.0,
        clicks=[np.array([0], dtype=np.int64) if c else np.array([], dtype=np.int64) for c in clicked],
    )
    with DecisionLog.open(path, create=not path.exists()) as log:
        log.append(decisions, feedback)
    return times
