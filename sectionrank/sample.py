"""A synthetic candidate list, to try a section's pipeline without a model or a world."""

from __future__ import annotations

import numpy as np
import pandas as pd

EMBEDDING_DIM = 8


def sample_candidates(n: int, seed: int, n_categories: int = 6) -> pd.DataFrame:
    """n candidates with a base score, category, subcategory, age, promoted flag and an embedding.

    The embedding of an item lies near its category's centre, so that similar items share a category.
    """
    rng = np.random.default_rng(seed)
    category = rng.integers(0, n_categories, size=n)
    centres = rng.normal(size=(n_categories, EMBEDDING_DIM))
    embedding = centres[category] + 0.5 * rng.normal(size=(n, EMBEDDING_DIM))
    frame = pd.DataFrame(
        {
            "id": [f"item-{i:04d}" for i in range(n)],
            "score": np.round(rng.normal(size=n), 4),
            "category": category,
            "subcategory": category * 10 + rng.integers(0, 3, size=n),
            "age_days": np.round(rng.exponential(20.0, size=n), 2),
            "promoted": rng.random(n) < 0.1,
        }
    )
    for j in range(EMBEDDING_DIM):
        frame[f"emb_{j}"] = np.round(embedding[:, j], 4)
    return frame
