"""Simulated users over HTTP: a world's requests sent to a running service, its slates clicked by the world.

`run_live` draws the world's requests and candidate sets in time order, sends each as ``POST /v1/rerank``
to the service at `LiveSettings.url`, and takes the slate the service answers. For every served slate the
world's click model gives

- the exact expected clicks, conversions and revenue (`simulator.click_model.expected_outcomes` over the
  slot probabilities of `World.examination`, `attractiveness` and `conversion_probability`): the value of
  the slate, with no sampling noise;
- one draw of clicks and conversions, posted back as ``POST /v1/feedback`` once `feedback_delay` real
  seconds (by default the world's ``requests.feedback_delay_s``) have passed since the answer. The
  feedback's ``time`` is the request's world time plus the same delay, so that the service, which judges
  lateness on these times against its ``reward_wait_seconds``, and a learner, which waits on its own clock,
  see the same delay.

The simulator never imports the service: it speaks HTTP (`simulator.live_http.HttpPool`, a few keep-alive
connections, requests sent on a schedule of `rate` per second).

Determinism: the requests, their candidates and the uniform numbers the clicks are drawn from come from
`seed` alone, `DRAW_BLOCK` requests at a time whatever the rate or the chunk (request i's clicks are
``u[i, p] < exam * attr``), so the same seed and the same slates give the same clicks. The slates
themselves are the service's (its exploration is seeded by event ids, which are random).

Feedback that a worker answers 404 (the decision is not yet written where that worker can read it, see
docs/http-api.md), or that gets no answer, is sent again after `feedback_backoff` seconds, up to
`feedback_retries` times: feedback is idempotent (a repeat of a stored one changes nothing).
"""

from __future__ import annotations

import http.client
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import orjson
import pandas as pd

from simulator import click_model
from simulator.errors import SimulationInputError
from simulator.live_bodies import feedback_body, rerank_bodies, variant_of
from simulator.live_http import HttpPool, Reply, parse_base_url
from simulator.records import RequestBatch
from simulator.world import World

#: Mixed into the seed of a live run's draws, so that they differ from `sectionrank simulate`'s with the
#: same seed (whose log the service's models may be trained on).
LIVE_STREAM = 0x11FE
#: Requests drawn at a time: the draws depend on the seed alone, never on the rate or the chunk.
DRAW_BLOCK = 200
#: The largest chunk of requests whose outcomes are computed together (see `LiveSettings.chunk`).
MAX_CHUNK = DRAW_BLOCK
#: Feedback answers that are sent again: 404 (the decision is not yet readable by the answering worker) and
#: 0 (no answer); feedback is idempotent, so a repeat of one that was stored changes nothing.
RESEND = (0, 404)
#: The columns of `LiveResult.records`, one row per request sent.
RECORD_COLUMNS = (
    "request",
    "section",
    "user_id",
    "segment",
    "device",
    "time",
    "sent_s",
    "latency_ms",
    "status",
    "error",
    "event_id",
    "variant",
    "arm_id",
    "policy_version",
    "ranker_version",
    "fallback",
    "logged",
    "shown",
    "expected_clicks",
    "expected_conversions",
    "expected_revenue",
    "clicks",
    "conversions",
    "revenue",
    "feedback_status",
    "feedback_error",
    "feedback_attempts",
)


def _positive_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise SimulationInputError(f"Expected `{name}` to be an integer >= {low}, found {value!r}")


def _number(name: str, value: object, *, low: float = 0.0, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < low
    ):
        raise SimulationInputError(f"Expected `{name}` to be a number >= {low:g}, found {value!r}")


