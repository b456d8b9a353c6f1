"""Every route refuses whoever lacks its permission and admits whoever holds it.

The attack: ``is_staff`` opened routes that no role allowed (a staff user without a role
listed and revoked a superuser's tokens, read the event outbox and everyone's usage).
The routes are taken from Django's URL resolver, so one added later is walked too:
``test_every_route_is_classified`` fails until ``ROUTES`` says what it needs.

For each operation: anonymous callers get 401; a user without a role, staff without a
role, a Viewer and a user holding every *other* declared permission get 403 (those who
hold the permission after all are left out); a user holding a role with that one
permission gets through, the control that keeps the refusals from passing vacuously.
Self-service operations (``SIGNED_IN``) admit any signed-in user on their own things;
aimed at someone else's (``OTHERS``), they need a permission too.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from urllib.parse import urlencode

import pytest
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import Group
from django.urls import URLResolver, get_resolver
from rest_framework.test import APIClient

from lumina.kernel.models import OutboxEvent
from lumina.memory.models.compression import CompressedSegment
from lumina.memory.models.records import MemoryRecord
from lumina.memory.models.topics import Topic
from lumina.memory.models.vectors import Collection, VectorRecord
from lumina.providers.models.usage import Budget
from lumina.security.api import Resource, encrypt_secret, object_grants_set
from lumina.security.models.oidc import IdentityProvider
from lumina.security.models.rbac import Role, RoleAssignment
from lumina.security.models.sessions import Session
from lumina.security.services.policies import policy_create
from lumina.security.services.tokens import token_create
from lumina.security.sessions import SessionStore
from lumina.security.types import Actor
from lumina.tools.models import Execution, HttpAllowEntry, McpServer
from lumina.tools.services.registry import tool_create
from lumina.ui.models import Document, DocumentVersion, Visualization
from tests.providers.factories import DeploymentFactory, ProviderFactory
from tests.security.access_support import Caller, holder, holding, lacking, make_user

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system("tests")
PUBLIC = "public"  # anyone, signed in or not
SIGNED_IN = "signed in"  # any signed-in caller, on their own things
OWNER = "tests.Walk:1:secret"
# A policy to walk the policy routes with. Its address is not the one the walk's callers
# are authorised from (tests.security.rbac_support), or it would refuse memory.read to
# them in ``lacking`` while their requests, from 127.0.0.1, are allowed.
POLICY = 'forbid (principal, action == Lumina::Action::"memory.read", resource) ' + (
    'when { context.ip == "198.51.100.7" };'
)


def _operations() -> list[tuple[str, str]]:
    """(method, route) of every view outside the admin and the web console, from the URL
    resolver."""
    found: list[tuple[str, str]] = []

    def walk(patterns, prefix: str) -> None:
        for entry in patterns:
            route = prefix + str(entry.pattern)
            if isinstance(entry, URLResolver):
                # The web console's pages and stream are walked by tests/ui/console/.
                if not route.startswith(("admin/", "console/")):
                    walk(entry.url_patterns, route)
                continue
            view = entry.callback
            cls = getattr(view, "cls", None) or getattr(view, "view_class", None)
            methods = (
                [m for m in ("get", "post", "put", "patch", "delete") if hasattr(cls, m)]
                if cls is not None
                else ["get"]
            )
            found.extend((method.upper(), route) for method in methods)

    walk(get_resolver().url_patterns, "")
    return found


OPERATIONS = _operations()

ROUTES: dict[tuple[str, str], str] = {
    ("GET", "health/live"): PUBLIC,
    ("GET", "health/ready"): PUBLIC,
    ("GET", "metrics"): PUBLIC,
    ("GET", "api/schema/"): PUBLIC,
    ("GET", "api/schema/gateway/"): PUBLIC,
    ("GET", "api/docs/"): PUBLIC,
    ("GET", "api/v1/auth/csrf"): PUBLIC,
    ("POST", "api/v1/auth/login"): PUBLIC,
    ("GET", "api/v1/auth/oauth/<slug:slug>/login"): PUBLIC,
    ("GET", "api/v1/auth/oauth/<slug:slug>/callback"): PUBLIC,
    ("GET", "api/v1/auth/oauth/link"): SIGNED_IN,
    ("POST", "api/v1/auth/password/reset"): PUBLIC,
    ("POST", "api/v1/auth/password/reset/confirm"): PUBLIC,
    ("GET", "accounts/password-reset/<uidb64>/<token>/"): PUBLIC,
    ("POST", "accounts/password-reset/<uidb64>/<token>/"): PUBLIC,
    ("PUT", "accounts/password-reset/<uidb64>/<token>/"): PUBLIC,
    ("GET", "accounts/password-reset/done/"): PUBLIC,
    ("POST", "api/v1/auth/oauth/link"): SIGNED_IN,
    ("POST", "api/v1/auth/logout"): SIGNED_IN,
    ("GET", "api/v1/auth/me"): SIGNED_IN,
    ("GET", "api/v1/auth/mfa"): SIGNED_IN,
    ("DELETE", "api/v1/auth/mfa"): SIGNED_IN,
    ("POST", "api/v1/auth/mfa/totp"): SIGNED_IN,
    ("POST", "api/v1/auth/mfa/totp/confirm"): SIGNED_IN,
    ("POST", "api/v1/auth/mfa/verify"): SIGNED_IN,
    ("POST", "api/v1/auth/mfa/backup-codes"): SIGNED_IN,
    ("GET", "api/v1/auth/tokens"): SIGNED_IN,
    ("POST", "api/v1/auth/tokens"): SIGNED_IN,
    ("GET", "api/v1/auth/tokens/<uuid:token_id>"): SIGNED_IN,
    ("DELETE", "api/v1/auth/tokens/<uuid:token_id>"): SIGNED_IN,
    ("GET", "api/v1/rbac/permissions"): SIGNED_IN,
    ("POST", "api/v1/auth/password"): SIGNED_IN,
    ("GET", "api/v1/auth/sessions"): SIGNED_IN,
    ("POST", "api/v1/auth/sessions/revoke-others"): SIGNED_IN,
    ("DELETE", "api/v1/auth/sessions/<uuid:session_id>"): SIGNED_IN,
    ("GET", "api/v1/sessions"): "security.sessions.manage",
    ("POST", "api/v1/sessions/revoke"): "security.sessions.manage",
    ("DELETE", "api/v1/sessions/<uuid:session_id>"): "security.sessions.manage",
    ("GET", "api/v1/providers/costs"): SIGNED_IN,
    ("GET", "api/v1/providers/usage"): SIGNED_IN,
    ("GET", "api/v1/providers/budgets"): SIGNED_IN,
    ("GET", "api/v1/providers/budgets/<uuid:budget_id>"): SIGNED_IN,
    ("GET", "api/v1/events/outbox"): "platform.events.read",
    ("POST", "api/v1/events/outbox/<uuid:event_id>/replay"): "platform.events.replay",
    ("POST", "api/v1/encryption/encrypt"): "security.secrets.encrypt",
    ("POST", "api/v1/encryption/decrypt"): "security.secrets.decrypt",
    ("GET", "api/v1/encryption/keys"): "security.keys.read",
    ("POST", "api/v1/encryption/rotate"): "security.keys.rotate",
    ("GET", "api/v1/audit/entries"): "security.audit.read",
    ("GET", "api/v1/audit/verify"): "security.audit.read",
    ("GET", "api/v1/auth/oauth/providers"): "security.identity_providers.manage",
    ("POST", "api/v1/auth/oauth/providers"): "security.identity_providers.manage",
    ("GET", "api/v1/auth/oauth/providers/<uuid:provider_id>"): (
        "security.identity_providers.manage"
    ),
    ("PATCH", "api/v1/auth/oauth/providers/<uuid:provider_id>"): (
        "security.identity_providers.manage"
    ),
    ("DELETE", "api/v1/auth/oauth/providers/<uuid:provider_id>"): (
        "security.identity_providers.manage"
    ),
    ("GET", "api/v1/rbac/roles"): "security.roles.manage",
    ("POST", "api/v1/rbac/roles"): "security.roles.manage",
    ("GET", "api/v1/rbac/roles/<uuid:role_id>"): "security.roles.manage",
    ("PATCH", "api/v1/rbac/roles/<uuid:role_id>"): "security.roles.manage",
    ("DELETE", "api/v1/rbac/roles/<uuid:role_id>"): "security.roles.manage",
    ("GET", "api/v1/rbac/assignments"): "security.roles.manage",
    ("POST", "api/v1/rbac/assignments"): "security.roles.manage",
    ("GET", "api/v1/rbac/assignments/<uuid:assignment_id>"): "security.roles.manage",
    ("DELETE", "api/v1/rbac/assignments/<uuid:assignment_id>"): "security.roles.manage",
    ("GET", "api/v1/rbac/grants"): "security.roles.manage",
    ("POST", "api/v1/rbac/grants"): "security.roles.manage",
    ("DELETE", "api/v1/rbac/grants"): "security.roles.manage",
    ("GET", "api/v1/policies"): "security.policies.manage",
    ("POST", "api/v1/policies"): "security.policies.manage",
    ("GET", "api/v1/policies/schema"): "security.policies.manage",
    ("POST", "api/v1/policies/evaluate"): "security.policies.manage",
    ("GET", "api/v1/policies/<uuid:policy_id>"): "security.policies.manage",
    ("PATCH", "api/v1/policies/<uuid:policy_id>"): "security.policies.manage",
    ("DELETE", "api/v1/policies/<uuid:policy_id>"): "security.policies.manage",
    ("GET", "api/v1/policies/<uuid:policy_id>/versions"): "security.policies.manage",
    ("GET", "api/v1/policies/<uuid:policy_id>/versions/<int:version>"): (
        "security.policies.manage"
    ),
    ("GET", "api/v1/providers"): "providers.read",
    ("POST", "api/v1/providers"): "providers.add",
    ("GET", "api/v1/providers/capabilities"): "providers.read",
    ("GET", "api/v1/providers/<uuid:provider_id>"): "providers.read",
    ("PATCH", "api/v1/providers/<uuid:provider_id>"): "providers.change",
    ("DELETE", "api/v1/providers/<uuid:provider_id>"): "providers.delete",
    ("GET", "api/v1/providers/<uuid:provider_id>/models"): "providers.read",
    ("POST", "api/v1/providers/<uuid:provider_id>/models"): "providers.change",
    ("GET", "api/v1/providers/<uuid:provider_id>/models/<uuid:model_id>"): "providers.read",
    ("PATCH", "api/v1/providers/<uuid:provider_id>/models/<uuid:model_id>"): ("providers.change"),
    ("DELETE", "api/v1/providers/<uuid:provider_id>/models/<uuid:model_id>"): ("providers.change"),
    ("POST", "api/v1/providers/select"): "providers.read",
    ("POST", "api/v1/providers/completion"): "providers.use",
    ("POST", "api/v1/providers/stream"): "providers.use",
    ("POST", "api/v1/providers/budgets"): "providers.change",
    ("PATCH", "api/v1/providers/budgets/<uuid:budget_id>"): "providers.change",
    ("DELETE", "api/v1/providers/budgets/<uuid:budget_id>"): "providers.change",
    ("POST", "api/v1/compression/compress"): "memory.write",
    ("GET", "api/v1/compression/segments/<uuid:segment_id>/expand"): "memory.read",
    ("POST", "api/v1/memory/sessions/summarize"): "memory.write",
    ("GET", "api/v1/tools/mcp-servers"): "tools.manage",
    ("POST", "api/v1/tools/mcp-servers"): "tools.manage",
    ("GET", "api/v1/tools/mcp-servers/<str:server>"): "tools.manage",
    ("PATCH", "api/v1/tools/mcp-servers/<str:server>"): "tools.manage",
    ("DELETE", "api/v1/tools/mcp-servers/<str:server>"): "tools.manage",
    ("POST", "api/v1/tools/mcp-servers/<str:server>/import"): "tools.manage",
    ("GET", "api/v1/tools"): "tools.read",
    ("POST", "api/v1/tools"): "tools.manage",
    ("GET", "api/v1/tools/builtins"): "tools.read",
    ("GET", "api/v1/tools/http-allow-list"): "tools.manage",
    ("POST", "api/v1/tools/http-allow-list"): "tools.manage",
    ("DELETE", "api/v1/tools/http-allow-list/<uuid:entry_id>"): "tools.manage",
    ("GET", "api/v1/tools/<str:tool>"): "tools.read",
    ("PATCH", "api/v1/tools/<str:tool>"): "tools.manage",
    ("DELETE", "api/v1/tools/<str:tool>"): "tools.manage",
    ("GET", "api/v1/tools/<str:tool>/versions"): "tools.read",
    ("GET", "api/v1/tools/<str:tool>/versions/<int:number>"): "tools.read",
    ("POST", "api/v1/tools/execute"): "tools.execute",
    ("POST", "api/v1/tools/run"): "tools.execute",
    ("GET", "api/v1/tools/results"): SIGNED_IN,
    ("GET", "api/v1/tools/results/<uuid:execution_id>"): SIGNED_IN,
    ("POST", "api/v1/tools/results/<uuid:execution_id>/process"): SIGNED_IN,
}
# Routes whose holder needs more than the permission classified: the loop calls a model.
ALSO_NEEDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("POST", "api/v1/tools/run"): ("providers.use",),
}


@dataclasses.dataclass(frozen=True)
class Others:
    """A self-service operation aimed at another user's things."""

    permission: str
    refusal: int  # 403, or 404 where others' things are not even disclosed
    query: Mapping[str, str] = dataclasses.field(default_factory=dict)
    path: Mapping[str, str] = dataclasses.field(default_factory=dict)


