"""`simulator.live` against an in-process stand-in of the HTTP API: the draws, the outcomes of each served
slate against a naive recomputation, the feedback sent, the error counts, the report's numbers."""

from __future__ import annotations

import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest

from simulator import World, WorldConfig
from simulator.errors import SimulationInputError
from simulator.live import (
    DRAW_BLOCK,
    RECORD_COLUMNS,
    LiveSettings,
    draw_chunks,
    run_live,
    slate_outcomes,
    split_draw,
)
from simulator.live_bodies import rerank_bodies, variant_of
from simulator.live_http import HttpPool, parse_base_url
from simulator.live_report import ALL, quarter_change, value_series, write_live
from tests.conftest import WORLD_FILE

K = 5


@pytest.fixture(scope="module")
def world() -> World:
    return World.build(WorldConfig.load(WORLD_FILE), 3)


class FakeService(ThreadingHTTPServer):
    """The routes `live` calls: /v1/sections, /v1/rerank (the first K candidates reversed, a variant by user
    parity, a 500 for every `fail_every`-th request) and /v1/feedback (on the first attempt of every event,
    404 when `feedback_404` is set, an answer `feedback_stall` seconds late when that is set)."""

    daemon_threads = True

    def __init__(
        self, sections: list[str], fail_every: int = 0, feedback_404: bool = False, feedback_stall: float = 0
    ) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.sections = sections
        self.fail_every = fail_every
        self.feedback_404 = feedback_404
        self.feedback_stall = feedback_stall
        self.lock = threading.Lock()
        self.reranks: list[dict] = []
        self.slates: dict[str, list[int]] = {}
        self.feedback: dict[str, dict] = {}
        self.attempts: dict[str, int] = {}
        self.gets: list[str] = []
        self.clock: dict[str, float] = {}  # event id -> monotonic time its slate was answered, then fed back

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a server in front of gunicorn would offer

    def log_message(self, *args) -> None:
        pass

    def _answer(self, status: int, payload: object) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.server.gets.append(self.path)
        if self.path == "/slow":
            time.sleep(0.3)
        self._answer(200, {"sections": [{"name": s} for s in self.server.sections]})

    def do_POST(self) -> None:
        server: FakeService = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/v1/rerank":
            with server.lock:
                server.reranks.append(body)
                count = len(server.reranks)
                event_id = f"e{count}"
                slate = body["candidates"][:K][::-1]
                server.slates[event_id] = slate
                server.clock[event_id] = time.monotonic()
            if server.fail_every and count % server.fail_every == 0:
                return self._answer(500, {"error": {"status": 500}})
            variant = {"name": "b"} if body["user"]["id"] % 2 else "a"
            return self._answer(
                200,
                {
                    "event_id": event_id,
                    "items": [{"id": i, "score": 0.0, "rank": r + 1} for r, i in enumerate(slate)],
                    "arm": {"id": "arm-1"},
                    "model_versions": {"ranker": "r1", "policy": "p1"},
                    "fallback": None,
                    "logged": count % 7 != 0,
                    "variant": variant,
                },
            )
        with server.lock:
            event_id = body["event_id"]
            server.attempts[event_id] = server.attempts.get(event_id, 0) + 1
            first = server.attempts[event_id] == 1
            if server.feedback_404 and first:
                return self._answer(404, {"error": {"status": 404}})
        if server.feedback_stall and first:
            time.sleep(server.feedback_stall)  # past the client's timeout: it gets no answer
            return self._answer(200, {"stored": True})
        with server.lock:
            server.feedback[event_id] = body
            server.clock[event_id] = time.monotonic() - server.clock[event_id]
        self._answer(200, {"stored": True})


@pytest.fixture
def fake(world):
    servers = []

    def make(**options) -> FakeService:
        server = FakeService(list(world.sections), **options)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.shutdown()
        server.server_close()


# --- draws ------------------------------------------------------------------------------------------------


def test_live_draws_same_seed_same_bytes(world):
    one = list(draw_chunks(world, 300, seed=7))
    again = list(draw_chunks(world, 300, seed=7))
    other = list(draw_chunks(world, 300, seed=8))
    assert [d.first for d in one] == [0, DRAW_BLOCK]
    for a, b in zip(one, again, strict=True):
        assert rerank_bodies(a.requests) == rerank_bodies(b.requests)
        assert a.u_click.tobytes() == b.u_click.tobytes()
        assert a.u_conversion.tobytes() == b.u_conversion.tobytes()
    assert rerank_bodies(one[0].requests) != rerank_bodies(other[0].requests)
    parts = split_draw(one[0], 60)
    assert [p.first for p in parts] == [0, 60, 120, 180]
    assert np.array_equal(np.concatenate([p.u_click for p in parts]), one[0].u_click)
    assert np.array_equal(np.concatenate([p.requests.candidates for p in parts]), one[0].requests.candidates)


