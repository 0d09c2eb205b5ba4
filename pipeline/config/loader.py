"""Load YAML into frozen config dataclasses, strictly.

Every entry point has one dataclass tree. ``load_config`` reads a YAML file, applies
``XREID_*`` environment overrides, and builds the tree; an unknown key, a wrong type or a value a
dataclass's ``__post_init__`` rejects becomes one ``ConfigError`` naming the key and the file.
Library code never reads files or the environment itself: workers call this at the edge and pass
the dataclasses down.

Environment overrides use ``__`` for nesting and YAML for the value::

    XREID_MATCHER__MIN_SCORE=0.4  ->  matcher.min_score = 0.4

Only names with a ``__`` are config keys: process settings that share the prefix
(``XREID_REDIS_URL``, ``XREID_LOG_LEVEL``, ``XREID_CACHE``, ``XREID_METRICS_HOST``) are not.

Secrets (tokens, passwords, URLs that may carry credentials) are fields declared with
``secret()``. That one marker decides three things: their environment values are taken as
literal strings (``XREID_API__TOKEN=null`` is the string ``null``, never "no token"), errors
about them never echo the value, and ``to_dict`` masks them. It is the seam for the planned move
to pydantic ``SecretStr``: every field that will change is the one carrying the marker.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from models.errors import ConfigError
from pipeline.config.redact import MASK, redact_text, redact_url

T = TypeVar("T")
ENV_PREFIX = "XREID_"
_SECRET = "xreid_secret"
_MAX_SHOWN_CHARS = 80
_INT_LIMIT = 2**63


def secret(default: Any = None) -> Any:
    """A dataclass field holding a secret (see the module doc for what the marker does)."""
    return dataclasses.field(default=default, metadata={_SECRET: True})


def is_secret(f: dataclasses.Field) -> bool:
    return bool(f.metadata.get(_SECRET))


def secret_paths(cls: type, where: str = "") -> frozenset[str]:
    """Dotted keys of every secret field in the tree of ``cls`` that a mapping path can reach."""
    out: set[str] = set()
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = _join(where, f.name)
        if is_secret(f):
            out.add(key)
            continue
        for tp in (hints[f.name], *get_args(hints[f.name])):
            if dataclasses.is_dataclass(tp):
                out |= secret_paths(tp, key)
    return frozenset(out)


def _show(value: Any) -> str:
    """A config value for an error message: one short line, URLs' credentials masked."""
    text = redact_text(repr(value))
    return text if len(text) <= _MAX_SHOWN_CHARS else text[:_MAX_SHOWN_CHARS] + "..."


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing, unreadable or non-mapping file is a ``ConfigError``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config file {p}: {e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: invalid YAML: {str(e).splitlines()[0]}") from None
    except (ValueError, RecursionError) as e:  # an integer past 4300 digits, nesting past the stack
        raise ConfigError(f"{p}: unreadable YAML value ({type(e).__name__})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: top level must be a mapping, got {type(data).__name__}")
    return data


def env_overrides(env: Mapping[str, str], prefix: str = ENV_PREFIX,
                  literal: Collection[str] = frozenset()) -> dict[str, Any]:
    """Turn ``XREID_A__B=v`` variables into a nested ``{"a": {"b": v}}`` mapping.

    Args:
        literal: dotted keys whose values stay the raw string (secrets); all others are YAML.
    """
    out: dict[str, Any] = {}
    for name, raw in env.items():
        if not name.startswith(prefix) or "__" not in name[len(prefix):]:
            continue
        path = [part.lower() for part in name[len(prefix):].split("__")]
        try:
            value = raw if raw == "" or ".".join(path) in literal else yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        except (ValueError, RecursionError) as e:  # an integer past 4300 digits, nesting past the stack
            raise ConfigError(f"environment variable {name}: unreadable value ({type(e).__name__})") from None
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment variable {name} conflicts with another override")
        node[path[-1]] = value
    return out


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` onto ``base`` (mappings merge, everything else replaces)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(cls: type[T], path: str | Path | None = None, env: Mapping[str, str] | None = None,
                overrides: Mapping[str, Any] | None = None, env_prefix: str = ENV_PREFIX) -> T:
    """Build ``cls`` from a YAML file, then environment overrides, then explicit overrides.

    Args:
        cls: the root config dataclass.
        path: YAML file; ``None`` means defaults only.
        env: environment mapping to read ``XREID_*`` overrides from (pass ``os.environ``).
        overrides: highest-priority values (e.g. from CLI flags), nested like the YAML.

    Raises:
        ConfigError: naming the file and the dotted key at fault.
    """
    source = str(path) if path is not None else "<defaults>"
    data: dict[str, Any] = load_yaml(path) if path is not None else {}
    if env:
        data = merge(data, env_overrides(env, env_prefix, literal=secret_paths(cls)))
        source += " + environment"
    if overrides:
        data = merge(data, overrides)
    return from_dict(cls, data, source)


def from_dict(cls: type[T], data: Any, source: str = "<dict>", where: str = "") -> T:
    """Build dataclass ``cls`` from plain data; errors name ``source`` and the dotted key."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: {where or 'top level'} must be a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(known))
    if unknown:
        key = _join(where, str(unknown[0]))
        raise ConfigError(f"{source}: unknown key '{key}' (valid: {', '.join(sorted(known))})")
    kwargs = {}
    for name in data:
        key = _join(where, name)
        if not is_secret(known[name]):
            kwargs[name] = _convert(hints[name], data[name], source, key)
            continue
        try:
            kwargs[name] = _convert(hints[name], data[name], source, key)
        except ConfigError:  # the message would echo the secret: say what is wrong without it
            raise ConfigError(f"{source}: '{key}' must be a string, got a value of type "
                              f"{type(data[name]).__name__} (not shown: secret)") from None
    try:
        return cls(**kwargs)
    except ConfigError as e:
        # a section's own checks cannot know where it sits (detector.heat, cameras[2].detector.heat)
        raise ConfigError(f"{source}: {e}" if not where or where in str(e) else f"{source}: {where}: {e}") from None
    except (TypeError, ValueError, OverflowError) as e:
        raise ConfigError(f"{source}: {where or cls.__name__}: {e}") from None


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _convert(tp: Any, value: Any, source: str, where: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value if value is not None else {}, source, where)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, source, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{source}: '{where}' has an invalid value {_show(value)}")
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(f"{source}: '{where}' must be one of {list(choices)}, got {_show(value)}")
        return value
    if origin in (list, tuple, typing.Sequence) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: '{where}' must be a list, got {type(value).__name__}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{source}: '{where}' must have {len(args)} items, got {len(value)}")
            return tuple(_convert(a, v, source, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
        item = args[0] if args else Any
        items = [_convert(item, v, source, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple or tp is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: '{where}' must be a mapping, got {type(value).__name__}")
        args = get_args(tp)
        vt = args[1] if args else Any
        return {str(k): _convert(vt, v, source, _join(where, str(k))) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: '{where}' must be true or false, got {_show(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: '{where}' must be an integer, got {_show(value)}")
        if not -_INT_LIMIT <= value < _INT_LIMIT:  # no count or size needs more; beyond, arithmetic overflows
            raise ConfigError(f"{source}: '{where}' is out of range, got {_show(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: '{where}' must be a number, got {_show(value)}")
        try:
            number = float(value)
        except OverflowError:  # an integer past 1e308
            raise ConfigError(f"{source}: '{where}' is out of range, got {_show(value)}") from None
        if not math.isfinite(number):  # inf would pass every `> 0` check, nan every range check
            raise ConfigError(f"{source}: '{where}' must be a finite number, got {_show(value)}")
        return number
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: '{where}' must be a string, got {_show(value)}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{source}: '{where}' must be {tp.__name__}, got {type(value).__name__}")
    return value


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain-data view of a config tree for logs, ``summary.json`` and checkpoints, secrets masked.

    A secret URL keeps its scheme, host and path (``redis://***@redis:6379/0``), another secret
    becomes ``***``, and credentials inside any other string (a camera's ``rtsp://user:pass@``)
    are masked too. Being a view for people, it cannot rebuild a config that holds secrets.
    """
    out = _redacted(cfg)
    assert isinstance(out, dict)
    return out


def _redacted(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _mask(getattr(value, f.name)) if is_secret(f) else _redacted(getattr(value, f.name))
                for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_redacted(v) for v in value)
    if isinstance(value, str):
        return redact_text(value)
    return value


def _mask(value: Any) -> Any:
    if value is None or value == "memory":
        return value
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return MASK