OTHERS: dict[tuple[str, str], Others] = {
    ("GET", "api/v1/auth/tokens"): Others("security.tokens.manage", 403, query={"user": "{other}"}),
    ("GET", "api/v1/auth/tokens/<uuid:token_id>"): Others(
        "security.tokens.manage", 404, path={"token_id": "{other_token}"}
    ),
    ("DELETE", "api/v1/auth/tokens/<uuid:token_id>"): Others(
        "security.tokens.manage", 404, path={"token_id": "{other_token}"}
    ),
    ("GET", "api/v1/providers/costs"): Others(
        "providers.usage.read_all", 403, query={"user": "{other}"}
    ),
    ("GET", "api/v1/providers/usage"): Others(
        "providers.usage.read_all", 403, query={"user": "{other}"}
    ),
    ("GET", "api/v1/providers/budgets/<uuid:budget_id>"): Others(
        "providers.usage.read_all", 404, path={"budget_id": "{other_budget}"}
    ),
    ("GET", "api/v1/tools/results"): Others(
        "tools.executions.read_all", 403, query={"actor_id": "{other}"}
    ),
    ("GET", "api/v1/tools/results/<uuid:execution_id>"): Others(
        "tools.executions.read_all", 404, path={"execution_id": "{other_execution}"}
    ),
    ("POST", "api/v1/tools/results/<uuid:execution_id>/process"): Others(
        "tools.executions.read_all", 404, path={"execution_id": "{other_execution}"}
    ),
}

