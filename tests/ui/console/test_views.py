"""The console's Django side: who gets a page, the CSP on every answer, and the playground
stream's refusals (CSRF, bad input, roles) in the API's error shape."""

from __future__ import annotations

import json
import re
import uuid
from urllib.parse import parse_qs, urlsplit

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
    assert re.search(rb'<form id="code-form"[^>]*novalidate>', page.content)  # shown
    assert re.search(rb'<form id="password-form"[^>]*novalidate hidden>', page.content)


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


# -- pages rendered with their data (they work without JavaScript) ---------------------------


@pytest.mark.django_db
def test_the_dashboard_renders_every_charts_data_and_each_budgets_spend():
    import datetime as dt
    from decimal import Decimal

    from lumina.providers.models.usage import DailyUsage
    from lumina.providers.services.budgets import budget_create
    from lumina.security.types import Actor

    person = user("Developer")
    today = dt.datetime.now(dt.UTC).date()
    monday = today - dt.timedelta(days=today.weekday())
    for day, cost in ((today, "1.25"), (monday - dt.timedelta(days=1), "5")):
        DailyUsage.objects.create(
            day=day, user_id=person.pk, operation="chat", requests=3, cost=Decimal(cost)
        )
    budget_create(
        actor=Actor.system("tests"), scope="user", subject_id=person.pk, name="weekly",
        period="week", limit_usd=Decimal("10"),
    )  # fmt: skip
    response = signed_in(person).get("/console/?days=7")
    assert response.status_code == 200
    data = response.context["charts_data"]
    assert {"cost_by_day", "tokens_by_model", "latency_percentiles"} <= set(data)
    (rows,) = data["cost_by_day"]["spec"]["datasets"].values()
    assert {row["day"]: row["cost"] for row in rows}[today.isoformat()] == pytest.approx(1.25)
    html = response.content.decode()
    assert 'id="dashboard-data" type="application/json"' in html
    # This week's spend only: last Sunday's $5 belongs to the week before.
    assert re.search(r"<th scope=\"row\">weekly</th>.*\$1\.2500 \(12%\)", html), html


@pytest.mark.django_db
def test_a_dashboard_period_that_is_not_offered_is_named_beside_its_input():
    response = signed_in(user("Developer")).get("/console/?days=5")
    assert response.status_code == 200
    assert response.context["days"] == 30
    assert b'aria-invalid="true"' in response.content
    assert b"Select a valid choice" in response.content


@pytest.fixture
def text_stats():
    from lumina.security.types import Actor
    from lumina.tools.services.registry import tool_create

    return tool_create(
        actor=Actor.system("tests"), name="text_stats", kind="builtin", builtin_name="text_stats"
    )


def _run_from_the_form(client: Client, text: str):
    """The run form posted as a browser without JavaScript does, CSRF token included."""
    page = client.get("/console/tools/?tool=text_stats")
    assert b'name="arguments.text"' in page.content
    return client.post(
        "/console/tools/?tool=text_stats",
        {"tool": "text_stats", "arguments.text": text,
         "csrfmiddlewaretoken": client.cookies["csrftoken"].value},
    )  # fmt: skip


def _executions() -> list:
    from lumina.tools.models import Execution

    return list(Execution.objects.order_by("created_at"))


@pytest.mark.django_db
def test_a_tool_run_answers_303_to_the_page_showing_its_execution(text_stats):
    client = signed_in(user("Developer"), csrf_checks=True)
    answer = _run_from_the_form(client, "a b")
    assert answer.status_code == 303
    assert answer.headers["Content-Security-Policy"].startswith("default-src 'self'")
    (run,) = _executions()
    location = urlsplit(answer["Location"])
    assert location.path == "/console/tools/"
    assert parse_qs(location.query) == {"tool": ["text_stats"], "execution": [str(run.id)]}

    shown = client.get(answer["Location"])
    assert shown.status_code == 200
    assert shown.context["execution"].id == run.id
    assert json.loads(shown.context["output"]) == {"characters": 3, "words": 2, "lines": 1}
    assert b'data-status="succeeded"' in shown.content
    assert b'value="a b"' in shown.content  # the form as it was run

    again = client.get(answer["Location"])  # the browser's reload
    assert again.context["execution"].id == run.id
    assert len(_executions()) == 1