@dataclass(frozen=True)
class LiveSettings:
    """What a live run sends, and how.

    Attributes
    ----------
    url : str
        ``http://host:port`` of the running service.
    requests : int >= 1
        Rerank requests to send.
    rate : float >= 0
        Requests sent per second (request i is due ``i / rate`` seconds after the start); 0 sends each as
        soon as a connection is free.
    seed : int >= 0
        Seeds the requests, candidates and clicks.
    connections : int >= 1
        Keep-alive connections (one thread each).
    feedback_delay : float >= 0 or None
        Real seconds between a slate's answer and its feedback; None: the world's
        ``requests.feedback_delay_s``.
    chunk : int >= 1 or None
        Requests drawn, and their outcomes computed, at a time; a request's feedback is queued once its
        whole chunk is answered. None: half a second of requests at `rate` (10 to `MAX_CHUNK`), or
        `MAX_CHUNK` at rate 0.
    timeout : float > 0
        Seconds before a request without an answer counts as failed.
    feedback_retries : int >= 0
        Times a feedback answered 404, or not answered, is sent again.
    feedback_backoff : float >= 0
        Seconds between those attempts.
    """

    url: str
    requests: int
    rate: float = 50.0
    seed: int = 0
    connections: int = 4
    feedback_delay: float | None = None
    chunk: int | None = None
    timeout: float = 10.0
    feedback_retries: int = 50
    feedback_backoff: float = 0.05

    def __post_init__(self) -> None:
        parse_base_url(self.url)
        _positive_int("requests", self.requests, 1)
        _positive_int("seed", self.seed, 0)
        _positive_int("connections", self.connections, 1)
        if self.chunk is not None:
            _positive_int("chunk", self.chunk, 1)
        _positive_int("feedback_retries", self.feedback_retries, 0)
        _number("rate", self.rate)
        _number("feedback_delay", self.feedback_delay, allow_none=True)
        _number("feedback_backoff", self.feedback_backoff)
        _number("timeout", self.timeout, low=1e-3)

    @property
    def chunk_size(self) -> int:
        """`chunk`, or its default for `rate`."""
        if self.chunk is not None:
            return self.chunk
        if self.rate > 0:
            return int(min(max(round(self.rate / 2), 10), MAX_CHUNK))
        return MAX_CHUNK


@dataclass(frozen=True)
class LiveCounts:
    """How the run's HTTP calls went.

    Attributes
    ----------
    sent : int
        Rerank requests sent.
    served : int
        Answered 200 with a slate.
    statuses : dict int -> int
        Rerank answers by status (0: no answer).
    feedback_statuses : dict int -> int
        The last answer to each feedback sent, by status.
    feedback_retries : int
        Feedback sent again after a 404.
    seconds : float
        Wall time from the first request to the last feedback's answer.
    """

    sent: int
    served: int
    statuses: dict[int, int]
    feedback_statuses: dict[int, int]
    feedback_retries: int
    seconds: float

    @property
    def server_errors(self) -> int:
        """Answers with a 5xx status, rerank and feedback."""
        return sum(n for s, n in (*self.statuses.items(), *self.feedback_statuses.items()) if s >= 500)

    @property
    def failed(self) -> int:
        """Rerank requests not answered 200."""
        return self.sent - self.served

    @property
    def requests_per_second(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else math.inf


@dataclass(frozen=True)
class LiveResult:
    """A live run: one row per request sent (`RECORD_COLUMNS`, in request order) and the call counts."""

    records: pd.DataFrame
    counts: LiveCounts
    settings: LiveSettings


@dataclass(frozen=True)
class SlateOutcomes:
    """The click model on served slates of one length L.

    Attributes
    ----------
    expected : simulator.click_model.ExpectedOutcomes
        Exact expected clicks, conversions and revenue, each (B,).
    clicks, conversions : (B, L) bool
        One draw: ``u_click < exam * attr`` and ``clicks & (u_conversion < conv)``.
    revenue : (B,) float64
        The prices of the converted slots, summed.
    """

    expected: click_model.ExpectedOutcomes
    clicks: np.ndarray
    conversions: np.ndarray
    revenue: np.ndarray


def slate_outcomes(
    world: World, requests: RequestBatch, slates: np.ndarray, u_click: np.ndarray, u_conversion: np.ndarray
) -> SlateOutcomes:
    """Exact expectations and one draw of clicks for `slates` (B, L) shown to `requests` (B).

    `u_click` and `u_conversion` (B, >= L) are the requests' uniform numbers; their first L columns are
    used, so a request's draw depends on its own numbers only.
    """
    width = slates.shape[1]
    exam = world.examination(requests, width)
    attract = world.attractiveness(requests, slates)
    conversion = world.conversion_probability(requests, slates)
    price = world.observed_items.price[slates]
    expected = click_model.expected_outcomes(exam, attract, conversion, price)
    clicks = u_click[:, :width] < exam * attract
    conversions = clicks & (u_conversion[:, :width] < conversion)
    return SlateOutcomes(expected, clicks, conversions, np.where(conversions, price, 0.0).sum(axis=1))


@dataclass(frozen=True)
class Draw:
    """Consecutive requests of a live run and the uniform numbers their clicks are drawn from.

    Attributes
    ----------
    first : int
        Index of the first request in the run.
    requests : RequestBatch of B requests
    u_click, u_conversion : (B, n) float64 in [0, 1)
        One number per candidate slot of each request (n candidates >= any slate's length).
    """

    first: int
    requests: RequestBatch
    u_click: np.ndarray
    u_conversion: np.ndarray


def draw_chunks(world: World, n: int, *, seed: int) -> Iterator[Draw]:
    """The n requests of a live run with `seed`, in time order, `DRAW_BLOCK` at a time.

    Three streams of ``SeedSequence([LIVE_STREAM, seed])`` draw the request times, the requests with their
    candidates, and the click numbers; the same seed gives the same bytes.
    """
    _positive_int("n", n, 1)
    _positive_int("seed", seed, 0)
    time_rng, request_rng, click_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence([LIVE_STREAM, seed]).spawn(3)
    )
    times = world.sample_times(n, time_rng)
    for first in range(0, n, DRAW_BLOCK):
        stop = min(first + DRAW_BLOCK, n)
        requests = world.sample_requests(stop - first, request_rng, times=times[first:stop])
        shape = (stop - first, requests.n_candidates)
        yield Draw(first, requests, click_rng.random(shape), click_rng.random(shape))