# Bodies valid enough that only authorisation can stand in the way.
BODIES: dict[tuple[str, str], dict] = {
    ("POST", "api/v1/providers"): {
        "name": "walked",
        "kind": "openai_compatible",
        "base_url": "http://127.0.0.1:9/v1",
    },
    ("PATCH", "api/v1/providers/<uuid:provider_id>"): {"priority": 3},
    ("POST", "api/v1/providers/<uuid:provider_id>/models"): {
        "name": "walked-model",
        "input_price": "1",
        "output_price": "2",
        "context_window": 1000,
        "capabilities": ["chat"],
    },
    ("PATCH", "api/v1/providers/<uuid:provider_id>/models/<uuid:model_id>"): {"enabled": False},
    ("POST", "api/v1/encryption/encrypt"): {"plaintext": "s3cret", "owner": OWNER},
    ("POST", "api/v1/encryption/decrypt"): {"ciphertext": "{ciphertext}", "owner": OWNER},
    # By name: the walk's own provider is unreachable, and the echo model serves no pool
    # that has a real chat model in it.
    ("POST", "api/v1/providers/completion"): {
        "model": "lumina-dev-chat",
        "messages": [{"role": "user", "content": "hi"}],
    },
    ("POST", "api/v1/providers/stream"): {
        "model": "lumina-dev-chat",
        "messages": [{"role": "user", "content": "hi"}],
    },
    ("POST", "api/v1/providers/budgets"): {
        "scope": "user",
        "subject_id": "{other}",
        "limit_usd": "1",
    },
    ("PATCH", "api/v1/providers/budgets/<uuid:budget_id>"): {"requests_per_minute": 7},
    ("POST", "api/v1/auth/password"): {
        "current_password": "not the password",
        "new_password": "a brand new passphrase 42",
    },
    ("POST", "api/v1/sessions/revoke"): {"user_id": "{other}"},
    ("POST", "api/v1/tools/mcp-servers"): {
        "name": "walked-mcp",
        "transport": "http",
        "url": "http://127.0.0.1:9/mcp",
    },
    ("PATCH", "api/v1/tools/mcp-servers/<str:server>"): {"timeout_seconds": 7},
    ("POST", "api/v1/tools"): {"name": "walked_new", "kind": "builtin", "builtin_name": "time_now"},
    ("PATCH", "api/v1/tools/<str:tool>"): {"description": "walked"},
    ("POST", "api/v1/tools/http-allow-list"): {"prefix": "https://walked.example/"},
    ("POST", "api/v1/tools/execute"): {"tool": "walked", "arguments": {"text": "hi"}},
    ("POST", "api/v1/tools/run"): {
        "model": "lumina-dev-chat",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": ["walked"],
        "max_iterations": 1,
    },
    ("POST", "api/v1/tools/results/<uuid:execution_id>/process"): {"max_tokens": 5},
}
BODIES[("POST", "api/v1/compression/compress")] = {
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
    "budget": 100,
}
BODIES[("POST", "api/v1/memory/sessions/summarize")] = {"session_id": "walked"}


