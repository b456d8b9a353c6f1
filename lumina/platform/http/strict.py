"""JSON request bodies get the types the OpenAPI document promises, no coercion (ADR 0013).

DRF converts what it can: ``0`` becomes ``False``, ``12`` becomes ``"12"``, ``"5"``
becomes ``5``, ``1.5`` becomes ``Decimal("1.5")``. The document says a field is a boolean,
a string or an integer, so a client that sends another type has a bug that an API should
report, not hide. ``install()`` (called once from the platform's ``AppConfig.ready``) makes
the scalar fields refuse a JSON value of the wrong type with a 400 naming the field.

Query parameters are always text, so fields filled from a query string (a ``QueryDict``)
keep parsing text as before.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from rest_framework import serializers
from rest_framework.utils import html


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_integral(value: Any) -> bool:
    # JSON has one number type: 3.0 is the integer 3 to a JSON Schema validator.
    return _is_int(value) or (isinstance(value, float) and value.is_integer())


def _is_number(value: Any) -> bool:
    return _is_int(value) or isinstance(value, (float, Decimal))


# Field class -> (the JSON values it accepts, the message for anything else).
RULES: dict[type[serializers.Field], tuple[Callable[[Any], bool], str]] = {
    serializers.CharField: (lambda v: isinstance(v, str), "Must be a string."),
    serializers.BooleanField: (lambda v: isinstance(v, bool), "Must be true or false."),
    serializers.IntegerField: (_is_integral, "Must be an integer."),
    serializers.FloatField: (_is_number, "Must be a number."),
    serializers.UUIDField: (lambda v: isinstance(v, str), "Must be a UUID string."),
    # Money and prices travel as strings, so no binary float ever rounds them.
    serializers.DecimalField: (
        lambda v: isinstance(v, str),
        "Must be a decimal number as a string.",
    ),
}


def _from_json(field: serializers.Field) -> bool:
    """Whether the field is being filled from a parsed JSON body (not a query string)."""
    root = field.root
    initial = getattr(root, "initial_data", None) if root is not field else None
    return initial is not None and not html.is_html_input(initial)


def _strict(cls: type[serializers.Field], accepts: Callable[[Any], bool], message: str) -> None:
    lenient = cls.to_internal_value
    if getattr(lenient, "strict_json", False):
        return

    def to_internal_value(self: serializers.Field, data: Any) -> Any:
        if not accepts(data) and _from_json(self):
            raise serializers.ValidationError(message, code="invalid")
        return lenient(self, data)

    to_internal_value.strict_json = True  # type: ignore[attr-defined]
    cls.to_internal_value = to_internal_value  # type: ignore[method-assign]


def _no_blank_decimal() -> None:
    # DRF reads "" as null for a nullable DecimalField; JSON has null for that.
    lenient = serializers.DecimalField.validate_empty_values
    if getattr(lenient, "strict_json", False):
        return

    def validate_empty_values(self: serializers.DecimalField, data: Any) -> Any:
        if isinstance(data, str) and not data.strip() and _from_json(self):
            raise serializers.ValidationError(RULES[serializers.DecimalField][1], code="invalid")
        return lenient(self, data)

    validate_empty_values.strict_json = True  # type: ignore[attr-defined]
    serializers.DecimalField.validate_empty_values = validate_empty_values  # type: ignore[method-assign]


def install() -> None:
    for cls, (accepts, message) in RULES.items():
        _strict(cls, accepts, message)
    _no_blank_decimal()
    # A nullable boolean is null when absent or empty, never for the text "null": in a
    # query string that is a typo the document does not allow.
    serializers.BooleanField.NULL_VALUES = {"", None}
