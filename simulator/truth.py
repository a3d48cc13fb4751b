"""The latent truth behind a world's clicks: each request's click-model parameters and each slot's
probabilities.

`ClickTruth` holds the per-section, per-segment and per-device parameters of a world's click model as arrays
and turns B requests into their latent per-request quantities (`RequestTruth`: the user's, the source item's
and the query's latent vectors with their weights, the logit offsets, the satiation and examination rates);
`slot_probabilities` then gives the attractiveness, conversion probability and price of every slot of a
slate. `simulator.world.World` answers every ground-truth question through it; the formulas are in the
module docstring of `simulator.world` and in docs/simulator.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator import click_model
from simulator.errors import SimulationInputError
from simulator.population import DAY, Items, Users, Vocabulary, unit_rows
from simulator.records import RequestBatch
from simulator.world_config import CONTEXT_KINDS, WorldConfig

_SECTION_PARAMETERS = (
    "examination_decay",
    "bias",
    "affinity",
    "freshness",
    "novelty",
    "source_similarity",
    "category_match",
    "query_match",
    "category_satiation",
    "subcategory_satiation",
)


@dataclass(frozen=True)
class SectionTable:
    """Per-section world parameters as arrays (S,), in the order of the world's sections."""

    names: tuple[str, ...]
    context_kind: np.ndarray
    traffic: np.ndarray
    examination_decay: np.ndarray
    bias: np.ndarray
    affinity: np.ndarray
    freshness: np.ndarray
    novelty: np.ndarray
    source_similarity: np.ndarray
    category_match: np.ndarray
    query_match: np.ndarray
    category_satiation: np.ndarray
    subcategory_satiation: np.ndarray

    @classmethod
    def from_config(cls, config: WorldConfig) -> SectionTable:
        sections = list(config.sections.values())
        traffic = np.array([s.traffic for s in sections])
        return cls(
            names=tuple(config.sections),
            context_kind=np.array([CONTEXT_KINDS.index(s.context) for s in sections], dtype=np.int64),
            traffic=traffic / traffic.sum(),
            **{
                name: np.array([getattr(s, name) for s in sections], dtype=np.float64)
                for name in _SECTION_PARAMETERS
            },
        )


@dataclass(frozen=True)
class RequestTruth:
    """Latent per-request quantities of B requests."""

    targets: np.ndarray  # (B, 3, d): user, source item and query latent vectors (zeros when absent)
    target_weights: np.ndarray  # (B, 3): affinity, source_similarity, query_match weights
    bias: np.ndarray  # (B,)
    category: np.ndarray  # (B,)
    category_match: np.ndarray  # (B,)
    novelty: np.ndarray  # (B,)
    freshness: np.ndarray  # (B,)
    category_satiation: np.ndarray  # (B,)
    subcategory_satiation: np.ndarray  # (B,)
    decay: np.ndarray  # (B,)
    conversion_offset: np.ndarray  # (B,)
    price_sensitivity: np.ndarray  # (B,)

    def take(self, rows: slice) -> RequestTruth:
        return RequestTruth(**{name: getattr(self, name)[rows] for name in self.__dataclass_fields__})


def name_codes(values: np.ndarray, names: tuple[str, ...], what: str) -> np.ndarray:
    """Codes (B,) of the names in `values` (B,) str; unknown names are refused, naming `what`."""
    unique, inverse = np.unique(np.asarray(values), return_inverse=True)
    lookup = {name: i for i, name in enumerate(names)}
    unknown = [str(v) for v in unique.tolist() if v not in lookup]
    if unknown:
        raise SimulationInputError(
            f"Expected `{what}` in {', '.join(names)}, found {', '.join(repr(v) for v in unknown)}"
        )
    return np.array([lookup[v] for v in unique.tolist()], dtype=np.int64)[inverse].reshape(-1)


