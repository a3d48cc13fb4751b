"""Generation of a world's items, tag vocabulary and users: their latent truth and what a system observes.

Latent vectors are unit vectors in R^d. Items sit around subcategory centres, which sit around category
centres; a user's taste is centred on a few subcategories. What a system observes are noisy copies of the
latent vectors (the embeddings), never the vectors themselves, nor an item's quality or a user's
sensitivities. Every function takes an explicit `np.random.Generator`.

Item ids are 0..N-1 in publish order, so the items available at time t are the prefix
``ids < n_available(t)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.world_config import WorldConfig

DAY = 86400.0
_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows of `x` scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def _noise(rng: np.random.Generator, shape: tuple[int, ...], scale: float) -> np.ndarray:
    """Gaussian noise with an expected squared norm of ``scale ** 2`` per row."""
    return rng.standard_normal(shape) * (scale / np.sqrt(shape[-1]))


@dataclass(frozen=True)
class Items:
    """Every item of a world, indexed by item id (publish order).

    Attributes
    ----------
    category, subcategory : (N,) int64
        Subcategory ids are global: ``category * subcategories_per_category + j``.
    latent : (N, d) float64
        Latent unit vectors (truth).
    embedding : (N, d) float64
        Observable unit embeddings: the latent vector plus noise.
    quality : (N,) float64
        Latent quality, standard normal (truth).
    publish_time : (N,) int64
        Unix seconds, ascending.
    price : (N,) float64
    promoted : (N,) bool
    popularity : (N,) int64
        Observable interactions before the period (0 for items published during it).
    novelty : (N,) float64
        1 minus the percentile rank of `popularity` (ties share their mean rank), in [0, 1].
    tags : (N, T) int64
        Tag word ids, most characteristic first.
    """

    category: np.ndarray
    subcategory: np.ndarray
    latent: np.ndarray
    embedding: np.ndarray
    quality: np.ndarray
    publish_time: np.ndarray
    price: np.ndarray
    promoted: np.ndarray
    popularity: np.ndarray
    novelty: np.ndarray
    tags: np.ndarray

    def __len__(self) -> int:
        return len(self.category)


@dataclass(frozen=True)
class Vocabulary:
    """Tag words: ``words`` (V,) str, observable; ``latent`` (V, d), each word's latent topic (truth)."""

    words: np.ndarray
    latent: np.ndarray


@dataclass(frozen=True)
class Users:
    """Every user of a world, indexed by user id.

    Attributes
    ----------
    segment, home_device : (U,) int64
        Codes into ``config.segments`` and ``config.devices``.
    signup_time : (U,) int64
        Unix seconds.
    latent, embedding : (U, d) float64
        Latent taste (truth) and its observable noisy copy.
    activity : (U,) float64
        Relative request rate, heavy-tailed (truth).
    freshness, satiation, price_sensitivity : (U,) float64
        The user's sensitivities before the request device's multiplier (truth).
    """

    segment: np.ndarray
    home_device: np.ndarray
    signup_time: np.ndarray
    latent: np.ndarray
    embedding: np.ndarray
    activity: np.ndarray
    freshness: np.ndarray
    satiation: np.ndarray
    price_sensitivity: np.ndarray

    def __len__(self) -> int:
        return len(self.segment)


@dataclass(frozen=True)
class Topics:
    """Latent centres: ``category`` (C, d) and ``subcategory`` (C * S, d) unit vectors (truth)."""

    category: np.ndarray
    subcategory: np.ndarray


def make_topics(config: WorldConfig, rng: np.random.Generator) -> Topics:
    items = config.items
    d, n_cat, n_sub = items.latent_dim, items.categories, items.subcategories_per_category
    category = unit_rows(rng.standard_normal((n_cat, d)))
    parents = np.repeat(category, n_sub, axis=0)
    subcategory = unit_rows(parents + _noise(rng, parents.shape, items.subcategory_spread))
    return Topics(category=category, subcategory=subcategory)


def make_vocabulary(config: WorldConfig, topics: Topics, rng: np.random.Generator) -> Vocabulary:
    """V distinct pronounceable words, each tied to the latent topic of a random subcategory."""
    size = config.items.vocabulary
    syllables = np.array([c + v for c in _CONSONANTS for v in _VOWELS])
    length = 2
    while len(syllables) ** length < size:
        length += 1
    codes = rng.choice(len(syllables) ** length, size=size, replace=False)
    words = np.full(size, "", dtype=object)
    for _ in range(length):
        words = words + syllables[codes % len(syllables)].astype(object)
        codes = codes // len(syllables)
    anchor = rng.integers(len(topics.subcategory), size=size)
    latent = unit_rows(topics.subcategory[anchor] + _noise(rng, (size, topics.subcategory.shape[1]), 0.5))
    return Vocabulary(words=words.astype(str), latent=latent)


def _zipf_weights(n: int, exponent: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1) ** exponent
    return weights / weights.sum()


def mean_percentile(values: np.ndarray) -> np.ndarray:
    """Percentile rank in [0, 1] of each value (0 = smallest); ties share their mean rank."""
    n = len(values)
    if n < 2:
        return np.zeros(n)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts
    mean_rank = first + (counts - 1) / 2.0
    return mean_rank[inverse] / (n - 1)


