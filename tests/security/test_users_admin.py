"""Taking over an account in the console: only whoever holds at least as much may.

The attack: staff reset a superuser's password with Django's ``change_user`` page, then
logged in as the superuser. Now the user pages need ``security.users.manage``, and
changing an account (password, email, active flag, second factor, linked identities,
tokens) needs to hold everything the account holds: a superuser's only a superuser.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import Group, Permission
from django.test import Client

from lumina.security.models.mfa import TotpDevice
from lumina.security.models.oidc import ExternalIdentity, IdentityProvider
from lumina.security.models.rbac import Role, RoleAssignment
from tests.security.mfa_support import enrolled_user
from tests.security.rbac_support import events_named, give_role, make_user

pytestmark = pytest.mark.django_db

OLD = "a long passphrase 9"  # rbac_support.make_user's password
NEW = "an entirely new passphrase 31"
USERS = "/admin/security/user"


def console_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def admin_staff():
    """Staff holding the Admin role: security.users.manage, tokens, roles, audit…"""
    staff = make_user(is_staff=True)
    give_role(staff, "Admin")
    return staff


def set_password(client: Client, user, password: str = NEW):
    return client.post(
        f"{USERS}/{user.pk}/password/",
        {"password1": password, "password2": password, "usable_password": "true"},
    )


def change_form(user, **changes) -> dict:
    form = {
        "email": user.email,
        "full_name": user.full_name,
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
    }
    if user.is_active:
        form["is_active"] = "on"
    form.update(changes)
    return {key: value for key, value in form.items() if value is not None}


def test_staff_cannot_reset_a_superusers_password_and_log_in_as_them():
    root = make_user(is_staff=True, is_superuser=True)
    client = console_for(admin_staff())

    assert client.get(f"{USERS}/{root.pk}/password/").status_code == 403
    assert set_password(client, root).status_code == 403

    root.refresh_from_db()
    assert root.check_password(OLD)
    assert authenticate(username=root.email, password=NEW) is None


def test_the_same_staff_may_reset_an_ordinary_users_password():
    """The control: the page works for accounts the actor outranks."""
    plain = make_user()
    response = set_password(console_for(admin_staff()), plain)
    assert response.status_code == 302, response.content.decode()[:500]
    plain.refresh_from_db()
    assert plain.check_password(NEW)


def test_staff_cannot_change_a_superusers_email_or_deactivate_them():
    root = make_user(is_staff=True, is_superuser=True)
    client = console_for(admin_staff())
    page = client.get(f"{USERS}/{root.pk}/change/")
    assert page.status_code == 200  # seeing is allowed; the page is read-only
    assert 'name="email"' not in page.content.decode()
    hijack = change_form(root, email="mallory@example.com", is_active=None)
    assert client.post(f"{USERS}/{root.pk}/change/", hijack).status_code == 403
    root.refresh_from_db()
    assert root.email != "mallory@example.com"
    assert root.is_active


def test_an_admin_cannot_take_over_an_owner():
    owner = make_user()
    give_role(owner, "Owner")  # holds key rotation and decryption, which Admin lacks
    client = console_for(admin_staff())
    assert set_password(client, owner).status_code == 403
    owner.refresh_from_db()
    assert owner.check_password(OLD)


def test_nobody_grants_themselves_staff_superuser_or_a_group():
    powerful = Group.objects.create(name="powerful")
    RoleAssignment.objects.create(role=Role.objects.get(name="Owner"), group=powerful)
    staff = admin_staff()
    client = console_for(staff)
    url = f"{USERS}/{staff.pk}/change/"
    page = client.get(url).content.decode()
    assert 'name="email"' in page  # the form is editable: the guard below is not vacuous
    assert 'name="is_superuser"' not in page
    assert 'name="groups"' not in page
    grab = change_form(staff, full_name="me", is_staff="on", is_superuser="on",
                       groups=str(powerful.pk))  # fmt: skip
    assert client.post(url, grab).status_code == 302
    staff.refresh_from_db()
    assert staff.full_name == "me"
    assert not staff.is_superuser
    assert not staff.groups.exists()


def test_django_model_permissions_open_no_user_page():
    clerk = make_user(is_staff=True)
    clerk.user_permissions.add(*Permission.objects.filter(content_type__app_label="security"))
    assert clerk.get_all_permissions() == set()
    client = console_for(clerk)
    plain = make_user()
    assert client.get(f"{USERS}/").status_code == 403
    assert set_password(client, plain).status_code == 403
    plain.refresh_from_db()
    assert plain.check_password(OLD)


def test_the_mfa_reset_action_spares_accounts_the_actor_does_not_outrank():
    root, root_device = enrolled_user("root.mfa@example.com", staff=True)
    root.is_superuser = True
    root.save()
    plain, plain_device = enrolled_user("plain.mfa@example.com")
    client = console_for(admin_staff())
    response = client.post(
        "/admin/security/totpdevice/",
        {"action": "reset_mfa", "_selected_action": [root_device.pk, plain_device.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert TotpDevice.objects.filter(user=root).exists()
    assert not TotpDevice.objects.filter(user=plain).exists()
    (refusal,) = events_named("security.AccessDenied")
    assert refusal.payload["resource_id"] == str(root.pk)


def test_unlinking_a_superusers_identity_is_refused():
    root = make_user(is_staff=True, is_superuser=True)
    plain = make_user()
    provider = IdentityProvider.objects.create(
        slug="idp", display_name="IdP", issuer="https://127.0.0.1:9/", client_id="lumina"
    )
    rooted = ExternalIdentity.objects.create(user=root, provider=provider, subject="root")
    theirs = ExternalIdentity.objects.create(user=plain, provider=provider, subject="plain")
    client = console_for(admin_staff())
    pages = "/admin/security/externalidentity"
    assert client.get(f"{pages}/{rooted.pk}/delete/").status_code == 403
    assert client.post(f"{pages}/{rooted.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.get(f"{pages}/{theirs.pk}/delete/").status_code == 200
    assert ExternalIdentity.objects.filter(pk=rooted.pk).exists()
