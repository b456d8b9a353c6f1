"""Embeddings for the memory context, through ``providers.api`` only.

Errors are translated once, here: a provider that cannot answer is ``503
embedding_unavailable`` (nothing was written), an unknown model a 400 naming
``embedding_model``; refusals (403) and budget errors pass through unchanged.
"""

from __future__ import annotations

import math

from lumina.kernel.errors import ApplicationError, NotFoundError
from lumina.memory.errors import EmbeddingUnavailableError, InvalidInputError
from lumina.providers import api as providers
from lumina.security.api import Actor


def _translate(error: ApplicationError, model: str) -> ApplicationError:
    if isinstance(error, NotFoundError):
        return InvalidInputError("embedding_model", f"No embedding model named '{model}'.")
    if error.status >= 500:
        return EmbeddingUnavailableError(
            f"The embedding model '{model}' is not available: {error.message}"
        )
    return error


def _checked(vectors: list[list[float]], count: int, model: str) -> list[list[float]]:
    if len(vectors) != count or any(
        not all(math.isfinite(x) for x in vector) for vector in vectors
    ):
        raise EmbeddingUnavailableError(f"The embedding model '{model}' answered with bad vectors.")
    return vectors


def embed_texts(texts: list[str], *, actor: Actor, model: str) -> list[list[float]]:
    """One vector per text (synchronous callers)."""
    if not texts:
        return []
    try:
        vectors = providers.embed(list(texts), actor=actor, model=model)
    except ApplicationError as error:
        raise _translate(error, model) from error
    except (OSError, TimeoutError) as error:
        raise EmbeddingUnavailableError(
            f"The embedding model '{model}' is not available."
        ) from error
    return _checked(vectors, len(texts), model)


async def embed_texts_async(texts: list[str], *, actor: Actor, model: str) -> list[list[float]]:
    if not texts:
        return []
    try:
        vectors = await providers.embed_async(list(texts), actor=actor, model=model)
    except ApplicationError as error:
        raise _translate(error, model) from error
    except (OSError, TimeoutError) as error:
        raise EmbeddingUnavailableError(
            f"The embedding model '{model}' is not available."
        ) from error
    return _checked(vectors, len(texts), model)
