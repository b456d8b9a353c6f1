"""``http`` tools against a loopback server: the allow-list and the outbound guard at run time,
output and time limits, upstream failures recorded without leaking the upstream's words."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lumina.tools.models import Execution, HttpAllowEntry
from lumina.tools.services.executions import execute
from lumina.tools.services.registry import tool_create
from tests.providers.upstreams.base import UpstreamServer
from tests.tools.conftest import SYSTEM, actor_of_user
from tests.tools.http_support import build_app

pytestmark = pytest.mark.django_db


@pytest.fixture
def site() -> Iterator[UpstreamServer]:
    with UpstreamServer(build_app) as server:
        yield server


@pytest.fixture
def allowed(site):
    HttpAllowEntry.objects.create(prefix=site.root + "/")
    return site


def _tool(site, path, *, method="POST", name="web", **limits):
    return tool_create(
        actor=SYSTEM,
        name=name,
        kind="http",
        http_url=site.root + path,
        http_method=method,
        input_schema={"type": "object", "properties": {"q": {"type": "string"}}},
        **limits,
    )


def _run(developer, name="web", **arguments):
    return execute(actor=actor_of_user(developer), tool=name, arguments=arguments)


def test_arguments_go_as_json_and_a_json_answer_is_the_result(allowed, developer):
    _tool(allowed, "/echo")
    done = _run(developer, q="weather")
    assert done.status == "succeeded"
    assert done.result == {"method": "POST", "query": {}, "json": {"q": "weather"}}
    assert done.resource_use["http_status"] == 200


def test_get_sends_the_arguments_as_query_parameters(allowed, developer):
    _tool(allowed, "/echo", method="GET")
    assert _run(developer, q="a b").result["query"] == {"q": "a b"}


def test_a_text_answer_is_the_result_as_text(allowed, developer):
    _tool(allowed, "/text")
    assert _run(developer).result == "plain words"


def test_an_answer_over_the_output_limit_is_cut_off_and_recorded(allowed, developer):
    _tool(allowed, "/large", output_bytes=65_536)
    done = _run(developer)
    assert (done.status, done.error_code, done.result) == ("limit_exceeded", "output_size", None)


def test_a_server_that_never_answers_times_out(allowed, developer):
    _tool(allowed, "/slow", timeout_seconds=0.5)
    done = _run(developer)
    assert (done.status, done.error_code) == ("timeout", "wall_clock")
    assert Execution.objects.get(id=done.id).status == "timeout"


def test_a_redirect_to_the_metadata_address_is_not_followed(allowed, developer):
    _tool(allowed, "/redirect")
    done = _run(developer)
    assert (done.status, done.error_code) == ("failed", "redirect")
    assert [r.path for r in allowed.requests] == ["/redirect"]


def test_an_upstream_error_is_recorded_and_its_words_stay_in_stderr_only(allowed, developer):
    _tool(allowed, "/fail")
    done = _run(developer)
    assert (done.status, done.error) == ("failed", "The tool's server answered HTTP 500.")
    assert "sk-abc123" not in done.error


def test_invalid_json_from_the_server_is_a_failure(allowed, developer):
    _tool(allowed, "/broken")
    assert _run(developer).error_code == "result"


def test_a_url_taken_off_the_allow_list_stops_the_tool(allowed, developer):
    _tool(allowed, "/echo")
    HttpAllowEntry.objects.all().delete()
    done = _run(developer, q="x")
    assert (done.status, done.error_code) == ("refused", "not_allowed")
    assert allowed.requests == []


def test_loopback_refused_by_the_operator_at_run_time_is_not_reached(allowed, developer, settings):
    _tool(allowed, "/echo")
    settings.LUMINA_OUTBOUND_ALLOW = ()
    done = _run(developer, q="x")
    assert (done.status, done.error_code) == ("refused", "outbound_refused")
    assert allowed.requests == []


def test_the_connection_guard_refuses_a_name_that_resolves_to_loopback(
    allowed, developer, settings, monkeypatch
):
    import socket

    _tool(allowed, "/echo")
    real = socket.getaddrinfo
    port = allowed.port

    def resolve(host, *args, **kwargs):
        return real("127.0.0.1" if host == "tools.example.com" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    HttpAllowEntry.objects.create(prefix=f"http://tools.example.com:{port}/")
    tool_create(
        actor=SYSTEM, name="sneaky", kind="http", http_url=f"http://tools.example.com:{port}/echo"
    )
    settings.LUMINA_OUTBOUND_ALLOW = ()
    done = _run(developer, name="sneaky")
    assert (done.status, done.error_code) == ("refused", "outbound_refused")
    assert allowed.requests == []
