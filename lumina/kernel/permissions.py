"""The permission catalogue: each context declares the actions it checks, and patterns over them.

A permission name is dotted lower-case segments (``providers.add``,
``security.audit.read``). A pattern is a name in which whole segments may be
``*``: a ``*`` in the middle stands for exactly one segment, a trailing ``*`` for
one or more (``*.read`` matches ``memory.read`` but not ``security.audit.read``;
``security.*`` matches both ``security.roles.manage`` and ``security.audit.read``;
``*`` alone matches everything). Roles and API token scopes are lists of patterns.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

_SEGMENT = r"[a-z][a-z0-9_]*"
NAME = re.compile(rf"^{_SEGMENT}(?:\.{_SEGMENT})+$")
PATTERN = re.compile(rf"^(?:\*|{_SEGMENT})(?:\.(?:\*|{_SEGMENT}))*$")

_catalogue: dict[str, str] = {}


def declare(name: str, description: str) -> None:
    """Add ``name`` to the catalogue (call from the declaring context's ``AppConfig.ready``)."""
    if not NAME.match(name):
        raise ValueError(f"permission name {name!r} must be dotted lower-case segments")
    existing = _catalogue.get(name)
    if existing is not None and existing != description:
        raise ValueError(f"permission {name!r} is already declared as {existing!r}")
    _catalogue[name] = description


def catalogue() -> dict[str, str]:
    """Every declared permission and its description, sorted by name."""
    return dict(sorted(_catalogue.items()))


def is_pattern(pattern: str) -> bool:
    return bool(PATTERN.match(pattern))


@lru_cache(maxsize=4096)
def matcher(pattern: str) -> Callable[[str], bool]:
    """A predicate telling whether a permission name matches ``pattern``.

    A malformed pattern matches nothing, so a bad scope or role entry never widens access.
    """
    if not PATTERN.match(pattern):
        return lambda name: False
    if pattern == "*":
        return lambda name: True
    segments = pattern.split(".")
    parts = [
        (r".+" if index == len(segments) - 1 else r"[^.]+") if segment == "*" else segment
        for index, segment in enumerate(segments)
    ]
    compiled = re.compile(r"\.".join(parts))
    return lambda name: compiled.fullmatch(name) is not None


def matches(pattern: str, name: str) -> bool:
    return matcher(pattern)(name)


def declared_matching(pattern: str) -> list[str]:
    """The declared permissions ``pattern`` covers, sorted."""
    match = matcher(pattern)
    return [name for name in sorted(_catalogue) if match(name)]