def split_draw(draw: Draw, size: int) -> list[Draw]:
    """`draw` as consecutive draws of at most `size` requests."""
    parts = []
    for lo in range(0, len(draw.requests), size):
        rows = np.arange(lo, min(lo + size, len(draw.requests)))
        parts.append(
            Draw(draw.first + lo, draw.requests.take(rows), draw.u_click[rows], draw.u_conversion[rows])
        )
    return parts


@dataclass
class _Chunk:
    """Requests in flight, their replies filled in by the pool's threads."""

    draw: Draw
    replies: list[Reply | None]
    left: int
    done: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reply(self, row: int, reply: Reply) -> None:
        self.replies[row] = reply
        with self.lock:
            self.left -= 1
            if self.left == 0:
                self.done.set()


class _Feedback:
    """Feedback in flight: resends on 404 and on no answer (feedback is idempotent), records the last status,
    error and attempts of each request."""

    def __init__(self, pool: HttpPool, n: int, retries: int, backoff: float) -> None:
        self.pool, self.retries, self.backoff = pool, retries, backoff
        self.status = np.full(n, -1, dtype=np.int64)
        self.error = np.full(n, "", dtype=object)
        self.attempts = np.zeros(n, dtype=np.int64)
        self.resent = 0
        self._left = 0
        self._idle = threading.Condition()

    def send(self, due: float, request: int, body: bytes) -> None:
        with self._idle:
            self._left += 1
        self.pool.submit(
            due, "POST", "/v1/feedback", body, lambda r: self._answered(request, body, r), first=True
        )

    def _answered(self, request: int, body: bytes, reply: Reply) -> None:
        self.attempts[request] += 1
        self.error[request] = reply.error
        if reply.status in RESEND and self.attempts[request] <= self.retries:
            self.resent += 1
            due = time.monotonic() + self.backoff
            self.pool.submit(
                due, "POST", "/v1/feedback", body, lambda r: self._answered(request, body, r), first=True
            )
            return
        self.status[request] = reply.status
        with self._idle:
            self._left -= 1
            self._idle.notify_all()

    def wait(self) -> None:
        with self._idle:
            self._idle.wait_for(lambda: self._left == 0)


