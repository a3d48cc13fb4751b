"""The simulated world: items, users, requests, and the ground-truth click model over them.

`World.build(config, seed)` generates everything from a validated `WorldConfig`. The latent truth (latent
vectors, item quality, user sensitivities) stays private; a model sees only the observable tables
(`catalog()`, `users()`), the requests (`sample_requests`) and the heuristics' inputs (`item_batch`,
`context_batch`; with `request_context` and `segment` the world is the rerank pipeline's attribute source).
The truth answers through `attractiveness`, `expected_outcomes` (exact, closed form), `sample_clicks` and
`true_relevance`, computed by `simulator.truth.ClickTruth`. Formulas: docs/simulator.md and
`simulator.click_model`.

Attractiveness logit of item i at a slot, for request r of section s (user u, request device v):

    bias_s + segment_bias[seg_u] + quality_weight * q_i
    + affinity_s * cos(z_u, z_i)
    + source_similarity_s * cos(z_src, z_i)          (similar_items)
    + category_match_s * [category_i == category_r]  (category_explore)
    + query_match_s * cos(z_query, z_i)              (search)
    + novelty_s * novelty_i
    + freshness_s * F_u * Fdev_v * 0.5 ** (age_i / half_life)
    - S_u * Sdev_v * (category_satiation_s * n_cat + subcategory_satiation_s * n_sub)

and the conversion probability of a click is

    sigmoid(intercept + conv_segment[seg_u] + conv_quality * q_i + conv_affinity * cos(z_u, z_i)
            - P_u * Pdev_v * log(price_i / price_median)).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from heuristics import ContextBatch, ItemBatch
from ranker.requests import Requests
from simulator import click_model
from simulator.candidates import Retriever
from simulator.click_model import ExpectedOutcomes, SampledOutcomes
from simulator.errors import SimulationInputError
from simulator.population import DAY, Items, Users, make_items, make_topics, make_users, make_vocabulary
from simulator.records import RequestBatch
from simulator.truth import ClickTruth, name_codes
from simulator.world_config import CONTEXT_KINDS, WorldConfig

#: Relative request rate by hour of day (UTC): a daily cycle peaking at 20:00 and lowest at 08:00.
HOURLY_TRAFFIC = 1.0 + 0.5 * np.cos(2.0 * np.pi * (np.arange(24) - 20) / 24.0)
#: Rows per block when the click model runs over large batches (bounds memory to about 50 MB).
_BLOCK_CELLS = 400_000


@dataclass(frozen=True)
class ObservedItems:
    """Observable item attributes as arrays indexed by item id (read-only); `catalog()` is their table."""

    category: np.ndarray
    subcategory: np.ndarray
    embedding: np.ndarray
    publish_time: np.ndarray
    price: np.ndarray
    promoted: np.ndarray
    popularity: np.ndarray
    tags: np.ndarray


@dataclass(frozen=True)
class ObservedUsers:
    """Observable user attributes as arrays indexed by user id (read-only); `users()` is their table.

    ``segment`` and ``home_device`` are codes into `World.segments` and `World.devices`.
    """

    segment: np.ndarray
    home_device: np.ndarray
    signup_time: np.ndarray
    embedding: np.ndarray


def _read_only(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


class World:
    """A simulated world. Build it with `World.build(config, seed)`.

    Item ids are 0..N-1 in publish order; user ids are 0..U-1. Arrays of B requests follow the
    `RequestBatch` they come with; slates are (B, k) int64 item ids, best first.
    """

    def __init__(self, config: WorldConfig, seed: int) -> None:
        if not isinstance(config, WorldConfig):
            raise SimulationInputError(
                f"Expected `config` to be a WorldConfig, found {type(config).__name__}"
            )
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise SimulationInputError(f"Expected `seed` to be an integer >= 0, found {seed!r}")
        self.config = config
        self.seed = int(seed)
        topics_rng, vocab_rng, items_rng, users_rng = (
            np.random.default_rng(s) for s in np.random.SeedSequence(self.seed).spawn(4)
        )
        topics = make_topics(config, topics_rng)
        self._vocab = make_vocabulary(config, topics, vocab_rng)
        self._items: Items = make_items(config, topics, self._vocab, items_rng)
        self._users: Users = make_users(config, topics, self._items, users_rng)
        self._retriever = Retriever(
            config.candidates,
            self._items,
            n_cells=config.items.categories * config.items.subcategories_per_category,
            n_categories=config.items.categories,
        )
        self._activity_cum = np.cumsum(self._users.activity)
        self._truth = ClickTruth(config, self._items, self._users, self._vocab)
        self._catalog: pd.DataFrame | None = None
        self._user_table: pd.DataFrame | None = None

    @classmethod
    def build(cls, config: WorldConfig | str | Path = "default", seed: int = 0) -> World:
        """Generate a world from a config, a world name or a file path; the same seed, the same world."""
        if not isinstance(config, WorldConfig):
            config = WorldConfig.load(config)
        return cls(config, seed)

    # --- observable -------------------------------------------------------------------------------------

    @property
    def sections(self) -> tuple[str, ...]:
        return tuple(self.config.sections)

    @property
    def segments(self) -> tuple[str, ...]:
        return self.config.segments

    @property
    def devices(self) -> tuple[str, ...]:
        return self.config.devices

    @property
    def n_items(self) -> int:
        return len(self._items)

    @property
    def n_users(self) -> int:
        return len(self._users)

    @property
    def vocabulary(self) -> np.ndarray:
        """The tag words (V,) str; query and tag word ids index it."""
        return self._vocab.words.copy()

    @property
    def observed_items(self) -> ObservedItems:
        it = self._items
        return ObservedItems(
            **{
                name: _read_only(getattr(it, name))
                for name in ObservedItems.__dataclass_fields__  # the observable fields only
            }
        )

    @property
    def observed_users(self) -> ObservedUsers:
        us = self._users
        return ObservedUsers(
            segment=_read_only(us.segment),
            home_device=_read_only(us.home_device),
            signup_time=_read_only(us.signup_time),
            embedding=_read_only(us.embedding),
        )

    def catalog(self) -> pd.DataFrame:
        """The item catalog a real system would have, one row per item.

        Columns: ``item_id`` int64, ``category`` int64, ``subcategory`` int64, ``tags`` (space-separated
        words), ``emb_0 .. emb_{d-1}`` float64 (observable embedding), ``publish_time`` int64 (Unix seconds),
        ``price`` float64, ``promoted`` bool, ``popularity`` int64 (interactions before the period; 0 for
        items published during it). Item quality and latent vectors are not in it.
        """
        if self._catalog is None:
            it = self._items
            words = self._vocab.words.astype(object)
            tags = words[it.tags[:, 0]]
            for j in range(1, it.tags.shape[1]):
                tags = tags + " " + words[it.tags[:, j]]
            columns: dict[str, np.ndarray] = {
                "item_id": np.arange(len(it), dtype=np.int64),
                "category": it.category,
                "subcategory": it.subcategory,
                "tags": tags,
            }
            columns.update({f"emb_{j}": it.embedding[:, j] for j in range(it.embedding.shape[1])})
            columns.update(
                publish_time=it.publish_time, price=it.price, promoted=it.promoted, popularity=it.popularity
            )
            self._catalog = pd.DataFrame(columns)
        return self._catalog.copy()

    def users(self) -> pd.DataFrame:
        """The user profiles a real system would have, one row per user.

        Columns: ``user_id`` int64, ``segment`` str, ``home_device`` str, ``signup_time`` int64,
        ``u_emb_0 .. u_emb_{d-1}`` float64 (a noisy profile embedding). Sensitivities and the latent taste
        are not in it.
        """
        if self._user_table is None:
            us = self._users
            columns: dict[str, np.ndarray] = {
                "user_id": np.arange(len(us), dtype=np.int64),
                "segment": np.array(self.segments, dtype=object)[us.segment],
                "home_device": np.array(self.devices, dtype=object)[us.home_device],
                "signup_time": us.signup_time,
            }
            columns.update({f"u_emb_{j}": us.embedding[:, j] for j in range(us.embedding.shape[1])})
            self._user_table = pd.DataFrame(columns)
        return self._user_table.copy()

    # --- requests ---------------------------------------------------------------------------------------

    def sample_times(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n request times (n,) float64 in the simulated period, ascending, whole seconds.

        Uniform over the period, thinned by the daily cycle `HOURLY_TRAFFIC`.
        """
        n = _check_count("n", n)
        start, end = self.config.start_time, self.config.end_time
        accepted: list[np.ndarray] = [np.empty(0)]
        have = 0
        while have < n:
            times = np.floor(rng.uniform(start, end, size=2 * (n - have) + 16))
            hour = ((times // 3600) % 24).astype(np.int64)
            keep = rng.random(len(times)) * HOURLY_TRAFFIC.max() < HOURLY_TRAFFIC[hour]
            accepted.append(times[keep])
            have += int(keep.sum())
        return np.sort(np.concatenate(accepted)[:n])

    def sample_requests(
        self,
        n: int,
        rng: np.random.Generator,
        *,
        times: np.ndarray | None = None,
        section: str | None = None,
    ) -> RequestBatch:
        """Draw n requests with their context and candidate sets.

        Parameters
        ----------
        n : int
        rng : np.random.Generator
        times : (n,) float, optional
            Request times (Unix seconds); drawn with `sample_times` when None.
        section : str, optional
            Make every request one of this section; drawn by traffic share when None.
        """
        n = _check_count("n", n)
        cfg = self.config
        if times is None:
            times = self.sample_times(n, rng)
        times = np.floor(np.asarray(times, dtype=np.float64))
        if times.shape != (n,):
            raise SimulationInputError(f"Expected `times` of shape ({n},), found {times.shape}")
        if n and (times.min() < cfg.start_time or times.max() >= cfg.end_time):
            raise SimulationInputError(
                f"Expected `times` in the simulated period [{cfg.start_time}, {cfg.end_time}), "
                f"found {times.min():.0f}..{times.max():.0f}"
            )
        table = self._truth.sections
        if section is None:
            sec = rng.choice(len(table.names), size=n, p=table.traffic).astype(np.int64)
        else:
            sec = np.full(n, name_codes(np.array([section]), self.sections, "section")[0], dtype=np.int64)
        u = rng.random(n) * self._activity_cum[-1]
        user = np.minimum(np.searchsorted(self._activity_cum, u, side="right"), self.n_users - 1)
        home = self._users.home_device[user]
        other = rng.integers(len(self.devices), size=n)
        device = np.where(rng.random(n) < cfg.requests.device_stickiness, home, other)

        # The section's context comes from a target item the user has in mind: from their taste or popular.
        kind = table.context_kind[sec]
        retriever = self._retriever
        n_available = retriever.n_available(times)
        liked = retriever.near(
            self._users.latent[user], n_available, 1, cfg.candidates.affinity_temperature, rng
        )[:, 0]
        popular = retriever.popular(n_available, 1, rng)[:, 0]
        use_liked = (rng.random(n) < cfg.requests.context_from_affinity) & (liked >= 0)
        target = np.where(use_liked, liked, popular)
        source_item = np.where(kind == CONTEXT_KINDS.index("source_item"), target, -1)
        category = np.where(kind == CONTEXT_KINDS.index("category"), self._items.category[target], -1)
        query_tokens, query = self._queries(target, kind == CONTEXT_KINDS.index("query"), rng)

        candidates = retriever.retrieve(
            time=times,
            user_embedding=self._users.embedding[user],
            context_kind=kind,
            source_item=source_item,
            category=category,
            query_tokens=query_tokens,
            rng=rng,
        )
        return RequestBatch(
            section=np.array(self.sections)[sec],
            user_id=user.astype(np.int64),
            time=times,
            device=np.array(self.devices)[device],
            hour=((times // 3600) % 24).astype(np.int64),
            segment=np.array(self.segments)[self._users.segment[user]],
            source_item=source_item.astype(np.int64),
            category=category.astype(np.int64),
            query=query,
            query_tokens=query_tokens,
            candidates=candidates,
        )

    def _queries(
        self, target: np.ndarray, is_query: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """One or two of the target item's tag words per search request: ids (B, 2) and text (B,)."""
        n = len(target)
        tags = self._items.tags[target]
        width = tags.shape[1]
        first = rng.integers(width, size=n)
        two = (rng.random(n) < self.config.requests.two_word_queries) & (width > 1)
        second = (first + 1 + rng.integers(max(width - 1, 1), size=n)) % width
        rows = np.arange(n)
        tokens = np.stack([tags[rows, first], np.where(two, tags[rows, second], -1)], axis=1)
        tokens = np.where(is_query[:, None], tokens, -1)
        words = self._vocab.words
        text = words[np.maximum(tokens[:, 0], 0)]
        both = np.strings.add(np.strings.add(text, " "), words[np.maximum(tokens[:, 1], 0)])
        text = np.where(tokens[:, 1] >= 0, both, text)
        return tokens.astype(np.int64), np.where(is_query, text, "")

    # --- heuristics' inputs -----------------------------------------------------------------------------

    def item_batch(self, candidates: np.ndarray, time: np.ndarray) -> ItemBatch:
        """The observable attributes of candidates (B, n) at request times (B,), for the heuristics."""
        ids = self._check_items("candidates", candidates)
        time = np.asarray(time, dtype=np.float64)
        if time.shape != ids.shape[:1]:
            raise SimulationInputError(f"Expected `time` of shape ({ids.shape[0]},), found {time.shape}")
        it = self._items
        return ItemBatch(
            category=it.category[ids],
            age_days=(time[:, None] - it.publish_time[ids]) / DAY,
            promoted=it.promoted[ids],
            embedding=it.embedding[ids],
            subcategory=it.subcategory[ids],
        )

    def context_batch(self, requests: RequestBatch) -> ContextBatch:
        """The request context the heuristics read: the source item's observable embedding (zeros where
        there is none) and the explored category (-1 where there is none)."""
        return self._context(requests.source_item, requests.category.copy())

    def request_context(self, requests: Requests) -> ContextBatch:
        """`context_batch` of the rerank pipeline's requests (``source_item`` and ``category`` None where
        there is none), so that the world is the pipeline's attribute source
        (`ranker.rerank.batch.AttributeSource`)."""
        source = _item_ids(requests.source_item, "source_item")
        if source.size and source.max() >= self.n_items:
            raise SimulationInputError(
                f"Expected `source_item` ids in [0, {self.n_items}), found {source.max()}"
            )
        return self._context(source, _item_ids(requests.category, "category"))

    def segment(self, user_ids: np.ndarray) -> np.ndarray:
        """(B,) str the segments of users (B,), as the user profiles show them."""
        users = np.asarray(user_ids)
        if users.dtype.kind not in "iu" or (users.size and (users.min() < 0 or users.max() >= self.n_users)):
            raise SimulationInputError(f"Expected `user_ids` in [0, {self.n_users}), found {users!r}")
        return np.array(self.segments)[self._users.segment[users]]

    def _context(self, source: np.ndarray, category: np.ndarray) -> ContextBatch:
        embedding = self._items.embedding[np.maximum(source, 0)] * (source >= 0)[:, None]
        return ContextBatch(source_embedding=embedding, category=category)

    # --- ground truth -----------------------------------------------------------------------------------

    def examination(self, requests: RequestBatch, k: int) -> np.ndarray:
        """Probability (B, k) that each of the first k slots is examined (section and device dependent)."""
        return click_model.examination(k, self._truth.of(requests).decay)

    def attractiveness(self, requests: RequestBatch, slates: np.ndarray) -> np.ndarray:
        """Click probability (B, k) of each slot's item once examined, given the items shown above it."""
        slates = self._check_slates(requests, slates)
        truth = self._truth.of(requests)
        return self._blocked(
            slates, lambda rows: self._truth.slot_probabilities(truth, requests, slates, rows)[0]
        )

    def conversion_probability(self, requests: RequestBatch, slates: np.ndarray) -> np.ndarray:
        """Probability (B, k) that a click on each slot's item converts (independent of the slot)."""
        slates = self._check_slates(requests, slates)
        truth = self._truth.of(requests)
        return self._blocked(
            slates, lambda rows: self._truth.slot_probabilities(truth, requests, slates, rows)[1]
        )

    def expected_outcomes(self, requests: RequestBatch, slates: np.ndarray) -> ExpectedOutcomes:
        """Exact expected clicks, conversions and revenue (each (B,)) of showing `slates` (B, k)."""
        slates = self._check_slates(requests, slates)
        truth = self._truth.of(requests)

        def block(rows: slice) -> np.ndarray:
            attract, conversion, price = self._truth.slot_probabilities(truth, requests, slates, rows)
            exam = click_model.examination(slates.shape[1], truth.decay[rows])
            return np.stack(click_model.expected_outcomes(exam, attract, conversion, price), axis=1)

        out = self._blocked(slates, block)
        return ExpectedOutcomes(clicks=out[:, 0], conversions=out[:, 1], revenue=out[:, 2])

    def sample_clicks(
        self, requests: RequestBatch, slates: np.ndarray, rng: np.random.Generator
    ) -> SampledOutcomes:
        """One draw of clicks and conversions (B, k) and revenue (B,) for `slates` (B, k)."""
        slates = self._check_slates(requests, slates)
        truth = self._truth.of(requests)
        attract, conversion, price = self._truth.slot_probabilities(truth, requests, slates, slice(None))
        exam = click_model.examination(slates.shape[1], truth.decay)
        return click_model.sample_outcomes(exam, attract, conversion, price, rng)

    def true_relevance(self, requests: RequestBatch, candidates: np.ndarray | None = None) -> np.ndarray:
        """Attractiveness (B, n) of each candidate in isolation (top slot, nothing above it).

        `candidates` (B, n) defaults to the requests' own candidate sets.
        """
        candidates = requests.candidates if candidates is None else candidates
        ids = self._check_slates(requests, candidates)
        truth = self._truth.of(requests)

        def block(rows: slice) -> np.ndarray:
            logit, _ = self._truth.base_logit(truth.take(rows), ids[rows], requests.time[rows])
            return click_model.sigmoid(logit)

        return self._blocked(ids, block)

    # --- internals --------------------------------------------------------------------------------------

    def _check_items(self, name: str, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids)
        if ids.ndim != 2 or ids.dtype.kind not in "iu":
            raise SimulationInputError(
                f"Expected `{name}` as integer item ids of shape (B, k), found {ids.shape}"
            )
        if ids.size and (ids.min() < 0 or ids.max() >= self.n_items):
            raise SimulationInputError(
                f"Expected `{name}` item ids in [0, {self.n_items}), found {ids.min()}..{ids.max()}"
            )
        return ids.astype(np.int64, copy=False)

    def _check_slates(self, requests: RequestBatch, slates: np.ndarray) -> np.ndarray:
        slates = self._check_items("slates", slates)
        if slates.shape[0] != len(requests):
            raise SimulationInputError(
                f"Expected `slates` with one row per request ({len(requests)}), found {slates.shape[0]}"
            )
        return slates

    @staticmethod
    def _blocked(ids: np.ndarray, fn: Callable[[slice], np.ndarray]) -> np.ndarray:
        """`fn` over row blocks of a (B, k) array, concatenated: bounds the memory of the (B, k, d) steps."""
        batch, width = ids.shape
        step = max(1, _BLOCK_CELLS // max(width, 1))
        if batch <= step:
            return fn(slice(None))
        return np.concatenate([fn(slice(i, i + step)) for i in range(0, batch, step)], axis=0)


def _check_count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise SimulationInputError(f"Expected `{name}` to be an integer >= 0, found {value!r}")
    return int(value)


def _item_ids(values: np.ndarray, name: str) -> np.ndarray:
    """(B,) int64 of an object column of integer ids, -1 where None."""
    ids = np.where(np.equal(values, None), -1, values)
    try:
        return ids.astype(np.int64)
    except (TypeError, ValueError):
        raise SimulationInputError(f"Expected `{name}` to hold integer ids or None") from None
