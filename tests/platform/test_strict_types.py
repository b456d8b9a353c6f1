"""JSON bodies keep the types the document promises; query strings and pagination are checked."""

from __future__ import annotations

import pytest
from django.http import QueryDict
from rest_framework import serializers


class Body(serializers.Serializer):
    name = serializers.CharField(required=False)
    enabled = serializers.BooleanField(required=False)
    count = serializers.IntegerField(required=False)
    ratio = serializers.FloatField(required=False)
    price = serializers.DecimalField(
        max_digits=6, decimal_places=2, required=False, allow_null=True
    )
    owner = serializers.UUIDField(required=False)
    tags = serializers.ListField(child=serializers.CharField(), required=False)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", 12),
        ("name", True),
        ("enabled", 0),
        ("enabled", "true"),
        ("count", "5"),
        ("count", True),
        ("count", 1.5),
        ("ratio", "0.5"),
        ("price", 1.5),
        ("price", ""),
        ("owner", False),
        ("owner", 0),
        ("tags", [0]),
    ],
)
def test_a_json_value_of_another_type_is_refused_naming_the_field(field, value):
    body = Body(data={field: value})
    assert not body.is_valid()
    assert field in body.errors


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("name", "twelve", "twelve"),
        ("enabled", False, False),
        ("count", 5, 5),
        ("count", 3.0, 3),  # JSON's integer 3, written 3.0
        ("ratio", 1, 1.0),
        ("price", "1.50", pytest.approx(1.5)),
        ("price", None, None),
        ("tags", ["a"], ["a"]),
    ],
)
def test_a_json_value_of_the_documented_type_is_accepted(field, value, expected):
    body = Body(data={field: value})
    assert body.is_valid(), body.errors
    assert body.validated_data[field] == expected


def test_the_text_null_is_not_a_boolean_even_for_a_nullable_one():
    class Filter(serializers.Serializer):
        enabled = serializers.BooleanField(required=False, allow_null=True, default=None)

    assert Filter(data=QueryDict("")).is_valid()
    assert Filter(data=QueryDict("enabled=")).is_valid()
    refused = Filter(data=QueryDict("enabled=null"))
    assert not refused.is_valid()
    assert "enabled" in refused.errors


def test_query_strings_are_text_and_still_parse():
    query = QueryDict("enabled=true&count=5&ratio=0.5&price=1.25&name=12")
    body = Body(data=query)
    assert body.is_valid(), body.errors
    assert body.validated_data == {
        "enabled": True, "count": 5, "ratio": 0.5, "price": pytest.approx(1.25), "name": "12",
    }  # fmt: skip


@pytest.mark.django_db
def test_a_rest_endpoint_refuses_a_mistyped_body_with_the_error_shape(admin_client):
    response = admin_client.post(
        "/api/v1/rbac/roles",
        {"name": "Ops", "permissions": ["providers.read"], "requires_mfa": 1},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"requires_mfa": ["Must be true or false."]}


# --- Pagination ----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("page_size=null", "page_size"),
        ("page_size=0", "page_size"),
        ("page_size=501", "page_size"),
        ("page_size=true", "page_size"),
        ("page=0", "page"),
        ("page=last", "page"),
        ("page=-1", "page"),
    ],
)
def test_bad_page_parameters_are_a_400_naming_them(admin_client, query, field):
    response = admin_client.get(f"/api/v1/rbac/roles?{query}")
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == [field]


@pytest.mark.django_db
def test_page_parameters_page_and_an_empty_one_means_not_given(admin_client):
    first = admin_client.get("/api/v1/rbac/roles?page_size=2&page=").json()
    assert first["count"] == 4  # the four built-in roles
    assert len(first["results"]) == 2
    second = admin_client.get("/api/v1/rbac/roles?page_size=2&page=2").json()
    assert len(second["results"]) == 2
    assert {r["name"] for r in first["results"]}.isdisjoint(r["name"] for r in second["results"])
    past = admin_client.get("/api/v1/rbac/roles?page_size=2&page=3")
    assert past.status_code == 404
    assert past.json()["error"]["code"] == "not_found"
