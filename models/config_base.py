"""What every config tree is built from: frozen pydantic dataclasses whose errors are one ``ConfigError`` line.

pydantic does the types, the ranges (``Field(gt=..., le=...)``), unknown keys (``extra="forbid"``) and
the wrapping of secrets (``SecretStr``); a section writes by hand only the checks that span its fields
(``model_validator``). What pydantic reports is turned here into the project's error: one line naming
the source (a file, or the class built in code) and the dotted key, never a multi-line report.

A section's own check cannot know where it sits (``detector.heat``, ``cameras[2].detector.heat``), so
it names its fields bare (``max_aspect must be > min_aspect``) and the report qualifies every bare
field name of that section with the key path (``detector.heat.max_aspect must be > detector.heat.min_aspect``).

It lives in ``models`` because the model and training configs (``XReIDCfg``, ``TrainCfg``) use it too
and ``models`` imports nothing above it; ``pipeline.config`` builds the pipeline's tree on it.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import types
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal, TypeVar, Union, dataclass_transform, get_args, get_origin

import annotated_types as at
import pydantic
from pydantic import ConfigDict, SecretStr, TypeAdapter, ValidationError, model_validator
from pydantic.fields import FieldInfo

from models.errors import ConfigError

T = TypeVar("T")
Show = Callable[[Any], str]

# lax: "6" from the environment is 6; allow_inf_nan off: inf would pass every `> 0` check, nan every range
CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)
_MAX_SHOWN_CHARS = 80
_TYPE_PHRASES = {
    "int_type": "must be an integer", "int_parsing": "must be an integer", "int_from_float": "must be an integer",
    "float_type": "must be a number", "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false", "bool_parsing": "must be true or false",
    "string_type": "must be a string",
}
_CONTAINER_PHRASES = {
    "list_type": "must be a list", "tuple_type": "must be a list", "set_type": "must be a list",
    "iterable_type": "must be a list", "dict_type": "must be a mapping", "dataclass_type": "must be a mapping",
    "dataclass_exact_type": "must be a mapping", "model_type": "must be a mapping",
}
_UNKNOWN = {"extra_forbidden", "unexpected_keyword_argument", "unexpected_positional_argument"}
_MISSING = {"missing", "missing_argument", "missing_keyword_only_argument", "missing_positional_only_argument"}


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, pydantic.Field))
def config_dataclass(cls: type[T]) -> type[T]:
    """Make ``cls`` a frozen pydantic dataclass that forbids unknown keys.

    Building one in code with a bad value (``ClipCfg(seq_len=0)``, ``dataclasses.replace(cfg, ...)``)
    raises ``ConfigError`` naming the class and the field, like a file would.
    """
    dc = pydantic.dataclasses.dataclass(frozen=True, config=CONFIG)(cls)
    validated_init = dc.__init__

    @functools.wraps(validated_init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            validated_init(self, *args, **kwargs)
        except ValidationError as e:
            raise ConfigError(describe(e, dc, dc.__name__)) from None

    dc.__init__ = __init__  # type: ignore[method-assign]  # nested sections are validated without calling it
    return dc


@config_dataclass
class Section:
    """Base of every config section: a section left empty in YAML (``motion:``) means all its defaults."""

    @model_validator(mode="before")
    @classmethod
    def _null_is_defaults(cls, data: Any) -> Any:
        return {} if data is None else data


def validate(cls: type[T], data: Any, source: str, show: Show | None = None) -> T:
    """Build config dataclass ``cls`` from plain data (YAML, JSON, a checkpoint's dict).

    Args:
        source: what the data came from, first on the error line (a file name).
        show: how an offending value is printed (the pipeline masks credentials in URLs).

    Raises:
        ConfigError: one line, ``<source>: <key path> <what is wrong>``.
    """
    try:
        return TypeAdapter(cls).validate_python(data)
    except ValidationError as e:
        raise ConfigError(describe(e, cls, source, show)) from None


def describe(err: ValidationError, root: type, source: str, show: Show | None = None) -> str:
    """The first of pydantic's errors as one line; the count of the others, if any, after it."""
    errors = err.errors(include_url=False)
    line = f"{source}: {_describe_one(errors[0], root, show or _short_repr)}"
    if len(errors) > 1:
        line += f" (and {len(errors) - 1} more)"
    return " ".join(line.split())  # one line, whatever a value or a message held


def is_secret_type(tp: Any) -> bool:
    """Whether annotation ``tp`` holds a ``SecretStr`` (``SecretStr``, ``SecretStr | None``)."""
    return tp is SecretStr or any(is_secret_type(a) for a in get_args(tp))


def secret_paths(cls: type, where: str = "") -> frozenset[str]:
    """Dotted keys of every ``SecretStr`` field in the tree of ``cls`` that a mapping path can reach."""
    out: set[str] = set()
    for name, field in _fields(cls).items():
        key = f"{where}.{name}" if where else name
        tp, _ = _unwrap(field.annotation)
        if is_secret_type(field.annotation):
            out.add(key)
        elif _fields(tp):
            out |= secret_paths(tp, key)
    return frozenset(out)


def _describe_one(e: Any, root: type, show: Show) -> str:
    kind, loc, ctx = e["type"], tuple(e["loc"]), e.get("ctx") or {}
    where = _path(loc)
    section, tp, meta = _resolve(root, loc)
    secret = is_secret_type(tp)
    got = (f"got a value of type {type(e.get('input')).__name__} (not shown: secret)" if secret
           else f"got {show(e.get('input'))}")
    if kind in _UNKNOWN:
        valid = ", ".join(_fields(_resolve(root, loc[:-1])[1]))
        return f"unknown key {where}" + (f" (valid: {valid})" if valid else "")
    if kind in _MISSING:
        if loc and isinstance(loc[-1], int):  # a short fixed-size list, e.g. [w, h] given [w]
            return f"{_path(loc[:-1])} must have {len(get_args(_resolve(root, loc[:-1])[1]))} items"
        return f"{where} is required"
    if kind in ("value_error", "assertion_error"):
        text = str(ctx.get("error", e["msg"]))
        if section is not None:  # a check that spans the fields of a section
            return _qualified(text, _fields(section), where)
        return f"{where} {text}"
    where = where or "top level"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return f"{where} must be {_bounds(meta, ctx)}, {got}"
    if kind == "literal_error":
        choices = list(get_args(tp)) if get_origin(tp) is Literal else ctx.get("expected")
        return f"{where} must be one of {choices}, {got}"
    if kind in ("too_short", "too_long"):
        n = ctx.get("min_length") if kind == "too_short" else ctx.get("max_length")
        if get_origin(tp) is tuple and get_args(tp) and get_args(tp)[-1] is not Ellipsis:
            return f"{where} must have {len(get_args(tp))} items, got {ctx.get('actual_length')}"
        if kind == "too_short" and n == 1:
            return f"{where} must not be empty"
        return f"{where} must have {'at least' if kind == 'too_short' else 'at most'} {n} items"
    if kind == "string_too_short":
        return f"{where} must not be empty"
    if kind in _TYPE_PHRASES:
        return f"{where} {_TYPE_PHRASES[kind]}, {got}"
    if kind in _CONTAINER_PHRASES:
        return f"{where} {_CONTAINER_PHRASES[kind]}, got {type(e.get('input')).__name__}"
    return f"{where}: {e['msg']}"  # pydantic's own words: they never echo the value


def _qualified(text: str, fields: Sequence[str], where: str) -> str:
    """``text`` with each bare field name of the section at ``where`` written as its full key."""
    if not where:
        return text
    names = sorted(fields, key=len, reverse=True)
    pattern = re.compile(r"(?<![\w.\[])(" + "|".join(map(re.escape, names)) + r")\b") if names else None
    qualified = pattern.sub(lambda m: f"{where}.{m.group(1)}", text) if pattern else text
    return qualified if qualified != text else f"{where}: {text}"


def _path(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _resolve(root: type, loc: Sequence[str | int]) -> tuple[type | None, Any, list[Any]]:
    """What ``loc`` points at: (the section if it is one, its annotation, its constraint metadata)."""
    tp, meta = _unwrap(root)
    for part in loc:
        fields = _fields(tp)
        if fields and isinstance(part, str) and part in fields:
            tp, meta = _unwrap(fields[part].annotation, list(fields[part].metadata))
            continue
        args = get_args(tp)
        if get_origin(tp) is tuple and isinstance(part, int) and args:
            tp = args[0] if args[-1] is Ellipsis else args[min(part, len(args) - 1)]
        elif get_origin(tp) is list and args:
            tp = args[0]
        elif get_origin(tp) is dict and len(args) == 2:
            tp = args[1]
        else:
            return None, None, []
        tp, meta = _unwrap(tp)
    return (tp if _fields(tp) else None), tp, meta


def _unwrap(tp: Any, meta: list[Any] | None = None) -> tuple[Any, list[Any]]:
    """Strip ``X | None`` and ``Annotated[X, ...]`` off ``tp``, collecting the constraints on the way."""
    meta = list(meta or [])
    while True:
        origin, args = get_origin(tp), get_args(tp)
        if origin is Annotated:
            tp = args[0]
            for m in args[1:]:
                meta.extend(m.metadata if isinstance(m, FieldInfo) else [m])
        elif origin in (Union, types.UnionType) and type(None) in args and len(args) == 2:
            tp = next(a for a in args if a is not type(None))
        else:
            return tp, meta


def _fields(tp: Any) -> dict[str, FieldInfo]:
    return dict(getattr(tp, "__pydantic_fields__", None) or {}) if isinstance(tp, type) else {}


def _bounds(meta: list[Any], ctx: dict[str, Any]) -> str:
    """``[0, 1]``, ``(0, 1]``, ``> 0`` ...: every bound of the field, not only the one that failed."""
    lo = hi = None
    kinds = (("gt", at.Gt), ("ge", at.Ge), ("lt", at.Lt), ("le", at.Le))
    failed = [kind(ctx[key]) for key, kind in kinds if key in ctx]
    for m in [*meta, *failed]:  # the field's own bounds first; the failed one alone if they cannot be found
        if isinstance(m, (at.Gt, at.Ge)) and lo is None:
            lo = ("(", ">", m.gt) if isinstance(m, at.Gt) else ("[", ">=", m.ge)
        elif isinstance(m, (at.Lt, at.Le)) and hi is None:
            hi = (")", "<", m.lt) if isinstance(m, at.Lt) else ("]", "<=", m.le)
    if lo and hi:
        return f"in {lo[0]}{_num(lo[2])}, {_num(hi[2])}{hi[0]}"
    bound = lo or hi
    return f"{bound[1]} {_num(bound[2])}" if bound else "in range"


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN_CHARS else text[:_MAX_SHOWN_CHARS] + "..."


__all__ = ["CONFIG", "Section", "config_dataclass", "describe", "is_secret_type", "secret_paths", "validate"]