@pytest.mark.django_db
def test_someone_elses_execution_in_the_address_shows_nothing_of_it(text_stats):
    owner, me = signed_in(user("Developer"), csrf_checks=True), signed_in(user("Developer"))
    where = _run_from_the_form(owner, "the owner's private words")["Location"]
    # It is there to be seen: its owner's page shows the run and what it was run with.
    assert "the owner&#x27;s private words" in owner.get(where).content.decode()

    shown = me.get(where)
    html = shown.content.decode()
    assert shown.status_code == 200
    assert "execution" not in shown.context
    assert "that you may see" in shown.context["run_message"]
    assert "private words" not in html
    assert 'data-status="' not in html
    assert re.search(r'<pre id="run-output" class="output" hidden>\s*</pre>', html)


@pytest.mark.django_db
@pytest.mark.parametrize("wanted", ["not-a-uuid", "", "1' OR '1'='1"])
def test_an_execution_id_that_is_not_a_uuid_is_named_not_a_500(text_stats, wanted):
    shown = signed_in(user("Developer")).get(
        "/console/tools/", {"tool": "text_stats", "execution": wanted}
    )
    assert shown.status_code == 200
    assert "execution" not in shown.context
    assert shown.context["run_message"] == "That is not an execution's id."
    assert b'name="arguments.text"' in shown.content  # the form is still there


@pytest.mark.django_db
def test_an_execution_of_another_tool_is_not_shown_under_this_one(text_stats):
    from lumina.security.types import Actor
    from lumina.tools.services.registry import tool_create

    tool_create(actor=Actor.system("tests"), name="other_stats", kind="builtin",
                builtin_name="text_stats")  # fmt: skip
    client = signed_in(user("Developer"), csrf_checks=True)
    run_id = parse_qs(urlsplit(_run_from_the_form(client, "x")["Location"]).query)["execution"]
    shown = client.get("/console/tools/", {"tool": "other_stats", "execution": run_id})
    assert "execution" not in shown.context
    assert "other_stats" in shown.context["run_message"]


@pytest.mark.django_db
def test_a_refused_tool_run_shows_the_apis_message_and_fields_beside_the_inputs(text_stats):
    client = signed_in(user("Developer"))
    answer = client.post("/console/tools/?tool=text_stats", {"tool": "text_stats"})
    assert answer.status_code == 200
    assert answer.context["run_message"]
    assert "execution" not in answer.context
    # The schema's verdict is about the arguments as a whole: it goes to their slot.
    assert answer.context["arguments_errors"] == ["'text' is a required property"]
    assert b"&#x27;text&#x27; is a required property</p>" in answer.content


def test_run_form_values_are_converted_as_the_schema_asks():
    from lumina.ui.console.forms import argument_fields, argument_values

    schema = {
        "type": "object",
        "required": ["n"],
        "properties": {
            "n": {"type": "integer", "minimum": 1},
            "ratio": {"type": "number"},
            "loud": {"type": "boolean", "default": True},
            "mode": {"enum": ["a", 2]},
            "extra": {"type": "object"},
            "name": {"type": "string", "maxLength": 5},
        },
    }
    fields = argument_fields(schema)
    assert [f.kind for f in fields] == ["integer", "number", "boolean", "enum", "json", "string"]
    assert fields[0].required
    assert fields[0].minimum == 1
    assert fields[2].default == "true"
    values, problems = argument_values(
        fields,
        {"arguments.n": "3", "arguments.ratio": "0.5", "arguments.mode": "2",
         "arguments.extra": '{"k": [1]}', "arguments.name": ""},
    )  # fmt: skip
    assert problems == {}
    assert values == {"n": 3, "ratio": 0.5, "loud": False, "mode": 2, "extra": {"k": [1]}}
    _, problems = argument_values(fields, {"arguments.n": "three", "arguments.extra": "{"})
    assert problems == {
        "arguments.n": ["Must be a whole number."],
        "arguments.extra": ["Not valid JSON."],
    }


@pytest.mark.django_db
def test_an_empty_memory_search_is_named_beside_the_query():
    response = signed_in(user("Developer")).get("/console/memory/?query=+")
    assert response.status_code == 200
    assert response.context["search_error"]["fields"] == {
        "query": ["Write something to search for."]
    }
    assert b'aria-invalid="true"' in response.content


def _pinned_block(person: User, label: str = "persona", text: str = "Answers briefly."):
    from lumina.memory.api import pinned_create
    from lumina.security.types import Actor

    return pinned_create(actor=Actor.for_user(person, mfa_verified=True), label=label, text=text)


