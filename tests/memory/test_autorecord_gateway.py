"""Completions served by ``/v1`` become memory turns, only for callers who opted in.

Real requests over TCP to Lumina under uvicorn, answered by the development echo model.
Providers publishes ``CompletionTranscript`` with the usage ledger's batch (flushed here
by hand); memory's handler records the new turns.
"""

from __future__ import annotations

import orjson
import pytest
import requests

from lumina.kernel.models import OutboxEvent
from lumina.memory.handlers.autorecord import record_completion
from lumina.memory.models.records import Layer, MemoryRecord
from lumina.providers.events import CompletionTranscript
from lumina.providers.services.usage import usage_flush
from tests.providers.gateway_support import asgi_server, lumina_token  # noqa: F401
from tests.security.rbac_support import give_role, make_user

pytestmark = [pytest.mark.django_db(transaction=True)]

MODEL = "lumina-dev-chat"
TRANSCRIPT = "providers.CompletionTranscript"


def developer(email: str):
    user = make_user(email)
    give_role(user, "Developer")
    return user


def chat(server, token: str, messages: list[dict], *, session: str | None = None, **extra):
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if session is not None:
        headers["X-Lumina-Memory-Session"] = session
    body = {"model": MODEL, "messages": messages, **extra}
    response = requests.post(
        f"{server.url}/v1/chat/completions", data=orjson.dumps(body), headers=headers, timeout=60
    )
    return response


def turns_of(user) -> list[MemoryRecord]:
    return list(
        MemoryRecord.objects.filter(owner_id=user.pk, layer=Layer.WORKING).order_by("occurred_at")
    )


def test_a_session_header_records_the_new_turns_once(asgi_server):  # noqa: F811
    user = developer("autorecord-header@example.com")
    token = lumina_token(user)
    first = [
        {"role": "system", "content": "You are a travel assistant."},
        {"role": "user", "content": "My flight to Oslo leaves on May 2nd at 07:40."},
    ]
    response = chat(asgi_server, token, first, session="trip-oslo")
    assert response.status_code == 200, response.text
    reply = response.json()["choices"][0]["message"]["content"]
    usage_flush()

    recorded = turns_of(user)
    assert [(t.speaker, t.text) for t in recorded] == [
        ("user", "My flight to Oslo leaves on May 2nd at 07:40."),
        ("assistant", reply),
    ]
    assert {t.session_id for t in recorded} == {"trip-oslo"}
    assert recorded[0].metadata["source"] == "v1"
    assert recorded[0].metadata["model"] == MODEL
    assert all(t.embedding is not None for t in recorded)

    # The next request repeats the history: only its new turn and reply are added.
    second = [
        *first,
        {"role": "assistant", "content": reply},
        {"role": "user", "content": "Book a taxi for 05:30 please."},
    ]
    assert chat(asgi_server, token, second, session="trip-oslo").status_code == 200
    usage_flush()
    texts = [t.text for t in turns_of(user)]
    assert len(texts) == 4
    assert texts.count("My flight to Oslo leaves on May 2nd at 07:40.") == 1
    assert texts[2] == "Book a taxi for 05:30 please."

    # The same events handled again record nothing twice.
    events = OutboxEvent.objects.filter(name=TRANSCRIPT)
    assert events.count() == 2
    for row in events:
        record_completion(
            CompletionTranscript.from_payload(
                id=row.id, occurred_at=row.occurred_at, payload=row.payload
            )
        )
    assert len(turns_of(user)) == 4


def test_without_opting_in_nothing_is_published_or_recorded(asgi_server):  # noqa: F811
    user = developer("autorecord-none@example.com")
    token = lumina_token(user)
    messages = [{"role": "user", "content": "My PIN is 4921, remember nothing."}]
    assert chat(asgi_server, token, messages).status_code == 200
    usage_flush()
    assert OutboxEvent.objects.filter(name="providers.CompletionGenerated").exists()
    assert not OutboxEvent.objects.filter(name=TRANSCRIPT).exists()
    assert turns_of(user) == []


def test_a_token_with_the_record_scope_opts_in_without_a_header(asgi_server):  # noqa: F811
    user = developer("autorecord-scope@example.com")
    token = lumina_token(user, scopes=("providers.use", "memory.record"))
    messages = [{"role": "user", "content": "I started learning the cello in March."}]
    assert chat(asgi_server, token, messages).status_code == 200
    usage_flush()
    recorded = turns_of(user)
    assert len(recorded) == 2
    assert recorded[0].session_id.startswith("token-")


def test_a_header_from_a_token_that_may_not_write_memory_records_nothing(
    asgi_server,  # noqa: F811
):
    user = developer("autorecord-narrow@example.com")
    token = lumina_token(user, scopes=("providers.use",))
    messages = [{"role": "user", "content": "Note that I moved to Porto."}]
    assert chat(asgi_server, token, messages, session="s1").status_code == 200
    usage_flush()
    assert OutboxEvent.objects.filter(name=TRANSCRIPT).exists()  # published, then refused
    assert turns_of(user) == []


def test_a_user_without_memory_write_is_not_recorded(asgi_server):  # noqa: F811
    from lumina.security.models.rbac import Role

    user = make_user("autorecord-caller@example.com")
    Role.objects.create(name="caller only", permissions=["providers.use"])
    give_role(user, "caller only")
    token = lumina_token(user, scopes=("providers.use", "memory.record"))
    response = chat(asgi_server, token, [{"role": "user", "content": "Remember my cat Miso."}])
    assert response.status_code == 200, response.text
    usage_flush()
    assert turns_of(user) == []


def test_the_same_session_name_of_two_users_stays_apart(asgi_server):  # noqa: F811
    alice, bob = developer("autorecord-a@example.com"), developer("autorecord-b@example.com")
    for user, text in ((alice, "Alice likes rye bread."), (bob, "Bob likes sourdough.")):
        token = lumina_token(user)
        messages = [{"role": "user", "content": text}]
        assert chat(asgi_server, token, messages, session="shared").status_code == 200
    usage_flush()
    assert turns_of(alice)[0].text == "Alice likes rye bread."
    assert turns_of(bob)[0].text == "Bob likes sourdough."
    assert all("Bob" not in t.text for t in turns_of(alice))


def test_a_streamed_completion_is_recorded_with_its_whole_reply(asgi_server):  # noqa: F811
    user = developer("autorecord-stream@example.com")
    token = lumina_token(user)
    messages = [{"role": "user", "content": "Our anniversary is on the 9th of June."}]
    response = chat(asgi_server, token, messages, session="s", stream=True)
    assert response.status_code == 200
    pieces = []
    for line in response.text.splitlines():
        if line.startswith("data: {"):
            for choice in orjson.loads(line[6:]).get("choices") or ():
                pieces.append((choice.get("delta") or {}).get("content") or "")
    usage_flush()
    recorded = turns_of(user)
    assert [t.speaker for t in recorded] == ["user", "assistant"]
    assert recorded[1].text == "".join(pieces).strip()


@pytest.mark.parametrize("session", ["", "x" * 201])
def test_a_bad_session_header_is_a_400_naming_it(asgi_server, session):  # noqa: F811
    user = developer(f"autorecord-bad{len(session)}@example.com")
    token = lumina_token(user)
    response = chat(asgi_server, token, [{"role": "user", "content": "hi"}], session=session)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "X-Lumina-Memory-Session"
