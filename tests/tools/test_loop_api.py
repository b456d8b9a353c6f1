"""The function-calling loop against loopback upstreams speaking OpenAI's and Anthropic's
exact tool-call formats: calls run, results go back in each format, parallel calls,
the iteration limit, refusals fed back to the model, and POST /tools/run whole and as SSE."""

from __future__ import annotations

import json

import orjson
import pytest
import requests

from lumina.kernel.errors import PermissionDeniedError
from lumina.providers.types import Capability, ProviderKind
from lumina.tools.models import Execution
from lumina.tools.services.loop import run_with_tools
from tests.providers.factories import DeploymentFactory, ProviderFactory
from tests.providers.gateway_support import lumina_token
from tests.tools.conftest import actor_of_user
from tests.tools.factories import builtin_tool, python_tool

pytestmark = pytest.mark.django_db(transaction=True)

CAPABILITIES = [Capability.CHAT, Capability.STREAMING, Capability.TOOLS]
QUESTION = [{"role": "user", "content": "What is 2 + 40, and how many words in 'a b c'?"}]


@pytest.fixture
def openai_model(openai_upstream):
    DeploymentFactory(
        provider=ProviderFactory(name="oai", base_url=openai_upstream.url),
        name="gpt",
        capabilities=CAPABILITIES,
    )
    return openai_upstream


@pytest.fixture
def anthropic_model(anthropic_upstream):
    DeploymentFactory(
        provider=ProviderFactory(
            name="claude", kind=ProviderKind.ANTHROPIC.value, base_url=anthropic_upstream.url
        ),
        name="sonnet",
        upstream_model="claude-sonnet-4-5",
        capabilities=CAPABILITIES,
    )
    return anthropic_upstream


@pytest.fixture
def tools():
    python_tool("adder")
    builtin_tool("text_stats", name="stats")


def _chat_requests(upstream):
    return [
        r.body for r in upstream.requests if r.path.endswith(("/chat/completions", "/messages"))
    ]