def _current_blocks(person: User) -> list:
    from lumina.memory.api import pinned_list
    from lumina.security.types import Actor

    return pinned_list(actor=Actor.for_user(person, mfa_verified=True))


def _save_pinned(client: Client, block_id, path: str = "/console/memory/", **fields):
    client.get(path)
    return client.post(
        path,
        {
            "block": str(block_id),
            **fields,
            "csrfmiddlewaretoken": client.cookies["csrftoken"].value,
        },
    )


def _pinned_form(html: str, block_id) -> str:
    return re.search(rf'<form id="pinned-{block_id}".*?</form>', html, re.S)[0]


@pytest.mark.django_db
def test_a_saved_pinned_block_answers_303_and_the_page_then_says_saved():
    me = user("Developer")
    block = _pinned_block(me)
    client = signed_in(me, csrf_checks=True)
    answer = _save_pinned(client, block.id, label="persona", text="Answers in one sentence.")
    assert answer.status_code == 303
    assert answer.headers["Content-Security-Policy"].startswith("default-src 'self'")
    (saved,) = _current_blocks(me)  # a save is a new version, with its own id
    assert saved.text == "Answers in one sentence."
    assert answer["Location"] == f"/console/memory/?saved={saved.id}#pinned-{saved.id}"

    shown = client.get(answer["Location"].split("#")[0])
    assert shown.status_code == 200
    form = _pinned_form(shown.content.decode(), saved.id)
    assert 'role="status">Saved.</p>' in form
    assert ">Answers in one sentence.</textarea>" in form
    # Only after the save: the page read again without it says nothing of it.
    assert "Saved." not in client.get("/console/memory/").content.decode()


@pytest.mark.django_db
def test_a_pinned_block_saved_after_a_search_comes_back_to_that_search():
    me = user("Developer")
    block = _pinned_block(me)
    answer = _save_pinned(
        signed_in(me, csrf_checks=True), block.id, "/console/memory/?query=where+I+live",
        label="persona", text="Brief.",
    )  # fmt: skip
    (saved,) = _current_blocks(me)
    location = urlsplit(answer["Location"])
    assert parse_qs(location.query) == {"query": ["where I live"], "saved": [str(saved.id)]}
    assert location.fragment == f"pinned-{saved.id}"
    # An empty search is not one to come back to (it would only show its refusal).
    again = _save_pinned(
        signed_in(me, csrf_checks=True), saved.id, "/console/memory/?query=+",
        label="persona", text="Briefer.",
    )  # fmt: skip
    assert urlsplit(again["Location"]).query.startswith("saved=")


@pytest.mark.django_db
def test_a_refused_pinned_save_is_shown_in_place_with_what_was_typed():
    me = user("Developer")
    block = _pinned_block(me, text="Answers briefly.")
    client = signed_in(me, csrf_checks=True)
    answer = _save_pinned(client, block.id, label="kept label", text="   ")
    assert answer.status_code == 200
    form = _pinned_form(answer.content.decode(), block.id)
    assert 'data-error-for="text">The text must not be empty.</p>' in form
    assert 'aria-invalid="true"' in form
    assert 'value="kept label"' in form
    assert "Saved." not in form
    assert [b.text for b in _current_blocks(me)] == ["Answers briefly."]


@pytest.mark.django_db
def test_the_providers_page_renders_each_models_routing_state_and_prices():
    from lumina.providers.selectors.registry import catalogue_invalidate
    from tests.providers.factories import DeploymentFactory, ProviderFactory

    provider = ProviderFactory(name="page-openai", kind="openai", base_url="http://127.0.0.1:9/v1")
    DeploymentFactory(provider=provider, name="page-chat", upstream_model="gpt-4o-mini")
    DeploymentFactory(provider=provider, name="page-off", upstream_model="gpt-4o", enabled=False)
    catalogue_invalidate()
    response = signed_in(user("Developer")).get("/console/providers/")
    assert response.status_code == 200
    (item,) = [p for p in response.context["providers"] if p["provider"].name == "page-openai"]
    rows = {row["name"]: row for row in item["models"]}
    assert rows["page-chat"]["routing"].startswith("available (rank ")
    assert rows["page-chat"]["prices"] == "$0.15 in / $0.6 out per 1M"
    assert rows["page-off"]["routing"] == "disabled"
    assert b"page-chat" in response.content


# --- tokens: the page's own forms (they work without JavaScript) ---------------------------


