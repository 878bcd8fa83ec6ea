"""A token-bucket request limit per API key, and per client address for everyone else.

Each caller has a bucket of ``per_minute`` tokens that refills at ``per_minute / 60`` tokens a
second; a request takes one token, and a request finding the bucket empty gets 429 with
``Retry-After``. A key counts as its own caller only once it has been accepted (a response
other than 401): requests with no key, or with a key never accepted, share their client
address's bucket, so guessing keys or sending random ones cannot escape the limit. Health
probes are not limited. The limit is per gateway process (one bucket set in memory).
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

EXEMPT_PREFIXES = ("/health/",)
_MAX_BUCKETS = 10_000  # beyond this, full (idle) buckets are dropped
_MAX_ACCEPTED_KEYS = 10_000


@dataclass
class _Bucket:
    tokens: float
    updated: float
    warned: bool = False


class TokenBuckets:
    """Buckets by caller identity; ``take`` answers 0 (go ahead) or the seconds to wait."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, identity: str) -> float:
        """Take a token for ``identity``; 0.0 if there was one, else seconds until one."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(identity)
            if bucket is None:
                self._prune(now)
                bucket = self._buckets[identity] = _Bucket(self.capacity, now)
            bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                bucket.warned = False
                return 0.0
            wait = (1.0 - bucket.tokens) / self.rate
            if not bucket.warned:  # one log line per burst, not one per refused request
                bucket.warned = True
                log.warning("rate limit reached for %s", identity)
            return wait

    def _prune(self, now: float) -> None:
        if len(self._buckets) < _MAX_BUCKETS:
            return
        full = [
            name
            for name, b in self._buckets.items()
            if b.tokens + (now - b.updated) * self.rate >= self.capacity
        ]
        for name in full:
            del self._buckets[name]


class RateLimitMiddleware:
    """ASGI middleware applying :class:`TokenBuckets` to every HTTP request but health probes."""

    def __init__(self, app: ASGIApp, per_minute: int) -> None:
        self.app = app
        self.per_minute = per_minute
        self.buckets = TokenBuckets(per_minute)
        # Digests of keys the gateway accepted recently (LRU); only these get their own bucket.
        self._accepted: OrderedDict[str, None] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on if its caller's bucket has a token, else answer 429."""
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return
        digest = _presented_key_digest(scope)
        if digest is not None and digest in self._accepted:
            self._accepted.move_to_end(digest)
            identity = f"API key sha256:{digest[:12]}"
        else:
            client = scope.get("client")
            identity = f"client {client[0] if client else 'unknown'}"
        wait = self.buckets.take(identity)
        if wait > 0:
            await _too_many(send, wait, self.per_minute)
            return

        async def watching_send(message: Message) -> None:
            if digest is not None and message["type"] == "http.response.start":
                self._note_outcome(digest, int(message["status"]))
            await send(message)

        await self.app(scope, receive, watching_send)

    def _note_outcome(self, digest: str, status: int) -> None:
        if status == 401:  # unknown or revoked: back to the client address's bucket
            self._accepted.pop(digest, None)
            return
        self._accepted[digest] = None
        self._accepted.move_to_end(digest)
        while len(self._accepted) > _MAX_ACCEPTED_KEYS:
            self._accepted.popitem(last=False)


def _presented_key_digest(scope: Scope) -> str | None:
    """SHA-256 of the API key in the request headers (the same headers api.deps reads)."""
    bearer = api_key = None
    for name, value in scope.get("headers", []):
        if name == b"x-api-key":
            api_key = value
        elif name == b"authorization" and value[:7].lower() == b"bearer ":
            bearer = value[7:].strip()
    presented = api_key or bearer
    return hashlib.sha256(presented).hexdigest() if presented else None


async def _too_many(send: Send, wait_s: float, per_minute: int) -> None:
    retry_after = max(1, math.ceil(wait_s))
    body = (
        f'{{"detail":"too many requests: the limit is {per_minute} per minute per API key '
        f'(per client address without one); retry after {retry_after} s"}}'
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(retry_after).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
