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
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from models.errors import ConfigError

T = TypeVar("T")
ENV_PREFIX = "XREID_"


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
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: top level must be a mapping, got {type(data).__name__}")
    return data


def env_overrides(env: Mapping[str, str], prefix: str = ENV_PREFIX) -> dict[str, Any]:
    """Turn ``XREID_A__B=v`` variables into a nested ``{"a": {"b": v}}`` mapping."""
    out: dict[str, Any] = {}
    for name, raw in env.items():
        if not name.startswith(prefix) or "__" not in name[len(prefix):]:
            continue
        path = [part.lower() for part in name[len(prefix):].split("__")]
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
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
        data = merge(data, env_overrides(env, env_prefix))
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
    kwargs = {name: _convert(hints[name], data[name], source, _join(where, name)) for name in data}
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    except (TypeError, ValueError) as e:
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
        raise ConfigError(errors[0] if errors else f"{source}: '{where}' has an invalid value {value!r}")
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(f"{source}: '{where}' must be one of {list(choices)}, got {value!r}")
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
            raise ConfigError(f"{source}: '{where}' must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: '{where}' must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: '{where}' must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: '{where}' must be a string, got {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{source}: '{where}' must be {tp.__name__}, got {type(value).__name__}")
    return value


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain-data view of a config tree (for logs, ``summary.json`` and checkpoints)."""
    return dataclasses.asdict(cfg)
