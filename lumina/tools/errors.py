"""The tools context's application errors, rendered as ``{"error": {...}}``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lumina.kernel.errors import ApplicationError, NotFoundError


class ToolNotFoundError(NotFoundError):
    code = "tool_not_found"

    def __init__(self, name: str, *, field: str = "tool") -> None:
        super().__init__(f"There is no tool '{name}'.", fields={field: [f"No tool '{name}'."]})
        self.name = name


class ToolDisabledError(ApplicationError):
    code = "tool_disabled"
    status = 409

    def __init__(self, name: str, *, field: str = "tool") -> None:
        super().__init__(f"The tool '{name}' is disabled.", fields={field: ["disabled"]})


class SchemaInvalidError(ApplicationError):
    """A tool's argument or result schema is not a valid JSON Schema."""

    code = "invalid_schema"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(
            f"{field} is not a valid JSON Schema: {problem}", fields={field: [problem]}
        )


class ArgumentsInvalidError(ApplicationError):
    """Arguments that break the tool's argument schema: one message per failing path."""

    code = "invalid_arguments"

    def __init__(self, problems: Sequence[str] | Mapping[str, Sequence[str]]) -> None:
        fields = (
            {key: list(value) for key, value in problems.items()}
            if isinstance(problems, Mapping)
            else {"arguments": list(problems)}
        )
        first = next(iter(fields.values()))[0] if fields else "invalid"
        super().__init__(f"The arguments do not match the tool's schema: {first}", fields=fields)


class RunnerUnavailableError(ApplicationError):
    """No runner can run this kind of tool here (e.g. no isolation and no opt-in)."""

    code = "runner_unavailable"
    status = 503
