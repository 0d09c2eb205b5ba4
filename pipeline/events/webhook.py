"""Webhook publisher: every event POSTed as JSON to one URL, signed, retried with backoff.

Each endpoint gets its own sink (one thread, one outbox), so a dead or hanging endpoint delays only
its own deliveries. A delivery is tried up to ``max_attempts`` times, with exponential backoff and
jitter between tries, on a network error, a timeout, a 5xx, 408 or 429; any other non-2xx answer
(400, 401, a redirect: never followed, it would resend the body elsewhere) will not improve by
retrying and fails at once. Failures and drops are counted, never raised: the matcher that
submitted the event is long gone.

Receivers check ``X-Xreid-Signature: sha256=<hex>``, the HMAC-SHA256 of the exact body bytes under
the shared secret (``verify_signature``; docs/events.md has a standalone snippet).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import logging
import random
import ssl
import threading
import time
from urllib.parse import unquote, urlsplit

from pipeline.config.redact import redact_text
from pipeline.events.config import check_webhook_url
from pipeline.events.event import Event
from pipeline.events.sink import Outbox, SinkCounters, enqueue, publisher_backoff
from pipeline.runtime.backoff import Backoff

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Xreid-Signature"
EVENT_HEADER = "X-Xreid-Event"
EVENT_ID_HEADER = "X-Xreid-Event-Id"
RETRY_STATUS = frozenset({408, 429})
_MAX_RESPONSE_BYTES = 64 * 1024


def sign(body: bytes, secret: str | bytes) -> str:
    """The ``X-Xreid-Signature`` value of ``body``: ``sha256=`` + hex HMAC-SHA256."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, secret: str | bytes, header: str | None) -> bool:
    """Whether ``header`` is the signature of ``body`` (constant-time compare)."""
    return bool(header) and hmac.compare_digest(sign(body, secret), header)


class WebhookSink:
    """POSTs events to one endpoint from a background thread (see the module doc).

    Args:
        url: ``http(s)://[user:pass@]host[:port]/path``; user:pass becomes a Basic auth header.
        secret: HMAC-SHA256 key shared with the receiver.
        outbox_size: events waiting while the endpoint is slow or down; beyond, the oldest is dropped.
        timeout_s: connect + response wait of one attempt.
        max_attempts: tries per event (1 = no retry).
    """

    def __init__(self, url: str, secret: str, outbox_size: int = 10_000, timeout_s: float = 5.0,
                 max_attempts: int = 6, backoff: Backoff | None = None, name: str | None = None) -> None:
        check_webhook_url(url)
        parts = urlsplit(url)
        netloc = parts.hostname or ""
        if ":" in netloc:
            netloc = f"[{netloc}]"
        if parts.port is not None:
            netloc += f":{parts.port}"
        self._tls = parts.scheme == "https"
        self._tls_context = ssl.create_default_context() if self._tls else None   # loads the CAs once
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._tls else 80)
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._auth = None
        if parts.username is not None:
            cred = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            self._auth = "Basic " + base64.b64encode(cred).decode()
        self.display = f"{parts.scheme}://{netloc}/…"   # hook services put tokens in the path: show the host only
        self.name = name or f"webhook:{netloc}"
        self._secret = secret.encode()
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.counters = SinkCounters(connected=True)   # until an attempt finds it unreachable
        self.last_error: str | None = None
        self.outbox = Outbox(outbox_size)
        self._backoff = backoff or publisher_backoff(0.5, 30.0)
        self._failures = 0   # failed attempts since the last delivery got through
        self._rng = random.Random()
        self._busy = False
        self._idle = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"events-{self.name}", daemon=True)
        self._thread.start()

    # -- caller side --------------------------------------------------------------------------

    def submit(self, event: Event) -> None:
        enqueue(self.outbox, self.counters, event, self.name, log)

    def flush(self, timeout_s: float) -> bool:
        """Wait until the outbox is empty and no delivery is under way."""
        deadline = time.monotonic() + timeout_s
        while True:
            if not self.outbox.wait_empty(max(0.0, deadline - time.monotonic())):
                return False
            with self._idle:
                if not self._idle.wait_for(lambda: not self._busy, timeout=max(0.0, deadline - time.monotonic())):
                    return False
            if len(self.outbox) == 0:
                return True

    def close(self, timeout_s: float = 5.0) -> None:
        self.flush(timeout_s)
        self._stop.set()
        self.outbox.wake()
        self._thread.join(timeout=self.timeout_s + 1.0)

    # -- sink thread --------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.outbox.wait_nonempty(0.5):
                continue
            batch = self.outbox.first(1)
            if not batch:
                continue
            event = batch[0]
            with self._idle:
                self._busy = True
            self.outbox.remove(event.event_id)  # held by this thread now: a full outbox cannot drop it
            try:
                self._deliver(event)
            finally:
                with self._idle:
                    self._busy = False
                    self._idle.notify_all()

    def _deliver(self, event: Event) -> None:
        body = event.to_json().encode()
        headers = {"Content-Type": "application/json", "User-Agent": "xreid-events/1", EVENT_HEADER: event.kind,
                   EVENT_ID_HEADER: event.event_id, SIGNATURE_HEADER: sign(body, self._secret)}
        if self._auth:
            headers["Authorization"] = self._auth
        for attempt in range(1, self.max_attempts + 1):
            if attempt > 1:
                self.counters.retries += 1
            status, reason = self._post(body, headers)
            if status is not None and 200 <= status < 300:
                self.counters.published += 1
                self._failures = 0
                return
            retryable = status is None or status >= 500 or status in RETRY_STATUS
            self.last_error = reason
            if not retryable or attempt == self.max_attempts:
                break
            level = logging.WARNING if attempt == 1 else logging.DEBUG
            log.log(level, "events %s event=%s attempt %d/%d failed: %s; retrying", self.display, event.event_id,
                    attempt, self.max_attempts, reason)
            self._failures += 1
            if self._backoff.wait(self._failures, self._stop, self._rng):
                break
        self.counters.failed += 1
        log.warning("events %s gave up on event=%s kind=%s after %d attempt(s): %s (failed so far: %d)",
                    self.display, event.event_id, event.kind, attempt, self.last_error, self.counters.failed)

    def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int | None, str]:
        """One attempt: (HTTP status or None for no answer, reason for the log)."""
        if self._tls:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self._host, self._port, timeout=self.timeout_s, context=self._tls_context)
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout_s)
        try:
            conn.request("POST", self._target, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read(_MAX_RESPONSE_BYTES)
            self.counters.connected = True
            return resp.status, f"HTTP {resp.status}"
        except (OSError, http.client.HTTPException) as e:  # refused, timeout, reset, TLS, garbage answer
            self.counters.connected = False
            return None, redact_text(f"{type(e).__name__}: {e}")
        finally:
            conn.close()