def test_openai_parallel_calls_run_and_their_results_go_back_as_tool_messages(
    openai_model, tools, developer
):
    openai_model.script.tool_turns = [[("adder", {"a": 2, "b": 40}), ("stats", {"text": "a b c"})]]
    openai_model.script.answer = "42, and three words."
    result = run_with_tools(QUESTION, ["adder", "stats"], "gpt", actor=actor_of_user(developer))
    assert (result.answer, result.stopped, result.iterations) == (
        "42, and three words.",
        "answer",
        2,
    )
    [first, second] = _chat_requests(openai_model)
    assert [tool["function"]["name"] for tool in first["tools"]] == ["adder", "stats"]
    assert first["tools"][0]["function"]["parameters"]["required"] == ["a", "b"]
    # The second request carries the assistant's calls and one tool message per call.
    assistant, *tool_messages = second["messages"][1:]
    assert [call["function"]["name"] for call in assistant["tool_calls"]] == ["adder", "stats"]
    assert [m["role"] for m in tool_messages] == ["tool", "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == [c["id"] for c in assistant["tool_calls"]]
    assert json.loads(tool_messages[0]["content"]) == {"sum": 42}
    assert json.loads(tool_messages[1]["content"]) == {"characters": 5, "words": 3, "lines": 1}
    # Each call is an execution naming the model's call id and the run.
    rows = Execution.objects.filter(run_id=result.run_id).order_by("tool_name")
    assert [(r.tool_name, r.status) for r in rows] == [
        ("adder", "succeeded"),
        ("stats", "succeeded"),
    ]
    assert {r.model_call_id for r in rows} == {c["id"] for c in assistant["tool_calls"]}
    assert [t.name for t in result.steps[0].tool_calls] == ["adder", "stats"]


def test_anthropic_tool_use_blocks_are_answered_with_tool_result_blocks(
    anthropic_model, tools, developer
):
    anthropic_model.script.tool_turns = [[("adder", {"a": 1, "b": 2}), ("stats", {"text": "x"})]]
    anthropic_model.script.answer = "Three."
    result = run_with_tools(QUESTION, ["adder", "stats"], "sonnet", actor=actor_of_user(developer))
    assert result.answer == "Three."
    [first, second] = _chat_requests(anthropic_model)
    assert [tool["name"] for tool in first["tools"]] == ["adder", "stats"]
    assert first["tools"][0]["input_schema"]["required"] == ["a", "b"]
    assistant, results = second["messages"][1], second["messages"][2]
    uses = [block for block in assistant["content"] if block["type"] == "tool_use"]
    assert [(u["name"], u["input"]) for u in uses] == [
        ("adder", {"a": 1, "b": 2}),
        ("stats", {"text": "x"}),
    ]
    assert results["role"] == "user"
    assert [b["type"] for b in results["content"]] == ["tool_result", "tool_result"]
    assert [b["tool_use_id"] for b in results["content"]] == [u["id"] for u in uses]
    first_result = results["content"][0]["content"]
    text = first_result if isinstance(first_result, str) else first_result[0]["text"]
    assert json.loads(text) == {"sum": 3}


def test_the_loop_stops_at_its_iteration_limit(openai_model, tools, developer):
    openai_model.script.tool_call = ("adder", {"a": 1, "b": 1})  # asks again every turn
    result = run_with_tools(
        QUESTION, ["adder"], "gpt", actor=actor_of_user(developer), max_iterations=3
    )
    assert (result.answer, result.stopped, result.iterations) == (None, "max_iterations", 3)
    assert len(_chat_requests(openai_model)) == 3
    assert Execution.objects.filter(run_id=result.run_id).count() == 3


def test_a_tool_not_offered_or_bad_arguments_go_back_to_the_model_as_errors(
    openai_model, tools, developer
):
    openai_model.script.tool_turns = [[("stats", {"text": "a"}), ("adder", {"a": "two", "b": 1})]]
    result = run_with_tools(QUESTION, ["adder"], "gpt", actor=actor_of_user(developer))
    assert result.stopped == "answer"
    [not_offered, invalid] = result.steps[0].tool_calls
    assert (not_offered.status, not_offered.execution_id) == ("rejected", None)
    assert "no tool named 'stats'" in not_offered.content
    assert invalid.status == "rejected"
    assert "arguments.a" in invalid.content
    messages = _chat_requests(openai_model)[1]["messages"]
    assert [m["content"].startswith("Error:") for m in messages if m["role"] == "tool"] == [
        True,
        True,
    ]
    # Nothing ran: the rejected call is recorded as such, the one not offered is not a run.
    assert list(Execution.objects.values_list("tool_name", "status")) == [("adder", "rejected")]


def test_a_long_result_is_truncated_before_it_reenters_the_prompt(openai_model, developer):
    python_tool(
        "chatty",
        source="def main():\n    return 'word ' * 5000\n",
        input_schema={"type": "object"},
        output_schema={"type": "string"},
    )
    openai_model.script.tool_turns = [[("chatty", {})]]
    result = run_with_tools(
        QUESTION, ["chatty"], "gpt", actor=actor_of_user(developer), max_result_tokens=50
    )
    trace = result.steps[0].tool_calls[0]
    assert trace.truncated
    assert len(trace.content) < 400


def test_offering_a_tool_the_caller_may_not_run_is_refused_before_any_model_call(
    openai_model, tools, viewer
):
    with pytest.raises(PermissionDeniedError):
        run_with_tools(QUESTION, ["adder"], "gpt", actor=actor_of_user(viewer))
    assert _chat_requests(openai_model) == []


# --- POST /tools/run ----------------------------------------------------------------------


def _post(server, token, body, **kwargs):
    return requests.post(
        f"{server.url}/api/v1/tools/run",
        data=orjson.dumps(body),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=60,
        **kwargs,
    )


def test_the_run_endpoint_answers_with_the_trace(asgi_server, openai_model, tools, developer):
    openai_model.script.tool_turns = [[("adder", {"a": 2, "b": 40})]]
    openai_model.script.answer = "42"
    body = {"messages": QUESTION, "tools": ["adder"], "model": "gpt"}
    response = _post(asgi_server, lumina_token(developer), body)
    assert response.status_code == 200, response.text
    run = response.json()
    assert (run["answer"], run["stopped"], run["iterations"]) == ("42", "answer", 2)
    [call] = run["steps"][0]["tool_calls"]
    assert (call["name"], call["status"], json.loads(call["content"])) == (
        "adder",
        "succeeded",
        {"sum": 42},
    )
    assert [m["role"] for m in run["messages"]] == ["user", "assistant", "tool", "assistant"]


def test_the_run_endpoint_streams_each_step_as_an_event(
    asgi_server, anthropic_model, tools, developer
):
    anthropic_model.script.tool_turns = [[("stats", {"text": "one two"})]]
    anthropic_model.script.answer = "Two words."
    body = {"messages": QUESTION, "tools": ["stats"], "model": "sonnet", "stream": True}
    response = _post(asgi_server, lumina_token(developer), body, stream=True)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/event-stream")
    lines = [line for line in response.iter_lines() if line]
    names = [line.removeprefix(b"event: ").decode() for line in lines if line.startswith(b"event:")]
    assert names == ["lumina.run", "lumina.model", "lumina.tool", "lumina.model", "lumina.answer"]
    assert lines[-1] == b"data: [DONE]"
    answer = orjson.loads(lines[-2].removeprefix(b"data: "))
    assert (answer["answer"], answer["stopped"]) == ("Two words.", "answer")
    tool = orjson.loads(lines[names.index("lumina.tool") * 2 + 1].removeprefix(b"data: "))
    assert (tool["name"], tool["status"]) == ("stats", "succeeded")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tools": ["adder"]}, "messages"),
        ({"messages": QUESTION}, "tools"),
        ({"messages": QUESTION, "tools": []}, "tools"),
        ({"messages": QUESTION, "tools": ["adder"], "max_iterations": 0}, "max_iterations"),
        ({"messages": QUESTION, "tools": ["adder"], "max_iterations": 99}, "max_iterations"),
        ({"messages": "hi", "tools": ["adder"]}, "messages"),
        ({"messages": QUESTION, "tools": ["nope"]}, "tools[0]"),
        ({"messages": QUESTION, "tools": ["adder"], "tool_choice": "always"}, "tool_choice"),
    ],
)
def test_bad_run_input_is_a_400_or_404_naming_the_field(asgi_server, tools, developer, body, field):
    body = {"model": "gpt", **body}
    for stream in (False, True):
        response = _post(asgi_server, lumina_token(developer), {**body, "stream": stream})
        assert response.status_code in (400, 404), response.text
        assert field in response.json()["error"]["fields"]