def _own_segment(user) -> dict[str, str]:
    segment = CompressedSegment.objects.create(
        owner_id=user.pk, turns=[{"role": "user", "content": "hi"}], first_index=0, last_index=0
    )
    return {"segment_id": str(segment.id)}


# Routes on things only their owner (or a manager) sees: each caller gets one of its own,
# so nothing but authorisation can refuse the holder (someone else's is a 404 to anyone
# without the managing permission: tests/memory covers those).
OWNED = {
    ("GET", "api/v1/compression/segments/<uuid:segment_id>/expand"): _own_segment,
}

# Topics and the entity graph: another user's (user_id=…) needs memory.manage as well,
# and another user's topic is a 404 (tests/memory/test_topics_api.py).
ROUTES.update(
    {
        ("GET", "api/v1/topics"): "memory.read",
        ("POST", "api/v1/topics/extract"): "memory.write",
        ("GET", "api/v1/topics/graph"): "memory.read",
        ("GET", "api/v1/topics/<uuid:topic_id>"): "memory.read",
    }
)
BODIES[("POST", "api/v1/topics/extract")] = {"scope": "user"}


def _own_topic(user) -> dict[str, str]:
    topic = Topic.objects.create(owner_id=user.pk, scope="user", label="walked", size=0)
    return {"topic_id": str(topic.id)}


