"""Every admin page refuses staff lacking its permission and admits staff holding it.

The attack: being staff (with Django's model permissions, or none at all) opened admin
pages that no role allowed. Now ``is_staff`` only opens the console's door; each page
asks ``authorize`` for the Lumina permission in ``ADMIN``. The pages are taken from the
admin site's registry and URLs, so a page added later is walked too:
``test_every_admin_page_is_classified`` fails until ``ADMIN`` (or ``CUSTOM_PAGES``, or
``DOOR_PAGES``) says what it needs.

For each registered model: the changelist, history and change pages need ``view``,
saving the change page ``change``, the add page ``add`` and the delete page ``delete``
(None: nobody, superusers included). Staff without a role, staff Viewers and staff
holding every other declared permission are refused; staff holding a role with the one
permission are admitted (the control); people who are not staff never get past the door.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import URLResolver, reverse
from django.utils import timezone

from lumina.kernel.permissions import catalogue
from lumina.memory.models.records import ExtractionError, MemoryRecord, ScopePolicy
from lumina.memory.models.topics import Entity, Relation, Topic
from lumina.memory.models.vectors import Collection, VectorRecord
from lumina.providers.models.registry import Price
from lumina.providers.models.usage import Budget, DailyUsage, UsageRecord
from lumina.security.admin_site import LuminaAdminSite
from lumina.security.api import (
    AdminPermissions,
    PermissionAdmin,
    PermissionInline,
    encrypt_secret,
)
from lumina.security.events.users import UserCreated
from lumina.security.models.crypto import DataKey
from lumina.security.models.mfa import BackupCodesDevice, TotpDevice
from lumina.security.models.oidc import ExternalIdentity, IdentityProvider
from lumina.security.models.rbac import Role, RoleAssignment
from lumina.security.models.tokens import ApiToken
from lumina.security.services.audit import audit_append
from lumina.security.services.policies import policy_create
from lumina.security.services.tokens import token_create
from lumina.security.types import Actor
from lumina.tools.models import Execution, HttpAllowEntry, McpServer, Tool
from lumina.tools.services.registry import tool_create
from lumina.ui.models import Document, DocumentVersion, Visualization
from tests.providers.factories import DeploymentFactory, ProviderFactory
from tests.security.access_support import holder, lacking, make_user

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system("tests")
P = AdminPermissions

ADMIN: dict[str, AdminPermissions] = {
    "security.auditentry": P(view="security.audit.read"),
    "security.datakey": P(view="security.keys.read"),
    "security.totpdevice": P(view="security.users.manage"),
    "security.backupcodesdevice": P(view="security.users.manage"),
    "security.identityprovider": P.full("security.identity_providers.manage"),
    "security.externalidentity": P(view="security.users.manage", delete="security.users.manage"),
    "security.policy": P.full("security.policies.manage"),
    "security.role": P.full("security.roles.manage"),
    "security.roleassignment": P(
        view="security.roles.manage", add="security.roles.manage", delete="security.roles.manage"
    ),
    "auth.group": P.full("security.roles.manage"),
    "security.apitoken": P(view="security.tokens.manage"),
    "security.user": P.full("security.users.manage"),
    "providers.provider": P(
        view="providers.read",
        add="providers.add",
        change="providers.change",
        delete="providers.delete",
    ),
    "providers.deployment": P(
        view="providers.read",
        add="providers.change",
        change="providers.change",
        delete="providers.change",
    ),
    "providers.price": P(view="providers.read"),
    "providers.usagerecord": P(view="providers.read"),
    "providers.dailyusage": P(view="providers.read"),
    "providers.budget": P(
        view="providers.read",
        add="providers.change",
        change="providers.change",
        delete="providers.change",
    ),
    "tools.mcpserver": P.full("tools.manage"),
    "tools.tool": P(
        view="tools.read", add="tools.manage", change="tools.manage", delete="tools.manage"
    ),
    "tools.httpallowentry": P.full("tools.manage"),
    "tools.execution": P(view="tools.read"),
}
# Memories: people see their own (everyone's with memory.manage); changes go through
# the API and CLI, which keep history.
ADMIN.update(
    {
        "memory.memoryrecord": P(view="memory.read"),
        "memory.extractionerror": P(view="memory.read"),
        "memory.scopepolicy": P(view="memory.read"),
    }
)
# Vector collections: created, changed and deleted through the services (the HNSW index);
# records are read-only here.
ADMIN.update(
    {
        "memory.collection": P(
            view="memory.read", add="memory.write", change="memory.write", delete="memory.write"
        ),
        "memory.vectorrecord": P(view="memory.read"),
    }
)
# Topics and the entity graph: computed from memories, read-only here.
ADMIN.update(
    {
        "memory.topic": P(view="memory.read"),
        "memory.entity": P(view="memory.read"),
        "memory.relation": P(view="memory.read"),
    }
)
# Documents: people see those they may read (everyone's with documents.manage); renames and
# deletes go through the services, documents are created through the API.
ADMIN.update(
    {
        "ui.document": P(view="documents.read", change="documents.edit", delete="documents.edit"),
        "ui.documentversion": P(view="documents.read"),
    }
)
# Charts: anyone's, for operators; specs are written through the API (it checks them).
ADMIN["ui.visualization"] = P(view="visualizations.manage", delete="visualizations.manage")
STANDARD_PAGES = ("changelist", "add", "history", "delete", "change")
# Pages a model admin adds to the standard ones, and the access each needs.
CUSTOM_PAGES: dict[str, dict[str, str]] = {
    "security.user": {"auth_user_password_change": "change"},
}
# The site's own pages: the door (staff only), each grants nothing by itself.
DOOR_PAGES = {
    "index",
    "login",
    "logout",
    "password_change",
    "password_change_done",
    "autocomplete",
    "jsi18n",
    "view_on_site",
    "app_list",
    "mfa_enrol",
}


# --- One object per model -----------------------------------------------------------------


def _object(label: str, owner):
    """An instance to open change, history and delete pages on. ``owner`` is the staff
    member the page is opened by, where a page shows people only their own rows."""
    someone = make_user()  # holds nothing, so every holder outranks them

    def provider() -> IdentityProvider:
        return IdentityProvider.objects.create(
            slug=f"idp-{uuid.uuid4().hex[:8]}",
            display_name="IdP",
            issuer="https://127.0.0.1:9/",
            client_id="lumina",
        )

    def role() -> Role:
        return Role.objects.create(
            name=f"walk {uuid.uuid4().hex[:8]}", permissions=["security.roles.manage"]
        )

    makers = {
        "security.auditentry": lambda: audit_append(
            event=UserCreated(user_id=someone.pk, email=someone.email, is_staff=False)
        ),
        "security.datakey": lambda: (
            encrypt_secret("s3cret", owner="tests.Walk:1:secret"),
            DataKey.objects.latest("created_at"),
        )[1],
        "security.totpdevice": lambda: TotpDevice.objects.create(user=someone, name="app"),
        "security.backupcodesdevice": lambda: BackupCodesDevice.objects.create(
            user=someone, name="b", salt=b"0" * 16
        ),
        "security.identityprovider": provider,
        "security.externalidentity": lambda: ExternalIdentity.objects.create(
            user=someone, provider=provider(), subject="sub"
        ),
        "security.policy": lambda: policy_create(
            actor=SYSTEM,
            name=f"walk {uuid.uuid4().hex[:8]}",
            cedar_text='forbid (principal, action == Lumina::Action::"memory.read", resource) '
            'when { context.ip == "203.0.113.7" };',
        ),
        "security.role": role,
        "security.roleassignment": lambda: RoleAssignment.objects.create(role=role(), user=someone),
        "auth.group": lambda: Group.objects.create(name=f"walk {uuid.uuid4().hex[:8]}"),
        "security.apitoken": lambda: ApiToken.objects.get(
            pk=token_create(user_id=someone.pk, actor=SYSTEM).token.id
        ),
        "security.user": lambda: someone,
        "providers.provider": ProviderFactory,
        "providers.deployment": DeploymentFactory,
        "providers.price": lambda: Price.objects.create(
            model=f"walk-{uuid.uuid4().hex[:8]}", input_price=1, output_price=2, source="tests"
        ),
        "providers.usagerecord": lambda: UsageRecord.objects.create(
            occurred_at=timezone.now(), operation="chat", status="ok", user_id=owner.pk
        ),
        "providers.dailyusage": lambda: DailyUsage.objects.create(
            day=dt.date(2026, 5, 4), operation="chat", user_id=owner.pk, requests=1
        ),
        "providers.budget": lambda: Budget.objects.create(
            scope="user", subject_id=owner.pk, limit_usd=1
        ),
        "tools.mcpserver": lambda: McpServer.objects.create(
            name=f"walk-{uuid.uuid4().hex[:8]}", transport="http", url="http://127.0.0.1:9/mcp"
        ),
        "tools.tool": lambda: Tool.objects.get(
            pk=tool_create(
                actor=SYSTEM,
                name=f"walk_{uuid.uuid4().hex[:8]}",
                kind="builtin",
                builtin_name="time_now",
            ).id
        ),
        "tools.httpallowentry": lambda: HttpAllowEntry.objects.create(
            prefix=f"https://walk-{uuid.uuid4().hex[:8]}.example/"
        ),
        "tools.execution": lambda: Execution.objects.create(
            tool_name="walked", tool_version=1, status="succeeded", actor_id=owner.pk
        ),
        "ui.visualization": lambda: Visualization.objects.create(
            owner_id=someone.pk, name="walked", spec={"mark": "bar"}
        ),
    }
    makers.update(
        {
            "memory.memoryrecord": lambda: MemoryRecord.objects.create(
                owner_id=owner.pk, layer="semantic", text="Walker lives in Porto",
                fact_key="walker|lives_in", label="porto",
            ),
            "memory.extractionerror": lambda: ExtractionError.objects.create(
                owner_id=owner.pk, extractor="llm", error="malformed answer"
            ),
            "memory.scopepolicy": lambda: ScopePolicy.objects.create(
                owner_id=owner.pk, scope="session", ttl_days=7
            ),
        }
    )  # fmt: skip

    def collection() -> Collection:
        return Collection.objects.create(
            name=f"walk-{uuid.uuid4().hex[:8]}", owner_id=owner.pk, embedding_model="", dimension=2
        )

    makers["memory.collection"] = collection
    makers["memory.vectorrecord"] = lambda: VectorRecord.objects.create(
        collection=collection(), external_id="w", vector_0=[1.0, 0.0]
    )

    def entity(key: str) -> Entity:
        return Entity.objects.create(owner_id=owner.pk, key=key, name=key.title())

    def document() -> Document:
        return Document.objects.create(title="walked", owner_id=owner.pk)

    makers["ui.document"] = document
    makers["ui.documentversion"] = lambda: DocumentVersion.objects.create(
        document=document(), name="walked", upto_seq=0, state=b"\x00\x00"
    )
    makers["memory.topic"] = lambda: Topic.objects.create(
        owner_id=owner.pk, scope="user", label="walking, porto", keywords=["walking"]
    )
    makers["memory.entity"] = lambda: entity("porto")
    makers["memory.relation"] = lambda: Relation.objects.create(
        owner_id=owner.pk, source=entity("walker"), target=entity("porto"), kind="lives_in"
    )
    return makers[label]()


def _model_admin(label: str):
    return next(
        ma for model, ma in admin.site._registry.items() if model._meta.label_lower == label
    )


def _pages(label: str, obj) -> list[tuple[str, str, str]]:
    """(access needed, method, URL) of every page of ``label``'s admin."""
    info = label.replace(".", "_")
    pk = obj.pk
    pages = [
        ("view", "GET", reverse(f"admin:{info}_changelist")),
        ("view", "GET", reverse(f"admin:{info}_history", args=[pk])),
        ("view", "GET", reverse(f"admin:{info}_change", args=[pk])),
        ("change", "POST", reverse(f"admin:{info}_change", args=[pk])),
        ("add", "GET", reverse(f"admin:{info}_add")),
        ("delete", "GET", reverse(f"admin:{info}_delete", args=[pk])),
    ]
    for name, access in CUSTOM_PAGES.get(label, {}).items():
        pages.append((access, "GET", reverse(f"admin:{name}", args=[pk])))
    return pages


