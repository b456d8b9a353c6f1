"""The ui context's application errors, rendered as ``{"error": {...}}``."""

from __future__ import annotations

from lumina.kernel.errors import ApplicationError, NotFoundError


class DocumentNotFoundError(NotFoundError):
    """No such document, or not one the caller may see (the same answer, on purpose)."""

    code = "document_not_found"

    def __init__(self, document_id: object, *, field: str = "document") -> None:
        super().__init__(
            f"There is no document {document_id}.", fields={field: ["No such document."]}
        )


class VersionNotFoundError(NotFoundError):
    code = "version_not_found"

    def __init__(self, version_id: object, *, field: str = "version") -> None:
        super().__init__(
            f"The document has no version {version_id}.", fields={field: ["No such version."]}
        )


class ContentInvalidError(ApplicationError):
    """Document content that is not a Yjs update (or not the export format expected)."""

    code = "invalid_content"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}", fields={field: [problem]})