OWNED[("GET", "api/v1/topics/<uuid:topic_id>")] = _own_topic

# Memory records: each caller gets a turn and a pinned block of its own (another user's
# is a 404 to anyone without memory.manage: tests/memory/test_records_api.py).
ROUTES.update(
    {
        ("POST", "api/v1/memory/turns"): "memory.write",
        ("POST", "api/v1/memory/import"): "memory.write",
        ("POST", "api/v1/memory/search"): "memory.read",
        ("GET", "api/v1/memory/records"): "memory.read",
        ("GET", "api/v1/memory/records/<uuid:memory_id>"): "memory.read",
        ("GET", "api/v1/memory/records/<uuid:memory_id>/history"): "memory.read",
        ("GET", "api/v1/memory/extraction-errors"): "memory.read",
        ("GET", "api/v1/memory/pinned"): "memory.read",
        ("POST", "api/v1/memory/pinned"): "memory.write",
        ("GET", "api/v1/memory/pinned/<uuid:block_id>"): "memory.read",
        ("PATCH", "api/v1/memory/pinned/<uuid:block_id>"): "memory.write",
        ("DELETE", "api/v1/memory/pinned/<uuid:block_id>"): "memory.write",
        ("GET", "api/v1/memory/policies"): "memory.read",
        ("PUT", "api/v1/memory/policies/<str:scope>"): "memory.write",
    }
)
BODIES.update(
    {
        ("POST", "api/v1/memory/turns"): {"text": "walked", "speaker": "walker"},
        ("POST", "api/v1/memory/import"): {"turns": [{"text": "walked", "speaker": "walker"}]},
        ("POST", "api/v1/memory/search"): {"query": "walked"},
        ("POST", "api/v1/memory/pinned"): {"label": "walked", "text": "walked"},
        ("PATCH", "api/v1/memory/pinned/<uuid:block_id>"): {"text": "walked again"},
        ("PUT", "api/v1/memory/policies/<str:scope>"): {"ttl_days": 30},
    }
)


def _own_memory(user) -> dict[str, str]:
    record = MemoryRecord.objects.create(owner_id=user.pk, layer="working", text="walked")
    return {"memory_id": str(record.id)}


def _own_block(user) -> dict[str, str]:
    block = MemoryRecord.objects.create(
        owner_id=user.pk, layer="pinned", label="walked", text="walked"
    )
    return {"block_id": str(block.id)}


for _route in ("api/v1/memory/records/<uuid:memory_id>",
               "api/v1/memory/records/<uuid:memory_id>/history"):  # fmt: skip
    OWNED[("GET", _route)] = _own_memory
for _method in ("GET", "PATCH", "DELETE"):
    OWNED[(_method, "api/v1/memory/pinned/<uuid:block_id>")] = _own_block

# Vector collections: each caller gets a collection of its own (another user's is a 404
# to anyone without memory.manage: tests/memory/test_vectors_http.py).
VECTORS = "api/v1/vectors/collections"
ROUTES.update(
    {
        ("GET", VECTORS): "memory.read",
        ("POST", VECTORS): "memory.write",
        ("GET", f"{VECTORS}/<str:collection>"): "memory.read",
        ("PATCH", f"{VECTORS}/<str:collection>"): "memory.write",
        ("DELETE", f"{VECTORS}/<str:collection>"): "memory.write",
        ("POST", f"{VECTORS}/<str:collection>/reindex"): "memory.write",
        ("POST", f"{VECTORS}/<str:collection>/records"): "memory.write",
        ("GET", f"{VECTORS}/<str:collection>/records/<str:record_id>"): "memory.read",
        ("DELETE", f"{VECTORS}/<str:collection>/records/<str:record_id>"): "memory.write",
        ("POST", f"{VECTORS}/<str:collection>/fetch"): "memory.read",
        ("POST", f"{VECTORS}/<str:collection>/delete"): "memory.write",
        ("POST", f"{VECTORS}/<str:collection>/search"): "memory.read",
    }
)
BODIES[("POST", VECTORS)] = {"name": "walked", "embedding_model": "", "dimension": 2}
BODIES[("PATCH", f"{VECTORS}/<str:collection>")] = {"description": "walked"}
BODIES[("POST", f"{VECTORS}/<str:collection>/records")] = {
    "records": [{"id": "w2", "vector": [0.6, 0.8]}]
}
BODIES[("POST", f"{VECTORS}/<str:collection>/fetch")] = {"ids": ["w"]}
BODIES[("POST", f"{VECTORS}/<str:collection>/delete")] = {"ids": ["w"]}
BODIES[("POST", f"{VECTORS}/<str:collection>/search")] = {"vector": [1, 0], "k": 1}


