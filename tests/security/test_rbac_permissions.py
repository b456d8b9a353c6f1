"""The permission catalogue and the pattern language shared by roles and token scopes."""

from __future__ import annotations

import pytest

from lumina.kernel import permissions


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("*", "security.audit.read", True),
        ("memory.*", "memory.read", True),
        ("memory.*", "memory", False),
        ("memory.*", "memoryx.read", False),
        ("security.*", "security.audit.read", True),
        ("*.read", "memory.read", True),
        ("*.read", "security.audit.read", False),
        ("security.*.read", "security.audit.read", True),
        ("providers.read", "providers.read", True),
        ("providers.read", "providers.reader", False),
        ("providers.re*", "providers.read", False),
        ("", "providers.read", False),
        ("memory.(read|write)", "memory.read", False),
    ],
)
def test_patterns_match_whole_segments(pattern, name, expected):
    assert permissions.matches(pattern, name) is expected


def test_declared_matching_expands_a_pattern_over_the_catalogue():
    assert permissions.declared_matching("memory.*") == [
        "memory.manage",
        "memory.read",
        "memory.write",
    ]
    assert permissions.declared_matching("nothing.*") == []


def test_declaring_twice_is_idempotent_but_a_different_meaning_is_refused():
    permissions.declare("memory.read", permissions.catalogue()["memory.read"])

    with pytest.raises(ValueError, match="already declared"):
        permissions.declare("memory.read", "something else")


@pytest.mark.parametrize("name", ["memory", "Memory.read", "memory.*", "memory..read", "a.b-c"])
def test_malformed_permission_names_cannot_be_declared(name):
    with pytest.raises(ValueError, match="dotted lower-case"):
        permissions.declare(name, "x")
