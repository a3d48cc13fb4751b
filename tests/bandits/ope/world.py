"""Synthetic logged bandit data shared by the estimator tests.

A world with 5 discrete contexts and 4 arms whose value is known exactly,
``V(pi) = sum_k P(k) sum_a pi(a|k) q(k, a)``; its logs hold many identical rows (discrete context, 0/1
reward), as a knob log does. And a log with continuous context and a target drawn per row, where no two rows
are alike.
"""

from __future__ import annotations

import numpy as np

from bandits.ope import LoggedBandit

P_CONTEXT = np.array([0.3, 0.25, 0.2, 0.15, 0.1])
Q = np.array(
    [
        [0.10, 0.30, 0.50, 0.20],
        [0.60, 0.20, 0.10, 0.40],
        [0.25, 0.25, 0.70, 0.05],
        [0.90, 0.10, 0.30, 0.50],
        [0.05, 0.80, 0.40, 0.35],
    ]
)
MU = np.array(  # logging policy: every arm has positive probability in every context
    [
        [0.40, 0.30, 0.20, 0.10],
        [0.25, 0.25, 0.25, 0.25],
        [0.10, 0.20, 0.30, 0.40],
        [0.55, 0.15, 0.15, 0.15],
        [0.20, 0.50, 0.20, 0.10],
    ]
)
PI = np.array(  # target policy: partly deterministic, so some weights are 0
    [
        [0.0, 0.2, 0.8, 0.0],
        [1.0, 0.0, 0.0, 0.0],
        [0.1, 0.1, 0.7, 0.1],
        [0.5, 0.0, 0.0, 0.5],
        [0.0, 1.0, 0.0, 0.0],
    ]
)
TRUE_VALUE = float(P_CONTEXT @ (PI * Q).sum(axis=1))


def simulate(
    n: int, seed: int, *, deterministic: bool = False
) -> tuple[LoggedBandit, np.ndarray, np.ndarray]:
    """A log of n rows from the world, the target's (n, A) distribution and the true (n, A) q."""
    rng = np.random.default_rng(seed)
    k = rng.choice(len(P_CONTEXT), size=n, p=P_CONTEXT)
    a = (rng.random(n)[:, None] > np.cumsum(MU[k], axis=1)).sum(axis=1)
    reward = Q[k, a] if deterministic else (rng.random(n) < Q[k, a]).astype(np.float64)
    context = (k[:, None] == np.arange(len(P_CONTEXT))[None, :]).astype(np.float64)
    section = np.where(k < 2, "discover", "search").astype(object)
    logged = LoggedBandit(
        action=a, reward=reward, pscore=MU[k, a], context=context, group=section, n_actions=Q.shape[1]
    )
    return logged, PI[k], Q[k]


def continuous_log(
    n: int, seed: int, *, n_actions: int = 3, n_features: int = 2
) -> tuple[LoggedBandit, np.ndarray]:
    """A log of n rows with normal context features, Dirichlet logging and target distributions per row,
    rewards linear in the context plus noise, and two groups; and the target's (n, A) distribution."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_features))
    logging = rng.dirichlet(np.full(n_actions, 2.0), size=n)
    action = (rng.random(n)[:, None] > np.cumsum(logging, axis=1)).sum(axis=1).clip(max=n_actions - 1)
    coef = rng.normal(size=(n_actions, n_features))
    reward = (x @ coef.T)[np.arange(n), action] + rng.normal(scale=0.5, size=n)
    logged = LoggedBandit(
        action=action,
        reward=reward,
        pscore=logging[np.arange(n), action],
        context=x,
        group=np.where(rng.random(n) < 0.5, "a", "b").astype(object),
        n_actions=n_actions,
    )
    return logged, rng.dirichlet(np.ones(n_actions), size=n)
