"""Credential redaction for URLs shown in logs, the store and the API.

Camera and Redis URLs carry secrets (``rtsp://user:pass@cam/…``, ``rediss://app:token@redis``,
``?password=…``). Everything that displays a URL passes it through ``redact_url`` first, and any
free text that may embed one (an FFmpeg or redis-py error message) through ``redact_text``.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
SECRET_QUERY_KEYS = frozenset({"password", "pass", "pwd", "passwd", "token", "auth", "key", "secret",
                               "apikey", "api_key", "access_token", "signature", "sig"})

# scheme://userinfo@ inside free text; userinfo never contains '/', '@' or whitespace
_USERINFO_RE = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")
_QUERY_SECRET_RE = re.compile(r"(?i)(?P<key>[?&;](?:" + "|".join(sorted(SECRET_QUERY_KEYS)) + r")=)[^&\s]*")


def redact_url(url: str) -> str:
    """``url`` with its user, password and secret-looking query values replaced by ``***``.

    The host, port, path and harmless query parameters stay visible, so the log still says which
    camera or server is meant. A string that is not a URL is returned with ``redact_text`` applied.
    """
    if not isinstance(url, str):
        return MASK
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a malformed port
    except ValueError:
        return redact_text(url)
    if not parts.scheme or not parts.netloc:
        return redact_text(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host + (f":{port}" if port is not None else "")
    if parts.username is not None or parts.password is not None:
        netloc = f"{MASK}@{netloc}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if k.lower() in SECRET_QUERY_KEYS else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Mask every ``scheme://user:pass@`` and ``password=…`` occurrence inside free text."""
    text = _USERINFO_RE.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)
    return _QUERY_SECRET_RE.sub(lambda m: f"{m.group('key')}{MASK}", text)
