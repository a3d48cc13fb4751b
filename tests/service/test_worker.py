"""`service.worker.request_state`: when the bytes a connection has sent are a whole HTTP/1.1 request."""

from __future__ import annotations

import pytest

from service.worker import PEEK_LIMIT, request_state

HEAD = b"POST /v1/rerank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


def with_length(body: bytes, length: int | None = None, extra: bytes = b"") -> bytes:
    n = len(body) if length is None else length
    return HEAD + b"Content-Length: " + str(n).encode() + b"\r\n" + extra + b"\r\n" + body


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "partial"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n", "partial"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", "complete"),
        (with_length(b'{"a": 1}'), "complete"),
        (with_length(b'{"a": 1}', 100), "partial"),
        (with_length(b'{"a": 1}', 8)[:-1], "partial"),
        # Header names are case-insensitive; whitespace around the value is allowed.
        (HEAD.replace(b"Host", b"host") + b"content-LENGTH :  3 \r\n\r\nabc", "complete"),
        (with_length(b"", 10, b"Expect: 100-continue\r\n"), "continue"),
        (with_length(b"0123456789", 10, b"Expect: 100-continue\r\n"), "complete"),
        # Conflicting lengths are gunicorn's to refuse (400), not ours to wait on.
        (HEAD + b"Content-Length: 3\r\nContent-Length: 5\r\n\r\nabc", "complete"),
    ],
)
def test_content_length_framing(data, expected):
    assert request_state(data) == expected


CHUNKED = HEAD + b"Transfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", "partial"),
        (b"4\r\nabcd\r\n", "partial"),
        (b"4\r\nabcd\r\n0\r\n", "partial"),
        (b"4\r\nabcd\r\n0\r\n\r\n", "complete"),
        (b"0\r\n\r\n", "complete"),
        (b"4;ext=1\r\nabcd\r\n000;x\r\nTrailer: v\r\n\r\n", "complete"),
        # "10" is a chunk of 16 bytes, not the last chunk.
        (b"10\r\n", "partial"),
    ],
)
def test_chunked_framing(body, expected):
    assert request_state(CHUNKED + body) == expected


def test_a_request_past_the_peek_limit_is_passed_on_whole_or_not():
    """A client that has sent PEEK_LIMIT bytes is sending, not stalled: the app reads the rest."""
    big = with_length(b"x" * PEEK_LIMIT, 2 * PEEK_LIMIT)
    assert request_state(big) == "complete"
    assert request_state(b"GET /" + b"a" * PEEK_LIMIT) == "complete"
    assert request_state(with_length(b"x" * 100, 2 * PEEK_LIMIT)) == "partial"