class ClickTruth:
    """The click model of one world over its items, users and vocabulary."""

    def __init__(self, config: WorldConfig, items: Items, users: Users, vocab: Vocabulary) -> None:
        self.config = config
        self.sections = SectionTable.from_config(config)
        self._items, self._users, self._vocab = items, users, vocab
        cm, us = config.click_model, config.users
        segments, devices = config.segments, config.devices
        self._segment_bias = np.array([cm.segment_bias[s] for s in segments])
        self._conversion_segment = np.array([cm.conversion.segment[s] for s in segments])
        self._device_examination = np.array([cm.device_examination[d] for d in devices])
        self._device_freshness = np.array([us.freshness.device[d] for d in devices])
        self._device_satiation = np.array([us.satiation.device[d] for d in devices])
        self._device_price = np.array([us.price_sensitivity.device[d] for d in devices])

    def of(self, requests: RequestBatch) -> RequestTruth:
        """The latent quantities of B requests; unknown sections, devices or users are refused."""
        if not isinstance(requests, RequestBatch):
            raise SimulationInputError(f"Expected a RequestBatch, found {type(requests).__name__}")
        table = self.sections
        sec = name_codes(requests.section, table.names, "section")
        dev = name_codes(requests.device, self.config.devices, "device")
        user = requests.user_id
        n_users = len(self._users)
        if len(user) and (user.min() < 0 or user.max() >= n_users):
            raise SimulationInputError(
                f"Expected `user_id` in [0, {n_users}), found {user.min()}..{user.max()}"
            )
        us, it = self._users, self._items
        seg = us.segment[user]
        source = requests.source_item
        has_source = source >= 0
        source_latent = it.latent[np.maximum(source, 0)] * has_source[:, None]
        tokens = requests.query_tokens
        has_word = tokens >= 0
        query_latent = unit_rows(
            (self._vocab.latent[np.maximum(tokens, 0)] * has_word[:, :, None]).sum(axis=1)
        )
        satiation = us.satiation[user] * self._device_satiation[dev]
        return RequestTruth(
            targets=np.stack([us.latent[user], source_latent, query_latent], axis=1),
            target_weights=np.stack(
                [table.affinity[sec], table.source_similarity[sec], table.query_match[sec]], axis=1
            ),
            bias=table.bias[sec] + self._segment_bias[seg],
            category=requests.category,
            category_match=table.category_match[sec],
            novelty=table.novelty[sec],
            freshness=table.freshness[sec] * us.freshness[user] * self._device_freshness[dev],
            category_satiation=satiation * table.category_satiation[sec],
            subcategory_satiation=satiation * table.subcategory_satiation[sec],
            decay=table.examination_decay[sec] * self._device_examination[dev],
            conversion_offset=self.config.click_model.conversion.intercept + self._conversion_segment[seg],
            price_sensitivity=us.price_sensitivity[user] * self._device_price[dev],
        )

    def slot_probabilities(
        self, truth: RequestTruth, requests: RequestBatch, slates: np.ndarray, rows: slice
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Attractiveness, conversion probability and price, each (b, k), of the slates at `rows`."""
        part, ids = truth.take(rows), slates[rows]
        logit, affinity = self.base_logit(part, ids, requests.time[rows])
        it = self._items
        logit = click_model.satiated_logit(
            logit, it.category[ids], it.subcategory[ids], part.category_satiation, part.subcategory_satiation
        )
        conv = self.config.click_model.conversion
        price = it.price[ids]
        conversion_logit = (
            part.conversion_offset[:, None]
            + conv.quality * it.quality[ids]
            + conv.affinity * affinity
            - part.price_sensitivity[:, None] * np.log(price / self.config.items.price_median)
        )
        return click_model.sigmoid(logit), click_model.sigmoid(conversion_logit), price

    def base_logit(
        self, truth: RequestTruth, ids: np.ndarray, time: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Attractiveness logit before satiation, and the user-item affinity, both (b, m)."""
        it = self._items
        similarity = np.einsum("bmd,bjd->bmj", it.latent[ids], truth.targets)
        age = np.maximum(time[:, None] - it.publish_time[ids], 0.0) / DAY
        half_life = self.config.click_model.freshness_half_life_days
        logit = (
            truth.bias[:, None]
            + np.einsum("bmj,bj->bm", similarity, truth.target_weights)
            + self.config.click_model.quality * it.quality[ids]
            + truth.category_match[:, None] * (it.category[ids] == truth.category[:, None])
            + truth.novelty[:, None] * it.novelty[ids]
            + truth.freshness[:, None] * np.exp2(-age / half_life)
        )
        return logit, similarity[:, :, 0]
