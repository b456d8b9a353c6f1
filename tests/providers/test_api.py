"""``providers.api``: what other contexts call; the shipped local models answer with no set-up."""

from __future__ import annotations

import math

import pytest

from lumina.providers import api
from lumina.providers.services.usage import usage_flush
from lumina.security.api import Actor
from tests.providers.gateway_support import usage_rows

pytestmark = [pytest.mark.django_db(transaction=True)]

MEMORY = Actor.system("memory")


def test_embed_returns_one_unit_vector_per_text_in_order():
    vectors = api.embed(["the cat sat", "a dog barked", "the cat sat"], actor=MEMORY)
    assert [len(v) for v in vectors] == [384, 384, 384]
    assert vectors[0] == vectors[2]
    assert vectors[0] != vectors[1]
    assert math.isclose(math.fsum(x * x for x in vectors[1]), 1.0, rel_tol=1e-4)


def test_complete_uses_the_development_model_and_is_recorded():
    answer = api.complete([{"role": "user", "content": "hello there"}], actor=MEMORY)
    assert "hello there" in answer["choices"][0]["message"]["content"]
    usage_flush()
    [row] = usage_rows()
    assert (row.operation, row.model, row.user_id) == ("chat", "lumina-dev-chat", None)


def test_token_counts_are_exposed_with_the_chat_overhead():
    assert api.count_text_tokens("") == 0
    assert api.count_text_tokens("hello world") == 2
    one = api.count_message_tokens([{"role": "user", "content": "hello world"}])
    # 3 per message + the role's token + 3 priming the reply.
    assert one == 2 + 3 + 1 + 3


def test_a_real_chat_model_is_told_apart_from_the_echo_model():
    from tests.providers.factories import DeploymentFactory

    assert api.real_chat_model_available() is False  # only the development echo model
    DeploymentFactory(name="gpt-4o-mini")
    assert api.real_chat_model_available() is True


def test_a_batch_of_embedding_inputs_may_exceed_the_window_of_one():
    # all-MiniLM-L6-v2 reads 256 tokens per input; a batch of 40 inputs of ~12 tokens each
    # is within its window, however many tokens the batch holds together.
    texts = [f"sentence number {n} about a ferry to Tangier in June" for n in range(40)]
    assert api.count_message_tokens([{"role": "user", "content": " ".join(texts)}]) > 256
    vectors = api.embed(texts, actor=MEMORY)
    assert len(vectors) == 40
