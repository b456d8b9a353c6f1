"""Admin console and CLI for policies: validated Cedar, versions kept, a way out of lock-outs."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from lumina.security.models.policies import Policy, PolicyVersion
from lumina.security.services import authorization
from lumina.security.services.policies import policy_create
from lumina.security.services.rbac import roles_seed_builtin
from tests.security.rbac_support import SYSTEM, events_named

pytestmark = pytest.mark.django_db

FORBID_ALL = "forbid (principal, action, resource);"


@pytest.fixture(autouse=True)
def _rbac_state(db):
    roles_seed_builtin()
    authorization.cache_clear()
    yield
    authorization.cache_clear()


@pytest.fixture
def console(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def form(name: str, cedar: str, **extra) -> dict:
    return {
        "name": name,
        "description": "",
        "enabled": "on",
        "policy": cedar,
        "versions-TOTAL_FORMS": "0",
        "versions-INITIAL_FORMS": "0",
        "versions-MIN_NUM_FORMS": "0",
        "versions-MAX_NUM_FORMS": "1000",
        **extra,
    }


def test_a_policy_added_and_changed_in_the_console_keeps_its_versions(console):
    added = console.post("/admin/security/policy/add/", form("Lock", FORBID_ALL))
    assert added.status_code == 302, added.content[:3000]
    policy = Policy.objects.get(name="Lock")

    changed_text = 'forbid (principal, action == Lumina::Action::"tools.execute", resource);'
    changed = console.post(
        f"/admin/security/policy/{policy.pk}/change/",
        form("Lock", changed_text, **{"versions-TOTAL_FORMS": "1", "versions-INITIAL_FORMS": "1"}),
    )
    assert changed.status_code == 302, changed.content[:3000]

    assert list(PolicyVersion.objects.order_by("version").values_list("cedar", flat=True)) == [
        FORBID_ALL,
        changed_text,
    ]
    page = console.get(f"/admin/security/policy/{policy.pk}/change/").content.decode()
    assert "tools.execute" in page
    assert len(events_named("security.PolicyUpdated")) == 1


def test_the_console_shows_cedar_errors_with_their_position(console):
    response = console.post("/admin/security/policy/add/", form("Bad", "forbid (principal"))

    assert response.status_code == 200
    assert "line 1, column" in response.content.decode()
    assert not Policy.objects.exists()


def test_the_cli_disables_and_enables_a_policy():
    policy = policy_create(actor=SYSTEM, name="Lock", cedar_text=FORBID_ALL)
    out = StringIO()

    call_command("security", "policy", "disable", str(policy.id), stdout=out)
    assert not Policy.objects.get(pk=policy.id).enabled
    call_command("security", "policy", "list", stdout=out)
    assert "disabled  Lock" in out.getvalue()
    call_command("security", "policy", "enable", str(policy.id), stdout=out)
    assert Policy.objects.get(pk=policy.id).enabled


def test_the_cli_names_an_unknown_policy():
    with pytest.raises(CommandError, match="no policy"):
        call_command("security", "policy", "disable", "not-a-uuid")