def _own_collection(user) -> dict[str, str]:
    collection, _ = Collection.objects.get_or_create(
        name="walk", owner_id=user.pk, defaults={"embedding_model": "", "dimension": 2}
    )
    VectorRecord.objects.get_or_create(
        collection=collection, external_id="w", defaults={"vector_0": [1.0, 0.0]}
    )
    return {"collection": "walk", "record_id": "w"}


for _method, _route in list(ROUTES):
    if _route.startswith(f"{VECTORS}/<str:collection>"):
        OWNED[(_method, _route)] = _own_collection

# Documents: each caller gets a document of its own, shared with someone and a group, with
# a version; another user's is a 404 to anyone without documents.manage, whatever their
# roles (tests/ui/documents/test_documents_attack.py).
DOCUMENT = "api/v1/documents/<uuid:document_id>"
DOCUMENT_ROUTES = [
    ("GET", DOCUMENT),
    ("PATCH", DOCUMENT),
    ("DELETE", DOCUMENT),
    ("GET", f"{DOCUMENT}/export"),
    ("GET", f"{DOCUMENT}/shares"),
    ("POST", f"{DOCUMENT}/shares"),
    ("DELETE", f"{DOCUMENT}/shares/users/<uuid:user_id>"),
    ("DELETE", f"{DOCUMENT}/shares/groups/<str:group>"),
    ("GET", f"{DOCUMENT}/versions"),
    ("POST", f"{DOCUMENT}/versions"),
    ("POST", f"{DOCUMENT}/versions/<uuid:version_id>/restore"),
]
ROUTES[("GET", "api/v1/documents")] = SIGNED_IN
ROUTES[("POST", "api/v1/documents")] = "documents.edit"
OTHERS[("GET", "api/v1/documents")] = Others("documents.manage", 403, query={"owner_id": "{other}"})
for _operation in DOCUMENT_ROUTES:
    ROUTES[_operation] = SIGNED_IN
    OTHERS[_operation] = Others(
        "documents.manage",
        404,
        path={
            "document_id": "{other_document}",
            "version_id": "{other_version}",
            "user_id": "{other_sharee}",
        },
    )
BODIES.update(
    {
        ("POST", "api/v1/documents"): {"title": "walked"},
        ("PATCH", DOCUMENT): {"title": "walked again"},
        ("POST", f"{DOCUMENT}/shares"): {"principal": "{sharee_email}", "permission": "view"},
        ("POST", f"{DOCUMENT}/versions"): {"name": "walked"},
    }
)
WALK_GROUP = "walkers"


def _document_of(owner_id, sharee) -> dict[str, str]:
    """A document of ``owner_id``'s, shared with ``sharee`` and the walkers, with a version."""
    document = Document.objects.create(title="walked", owner_id=owner_id)
    for principal in (str(sharee.pk), f"group:{WALK_GROUP}"):
        object_grants_set(
            actor=SYSTEM,
            principal=principal,
            resource=Resource(type="ui.document", id=str(document.id)),
            actions=["documents.read"],
            among=["documents.read"],
            share_action="documents.share",
            owner_id=owner_id,
        )
    version = DocumentVersion.objects.create(
        document=document, name="walked", upto_seq=0, state=b"\x00\x00"
    )
    return {"document_id": str(document.id), "version_id": str(version.id)}


# Visualizations: each caller gets a chart of its own (another user's is a 404 to anyone
# without visualizations.manage: tests/ui/test_visualizations_api.py).
CHARTS = "api/v1/visualizations"
CHART = f"{CHARTS}/<uuid:visualization_id>"
ROUTES.update(
    {
        ("GET", CHARTS): "visualizations.read",
        ("POST", CHARTS): "visualizations.edit",
        ("POST", f"{CHARTS}/preview"): "visualizations.read",
        ("GET", f"{CHARTS}/templates"): "visualizations.read",
        ("GET", f"{CHARTS}/templates/<str:key>/render"): "visualizations.read",
        ("GET", f"{CHARTS}/sources"): "visualizations.read",
        ("GET", CHART): "visualizations.read",
        ("PATCH", CHART): "visualizations.edit",
        ("DELETE", CHART): "visualizations.edit",
        ("GET", f"{CHART}/render"): "visualizations.read",
    }
)
_CHART_SPEC = {"data": {"name": "lumina:usage", "params": {"days": 1}}, "mark": "bar"}
BODIES[("POST", CHARTS)] = {"name": "walked", "spec": _CHART_SPEC}
BODIES[("POST", f"{CHARTS}/preview")] = {"spec": _CHART_SPEC}
BODIES[("PATCH", CHART)] = {"name": "walked again"}


