"""Every 4xx/5xx, from DRF views and from plain routes, has one JSON shape."""

import pytest

pytestmark = pytest.mark.urls("tests.platform.probe_urls")

ECHO = "/api/v1/probe/echo"


def _error(response, status):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    return body["error"]


def test_malformed_json_is_a_400_parse_error(api_client):
    response = api_client.post(ECHO, data='{"name": ', content_type="application/json")
    error = _error(response, 400)
    assert error["code"] == "parse_error"
    assert "JSON parse error" in error["message"]


def test_json_nested_too_deeply_for_the_decoder_is_a_400_not_a_500(api_client):
    deep = '{"name": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = api_client.post(ECHO, data=deep, content_type="application/json")
    error = _error(response, 400)
    assert error["code"] == "parse_error"
    assert "nested too deeply" in error["message"]


def test_validation_errors_name_each_field_including_nested_ones(api_client):
    response = api_client.post(ECHO, {"name": "x" * 11, "limits": {"rpm": -1}}, format="json")
    error = _error(response, 400)
    assert error["code"] == "invalid"
    assert set(error["fields"]) == {"name", "limits.rpm"}
    assert "no more than 10 characters" in error["fields"]["name"][0]


def test_missing_fields_are_named(api_client):
    error = _error(api_client.post(ECHO, {}, format="json"), 400)
    assert error["fields"] == {
        "name": ["This field is required."],
        "limits": ["This field is required."],
    }


def test_unsupported_media_type_is_a_415(api_client):
    response = api_client.post(ECHO, data="name=x", content_type="text/plain")
    assert _error(response, 415)["code"] == "unsupported_media_type"


def test_application_errors_keep_their_status_code_and_fields(api_client):
    response = api_client.post(ECHO, {"name": "taken", "limits": {}}, format="json")
    error = _error(response, 409)
    assert error == {
        "code": "conflict",
        "message": "That name is taken.",
        "fields": {"name": ["Already used."]},
    }


def test_model_validation_errors_become_400_with_fields(api_client):
    response = api_client.post(ECHO, {"name": "model", "limits": {}}, format="json")
    error = _error(response, 400)
    assert error["fields"] == {"name": ["Rejected by the model."]}


def test_a_bug_is_a_500_in_the_same_shape_without_details(api_client):
    api_client.raise_request_exception = False
    response = api_client.post(ECHO, {"name": "boom", "limits": {}}, format="json")
    error = _error(response, 500)
    assert error["code"] == "server_error"
    assert "a bug" not in response.content.decode()


def test_wrong_method_on_a_drf_view_is_a_405(api_client):
    error = _error(api_client.get(ECHO), 405)
    assert error["code"] == "method_not_allowed"


def test_unknown_route_is_a_404_not_an_html_page(api_client):
    error = _error(api_client.get("/api/v1/does-not-exist"), 404)
    assert error["code"] == "not_found"
    assert "/api/v1/does-not-exist" in error["message"]


@pytest.mark.django_db
def test_unauthenticated_access_to_a_protected_endpoint_is_refused(api_client):
    response = api_client.get("/api/v1/events/outbox")
    error = _error(response, 401)
    assert error["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")
