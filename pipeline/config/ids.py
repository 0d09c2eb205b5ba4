"""The one rule for camera ids, applied wherever an id enters: flags, config files, bus messages.

A camera id becomes part of file names (``<id>.mot.txt``), clip ids (``<id>:<track>:<segment>``),
URLs (``/cameras/<id>``) and metric labels, so it is limited to characters that are safe in all of
them: a letter or digit first (no ``.``/``..``, no hidden files, no option-like ``-x``), then
letters, digits, ``_``, ``.`` and ``-``; at most 64 characters. No ``/``, ``:``, spaces or control
characters can ever reach a path or a log line through it.
"""

from __future__ import annotations

import re

from models.errors import ConfigError, XreidError

CAMERA_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
CAMERA_ID_RULE = (f"must match {CAMERA_ID_PATTERN} (letters, digits, '_', '.', '-'; a letter or digit first; "
                  "at most 64)")
_CAMERA_ID = re.compile(CAMERA_ID_PATTERN)
# a deployment name (``events.site``) is one MQTT topic level and a metric label: the camera id rule fits it
SITE_PATTERN = CAMERA_ID_PATTERN


def is_camera_id(value: object) -> bool:
    """Whether ``value`` is a valid camera id."""
    return isinstance(value, str) and _CAMERA_ID.fullmatch(value) is not None


def is_site(value: object) -> bool:
    """Whether ``value`` is a valid site name (``events.site``, an event's ``site``)."""
    return is_camera_id(value)


def check_camera_id(value: object, what: str = "camera id", error: type[XreidError] = ConfigError) -> str:
    """Return ``value`` when it is a valid camera id.

    Args:
        value: the candidate id.
        what: how the error names it (``--camera``, ``Clip.camera_id``).
        error: the error class of the caller's layer (``ConfigError`` for flags and files,
            ``ContractError`` for messages).

    Raises:
        error: naming the rule and the offending value (``repr``: control characters show escaped).
    """
    if not is_camera_id(value):
        raise error(f"{what} {CAMERA_ID_RULE}, got {value!r}")
    return value  # type: ignore[return-value]