def _own_chart(user) -> dict[str, str]:
    chart = Visualization.objects.create(owner_id=user.pk, name="walk", spec=_CHART_SPEC)
    return {"visualization_id": str(chart.id)}


for _method, _route in list(ROUTES):
    if _route.startswith(CHART):
        OWNED[(_method, _route)] = _own_chart

QUERIES: dict[tuple[str, str], dict] = {
    ("GET", "api/v1/providers/costs"): {"since": "2026-01-01"},
}


def _session_of(user) -> Session:
    """A signed-in browser session of ``user``, through the session engine itself."""
    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    return Session.objects.get(session_key=store.session_key)


class World:
    """One of each object the routes name, and another user who owns some of them."""

    def __init__(self) -> None:
        self.other = make_user()
        provider = ProviderFactory()
        model = DeploymentFactory(provider=provider)
        other_token = token_create(user_id=self.other.pk, actor=SYSTEM).token
        # A role whose only permission is the one managing roles: its holders may hand it
        # on. Someone else holds it: the other user holds nothing, so holders outrank them.
        role = Role.objects.create(name="walked role", permissions=["security.roles.manage"])
        assignment = RoleAssignment.objects.create(role=role, user=make_user())
        policy = policy_create(actor=SYSTEM, name="walked", cedar_text=POLICY)
        identity_provider = IdentityProvider.objects.create(
            slug="walked", display_name="IdP", issuer="https://127.0.0.1:9/", client_id="lumina"
        )
        budget = Budget.objects.create(scope="user", subject_id=self.other.pk, limit_usd=1)
        other_session = _session_of(self.other)
        # Disabled: importing it answers 400 past authorisation, without a network call.
        mcp_server = McpServer.objects.create(
            name="walked", transport="http", url="http://127.0.0.1:9/mcp", enabled=False
        )
        walked_tool = tool_create(
            actor=SYSTEM, name="walked", kind="builtin", builtin_name="text_stats"
        )
        allow_entry = HttpAllowEntry.objects.create(prefix="https://walked.example/")
        other_execution = Execution.objects.create(
            tool_id=walked_tool.id, tool_name="walked", tool_version=1, status="succeeded",
            result={"words": 1}, actor_id=self.other.pk,
        )  # fmt: skip
        Group.objects.get_or_create(name=WALK_GROUP)
        self.sharee = make_user()
        other_document = _document_of(self.other.pk, self.sharee)
        self.values = {
            "other_document": other_document["document_id"],
            "other_version": other_document["version_id"],
            "other_sharee": str(self.sharee.pk),
            "sharee_email": self.sharee.email,
            "user_id": str(self.sharee.pk),
            "group": WALK_GROUP,
            **other_document,
            "other_session": str(other_session.public_id),
            "uidb64": "MQ",
            "token": "set-password",
            "session_id": str(other_session.public_id),
            "other": str(self.other.pk),
            "other_token": str(other_token.id),
            "other_budget": str(budget.id),
            "token_id": str(other_token.id),
            "budget_id": str(budget.id),
            "provider_id": str(provider.id),
            "model_id": str(model.id),
            "role_id": str(role.id),
            "assignment_id": str(assignment.id),
            "policy_id": str(policy.id),
            "version": "1",
            "event_id": str(OutboxEvent.objects.values_list("id", flat=True).first()),
            "slug": identity_provider.slug,
            "identity_provider_id": str(identity_provider.id),
            "ciphertext": encrypt_secret("s3cret", owner=OWNER),
            # Nobody's: OWNED routes give each signed-in caller one of its own.
            "segment_id": "00000000-0000-4000-8000-000000000000",
            "memory_id": "00000000-0000-4000-8000-000000000000",
            "block_id": "00000000-0000-4000-8000-000000000000",
            "scope": "session",
            "collection": "nobodys",
            "record_id": "nobodys",
            "topic_id": "00000000-0000-4000-8000-000000000000",
            "server": str(mcp_server.id),
            "tool": walked_tool.name,
            "number": "1",
            "entry_id": str(allow_entry.id),
            "execution_id": str(other_execution.id),
            "other_execution": str(other_execution.id),
            "visualization_id": "00000000-0000-4000-8000-000000000000",
            "key": "cost_by_day",
        }

    def own(self, user) -> dict[str, str]:
        """Path values naming the caller's own things."""
        token = token_create(user_id=user.pk, actor=SYSTEM).token
        budget = Budget.objects.create(scope="user", subject_id=user.pk, limit_usd=1)
        session = _session_of(user)
        execution = Execution.objects.create(
            tool_name="walked", tool_version=1, status="succeeded", result="x", actor_id=user.pk
        )
        return {
            **_document_of(user.pk, self.sharee),
            "token_id": str(token.id),
            "budget_id": str(budget.id),
            "session_id": str(session.public_id),
            "execution_id": str(execution.id),
        }

    def fill(self, value, values: Mapping[str, str]):
        if isinstance(value, str):
            return value.format_map(values) if value.startswith("{") else value
        if isinstance(value, dict):
            return {key: self.fill(item, values) for key, item in value.items()}
        if isinstance(value, list):
            return [self.fill(item, values) for item in value]
        return value

    def call(self, caller: Caller | None, method: str, route: str, **overrides) -> int:
        values = {**self.values, **self.fill(dict(overrides.get("path", {})), self.values)}
        if caller is not None and (method, route) in OWNED:
            values.update(OWNED[(method, route)](caller.user))
        if route.startswith("api/v1/auth/oauth/providers/"):
            values.setdefault("provider_id", values["identity_provider_id"])
            values["provider_id"] = values["identity_provider_id"]
        path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m.group(1)], route)
        query = self.fill(
            {**QUERIES.get((method, route), {}), **overrides.get("query", {})}, values
        )
        body = self.fill(BODIES.get((method, route)), values)
        client = APIClient()
        if caller is not None:
            client.force_authenticate(caller.user)
        url = f"/{path}" + (f"?{urlencode(query)}" if query else "")
        data = json.dumps(body) if body is not None else None
        response = client.generic(method, url, data=data or "", content_type="application/json")
        return response.status_code


