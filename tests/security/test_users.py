"""The custom user model: UUID keys, log in by email, argon2 hashes."""

import uuid

import pytest
from django.contrib.auth import authenticate
from django.db import IntegrityError

from lumina.kernel.models import OutboxEvent
from lumina.security.api import ensure_admin

pytestmark = pytest.mark.django_db


def test_users_have_uuid_keys_and_argon2_password_hashes(django_user_model):
    user = django_user_model.objects.create_user("Ada@Example.COM", "a long passphrase")
    assert isinstance(user.pk, uuid.UUID)
    assert user.email == "ada@example.com"
    assert user.password.startswith("argon2$")
    assert user.check_password("a long passphrase")


def test_login_is_by_email_case_insensitively(django_user_model):
    django_user_model.objects.create_user("grace@example.com", "a long passphrase")
    assert authenticate(username="GRACE@example.com", password="a long passphrase") is not None
    assert authenticate(username="grace@example.com", password="wrong") is None


def test_email_is_unique_whatever_its_case(django_user_model):
    django_user_model.objects.create_user("linus@example.com", "pw-long-enough-1")
    with pytest.raises(IntegrityError):
        django_user_model(email="LINUS@example.com").save()


def test_ensure_admin_creates_once_with_a_generated_password(client, django_user_model):
    first = ensure_admin(email="admin@localhost", password=None)
    assert first.created
    assert first.user.is_superuser
    assert len(first.generated_password) >= 20

    again = ensure_admin(email="admin@localhost", password=None)
    assert not again.created
    assert again.generated_password is None
    assert django_user_model.objects.count() == 1

    stored = django_user_model.objects.get()
    assert first.generated_password not in stored.password  # only the hash is kept
    assert OutboxEvent.objects.filter(name="security.UserCreated").count() == 1

    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": "admin@localhost", "password": first.generated_password},
    )
    assert response.status_code == 302
    assert response["Location"] == "/admin/"


def test_ensure_admin_uses_the_configured_password():
    result = ensure_admin(email="ops@example.com", password="configured pass 9")
    assert result.created
    assert result.generated_password is None
    assert authenticate(username="ops@example.com", password="configured pass 9") is not None


def test_admin_user_pages_render(client, admin_user):
    client.force_login(admin_user)
    assert client.get("/admin/security/user/").status_code == 200
    assert client.get(f"/admin/security/user/{admin_user.pk}/change/").status_code == 200
    assert client.get("/admin/security/user/add/").status_code == 200


def test_weak_passwords_are_refused_naming_the_field():
    from django.core.exceptions import ValidationError

    from lumina.security.services.users import user_create

    with pytest.raises(ValidationError) as refused:
        user_create(email="weak@example.com", password="123")
    assert set(refused.value.message_dict) == {"password"}
    assert OutboxEvent.objects.filter(name="security.UserCreated").count() == 0


def test_cli_refuses_a_weak_password_without_echoing_it(capsys):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    with pytest.raises(CommandError) as refused:
        call_command("security", "user", "create", "weak@example.com", "--password", "qwertyuiop")
    assert "too common" in str(refused.value)
    assert "qwertyuiop" not in str(refused.value)


def test_staff_who_may_change_users_cannot_grant_privileges(client, django_user_model):
    from lumina.security.models.rbac import Role, RoleAssignment

    clerk = django_user_model.objects.create_user("clerk@example.com", "pw-long-enough-1",
                                                  is_staff=True)  # fmt: skip
    RoleAssignment.objects.create(role=Role.objects.get(name="Admin"), user=clerk)
    client.force_login(clerk)
    url = f"/admin/security/user/{clerk.pk}/change/"
    page = client.get(url).content.decode()
    assert 'name="email"' in page  # an editable form: the next line is not vacuous
    assert 'name="is_superuser"' not in page
    client.post(url, {"email": clerk.email, "full_name": "x", "is_active": "on",
                      "is_superuser": "on", "is_staff": "on",
                      "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00"})  # fmt: skip
    clerk.refresh_from_db()
    assert not clerk.is_superuser


def test_passwords_of_any_composition_are_accepted(django_user_model):
    from lumina.security.services.users import user_create

    passwords = ("4718 2936 5810 3347", "ŝtelo-ĉielo-ŝnuro", "correcthorsebatterystaple")
    for number, password in enumerate(passwords):
        # An address unlike every password: the similarity validator must not interfere.
        user = user_create(email=f"member-{number}@example.com", password=password)
        assert authenticate(username=user.email, password=password) is not None
