"""Bearer-token authentication for the API: the read gate before routing, the admin check on admin routes.

The read gate is an ASGI middleware rather than a FastAPI dependency so that a request without a valid
token gets the same 401 for every path, existing or not: the answer never reveals which routes exist.
Only the liveness probe and the dashboard's static shell are public; the dashboard then asks the
user for the token and sends it with every data request. The admin token (``api.admin_token``) passes
the gate too; routes that erase or read the audit log also depend on ``require_admin``, which answers
403 to any other token (401 stays "who are you?", 403 is "you may not").

A token is never stored or logged: ``token_id`` (a SHA-256 prefix) names it in the audit log.
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


TOKEN_ID_CHARS = 12
NO_TOKEN = "none"   # the token id of requests to a server without auth


def _digest(value: str) -> bytes:
    # compare fixed-length digests: compare_digest on raw strings would leak the token's length
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()


def bearer(headers: Headers) -> str | None:
    """The credential of an ``Authorization: Bearer`` header (None when there is none)."""
    scheme, _, credential = headers.get("authorization", "").partition(" ")
    return credential.strip() if scheme.lower() == "bearer" and credential.strip() else None


def token_id(token: str | None) -> str:
    """What the audit log records for a token: a prefix of its SHA-256 (``none`` without a token)."""
    return NO_TOKEN if token is None else _digest(token).hex()[:TOKEN_ID_CHARS]


def require_admin(request: Request) -> str:
    """FastAPI dependency of the admin routes (erasure, audit log): the request carries ``api.admin_token``.

    Returns:
        The admin token's id (for the audit log).

    Raises:
        HTTPException: 403 when the server has no admin token or the request carries another token.
    """
    expected = request.app.state.cfg.admin_token
    if expected is None:
        raise HTTPException(403, "admin routes are off: the server has no admin token (set XREID_API__ADMIN_TOKEN)")
    given = bearer(request.headers) or ""
    if not hmac.compare_digest(_digest(given), _digest(expected.get_secret_value())):
        raise HTTPException(403, "this route needs the admin token")
    return token_id(given)


class BearerAuth:
    """Refuse every HTTP request whose ``Authorization: Bearer`` token differs from ``token``.

    Args:
        app: the wrapped ASGI application.
        token: the configured secret.
        public_paths: exact paths served without a token.
        on_failure: called once per refused request (a metrics counter).
        admin_token: also let this one through (admin routes check it again with ``require_admin``).
    """

    def __init__(self, app: ASGIApp, token: str, public_paths: Iterable[str] = (),
                 on_failure: Callable[[], None] | None = None, admin_token: str | None = None) -> None:
        self.app = app
        self._expected = [_digest(t) for t in (token, admin_token) if t is not None]
        self.public_paths = frozenset(public_paths)
        self.on_failure = on_failure

    def authorized(self, headers: Headers) -> bool:
        scheme, _, credential = headers.get("authorization", "").partition(" ")
        given = _digest(credential.strip())
        # always run every comparison, whatever the scheme, so timing does not depend on the input
        matches = [hmac.compare_digest(given, expected) for expected in self._expected]
        return any(matches) and scheme.lower() == "bearer"

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
