"""Embeddings of memory records through ``providers.api`` (all-MiniLM-L6-v2, 384-d).

Memory embeds as itself (the system actor ``memory``): reading one's own memories needs
``memory.read``, not the right to call models. A provider that cannot answer becomes
``EmbeddingUnavailableError`` (503): synchronous writes fail whole, imports finish later
through the outbox.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import structlog

from lumina.kernel.errors import ApplicationError
from lumina.memory.errors import EmbeddingUnavailableError
from lumina.memory.models.records import EMBEDDING_DIMENSIONS
from lumina.providers.api import DEFAULT_EMBEDDING_MODEL, embed
from lumina.security.api import Actor

logger = structlog.get_logger(__name__)

MEMORY_ACTOR = Actor.system("memory")
MODEL = DEFAULT_EMBEDDING_MODEL
BATCH = 256


def embed_texts(texts: Sequence[str]) -> list[list[float]]:
    """One unit vector per text, in order, embedded ``BATCH`` at a time."""
    vectors: list[list[float]] = []
    for start in range(0, len(texts), BATCH):
        chunk = list(texts[start : start + BATCH])
        try:
            answer = embed(chunk, actor=MEMORY_ACTOR, model=MODEL)
        except ApplicationError as error:
            if error.status < 500 and error.code not in ("model_not_found", "unsupported"):
                raise
            logger.warning("embedding model unavailable", code=error.code)
            raise EmbeddingUnavailableError() from error
        except Exception as error:
            logger.warning("embedding model failed", error=type(error).__name__)
            raise EmbeddingUnavailableError() from error
        for vector in answer:
            if len(vector) != EMBEDDING_DIMENSIONS or not all(map(math.isfinite, vector)):
                raise EmbeddingUnavailableError(
                    f"The embedding model answered vectors that are not {EMBEDDING_DIMENSIONS} "
                    "finite numbers."
                )
        vectors.extend(answer)
    return vectors


def embed_distinct(texts: Sequence[str]) -> list[list[float]]:
    """``embed_texts`` computing each distinct text once (facts repeat: "Sam lives in
    Lisbon" is stated again and again)."""
    distinct = list(dict.fromkeys(texts))
    if len(distinct) == len(texts):
        return embed_texts(texts)
    vectors = dict(zip(distinct, embed_texts(distinct), strict=True))
    return [vectors[text] for text in texts]
