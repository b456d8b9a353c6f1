"""The typed environment's machinery: variables declared as annotated class attributes.

``config.env`` declares every variable once, as pydantic-settings would have it (``Field``
constraints, ``field_validator`` and ``model_validator``), and this module reads them
from the process environment and ``.env``. It exists because pydantic costs a web process
about 10 MiB of its idle memory for some 60 scalar values read once at start-up (ADR
0030); it supports what ``config.env`` uses and nothing more:

- types ``str``, ``int``, ``float``, ``bool``, ``Path``, string enums, ``AnyUrl`` (a URL
  with a scheme, kept as the string given), ``list[str]`` (comma-separated), each
  optionally ``| None``, optionally inside ``Annotated[...]`` (metadata ignored);
- ``Field(default | default_factory, ge, gt, le, lt, min_length, max_length)``;
- ``field_validator(*names, mode="before" | "after")`` and
  ``model_validator(mode="after")``, raising ``ValueError`` for a bad value.

As with pydantic-settings: names are matched case-insensitively, the environment wins
over ``.env``, defaults are taken as declared (neither converted nor validated), and every
problem is collected before ``ValidationError`` is raised with all of them.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import functools
import os
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

_MISSING: Any = object()
_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})


class AnyUrl(str):
    """A URL with a scheme (``redis://…``, ``https://…``); the value is the string given."""


class NoDecode:
    """Marks a list read as comma-separated text (the only way lists are read here)."""


class ValidationError(ValueError):
    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors))
        self.problems = errors  # (variable name, message)


@dataclasses.dataclass(frozen=True)
class _FieldInfo:
    default: Any = _MISSING
    default_factory: Callable[[], Any] | None = None
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    min_length: int | None = None
    max_length: int | None = None

    def make_default(self) -> Any:
        return self.default_factory() if self.default_factory is not None else self.default


def Field(
    default: Any = _MISSING,
    *,
    default_factory: Callable[[], Any] | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
) -> Any:
    return _FieldInfo(default, default_factory, ge, gt, le, lt, min_length, max_length)


def field_validator(*names: str, mode: str = "after"):
    """``fn(cls, value) -> value`` for these fields: before conversion or after it."""
    if mode not in ("before", "after"):
        raise ValueError(f"unknown validator mode {mode!r}")

    def register(fn):
        if isinstance(fn, classmethod):
            fn.__func__.__env_fields__ = (names, mode, True)  # called as fn(cls, value)
        else:
            fn.__env_fields__ = (names, mode, False)  # a plain fn(value)
        return fn

    return register


def model_validator(*, mode: str = "after"):
    """``fn(self) -> self`` once every field is set."""
    if mode != "after":
        raise ValueError("only mode='after' model validators are supported")

    def register(fn):
        fn.__env_model__ = True
        return fn

    return register


class EnvSettings:
    """Subclass, annotate the variables, instantiate to read and validate them."""

    env_file: ClassVar[Path | None] = None

    def __init__(self) -> None:
        cls = type(self)
        raw = _read(cls.env_file)
        errors: list[tuple[str, str]] = []
        before, after, model = _validators(cls)
        for name, hint in _fields(cls).items():
            info = getattr(cls, name, _MISSING)
            info = info if isinstance(info, _FieldInfo) else _FieldInfo(default=info)
            if name not in raw:
                if info.default is _MISSING and info.default_factory is None:
                    errors.append((name.upper(), "Field required"))
                    continue
                setattr(self, name, copy.copy(info.make_default()))  # a list of one's own
                continue
            try:
                value: Any = raw[name]
                for fn in before.get(name, ()):
                    value = fn(value)
                value = _convert(value, hint)
                _check(value, info)
                for fn in after.get(name, ()):
                    value = fn(value)
            except ValueError as exc:
                errors.append((name.upper(), str(exc)))
                continue
            setattr(self, name, value)
        if not errors:
            for fn in model:
                try:
                    fn(self)
                except ValueError as exc:
                    errors.append(("", str(exc)))
        if errors:
            raise ValidationError(errors)


def _read(env_file: Path | None) -> dict[str, str]:
    values: dict[str, str] = {}
    if env_file is not None and env_file.is_file():
        from dotenv import dotenv_values

        values.update(
            (key.lower(), value)
            for key, value in dotenv_values(env_file, encoding="utf-8").items()
            if value is not None
        )
    values.update((key.lower(), value) for key, value in os.environ.items())
    return values


def _fields(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls, include_extras=True)
    return {
        name: hint
        for name, hint in hints.items()
        if not name.startswith("_") and typing.get_origin(hint) is not ClassVar
    }


def _validators(cls: type):
    before: dict[str, list] = {}
    after: dict[str, list] = {}
    model = []
    for klass in reversed(cls.__mro__):
        for attribute in vars(klass).values():
            fn = attribute.__func__ if isinstance(attribute, classmethod) else attribute
            declared = getattr(fn, "__env_fields__", None)
            if declared is not None:
                names, mode, takes_cls = declared
                call = functools.partial(fn, cls) if takes_cls else fn
                for name in names:
                    (before if mode == "before" else after).setdefault(name, []).append(call)
            if getattr(fn, "__env_model__", False):
                model.append(fn)
    return before, after, model


def _convert(value: Any, hint: Any) -> Any:
    if typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if value is None:
            return None
        options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        hint = options[0] if len(options) == 1 else hint
    if value is None:
        raise ValueError("Input should not be empty")
    if typing.get_origin(hint) is list:
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        return [str(item) for item in value]
    if not isinstance(value, str):
        return value  # a before-validator produced the final value
    if hint is bool:
        lowered = value.strip().lower()
        if lowered in _TRUE or lowered in _FALSE:
            return lowered in _TRUE
        raise ValueError("Input should be a valid boolean")
    if hint is int:
        try:
            return int(value.strip())
        except ValueError:
            raise ValueError("Input should be a valid integer") from None
    if hint is float:
        try:
            return float(value.strip())
        except ValueError:
            raise ValueError("Input should be a valid number") from None
    if hint is Path:
        return Path(value)
    if hint is AnyUrl:
        parts = urlsplit(value.strip())
        if not parts.scheme or not (parts.netloc or parts.path) or " " in value.strip():
            raise ValueError("Input should be a valid URL with a scheme (e.g. redis://host:6379/0)")
        return AnyUrl(value.strip())
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            allowed = ", ".join(repr(member.value) for member in hint)
            raise ValueError(f"Input should be one of {allowed}") from None
    if hint is str:
        return value
    raise TypeError(f"unsupported environment type {hint!r}")


def _check(value: Any, info: _FieldInfo) -> None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if info.ge is not None and not value >= info.ge:
            raise ValueError(f"Input should be greater than or equal to {info.ge}")
        if info.gt is not None and not value > info.gt:
            raise ValueError(f"Input should be greater than {info.gt}")
        if info.le is not None and not value <= info.le:
            raise ValueError(f"Input should be less than or equal to {info.le}")
        if info.lt is not None and not value < info.lt:
            raise ValueError(f"Input should be less than {info.lt}")
    if isinstance(value, str):
        if info.min_length is not None and len(value) < info.min_length:
            raise ValueError(f"String should have at least {info.min_length} characters")
        if info.max_length is not None and len(value) > info.max_length:
            raise ValueError(f"String should have at most {info.max_length} characters")