def _needed(spec: AdminPermissions, access: str) -> str | None:
    return (spec.view or spec.change) if access == "view" else getattr(spec, access)


def _open(user, method: str, url: str):
    client = Client()
    client.force_login(user)
    return client.post(url, {}) if method == "POST" else client.get(url)


def _refused(response) -> bool:
    """A 403, or a redirect away from the page (the door, or "no such object")."""
    if response.status_code == 403:
        return True
    return response.status_code == 302 and response["Location"].split("?")[0] in (
        reverse("admin:index"),
        reverse("admin:login"),
    )


# --- Tests --------------------------------------------------------------------------------


def test_the_admin_site_is_lumina_s_set_through_the_app_config():
    from django.apps import apps

    config = apps.get_app_config("admin")
    assert config.default_site == "lumina.security.admin_site.LuminaAdminSite"
    assert type(admin.site._wrapped) is LuminaAdminSite


def test_every_admin_page_is_classified():
    registered = {model._meta.label_lower: ma for model, ma in admin.site._registry.items()}
    assert set(registered) == set(ADMIN), "say what each admin page needs in ADMIN"
    for label, model_admin in registered.items():
        assert isinstance(model_admin, PermissionAdmin), label
        assert model_admin.permissions == ADMIN[label], label
        for inline in model_admin.inlines:
            assert issubclass(inline, PermissionInline), inline
        info = label.replace(".", "_")
        names = {url.name for url in model_admin.get_urls() if url.name}
        standard = {f"{info}_{page}" for page in STANDARD_PAGES}
        assert names - standard == set(CUSTOM_PAGES.get(label, {})), label
    site_names = {
        url.name
        for url in admin.site.get_urls()
        if not isinstance(url, URLResolver) and url.name is not None
    }
    assert site_names == DOOR_PAGES
    assert set(catalogue()) >= {name for spec in ADMIN.values() for name in spec.named()}