def check_service(world: World, pool_url: str, timeout: float) -> None:
    """Refuse a service that is not ready or does not serve every section the world sends traffic to."""
    host, port = parse_base_url(pool_url)
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", "/v1/sections")
        response = connection.getresponse()
        data = response.read()
    except OSError as exc:
        raise SimulationInputError(f"Expected a service at `url` {pool_url}, found none: {exc}") from None
    finally:
        connection.close()
    if response.status != 200:
        raise SimulationInputError(
            f"Expected the service at {pool_url} to be ready, "
            f"found GET /v1/sections answered {response.status}"
        )
    served = {s["name"] for s in orjson.loads(data)["sections"]}
    traffic = world.config.sections
    missing = sorted(name for name, s in traffic.items() if s.traffic > 0 and name not in served)
    if missing:
        raise SimulationInputError(
            f"Expected the service at {pool_url} to serve the world's sections, found no {', '.join(missing)}"
        )


def run_live(
    world: World, settings: LiveSettings, *, progress: Callable[[int], None] | None = None
) -> LiveResult:
    """Send `settings.requests` of the world's requests to the service; click, give feedback, record.

    Parameters
    ----------
    world : World
        The world whose catalog and users the service's store holds (same world file and seed).
    settings : LiveSettings
    progress : callable, optional
        Called with the number of requests whose outcomes were just recorded, chunk by chunk.
    """
    if not isinstance(world, World):
        raise SimulationInputError(f"Expected `world` to be a World, found {type(world).__name__}")
    if not isinstance(settings, LiveSettings):
        raise SimulationInputError(f"Expected `settings` to be LiveSettings, found {type(settings).__name__}")
    check_service(world, settings.url, settings.timeout)
    n = settings.requests
    delay = world.config.requests.feedback_delay_s
    delay = delay if settings.feedback_delay is None else settings.feedback_delay
    columns = _Columns(n)
    with HttpPool(settings.url, connections=settings.connections, timeout=settings.timeout) as pool:
        feedback = _Feedback(pool, n, settings.feedback_retries, settings.feedback_backoff)
        start = time.monotonic() + 0.05
        in_flight: list[_Chunk] = []
        size = settings.chunk_size
        ahead = -(-DRAW_BLOCK // size)  # one block of chunks stays queued while the one before is finished
        for block in draw_chunks(world, n, seed=settings.seed):
            now = time.monotonic()
            for draw in split_draw(block, size):
                chunk = _Chunk(draw, [None] * len(draw.requests), len(draw.requests))
                for row, body in enumerate(rerank_bodies(draw.requests)):
                    at = draw.first + row
                    due = start + at / settings.rate if settings.rate > 0 else now
                    pool.submit(due, "POST", "/v1/rerank", body, lambda r, c=chunk, i=row: c.reply(i, r))
                in_flight.append(chunk)
            while len(in_flight) > ahead:
                _finish(world, in_flight.pop(0), columns, feedback, start, delay, progress)
        for chunk in in_flight:
            _finish(world, chunk, columns, feedback, start, delay, progress)
        feedback.wait()
        seconds = time.monotonic() - start
    columns.feedback_status[:] = feedback.status
    columns.feedback_error[:] = feedback.error
    columns.feedback_attempts[:] = feedback.attempts
    records = columns.frame()
    fed = feedback.status[feedback.status >= 0]
    counts = LiveCounts(
        sent=n,
        served=int((records["status"] == 200).sum()),
        statuses=dict(sorted(Counter(records["status"].tolist()).items())),
        feedback_statuses=dict(sorted(Counter(fed.tolist()).items())),
        feedback_retries=feedback.resent,
        seconds=seconds,
    )
    return LiveResult(records=records, counts=counts, settings=settings)


class _Columns:
    """The record columns of every request, filled chunk by chunk."""

    def __init__(self, n: int) -> None:
        self.request = np.arange(n, dtype=np.int64)
        self.section = np.empty(n, dtype=object)
        self.user_id = np.zeros(n, dtype=np.int64)
        self.segment = np.empty(n, dtype=object)
        self.device = np.empty(n, dtype=object)
        self.time = np.zeros(n)
        self.sent_s = np.zeros(n)
        self.latency_ms = np.zeros(n)
        self.status = np.zeros(n, dtype=np.int64)
        self.error = np.full(n, "", dtype=object)
        self.event_id = np.full(n, "", dtype=object)
        self.variant = np.full(n, "", dtype=object)
        self.arm_id = np.full(n, "", dtype=object)
        self.policy_version = np.full(n, "", dtype=object)
        self.ranker_version = np.full(n, "", dtype=object)
        self.fallback = np.full(n, "", dtype=object)
        self.logged = np.zeros(n, dtype=bool)
        self.shown = np.zeros(n, dtype=np.int64)
        self.expected_clicks = np.full(n, np.nan)
        self.expected_conversions = np.full(n, np.nan)
        self.expected_revenue = np.full(n, np.nan)
        self.clicks = np.zeros(n, dtype=np.int64)
        self.conversions = np.zeros(n, dtype=np.int64)
        self.revenue = np.zeros(n)
        self.feedback_status = np.full(n, -1, dtype=np.int64)
        self.feedback_error = np.full(n, "", dtype=object)
        self.feedback_attempts = np.zeros(n, dtype=np.int64)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({name: getattr(self, name) for name in RECORD_COLUMNS})


def _finish(
    world: World,
    chunk: _Chunk,
    columns: _Columns,
    feedback: _Feedback,
    start: float,
    delay: float,
    progress: Callable[[int], None] | None,
) -> None:
    """Wait for a chunk's answers, record them, compute the served slates' outcomes and queue feedback."""
    chunk.done.wait()
    draw, replies = chunk.draw, chunk.replies
    requests = draw.requests
    rows = np.arange(draw.first, draw.first + len(requests))
    columns.section[rows] = requests.section
    columns.user_id[rows] = requests.user_id
    columns.segment[rows] = requests.segment
    columns.device[rows] = requests.device
    columns.time[rows] = requests.time
    slates: list[list[int]] = []
    served: list[int] = []
    for row, reply in enumerate(replies):
        assert reply is not None  # every reply is in once `done` is set
        at = draw.first + row
        columns.sent_s[at] = reply.sent - start
        columns.latency_ms[at] = reply.seconds * 1e3
        columns.status[at] = reply.status
        columns.error[at] = reply.error
        if reply.status != 200:
            continue
        answer = orjson.loads(reply.body)
        versions = answer.get("model_versions") or {}
        columns.event_id[at] = answer["event_id"]
        columns.variant[at] = variant_of(answer)
        columns.arm_id[at] = (answer.get("arm") or {}).get("id", "")
        columns.policy_version[at] = str(versions.get("policy", ""))
        columns.ranker_version[at] = str(versions.get("ranker", ""))
        columns.fallback[at] = answer.get("fallback") or ""
        columns.logged[at] = answer.get("logged") is True
        slates.append([item["id"] for item in answer["items"]])
        served.append(row)
    lengths = np.array([len(s) for s in slates], dtype=np.int64)
    served_rows = np.array(served, dtype=np.int64)
    for width in np.unique(lengths).tolist():
        group = served_rows[lengths == width]
        ids = np.array([slates[i] for i in np.flatnonzero(lengths == width).tolist()], dtype=np.int64)
        ids = ids.reshape(len(group), width)
        part = requests.take(group)
        out = slate_outcomes(world, part, ids, draw.u_click[group], draw.u_conversion[group])
        at = draw.first + group
        columns.shown[at] = width
        columns.expected_clicks[at] = out.expected.clicks
        columns.expected_conversions[at] = out.expected.conversions
        columns.expected_revenue[at] = out.expected.revenue
        columns.clicks[at] = out.clicks.sum(axis=1)
        columns.conversions[at] = out.conversions.sum(axis=1)
        columns.revenue[at] = out.revenue
        for j, request in enumerate(at.tolist()):
            reply = replies[group[j]]
            assert reply is not None
            body = feedback_body(
                columns.event_id[request],
                out.clicks[j],
                out.conversions[j],
                out.revenue[j],
                float(requests.time[group[j]]) + delay,
            )
            feedback.send(reply.sent + reply.seconds + delay, request, body)
    if progress is not None:
        progress(len(requests))
