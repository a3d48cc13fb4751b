"""Request bodies read whole, with a deadline and a size limit, before any view sees them.

`BufferedBody` wraps the app's WSGI callable (outside `service.fast_path.RerankFastPath`). For a request
with a body it:

- refuses a declared ``Content-Length`` over `max_body_bytes` with 413 before reading, and a body that grows
  past it while read (a chunked one) with 413 too;
- refuses a non-empty body whose ``Content-Type`` is not ``application/json`` with 415;
- reads the body with a socket timeout and an overall deadline of `read_timeout` seconds (the client socket
  gunicorn passes as ``gunicorn.socket``): a client that sends headers and stalls its body is answered 408 in
  a few seconds and its connection closed, instead of holding a worker thread until gunicorn's timeout;
- hands the views the buffered body with its ``Content-Length`` (a chunked body included).

Every refusal is the JSON error body of `service.http_errors`.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable, Iterable
from typing import Any

from service.errors import ApiError
from service.http_errors import error_response

StartResponse = Callable[..., Any]

#: Seconds a client has to send a whole request body.
READ_TIMEOUT = 5.0
_CHUNK = 65536
_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


def _is_json(content_type: str) -> bool:
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))


class BufferedBody:
    """WSGI middleware: ``app.wsgi_app = BufferedBody(app.wsgi_app, max_body_bytes)``."""

    def __init__(self, inner: Callable, max_body_bytes: int, *, read_timeout: float = READ_TIMEOUT) -> None:
        self.inner = inner
        self.max_body_bytes = max_body_bytes
        self.read_timeout = read_timeout

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") not in _WITH_BODY:
            return self.inner(environ, start_response)
        try:
            body = self._read(environ)
        except ApiError as exc:
            response = error_response(exc)
            response.headers["Connection"] = "close"
            return response(environ, start_response)
        if body and not _is_json(environ.get("CONTENT_TYPE", "")):
            found = environ.get("CONTENT_TYPE") or "none"
            error = ApiError(415, f"expected Content-Type application/json, found {found}", "Content-Type")
            return error_response(error)(environ, start_response)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        return self.inner(environ, start_response)

    def _read(self, environ: dict[str, Any]) -> bytes:
        declared = environ.get("CONTENT_LENGTH") or ""
        length = int(declared) if declared.strip().isdigit() else None
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        too_large = ApiError(413, "the request body is larger than the configured max_body_bytes", "body")
        if length is not None and length > self.max_body_bytes:
            raise too_large
        if length is None and not (chunked or environ.get("wsgi.input_terminated")):
            return b""
        sock = environ.get("gunicorn.socket")
        previous = sock.gettimeout() if sock is not None else None
        if sock is not None:
            sock.settimeout(self.read_timeout)
        deadline = time.monotonic() + self.read_timeout
        stream = environ["wsgi.input"]
        parts: list[bytes] = []
        size = 0
        try:
            while length is None or size < length:
                want = _CHUNK if length is None else min(_CHUNK, length - size)
                part = stream.read(want)
                if not part:
                    break
                parts.append(part)
                size += len(part)
                if size > self.max_body_bytes:
                    raise too_large
                if time.monotonic() > deadline:
                    raise TimeoutError
        except TimeoutError:
            raise ApiError(
                408, f"the request body did not arrive within {self.read_timeout:g} s", "body"
            ) from None
        finally:
            if sock is not None:
                with contextlib.suppress(OSError):  # the client may have gone
                    sock.settimeout(previous)
        if length is not None and size < length:
            raise ApiError(400, f"the request body ended after {size} of {length} bytes", "body")
        return b"".join(parts)