@pytest.mark.parametrize("label", sorted(ADMIN))
def test_each_admin_page_refuses_staff_lacking_its_permission(label):
    spec = ADMIN[label]
    checked = 0
    for access, method, _ in _pages(label, _object(label, make_user())):
        needed = _needed(spec, access)
        if needed is None:
            # Nobody: not even a superuser.
            root = make_user(is_staff=True, is_superuser=True)
            pages = _pages(label, _object(label, root))
            url = next(u for a, m, u in pages if (a, m) == (access, method))
            assert _open(root, method, url).status_code == 403, (access, method, url)
            continue
        allowed = holder(needed, staff=True)
        pages = _pages(label, _object(label, allowed.user))
        url = next(u for a, m, u in pages if (a, m) == (access, method))
        # Django's rule, kept: whoever may change may also look.
        implied = (spec.change,) if access == "view" and spec.change else ()
        for caller in lacking(needed, staff_only=True, implied_by=implied):
            response = _open(caller.user, method, url)
            assert _refused(response), (caller.label, method, url, response.status_code)
        response = _open(allowed.user, method, url)
        if method == "GET":
            assert response.status_code == 200, (allowed.label, url, response.status_code)
        else:  # a form with errors, or saved: either way past the permission check
            assert response.status_code in (200, 302), (allowed.label, url)
            assert not _refused(response), (allowed.label, url)
        checked += 1
    assert checked  # at least the changelist was opened by a holder


def test_the_door_lets_staff_in_and_grants_them_nothing():
    staff = make_user(is_staff=True)
    client = Client()
    client.force_login(staff)
    index = client.get(reverse("admin:index"))
    assert index.status_code == 200
    html = index.content.decode()
    assert "permission to view or edit anything" in html
    assert not any(
        reverse(f"admin:{label.replace('.', '_')}_changelist") in html for label in ADMIN
    )
    for app_label in {label.split(".")[0] for label in ADMIN}:
        assert client.get(reverse("admin:app_list", args=[app_label])).status_code == 404
    autocomplete = client.get(
        reverse("admin:autocomplete"),
        {"app_label": "security", "model_name": "roleassignment", "field_name": "user"},
    )
    assert autocomplete.status_code == 403


def test_the_door_stays_shut_to_people_who_are_not_staff_whatever_they_hold():
    owner = make_user()
    Role.objects.get(name="Owner").assignments.create(user=owner)
    client = Client()
    client.force_login(owner)
    for url in (reverse("admin:index"), reverse("admin:security_user_changelist")):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))