def _top_tags(
    latent: np.ndarray, vocab: Vocabulary, count: int, temperature: float, rng: np.random.Generator
) -> np.ndarray:
    """`count` distinct tags per item, drawn without replacement with weights exp(cos / temperature)."""
    tags = np.empty((len(latent), count), dtype=np.int64)
    block = max(1, 2_000_000 // len(vocab.words))  # rows per block: about 16 MB of scores
    for start in range(0, len(latent), block):
        scores = latent[start : start + block] @ vocab.latent.T / temperature
        scores += rng.gumbel(size=scores.shape)
        top = np.argpartition(-scores, count - 1, axis=1)[:, :count]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        tags[start : start + block] = np.take_along_axis(top, order, axis=1)
    return tags


def make_items(config: WorldConfig, topics: Topics, vocab: Vocabulary, rng: np.random.Generator) -> Items:
    items = config.items
    n, d, n_sub = items.count, items.latent_dim, items.subcategories_per_category
    start, end = config.start_time, config.end_time

    n_new = items.n_new
    new_times = rng.integers(start, end, size=n_new)
    ages = np.floor(rng.exponential(items.catalog_age_days * DAY, size=n - n_new)).astype(np.int64)
    publish_time = np.sort(np.concatenate([start - 1 - ages, new_times])).astype(np.int64)

    category = rng.choice(items.categories, size=n, p=_zipf_weights(items.categories, items.category_skew))
    subcategory = category * n_sub + rng.integers(n_sub, size=n)
    latent = unit_rows(topics.subcategory[subcategory] + _noise(rng, (n, d), items.item_spread))
    embedding = unit_rows(latent + _noise(rng, (n, d), items.embedding_noise))
    quality = rng.standard_normal(n)

    exposure_days = np.maximum(start - publish_time, 0) / DAY
    popularity = rng.poisson(items.popularity_rate * exposure_days * np.exp(quality)).astype(np.int64)

    level = items.price_median * np.exp(items.category_price_sigma * rng.standard_normal(items.categories))
    price = np.maximum(
        np.round(level[category] * np.exp(items.price_sigma * rng.standard_normal(n)), 2), 0.01
    )

    n_promoted = round(items.promoted_share * n)
    keys = items.promoted_price_tilt * np.log(price) + rng.gumbel(size=n)
    promoted = np.zeros(n, dtype=bool)
    if n_promoted:
        promoted[np.argpartition(-keys, n_promoted - 1)[:n_promoted]] = True

    tags = _top_tags(latent, vocab, items.tags_per_item, items.tag_temperature, rng)
    return Items(
        category=category.astype(np.int64),
        subcategory=subcategory.astype(np.int64),
        latent=latent,
        embedding=embedding,
        quality=quality,
        publish_time=publish_time,
        price=price,
        promoted=promoted,
        popularity=popularity,
        novelty=1.0 - mean_percentile(popularity),
        tags=tags,
    )


def _lognormal_factor(rng: np.random.Generator, n: int, spread: float) -> np.ndarray:
    return np.exp(spread * rng.standard_normal(n))


def make_users(config: WorldConfig, topics: Topics, items: Items, rng: np.random.Generator) -> Users:
    users = config.users
    n, d = users.count, config.items.latent_dim
    segments, devices = config.segments, config.devices
    segment = rng.choice(len(segments), size=n, p=list(users.segments.values())).astype(np.int64)
    home_device = rng.choice(len(devices), size=n, p=list(users.devices.values())).astype(np.int64)

    # Tastes: a few subcategories, chosen in proportion to their number of items, mixed with random weights.
    sizes = np.bincount(items.subcategory, minlength=len(topics.subcategory)).astype(np.float64)
    taste = rng.choice(len(sizes), size=(n, users.tastes), p=sizes / sizes.sum())
    mix = rng.dirichlet(np.ones(users.tastes), size=n)
    centre = np.einsum("ut,utd->ud", mix, topics.subcategory[taste])
    latent = unit_rows(centre + _noise(rng, (n, d), users.taste_spread))
    embedding = unit_rows(latent + _noise(rng, (n, d), users.embedding_noise))

    seg_activity = np.array([users.segment_activity[s] for s in segments])
    activity = (rng.pareto(users.activity_tail, size=n) + 1.0) * seg_activity[segment]

    def sensitivity(name: str) -> np.ndarray:
        spec = getattr(users, name)
        per_segment = np.array([spec.segment[s] for s in segments])
        return per_segment[segment] * _lognormal_factor(rng, n, spec.spread)

    freshness, satiation, price_sensitivity = (
        sensitivity(name) for name in ("freshness", "satiation", "price_sensitivity")
    )
    start = config.start_time
    window = users.new_user_days * DAY
    is_new = np.array([s == "new" for s in segments])[segment]
    recent = start - 1 - np.floor(rng.uniform(0.0, window, size=n))
    older = start - 1 - np.floor(window + rng.exponential(365.0 * DAY, size=n))
    signup_time = np.where(is_new, recent, older).astype(np.int64)
    return Users(
        segment=segment,
        home_device=home_device,
        signup_time=signup_time,
        latent=latent,
        embedding=embedding,
        activity=activity,
        freshness=freshness,
        satiation=satiation,
        price_sensitivity=price_sensitivity,
    )
