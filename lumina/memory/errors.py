"""The memory context's application errors, rendered as ``{"error": {...}}``."""

from __future__ import annotations

from lumina.kernel.errors import ApplicationError, NotFoundError


class InvalidInputError(ApplicationError):
    """A field of the request cannot be used; ``fields`` names it."""

    code = "invalid"
    status = 400

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, fields={field: [message]})
        self.field = field


class EmbeddingUnavailableError(ApplicationError):
    """The embedding model could not answer: try again later (nothing was written)."""

    code = "embedding_unavailable"
    status = 503

    def __init__(self, message: str = "The embedding model is not available.") -> None:
        super().__init__(message, fields={"embedding": [message]})


# --- Vectors (mv) ----------------------------------------------------------------------


class CollectionNotFoundError(NotFoundError):
    code = "collection_not_found"

    def __init__(self, name: str) -> None:
        message = f"No collection named '{name}'."
        super().__init__(message, fields={"collection": [message]})
        self.name = name


class RecordNotFoundError(NotFoundError):
    code = "record_not_found"

    def __init__(self, external_id: str) -> None:
        message = f"No record with id '{external_id}'."
        super().__init__(message, fields={"id": [message]})


# --- Memory records, import, search (mc) -------------------------------------------------


class MemoryNotFoundError(NotFoundError):
    """No such memory record, or one the caller may not see (the same answer)."""

    code = "memory_not_found"

    def __init__(self, record_id: object) -> None:
        message = f"No memory record '{record_id}'."
        super().__init__(message, fields={"id": [message]})


# --- Compression, auto-recording (mx) ----------------------------------------------------


class SegmentNotFoundError(NotFoundError):
    code = "segment_not_found"

    def __init__(self, segment_id: str) -> None:
        message = f"No segment with id '{segment_id}'."
        super().__init__(message, fields={"segment_id": [message]})


# --- Topics and graph (mg) -------------------------------------------------------------
