"""The one decision point: may this actor do this action (on this resource)?"""

from __future__ import annotations

from lumina.security.types import Actor, Decision, Resource


def authorize(actor: Actor, action: str, resource: Resource | None = None) -> Decision:
    if actor.is_superuser and actor.is_active:
        return Decision(True, action, "superuser", ("role:superuser",))
    return Decision(False, action, "no role grants this action")