def _own_token(person: User, name: str):
    from lumina.security.services.tokens import token_create
    from lumina.security.types import Actor

    return token_create(user_id=person.pk, actor=Actor.system("tests"), name=name)


@pytest.mark.django_db
def test_the_tokens_page_lists_my_tokens_and_nobody_elses():
    me, other = user("Developer"), user("Admin", staff=True)
    mine, theirs = _own_token(me, "mine-laptop"), _own_token(other, "their-server")
    html = signed_in(me).get("/console/tokens/").content.decode()
    assert "mine-laptop" in html
    assert mine.token.prefix in html
    assert "their-server" not in html
    assert theirs.token.prefix not in html
    assert mine.secret not in html  # a listed token never shows its secret


@pytest.mark.django_db
def test_minting_shows_the_secret_once_and_stores_only_its_hash():
    from lumina.security.models.tokens import ApiToken

    me = user("Developer")
    client = signed_in(me, csrf_checks=True)
    client.get("/console/tokens/")
    csrf = client.cookies["csrftoken"].value
    response = client.post(
        "/console/tokens/",
        {"action": "mint", "name": "ci", "scopes": "providers.use", "csrfmiddlewaretoken": csrf},
    )
    assert response.status_code == 200
    secret = re.search(r'id="minted-secret"[^>]*>(lum_[^<]+)<', response.content.decode())[1]
    token = ApiToken.objects.get(user=me, name="ci")
    assert token.scopes == ["providers.use"]
    assert secret.startswith(token.prefix)
    assert secret not in client.get("/console/tokens/").content.decode()


@pytest.mark.django_db
def test_a_bad_mint_shows_the_apis_message_beside_the_field_and_keeps_what_was_typed():
    from lumina.security.models.tokens import ApiToken

    me = user("Developer")
    response = signed_in(me).post(
        "/console/tokens/", {"action": "mint", "name": "x", "scopes": "memory.read, not a scope!"}
    )
    html = response.content.decode()
    assert response.status_code == 200
    scopes_error = re.search(r'id="scopes-error"[^>]*>([^<]*)<', html)[1]
    assert scopes_error.strip()
    assert 'value="memory.read, not a scope!"' in html
    assert not ApiToken.objects.filter(user=me).exists()


@pytest.mark.django_db
def test_a_token_may_not_outlive_a_past_date_from_the_form():
    me = user("Developer")
    response = signed_in(me).post(
        "/console/tokens/", {"action": "mint", "name": "old", "expires_at": "2001-01-01T00:00"}
    )
    assert re.search(r'id="expires_at-error"[^>]*>([^<]+)<', response.content.decode())


@pytest.mark.django_db
def test_revoking_from_the_page_revokes_my_token():
    from lumina.security.models.tokens import ApiToken

    me = user("Developer")
    issued = _own_token(me, "to-revoke")
    response = signed_in(me).post(
        "/console/tokens/", {"action": "revoke", "token": str(issued.token.id)}
    )
    assert response.status_code == 200
    assert ApiToken.objects.get(pk=issued.token.id).revoked_at is not None


@pytest.mark.django_db
@pytest.mark.parametrize("role", [None, "Viewer", "Developer", "Admin"])
def test_nobody_revokes_someone_elses_token_from_the_page(role):
    from lumina.security.models.tokens import ApiToken

    victim = user("Owner")
    issued = _own_token(victim, "victims")
    attacker = user(role, staff=role == "Admin")
    response = signed_in(attacker).post(
        "/console/tokens/", {"action": "revoke", "token": str(issued.token.id)}
    )
    assert response.status_code == 200
    assert "No API token" in response.content.decode()
    assert ApiToken.objects.get(pk=issued.token.id).revoked_at is None


@pytest.mark.django_db
def test_the_tokens_forms_need_their_csrf_token():
    from lumina.security.models.tokens import ApiToken

    me = user("Developer")
    response = signed_in(me, csrf_checks=True).post(
        "/console/tokens/", {"action": "mint", "name": "forged"}
    )
    assert response.status_code == 403
    assert not ApiToken.objects.filter(user=me).exists()


# --- signing in with the page's own forms (JavaScript off) --------------------------------

LOGIN = "/console/login/"


def _form_client() -> Client:
    client = Client(enforce_csrf_checks=True)
    client.get(LOGIN)
    return client


def _post(client: Client, path: str = LOGIN, **data):
    return client.post(path, {**data, "csrfmiddlewaretoken": client.cookies["csrftoken"].value})


