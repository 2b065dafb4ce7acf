"""What every request goes through before FastAPI sees it (plain ASGI, so that a refused body is never read
whole): request counts and latency, the API key, and the body's size and encoding."""

from __future__ import annotations

import hmac
import time

from .errors import error_bytes

BODY_METHODS = ("POST", "PUT", "PATCH")


async def send_error(send, status: int, type: str, message: str, headers: list | None = None) -> None:
    body = error_bytes(type, message)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


def key_matches(headers: dict[bytes, bytes], api_key: bytes) -> bool:
    """`Authorization: Bearer KEY` or `X-API-Key: KEY`, compared in constant time."""
    given = headers.get(b"x-api-key")
    if given is None:
        scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
        given = token.strip() if scheme.lower() == b"bearer" else b""
    return hmac.compare_digest(given, api_key)


class ServiceGuard:
    """Around the app: counts each request by model, action and status with its latency (`label_of(path)`:
    the (model, action) labels of a path); answers 401 to a /v1/ request without the API key; reads a body
    up to `max_body_bytes` (413 above, without reading the rest) and 400 when it is not UTF-8; then hands
    the app the body it read, and the client's disconnect after it."""

    def __init__(self, app, max_body_bytes: int, api_key: str | None = None, metrics=None, label_of=None):
        self.app, self.max_body_bytes, self.metrics, self.label_of = app, max_body_bytes, metrics, label_of
        self.api_key = api_key.encode() if api_key else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [500]

        async def counted_send(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self._guarded(scope, receive, counted_send)
        finally:
            if self.metrics is not None and self.label_of is not None:
                model, action = self.label_of(scope["path"])
                self.metrics.observe_request(model, action, status[0], time.perf_counter() - start)

    async def _guarded(self, scope, receive, send):
        headers = dict(scope.get("headers") or [])
        if self.api_key is not None and scope["path"].startswith("/v1/") and not key_matches(headers, self.api_key):
            self._count("unauthorized")
            return await send_error(send, 401, "unauthorized", "a valid API key is required: send the header "
                                    "`Authorization: Bearer KEY` or `X-API-Key: KEY`",
                                    [(b"www-authenticate", b"Bearer")])
        if scope["method"] not in BODY_METHODS:
            return await self.app(scope, receive, send)
        declared = headers.get(b"content-length", b"").decode("latin-1").strip()
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            return await self._too_large(send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return await self._too_large(send)
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as error:
            self._count("bad_encoding")
            return await send_error(send, 400, "bad_encoding", f"the body is not UTF-8 (byte {error.start} is "
                                    f"{body[error.start:error.start + 1]!r}): send JSON encoded as UTF-8")
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the client's disconnect, when it leaves

        await self.app(scope, replay, send)

    async def _too_large(self, send):
        self._count("body_too_large")
        await send_error(send, 413, "body_too_large", f"the request body is larger than this server takes "
                         f"({self.max_body_bytes:,} bytes, --max-body-bytes): send a shorter document")

    def _count(self, type: str) -> None:
        if self.metrics is not None:
            self.metrics.errors.labels(type).inc()
