"""The console's Django side: who gets a page, the CSP on every answer, and the playground
stream's refusals (CSRF, bad input, roles) in the API's error shape."""

from __future__ import annotations

import json
import uuid

import pytest
from django.test import Client

from lumina.security.models.rbac import Role, RoleAssignment
from lumina.security.models.users import User
from tests.security.mfa_support import enrolled_user

PAGES = ["/console/", "/console/playground/", "/console/providers/", "/console/tokens/",
         "/console/tools/", "/console/memory/", "/console/documents/"]  # fmt: skip
STREAM = "/console/playground/stream"
TURN = {"model": "lumina/auto", "messages": [{"role": "user", "content": "Hello"}]}


def user(role: str | None = None, *, staff: bool = False) -> User:
    person = User.objects.create_user(f"{uuid.uuid4().hex[:10]}@console.example", None)
    person.is_staff = staff
    person.save()
    if role:
        RoleAssignment.objects.create(role=Role.objects.get(name=role), user=person)
    return person


def signed_in(person: User, *, csrf_checks: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf_checks)
    client.force_login(person)
    return client


def post_json(client: Client, body, **headers):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post(STREAM, data=data, content_type="application/json", **headers)


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body["error"]) == {"code", "message", "fields"}
    return body["error"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", PAGES)
def test_an_anonymous_visitor_is_sent_to_the_login_page_with_the_way_back(path):
    response = Client().get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/console/login/?next=")
    assert "Content-Security-Policy" in response


@pytest.mark.django_db
@pytest.mark.parametrize("path", PAGES)
def test_a_session_that_has_not_passed_its_second_factor_gets_no_page(path):
    person, _ = enrolled_user("half.signed@console.example")
    response = signed_in(person).get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/console/login/")
    # The login page resumes at the code for such a session.
    page = signed_in(person).get("/console/login/")
    assert b'id="code-form" class="card form"' in page.content
    assert b'id="password-form" class="card form" data-next="/console/" novalidate hidden' in (
        page.content
    )


@pytest.mark.django_db
@pytest.mark.parametrize("path", PAGES)
def test_each_page_has_a_strict_csp_and_no_inline_script_or_style(path):
    response = signed_in(user("Viewer")).get(path)
    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "style-src 'self'" in policy
    assert "'unsafe-inline'" not in policy
    assert "frame-ancestors 'none'" in policy
    html = response.content.decode()
    assert "<style" not in html
    assert " style=" not in html
    assert "<script>" not in html  # only <script type="module" src=…>
    assert response.cookies.get("csrftoken")  # the pages' scripts send it back


@pytest.mark.django_db
def test_the_login_page_never_sends_anyone_to_another_site():
    response = Client().get("/console/login/?next=https://evil.example/")
    assert b'data-next="/console/"' in response.content
    assert b"evil.example" not in response.content


@pytest.mark.django_db
def test_the_admin_links_to_the_console_and_the_console_back_to_the_admin():
    from django.contrib import admin

    assert admin.site.site_url == "/console/"
    link = b'<li><a href="/admin/">Admin</a></li>'
    assert link in signed_in(user(staff=True)).get("/console/tokens/").content
    assert link not in signed_in(user("Viewer")).get("/console/tokens/").content


@pytest.mark.django_db
def test_the_stream_refuses_a_request_without_the_csrf_token():
    response = post_json(signed_in(user("Developer"), csrf_checks=True), TURN)
    assert response.status_code == 403


@pytest.mark.django_db
def test_the_stream_refuses_an_anonymous_or_half_signed_caller():
    assert error_of(post_json(Client(), TURN), 401)["code"] == "not_authenticated"
    person, _ = enrolled_user("half.stream@console.example")
    assert error_of(post_json(signed_in(person), TURN), 401)["code"] == "not_authenticated"


@pytest.mark.django_db
def test_the_stream_answers_bad_input_with_the_fields_named():
    client = signed_in(user("Developer"))
    assert error_of(post_json(client, b"{not json"), 400)["message"]
    assert error_of(post_json(client, [1, 2]), 400)["message"]
    fields = error_of(post_json(client, {"messages": "hi"}), 400)["fields"]
    assert set(fields) == {"model", "messages"}
    bad_role = {**TURN, "messages": [{"role": "root", "content": "x"}]}
    assert "messages" in error_of(post_json(client, bad_role), 400)["fields"]
    empty = {**TURN, "messages": [{"role": "user", "content": "  "}]}
    assert error_of(post_json(client, empty), 400)["fields"]["messages"] == [
        "Write a message first."
    ]
    wrong = {**TURN, "strategy": "fastest-ever", "max_tokens": 0}
    assert set(error_of(post_json(client, wrong), 400)["fields"]) == {"strategy", "max_tokens"}


# Committed rows: the permission check reads the role from the stream's own thread.
@pytest.mark.django_db(transaction=True)
def test_an_unknown_model_is_a_404_in_the_error_shape():
    error = error_of(post_json(signed_in(user("Developer")), {**TURN, "model": "no-such"}), 404)
    assert "no-such" in error["message"]


@pytest.mark.django_db
@pytest.mark.parametrize(("role", "staff"), [(None, False), ("Viewer", False), (None, True)])
def test_callers_who_may_not_use_models_are_refused(role, staff):
    error = error_of(post_json(signed_in(user(role, staff=staff)), TURN), 403)
    assert error["code"] == "permission_denied"
