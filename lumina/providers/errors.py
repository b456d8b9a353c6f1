"""The providers context's application errors, rendered as ``{"error": {...}}``."""

from __future__ import annotations

from collections.abc import Sequence

from lumina.kernel.errors import ApplicationError, NotFoundError
from lumina.providers.types import Rejection


class UnknownModelError(NotFoundError):
    """No deployment, alias or virtual name answers to the requested model."""

    code = "model_not_found"

    def __init__(self, model: str) -> None:
        super().__init__(
            f"The model '{model}' does not exist.",
            fields={"model": [f"No model, alias or virtual name '{model}'."]},
        )
        self.model = model


class NoCandidateError(ApplicationError):
    """The model exists but no deployment of it can take this request.

    The status says whose move it is: 400 ``unsupported`` / ``context_length_exceeded``
    (change the request), 402 ``budget_exceeded``, 503 ``no_available_provider`` (every
    fitting deployment is down or disabled: try again later). ``rejections`` keeps the
    reason for every deployment left out.
    """

    code = "unsupported"
    status = 400

    def __init__(
        self,
        message: str,
        *,
        model: str,
        rejections: Sequence[Rejection],
        code: str = "unsupported",
        status: int = 400,
    ) -> None:
        super().__init__(
            message,
            code=code,
            fields={
                "model": [message],
                "rejections": [f"{r.deployment.qualified_name}: {r.reason}" for r in rejections],
            },
        )
        self.status = status
        self.model = model
        self.rejections = tuple(rejections)