@pytest.mark.parametrize("who", ["nobody", "staff", "viewer"])
def test_the_run_endpoint_refuses_who_may_not_run_the_tools(
    request, asgi_server, openai_model, tools, who
):
    body = {"messages": QUESTION, "tools": ["adder"], "model": "gpt"}
    for stream in (False, True):
        token = lumina_token(request.getfixturevalue(who))
        response = _post(asgi_server, token, {**body, "stream": stream})
        assert response.status_code == 403, response.text
    assert _chat_requests(openai_model) == []


def test_the_run_endpoint_asks_anonymous_callers_to_sign_in(asgi_server, tools):
    response = requests.post(
        f"{asgi_server.url}/api/v1/tools/run",
        json={"messages": QUESTION, "tools": ["adder"]},
        timeout=30,
    )
    assert response.status_code == 401


def test_a_provider_failing_mid_run_ends_the_stream_with_an_error_event(
    asgi_server, openai_model, tools, developer
):
    openai_model.script.fail_next = 100
    body = {"messages": QUESTION, "tools": ["adder"], "model": "gpt", "stream": True}
    response = _post(asgi_server, lumina_token(developer), body, stream=True)
    assert response.status_code == 200
    lines = [line for line in response.iter_lines() if line]
    assert lines[0] == b"event: lumina.run"
    assert b"event: error" in lines
    assert b"data: [DONE]" not in lines
    error = orjson.loads(lines[lines.index(b"event: error") + 1].removeprefix(b"data: "))
    assert error["error"]["code"]
    assert "sk-" not in lines[-1].decode()
