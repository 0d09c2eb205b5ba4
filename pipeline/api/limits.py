"""Request limits: the body size, enforced while the body streams in (before anything is spooled),
and the number of searches decoding images at once.

A declared ``Content-Length`` above the limit is refused at once; a chunked body is counted as it
arrives and refused as soon as it passes the limit, so an upload can never fill the disk. Decoded
images are large (a 40-megapixel upload is 120 MB as RGB), so only a few searches may hold decoded
images at a time; the others wait briefly for a slot, then get 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimit:
    """Answer 413 to any request whose body exceeds ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _detail(self) -> str:
        return f"request body exceeds the {self.max_bytes}-byte limit"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes:
                    body = json.dumps({"detail": self._detail()}).encode()
                    await send({"type": "http.response.start", "status": 413, "headers": [
                        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close")]})
                    await send({"type": "http.response.body", "body": body})
                    return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # raised inside the route's body read: the exception middleware answers 413
                    raise HTTPException(413, self._detail())
            return message

        await self.app(scope, counting_receive, send)


class DecodeGate:
    """At most ``slots`` holders at once; a caller that waits past ``wait_s`` gets 503 + ``Retry-After``.

    Used by ``/search``: one slot spans a request's decoding and encoding (its decoded crops live
    that long), so peak memory is bounded by ``slots`` x the per-request pixel limit.
    """

    def __init__(self, slots: int, wait_s: float) -> None:
        self.slots = slots
        self.wait_s = wait_s
        self._sem = asyncio.Semaphore(slots)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot for the body of the ``async with``.

        Raises:
            HTTPException: 503 when no slot frees up within ``wait_s``.
        """
        try:
            if self.wait_s > 0:
                await asyncio.wait_for(self._sem.acquire(), timeout=self.wait_s)
            elif self._sem.locked():
                raise TimeoutError
            else:
                await self._sem.acquire()
        except TimeoutError:
            raise HTTPException(503, f"busy: {self.slots} image searches are already decoding; retry shortly",
                                headers={"Retry-After": str(max(1, math.ceil(self.wait_s)))}) from None
        try:
            yield
        finally:
            self._sem.release()