def test_live_clicks_do_not_depend_on_the_rate_or_the_chunk(world, fake):
    server = fake()
    runs = [
        run_live(
            world, LiveSettings(url=server.url, requests=230, rate=rate, seed=6, feedback_delay=0, chunk=c)
        )
        for rate, c in ((0, None), (2000.0, 13), (0, 200))
    ]
    columns = ["section", "user_id", "time", "expected_clicks", "clicks", "conversions", "revenue"]
    for run in runs[1:]:
        pd.testing.assert_frame_equal(run.records[columns], runs[0].records[columns])


def test_live_rerank_body_carries_the_sections_context_and_world_time(world):
    draw = next(draw_chunks(world, 200, seed=1))
    bodies = [json.loads(b) for b in rerank_bodies(draw.requests)]
    req = draw.requests
    for i, body in enumerate(bodies):
        assert body["section"] == req.section[i]
        assert body["user"] == {"id": int(req.user_id[i])}
        assert body["candidates"] == req.candidates[i].tolist()
        assert body["context"]["time"] == req.time[i]
        assert body["context"]["device"] == req.device[i]
        assert ("source_item" in body["context"]) == (req.source_item[i] >= 0)
        assert ("category" in body["context"]) == (req.category[i] >= 0)
        assert ("query" in body["context"]) == bool(req.query[i])
        assert "k" not in body


def test_live_slate_outcomes_match_a_naive_recomputation(world):
    draw = next(draw_chunks(world, 50, seed=2))
    slates = draw.requests.candidates[:, :7]
    out = slate_outcomes(world, draw.requests, slates, draw.u_click, draw.u_conversion)
    truth = world.expected_outcomes(draw.requests, slates)
    np.testing.assert_allclose(out.expected.clicks, truth.clicks, rtol=1e-12)
    np.testing.assert_allclose(out.expected.revenue, truth.revenue, rtol=1e-12)
    price = world.observed_items.price
    for i in range(len(slates)):
        one = draw.requests.take(np.array([i]))
        attract = world.attractiveness(one, slates[i : i + 1])[0]
        conv = world.conversion_probability(one, slates[i : i + 1])[0]
        decay = -math.log(world.examination(one, 2)[0, 1]) / math.log(2)
        expected = clicks = conversions = 0.0
        for p in range(slates.shape[1]):
            click_p = (1 + p) ** -decay * attract[p]
            expected += click_p
            clicked = draw.u_click[i, p] < click_p
            clicks += clicked
            conversions += clicked and draw.u_conversion[i, p] < conv[p]
        assert out.expected.clicks[i] == pytest.approx(expected, rel=1e-9)
        assert out.clicks[i].sum() == clicks
        assert out.conversions[i].sum() == conversions
        assert out.revenue[i] == pytest.approx(price[slates[i]][out.conversions[i]].sum())


def test_live_sampled_clicks_average_to_the_expected_clicks(world):
    sampled, expected = [], []
    for draw in draw_chunks(world, 4000, seed=4):
        slates = draw.requests.candidates[:, :10]
        out = slate_outcomes(world, draw.requests, slates, draw.u_click, draw.u_conversion)
        sampled.append(out.clicks.sum(axis=1))
        expected.append(out.expected.clicks)
    sampled = np.concatenate(sampled)
    se = sampled.std() / math.sqrt(len(sampled))
    assert abs(sampled.mean() - np.concatenate(expected).mean()) < 4 * se


# --- the run against a stand-in service ---------------------------------------------------------------------