@pytest.fixture
def world() -> World:
    return World()


# Answer 404 to a signed-in caller with nothing pending in their session (the path has no
# parameter, so a 404 cannot come from a wrong path): past authorisation all the same.
NOTHING_PENDING = {("GET", "api/v1/auth/oauth/link"), ("POST", "api/v1/auth/oauth/link")}


def through(status: int) -> bool:
    """Authorisation let the request through (what follows may still refuse the input;
    a 404 would not tell a refusal from a wrong path, so it does not count)."""
    return status not in (401, 403, 404) and status < 500


def test_every_route_is_classified():
    unclassified = [op for op in OPERATIONS if op not in ROUTES]
    assert not unclassified, f"say what these need in ROUTES: {unclassified}"
    gone = [op for op in ROUTES if op not in OPERATIONS]
    assert not gone, f"no longer routed, remove from ROUTES: {gone}"
    assert set(OTHERS) <= {op for op, need in ROUTES.items() if need == SIGNED_IN}


# Served by async code whose database access runs in other threads, with connections of
# their own: they see only committed rows.
ON_OTHER_THREADS = {
    ("POST", "api/v1/providers/completion"),
    ("POST", "api/v1/providers/stream"),
    ("POST", "api/v1/tools/run"),
}


def _params() -> list:
    return [
        pytest.param(
            method,
            route,
            id=f"{method} /{route}",
            marks=[pytest.mark.django_db(transaction=True)]
            if (method, route) in ON_OTHER_THREADS
            else [],
        )
        for method, route in OPERATIONS
    ]


@pytest.mark.parametrize(("method", "route"), _params())
def test_each_route_refuses_whoever_lacks_its_permission(world, method, route):
    need = ROUTES.get((method, route))
    if need is None:
        pytest.skip("unclassified: test_every_route_is_classified fails for it")
    if need == PUBLIC:
        # Only that nobody is refused: an unreachable identity provider may answer 502.
        assert world.call(None, method, route) not in (401, 403)
        return
    # 401, or 403 from session-only views that offer no other way to authenticate.
    assert world.call(None, method, route) in (401, 403)

    if need == SIGNED_IN:
        someone = Caller("user without a role", make_user())
        status = world.call(someone, method, route, path=world.own(someone.user))
        assert through(status) or ((method, route) in NOTHING_PENDING and status == 404)
        others = OTHERS.get((method, route))
        if others is None:
            return
        aimed = {"query": others.query, "path": others.path}
        for caller in lacking(others.permission):
            status = world.call(caller, method, route, **aimed)
            assert status == others.refusal, f"{caller.label}: {status}"
        assert through(world.call(holder(others.permission), method, route, **aimed))
        return

    for caller in lacking(need):
        status = world.call(caller, method, route)
        assert status == 403, f"{caller.label} got {status}, not 403"
    also = ALSO_NEEDS.get((method, route), ())
    allowed = holding([need, *also], label=f"holder of {need}") if also else holder(need)
    assert through(world.call(allowed, method, route))
