"""all-MiniLM-L6-v2 run offline from its int8 ONNX build: the same space as the fp32 model."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from lumina.providers.local import minilm

REFERENCE = Path(__file__).parent / "data" / "minilm_fp32_reference.json"


@pytest.fixture(scope="module")
def model() -> minilm.MiniLM:
    return minilm.model()


def test_vectors_have_384_dimensions_and_unit_length(model):
    vectors, tokens = model.embed(["A cat sits on the mat.", "", "Quarterly revenue grew 4%."])

    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert tokens == sum(
        model.count_tokens(t) for t in ["A cat sits on the mat.", "", "Quarterly revenue grew 4%."]
    )


def test_vectors_match_the_fp32_sentence_transformers_model(model):
    reference = json.loads(REFERENCE.read_text())
    expected = np.array(reference["vectors"], dtype=np.float32)

    vectors, _ = model.embed(reference["sentences"])

    similarity = (vectors * expected).sum(axis=1)
    assert similarity.min() > 0.99, similarity


def test_paraphrases_are_closer_than_unrelated_sentences(model):
    vectors, _ = model.embed(
        [
            "How do I reset my password?",
            "I forgot my login credentials, how can I change them?",
            "The stock market fell sharply on Tuesday.",
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "The girl is carrying a baby.",
        ]
    )
    sim = vectors @ vectors.T

    assert sim[0, 1] > sim[0, 2] + 0.3
    assert sim[3, 4] > sim[3, 5] + 0.3
    assert sim[3, 4] == pytest.approx(0.755, abs=0.02)  # the published fp32 figure


def test_identical_inputs_give_identical_vectors(model):
    first, _ = model.embed(["same text", "other", "same text"])
    second, _ = model.embed(["same text", "other", "same text"])

    assert np.array_equal(first, second)
    assert np.array_equal(first[0], first[2])


def test_batching_and_order_do_not_change_the_vectors(model):
    texts = [f"sentence {i} " + "word " * (i % 13) for i in range(70)]  # three batches

    together, _ = model.embed(texts)
    alone = np.stack([model.embed([t])[0][0] for t in texts[::7]])

    assert (together[::7] * alone).sum(axis=1).min() > 0.999


def test_texts_are_truncated_at_256_tokens(model):
    head = "lorem ipsum dolor sit amet " * 80  # far past 256 tokens
    a, tokens = model.embed([head + "completely different ending about ships"])
    b, _ = model.embed([head + "an unrelated tail about cooking pasta"])

    assert tokens == minilm.MAX_TOKENS
    assert np.array_equal(a, b)


def test_a_model_file_with_the_wrong_checksum_is_refused():
    with pytest.raises(minilm.ModelChecksumError) as caught:
        minilm.MiniLM(b"not the model")

    assert minilm.MODEL_SHA256 in str(caught.value)
    assert "reinstall" in str(caught.value)


def test_the_installed_model_file_has_the_pinned_checksum():
    import hashlib

    assert hashlib.sha256(minilm.load_model_bytes()).hexdigest() == minilm.MODEL_SHA256


def test_model_loads_once_even_when_threads_race(monkeypatch):
    monkeypatch.setattr(minilm, "_model", None)
    loaded = []
    real = minilm.MiniLM

    def counting(*args, **kwargs):
        loaded.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(minilm, "MiniLM", counting)
    results = []
    threads = [threading.Thread(target=lambda: results.append(minilm.model())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(loaded) == 1
    assert all(result is results[0] for result in results)
