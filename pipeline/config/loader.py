"""Load YAML and ``XREID_*`` environment variables into a frozen config tree, strictly.

Every entry point has one tree of config dataclasses (``models.config_base``). ``load_config`` reads
a YAML file, lays the ``XREID_*`` environment over it, then explicit overrides (CLI flags), and lets
pydantic build the tree; an unknown key, a wrong type or a value a section rejects becomes one
``ConfigError`` line naming the file and the key. Library code never reads files or the
environment itself: workers call this at the edge and pass the sections down.

Environment variables use ``__`` for nesting (pydantic-settings finds and nests them) and YAML for
the value, as if the same text stood in the file::

    XREID_MATCHER__TOP_K=10  ->  matcher.top_k = 10
    XREID_DETECTOR__PERSON_CLASSES='[person, rider]'  ->  detector.person_classes = ("person", "rider")

Only names with a ``__`` are config keys: process settings that share the prefix
(``XREID_REDIS_URL``, ``XREID_LOG_LEVEL``, ``XREID_CACHE``, ``XREID_METRICS_HOST``) are not.

Secrets (tokens, passwords, URLs that may carry credentials) are ``SecretStr`` fields. Their
environment values are taken as literal strings (``XREID_API__TOKEN=null`` is the string ``null``,
never "no token"), errors about them never echo the value, ``to_dict`` masks them, and their
readers call ``get_secret_value()`` only where the secret is used.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, SecretStr, create_model
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsError

from models.config_base import secret_paths, validate
from models.errors import ConfigError
from pipeline.config.redact import MASK, redact_text, redact_url

T = TypeVar("T")
ENV_PREFIX = "XREID_"
ENV_NESTING = "__"
_MAX_SHOWN_CHARS = 80
_INT_LIMIT = 2**63  # no count or size needs more; beyond, float arithmetic in the checks overflows

__all__ = ["ENV_PREFIX", "EnvSource", "from_dict", "load_config", "load_yaml", "merge", "secret_paths", "to_dict"]


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


class EnvSource(EnvSettingsSource):
    """The ``XREID_SECTION__KEY=value`` variables of ``env`` as nested data for config tree ``root``.

    pydantic-settings matches the names to the tree and nests them; each value is read as YAML
    first (a secret's stays the literal string), and a variable whose first part names no section
    is refused.
    """

    def __init__(self, root: type, env: Mapping[str, str], prefix: str = ENV_PREFIX) -> None:
        super().__init__(_settings_twin(root), case_sensitive=False, env_prefix=prefix,
                         env_nested_delimiter=ENV_NESTING)
        paths = {name: name[len(prefix):].lower().split(ENV_NESTING) for name in env
                 if name.startswith(prefix) and ENV_NESTING in name[len(prefix):]}
        sections, secrets = root.__pydantic_fields__, secret_paths(root)  # type: ignore[attr-defined]
        self.env_vars = {}  # name -> value, YAML already read: pydantic-settings only nests them
        for name, path in paths.items():
            if path[0] not in sections:
                raise ConfigError(f"environment variable {name}: unknown key {path[0]} "
                                  f"(valid: {', '.join(sections)})")
            inner = next((other for other, p in paths.items() if len(p) > len(path) and p[:len(path)] == path), None)
            if inner:  # XREID_A__B=1 and XREID_A__B__C=2: B cannot be both
                raise ConfigError(f"environment variable {name} conflicts with {inner}")
            raw = env[name]
            self.env_vars[name.lower()] = raw if ".".join(path) in secrets else _yaml_value(name, raw)

    def decode_complex_value(self, field_name: str, field: FieldInfo | None, value: Any) -> Any:
        return value  # read as YAML already (JSON, pydantic-settings' own reading, is a subset)


def _yaml_value(name: str, raw: str) -> Any:
    if not raw:
        return raw
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw  # not YAML: validation judges the raw string
    except (ValueError, RecursionError) as e:  # an integer past 4300 digits, nesting past the stack
        raise ConfigError(f"environment variable {name}: unreadable value ({type(e).__name__})") from None


@functools.cache
def _settings_twin(root: type) -> type[BaseSettings]:
    """A ``BaseSettings`` with ``root``'s top-level fields: what pydantic-settings walks to match names."""
    top = root.__pydantic_fields__  # type: ignore[attr-defined]
    fields: dict[str, Any] = {name: (f.annotation, None) for name, f in top.items()}
    return create_model(f"{root.__name__}Env", __base__=BaseSettings, **fields)


def env_overrides(root: type, env: Mapping[str, str], prefix: str = ENV_PREFIX) -> dict[str, Any]:
    """Nested data from the ``XREID_*__*`` variables of ``env`` (see ``EnvSource``)."""
    try:
        return EnvSource(root, env, prefix)()
    except SettingsError as e:
        raise ConfigError(f"environment: {e}") from None


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
        data = merge(data, env_overrides(cls, env, env_prefix))
        source += " + environment"
    if overrides:
        data = merge(data, overrides)
    return from_dict(cls, data, source)


def from_dict(cls: type[T], data: Any, source: str = "<dict>") -> T:
    """Build config dataclass ``cls`` from plain data; errors name ``source`` and the dotted key."""
    _refuse_huge_ints(data, source)
    try:
        return validate(cls, data, source, show=_show)
    except ConfigError as e:   # a check's own message may quote the value it refused: no credentials in it
        raise ConfigError(redact_text(str(e))) from None


def _refuse_huge_ints(data: Any, source: str) -> None:
    """An integer no setting needs, anywhere in ``data``, is an error before any check does arithmetic on it."""
    stack, seen = [("", data)], set()
    while stack:  # no recursion: a YAML alias can make data cyclic, nesting can pass the stack
        where, value = stack.pop()
        if isinstance(value, int) and not isinstance(value, bool) and not -_INT_LIMIT <= value < _INT_LIMIT:
            raise ConfigError(f"{source}: {where or 'top level'} is out of range, got {_show(value)}")
        if isinstance(value, (Mapping, list, tuple)) and id(value) not in seen:
            seen.add(id(value))
            items = value.items() if isinstance(value, Mapping) else enumerate(value)
            in_list = isinstance(value, (list, tuple))
            stack.extend((f"{where}[{k}]" if in_list else f"{where}.{k}" if where else str(k), v) for k, v in items)


def _show(value: Any) -> str:
    """A config value for an error message: one short line, URLs' credentials masked."""
    text = redact_text(repr(value))
    return text if len(text) <= _MAX_SHOWN_CHARS else text[:_MAX_SHOWN_CHARS] + "..."


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
    if isinstance(value, SecretStr):
        return _mask(value.get_secret_value())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _redacted(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, BaseModel):  # a section written as a pydantic model (pipeline/events/config.py)
        return {name: _redacted(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, Mapping):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_redacted(v) for v in value)
    if isinstance(value, str):
        return redact_text(value)
    return value


def _mask(secret: str) -> str:
    if secret == "memory":
        return secret
    return redact_url(secret) if "://" in secret else MASK
