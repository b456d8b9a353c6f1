"""Admin console pages for API tokens: list without secrets, no add page, revoke action."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from lumina.security.models import ApiToken
from lumina.security.services.tokens import token_create
from lumina.security.types import Actor
from tests.security.auth_support import events, reset_caches
from tests.security.rbac_support import give_role, make_user

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/security/apitoken/"


@pytest.fixture(autouse=True)
def _fresh_caches():
    reset_caches()
    yield
    reset_caches()


@pytest.fixture
def issued(admin_user):
    return token_create(user_id=admin_user.pk, actor=Actor.system("tests"), name="deploy bot")


def test_the_token_list_shows_prefix_and_dates_but_never_the_hash(client, admin_user, issued):
    client.force_login(admin_user)
    page = client.get(CHANGELIST).content.decode()
    assert issued.token.prefix in page
    assert "deploy bot" in page
    stored = ApiToken.objects.get()
    assert stored.secret_hash not in page
    assert issued.secret not in page
    detail = client.get(f"{CHANGELIST}{stored.pk}/change/")
    assert detail.status_code == 200
    assert stored.secret_hash not in detail.content.decode()


def test_there_is_no_add_page(client, admin_user):
    client.force_login(admin_user)
    assert client.get(f"{CHANGELIST}add/").status_code == 403


def test_the_revoke_action_revokes_and_audits(client, admin_user, issued):
    client.force_login(admin_user)
    response = client.post(
        CHANGELIST,
        {"action": "revoke_tokens", "_selected_action": [str(issued.token.id)]},
        follow=True,
    )
    assert response.status_code == 200
    assert ApiToken.objects.get().revoked_at is not None
    (event,) = events("security.ApiTokenRevoked")
    assert event["actor_id"] == str(admin_user.pk)


def test_django_model_permissions_grant_nothing(client, django_user_model, issued):
    staff = django_user_model.objects.create_user("viewer@example.com", None, is_staff=True)
    staff.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_apitoken", "change_apitoken"])
    )
    assert staff.get_all_permissions() == set()
    client.force_login(staff)
    assert client.get(CHANGELIST).status_code == 403
    client.post(CHANGELIST, {"action": "revoke_tokens", "_selected_action": [str(issued.token.id)]})
    assert ApiToken.objects.get().revoked_at is None


def test_token_managers_revoke_in_the_console_but_never_a_superusers_token(client, admin_user):
    plain = make_user()
    theirs = token_create(user_id=plain.pk, actor=Actor.system("tests")).token
    roots = token_create(user_id=admin_user.pk, actor=Actor.system("tests")).token
    manager = make_user(is_staff=True)
    give_role(manager, "Admin")  # security.tokens.manage
    client.force_login(manager)
    assert client.get(CHANGELIST).status_code == 200
    response = client.post(
        CHANGELIST,
        {"action": "revoke_tokens", "_selected_action": [str(theirs.id), str(roots.id)]},
        follow=True,
    )
    assert response.status_code == 200
    assert ApiToken.objects.get(pk=theirs.id).revoked_at is not None
    assert ApiToken.objects.get(pk=roots.id).revoked_at is None
    assert "only a superuser may change a superuser" in response.content.decode()