def _field_error(html: str, field: str) -> str:
    return re.search(rf'id="{field}-error"[^>]*>([^<]*)<', html)[1]


@pytest.mark.django_db
def test_a_password_sign_in_from_the_form_lands_on_the_page_asked_for():
    from tests.security.mfa_support import PASSWORD, make_user

    make_user("form.only@console.example")
    client = _form_client()
    response = _post(
        client,
        f"{LOGIN}?next=/console/tokens/",
        step="password", email="form.only@console.example", password=PASSWORD,
        next="/console/tokens/",
    )  # fmt: skip
    assert response.status_code == 302
    assert response["Location"] == "/console/tokens/"
    assert client.get("/console/tokens/").status_code == 200


@pytest.mark.django_db
def test_a_wrong_password_is_refused_with_the_apis_words_and_no_session():
    from tests.security.mfa_support import make_user

    make_user("wrong.pw@console.example")
    client = _form_client()
    response = _post(client, step="password", email="wrong.pw@console.example", password="nope")
    html = response.content.decode()
    assert response.status_code == 401
    assert 'value="wrong.pw@console.example"' in html
    assert re.search(r'data-error-for="__all__">([^<]+)<', html)
    assert client.get("/console/tokens/").status_code == 302  # still signed out


@pytest.mark.django_db
def test_missing_fields_are_named_beside_their_inputs():
    response = _post(_form_client(), step="password", email="", password="")
    html = response.content.decode()
    assert response.status_code == 400
    assert _field_error(html, "email").strip()
    assert _field_error(html, "password").strip()


@pytest.mark.django_db
def test_an_account_with_mfa_gives_its_code_on_the_second_form():
    from tests.security.mfa_support import PASSWORD, code_for

    person, device = enrolled_user("form.mfa@console.example")
    client = _form_client()
    response = _post(client, step="password", email=person.email, password=PASSWORD)
    html = response.content.decode()
    assert response.status_code == 200
    assert re.search(r'<form id="code-form"[^>]*novalidate>', html)  # shown, not hidden
    assert client.get("/console/tokens/").status_code == 302  # not yet

    response = _post(client, step="code", code=code_for(device))
    assert response.status_code == 302
    assert client.get("/console/tokens/").status_code == 200


@pytest.mark.django_db
def test_a_wrong_code_is_named_beside_the_code_input():
    from tests.security.mfa_support import PASSWORD

    person, _ = enrolled_user("form.badcode@console.example")
    client = _form_client()
    _post(client, step="password", email=person.email, password=PASSWORD)
    refused = _post(client, step="code", code="000000")
    assert refused.status_code == 400  # as /auth/mfa/verify answers it
    assert _field_error(refused.content.decode(), "code").strip()
    assert client.get("/console/tokens/").status_code == 302


@pytest.mark.django_db
def test_a_code_without_the_password_first_is_refused():
    response = _post(_form_client(), step="code", code="123456")
    assert response.status_code == 400


@pytest.mark.django_db
def test_the_form_shares_the_per_address_limit_of_the_rest_login(settings):
    from tests.security.mfa_support import make_user

    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"login": "2/min"},
    }
    make_user("limited@console.example")
    client = _form_client()
    api = Client()
    # One attempt through the REST API, one through the form: the third, anywhere, waits.
    api.post("/api/v1/auth/login", {"email": "limited@console.example", "password": "x"},
             content_type="application/json")  # fmt: skip
    assert (
        _post(client, step="password", email="limited@console.example", password="x").status_code
        == 401
    )
    response = _post(client, step="password", email="limited@console.example", password="x")
    assert response.status_code == 429
    assert "Too many attempts" in response.content.decode()


@pytest.mark.django_db
def test_next_pointing_elsewhere_is_ignored():
    from tests.security.mfa_support import PASSWORD, make_user

    make_user("next.evil@console.example")
    response = _post(
        _form_client(), f"{LOGIN}?next=https://evil.example/",
        step="password", email="next.evil@console.example", password=PASSWORD,
        next="https://evil.example/",
    )  # fmt: skip
    assert response.status_code == 302
    assert response["Location"] == "/console/"


@pytest.mark.django_db
def test_the_sign_in_form_needs_its_csrf_token():
    from tests.security.mfa_support import PASSWORD, make_user

    make_user("no.csrf@console.example")
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        LOGIN, {"step": "password", "email": "no.csrf@console.example", "password": PASSWORD}
    )
    assert response.status_code == 403
