"""Bearer-token authentication for the API, checked before routing.

It is an ASGI middleware rather than a FastAPI dependency so that a request without a valid token
gets the same 401 for every path, existing or not: the answer never reveals which routes exist.
Only the liveness probe and the dashboard's static shell are public; the dashboard then asks the
user for the token and sends it with every data request.

Routes that change the store (watchlists) also depend on ``require_admin``: their bearer must be
``api.admin_token`` (``XREID_API__ADMIN_TOKEN``), which the middleware accepts as well, so one header
serves both checks.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Iterable

from fastapi import HTTPException, Request
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

_BODY = json.dumps({"detail": "missing or invalid bearer token"}).encode()


def _digest(value: str) -> bytes:
    # compare fixed-length digests: compare_digest on raw strings would leak the token's length
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()


class BearerAuth:
    """Refuse every HTTP request whose ``Authorization: Bearer`` token differs from ``token``.

    Args:
        app: the wrapped ASGI application.
        token: the configured secret.
        public_paths: exact paths served without a token.
        on_failure: called once per refused request (a metrics counter).
        admin_token: also accepted (``require_admin`` then tells the two apart).
    """

    def __init__(self, app: ASGIApp, token: str, public_paths: Iterable[str] = (),
                 on_failure: Callable[[], None] | None = None, admin_token: str | None = None) -> None:
        self.app = app
        self._expected = [_digest(token), *([_digest(admin_token)] if admin_token is not None else [])]
        self.public_paths = frozenset(public_paths)
        self.on_failure = on_failure

    def authorized(self, headers: Headers) -> bool:
        return any(_bearer_is(headers, expected) for expected in self._expected)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.public_paths:
            await self.app(scope, receive, send)
            return
        if self.authorized(Headers(scope=scope)):
            await self.app(scope, receive, send)
            return
        if self.on_failure is not None:
            self.on_failure()
        log.debug("refused unauthenticated %s request", scope.get("method"))
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(_BODY)).encode()),
            (b"www-authenticate", b'Bearer realm="xreid"')]})
        await send({"type": "http.response.body", "body": _BODY})


def _bearer_is(headers: Headers, expected: bytes) -> bool:
    scheme, _, credential = headers.get("authorization", "").partition(" ")
    given = _digest(credential.strip())
    # always run the comparison, whatever the scheme, so timing does not depend on the input
    return hmac.compare_digest(given, expected) and scheme.lower() == "bearer"


def require_admin(request: Request) -> None:
    """FastAPI dependency of the routes that change the store: ``Authorization: Bearer <api.admin_token>``.

    Raises:
        HTTPException: 403 when no admin token is configured or the request does not carry it.
    """
    admin = request.app.state.cfg.admin_token
    if admin is None:
        raise HTTPException(403, "admin routes are disabled: set api.admin_token (XREID_API__ADMIN_TOKEN)")
    if not _bearer_is(request.headers, _digest(admin.get_secret_value())):
        raise HTTPException(403, "this route needs the admin token (Authorization: Bearer <api.admin_token>)")