def test_live_run_records_every_slate_and_sends_its_feedback(world, fake, tmp_path):
    server = fake()
    settings = LiveSettings(url=server.url, requests=250, rate=0, seed=5, feedback_delay=0, chunk=60)
    result = run_live(world, settings)
    records = result.records
    assert list(records.columns) == list(RECORD_COLUMNS)
    assert result.counts.served == 250
    assert result.counts.server_errors == 0
    assert result.counts.feedback_statuses == {200: 250}
    assert len(server.reranks) == 250
    assert len(server.feedback) == 250
    draws = list(draw_chunks(world, 250, seed=5))
    by_event = records.set_index("event_id")
    for event_id, slate in server.slates.items():
        row = by_event.loc[event_id]
        i = int(row["request"])
        draw = draws[i // DRAW_BLOCK]
        j = i - draw.first
        one = draw.requests.take(np.array([j]))
        naive = world.expected_outcomes(one, np.array([slate]))
        assert row["expected_clicks"] == pytest.approx(naive.clicks[0], rel=1e-9)
        assert row["expected_revenue"] == pytest.approx(naive.revenue[0], rel=1e-9)
        sent = server.feedback[event_id]
        assert len(sent["clicks"]) == row["clicks"]
        assert len(sent["conversions"]) == row["conversions"]
        assert sent["time"] == one.time[0]  # the world time of the decision plus the delay, 0 here
        assert row["variant"] == ("b" if one.user_id[0] % 2 else "a")
        assert row["policy_version"] == "p1"
        assert row["logged"] == (int(event_id[1:]) % 7 != 0)
        assert row["shown"] == K
    paths = write_live(result, tmp_path / "out", window=50)
    assert pd.read_parquet(paths["records"]).shape == records.shape
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads(paths["summary"].read_text())
    assert summary["served"] == 250
    assert summary["server_errors"] == 0


def test_live_run_counts_server_errors_and_resends_feedback_answered_404(world, fake):
    server = fake(fail_every=10, feedback_404=True)
    settings = LiveSettings(
        url=server.url, requests=100, rate=0, seed=0, feedback_delay=0, chunk=40, feedback_backoff=0.01
    )
    result = run_live(world, settings)
    assert result.counts.statuses == {200: 90, 500: 10}
    assert result.counts.server_errors == 10
    assert result.counts.failed == 10
    assert result.counts.feedback_statuses == {200: 90}
    assert result.counts.feedback_retries == 90
    failed = result.records[result.records["status"] == 500]
    assert failed["expected_clicks"].isna().all()
    assert (failed["feedback_status"] == -1).all()


def test_live_resends_feedback_that_got_no_answer(world, fake):
    server = fake(feedback_stall=1.0)
    settings = LiveSettings(
        url=server.url, requests=8, rate=0, seed=0, feedback_delay=0, timeout=0.3, feedback_backoff=0.01
    )
    result = run_live(world, settings)
    assert result.counts.feedback_statuses == {200: 8}
    assert result.counts.feedback_retries == 8
    assert (result.records["feedback_attempts"] == 2).all()
    assert (result.records["feedback_error"] == "").all()  # the last attempt was answered
    assert len(server.feedback) == 8


def test_live_rate_spaces_the_requests(world, fake):
    server = fake()
    settings = LiveSettings(url=server.url, requests=40, rate=200.0, seed=0, feedback_delay=0, chunk=20)
    started = time.monotonic()
    result = run_live(world, settings)
    assert time.monotonic() - started >= 39 / 200.0
    sent = result.records["sent_s"].to_numpy()
    assert (sent >= np.arange(40) / 200.0 - 1e-3).all()


def test_live_feedback_waits_the_delay_and_is_stamped_with_it(world, fake):
    server = fake()
    settings = LiveSettings(url=server.url, requests=30, rate=0, seed=3, feedback_delay=0.4, chunk=10)
    result = run_live(world, settings)
    assert result.counts.feedback_statuses == {200: 30}
    records = result.records.set_index("event_id")
    for event_id, body in server.feedback.items():
        assert server.clock[event_id] >= 0.4
        assert body["time"] == pytest.approx(records.loc[event_id, "time"] + 0.4)


def test_live_pool_sends_due_requests_earliest_first_and_first_lane_before_the_rest(fake):
    server = fake()
    with HttpPool(server.url, connections=1) as pool:
        now = time.monotonic()
        pool.submit(now, "GET", "/slow", None, lambda r: None)  # holds the one connection for 0.3 s
        time.sleep(0.05)
        for i, offset in enumerate([0.02, 0.0, 0.01]):
            pool.submit(now + offset, "GET", f"/later-{i}", None, lambda r: None)
        pool.submit(now + 0.015, "GET", "/first", None, lambda r: None, first=True)
        pool.submit(now + 0.6, "GET", "/first-not-due", None, lambda r: None, first=True)
    # Once the connection is free, everything but the last is due: the first lane goes first, then the
    # rest by due time; a first-lane request not yet due waits for its time.
    assert server.gets == ["/slow", "/first", "/later-1", "/later-2", "/later-0", "/first-not-due"]


def test_live_refuses_a_service_that_lacks_a_section(world, fake):
    server = fake()
    server.sections = server.sections[1:]
    with pytest.raises(SimulationInputError, match="serve the world's sections, found no"):
        run_live(world, LiveSettings(url=server.url, requests=1))


def test_live_refuses_an_unreachable_service(world):
    with HttpPool("http://127.0.0.1:9", connections=1, timeout=1) as pool:
        got = []
        pool.submit(0.0, "GET", "/", None, got.append)
    assert got[0].status == 0
    assert got[0].error
    with pytest.raises(SimulationInputError, match="Expected a service at `url`"):
        run_live(world, LiveSettings(url="http://127.0.0.1:9", requests=1, timeout=1))


# Invalid settings: (keyword, value, message).
BAD_SETTINGS = [
    ("requests", 0, "`requests` to be an integer >= 1"),
    ("requests", True, "`requests` to be an integer >= 1"),
    ("rate", -1.0, "`rate` to be a number >= 0"),
    ("rate", math.inf, "`rate` to be a number >= 0"),
    ("connections", 0, "`connections` to be an integer >= 1"),
    ("feedback_delay", -0.5, "`feedback_delay` to be a number >= 0"),
    ("seed", -1, "`seed` to be an integer >= 0"),
    ("chunk", 0, "`chunk` to be an integer >= 1"),
]


@pytest.mark.parametrize(("key", "value", "message"), BAD_SETTINGS)
def test_live_settings_refuse_bad_values(key, value, message):
    with pytest.raises(SimulationInputError, match=message):
        LiveSettings(**{"url": "http://127.0.0.1:1", "requests": 10, key: value})


@pytest.mark.parametrize(
    "url", ["127.0.0.1:8000", "https://x:1", "http://x:1/v1", "http://:80", "http://x:99999"]
)
def test_live_url_must_be_plain_http_host_and_port(url):
    with pytest.raises(SimulationInputError, match="`url`"):
        parse_base_url(url)


def test_live_variant_of_reads_a_string_an_object_or_nothing():
    assert variant_of({"variant": "consolidated"}) == "consolidated"
    assert variant_of({"variant": {"name": "b", "id": "x"}}) == "b"
    assert variant_of({"variant": {"id": "x"}}) == "x"
    assert variant_of({}) == ""
    assert variant_of({"variant": None}) == ""


# --- the report ---------------------------------------------------------------------------------------------


def _records(values: np.ndarray, sections: np.ndarray, variants: np.ndarray) -> pd.DataFrame:
    n = len(values)
    return pd.DataFrame(
        {
            "request": np.arange(n),
            "section": sections,
            "variant": variants,
            "status": np.full(n, 200),
            "sent_s": np.arange(n) * 0.01,
            "expected_clicks": values,
            "expected_conversions": values / 2,
            "expected_revenue": values * 3,
        }
    )


def test_live_quarter_change_is_welchs_difference_of_means(rng):
    values = rng.normal(1.0, 0.3, 400) + np.repeat([0.0, 0.1, 0.2, 0.3], 100)
    sections = np.where(np.arange(400) % 3 == 0, "search", "discover")
    records = _records(values, sections, np.full(400, ""))
    records.loc[7, "status"] = 503  # not served: left out of the quarters
    records.loc[7, "expected_clicks"] = np.nan
    change = quarter_change(records)
    kept = records.drop(index=7)["expected_clicks"].to_numpy()
    first, last = kept[:99], kept[-99:]
    d = last.mean() - first.mean()
    se = math.sqrt(first.var(ddof=1) / 99 + last.var(ddof=1) / 99)
    assert change[ALL].difference == pytest.approx(d)
    assert change[ALL].low == pytest.approx(d - 1.959964 * se, rel=1e-6)
    assert change[ALL].high == pytest.approx(d + 1.959964 * se, rel=1e-6)
    assert change[ALL].n_first == change[ALL].n_last == 99
    assert change[ALL].low > 0
    assert change["search"].n_first + change["discover"].n_first == 99


def test_live_value_series_is_the_mean_per_window_section_and_variant(rng):
    n = 230
    values = rng.random(n)
    sections = rng.choice(["discover", "search"], n)
    variants = rng.choice(["a", "b"], n)
    series = value_series(_records(values, sections, variants), 50)
    assert sorted(series["window"].unique()) == [0, 1, 2, 3, 4]
    for _, row in series.iterrows():
        window = np.arange(n) // 50 == row["window"]
        mask = window & (variants == row["variant"])
        if row["section"] != ALL:
            mask &= sections == row["section"]
        assert row["requests"] == mask.sum()
        assert row["expected_clicks"] == pytest.approx(values[mask].mean())
        assert row["expected_revenue"] == pytest.approx(3 * values[mask].mean())
