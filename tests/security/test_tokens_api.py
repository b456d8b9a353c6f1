"""The API token endpoints: shown once, stored hashed, scoped, revocable, per-owner."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from lumina.security.models import ApiToken
from tests.security.auth_support import TOKENS, error_of, events, reset_caches
from tests.security.rbac_support import give_role, make_user

pytestmark = pytest.mark.django_db

TOKEN_FORMAT = re.compile(r"lum_[A-Za-z0-9_-]{43}")


@pytest.fixture(autouse=True)
def _fresh_caches():
    reset_caches()
    yield
    reset_caches()


@pytest.fixture
def ada(django_user_model):
    return django_user_model.objects.create_user("ada@example.com", None)


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob@example.com", None)


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("ops@example.com", None, is_staff=True)


def user_with_role(role: str, **extra):
    user = make_user(**extra)
    give_role(user, role)
    return user


def admin_user_other():
    return make_user(is_superuser=True, is_staff=True)


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def create(client: APIClient, **body):
    return client.post(TOKENS, body, format="json")


def test_create_shows_the_token_once_and_stores_only_its_hash(ada):
    response = create(client_for(ada), name="ci", scopes=["providers.*", "memory.read"])
    assert response.status_code == 201, response.content
    body = response.json()
    secret = body["token"]
    assert TOKEN_FORMAT.fullmatch(secret)
    assert body["prefix"] == secret[:12]
    assert body["scopes"] == ["providers.*", "memory.read"]
    assert body["status"] == "active"
    assert "secret_hash" not in body

    stored = ApiToken.objects.get(pk=body["id"])
    assert stored.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM security_apitoken")
        assert secret not in str(cursor.fetchall())


def test_list_and_detail_never_show_the_token(ada):
    client = client_for(ada)
    created = create(client, name="ci").json()
    listing = client.get(TOKENS)
    assert listing.status_code == 200
    assert listing.json()["count"] == 1
    (row,) = listing.json()["results"]
    assert row["id"] == created["id"]
    detail = client.get(f"{TOKENS}/{created['id']}")
    assert detail.status_code == 200
    for response in (listing, detail):
        assert created["token"] not in response.content.decode()
        assert "token" not in response.json()


def test_create_publishes_api_token_created_without_the_token(ada):
    body = create(client_for(ada), name="ci", scopes=["memory.read"]).json()
    (event,) = events("security.ApiTokenCreated")
    assert event["token_id"] == body["id"]
    assert event["user_id"] == str(ada.pk)
    assert event["actor_id"] == str(ada.pk)
    assert event["scopes"] == ["memory.read"]
    assert body["token"] not in str(event)
    assert body["prefix"] == event["prefix"]


def test_scopes_default_to_everything_the_user_may_do(ada):
    assert create(client_for(ada)).json()["scopes"] == ["*"]


@pytest.mark.parametrize(
    "scopes",
    [
        ["providers"],
        ["providers."],
        [".read"],
        ["*.read"],
        ["memory.re ad"],
        ["memory.read-all"],
        ["memory.**"],
        ["mémoire.read"],
        [""],
        [],
        "providers.*",
        ["memory.read", "nope"],
        ["x." + "a" * 120],
    ],
)
def test_invalid_scopes_are_a_400_naming_scopes(ada, scopes):
    error = error_of(create(client_for(ada), scopes=scopes), 400)
    assert any(name == "scopes" or name.startswith("scopes.") for name in error["fields"])
    assert ApiToken.objects.count() == 0


@pytest.mark.parametrize(
    "scopes", [["*"], ["providers.*"], ["memory.read", "memory.space.write"], ["a_b.c_1"]]
)
def test_valid_scopes_are_accepted(ada, scopes):
    assert create(client_for(ada), scopes=scopes).status_code == 201


def test_expiry_in_the_past_is_a_400_naming_expires_at(ada):
    past = (timezone.now() - dt.timedelta(minutes=1)).isoformat()
    error = error_of(create(client_for(ada), expires_at=past), 400)
    assert "expires_at" in error["fields"]


def test_malformed_expiry_and_long_names_are_400s_naming_the_field(ada):
    assert "expires_at" in error_of(create(client_for(ada), expires_at="soon"), 400)["fields"]
    assert "name" in error_of(create(client_for(ada), name="n" * 101), 400)["fields"]


def test_a_future_expiry_is_kept(ada):
    future = timezone.now() + dt.timedelta(days=30)
    body = create(client_for(ada), expires_at=future.isoformat()).json()
    assert abs(dt.datetime.fromisoformat(body["expires_at"]) - future) < dt.timedelta(seconds=1)


def test_revoke_sets_revoked_at_once_and_is_audited_once(ada):
    client = client_for(ada)
    token_id = create(client).json()["id"]
    first = client.delete(f"{TOKENS}/{token_id}")
    assert first.status_code == 200
    assert first.json()["status"] == "revoked"
    revoked_at = first.json()["revoked_at"]
    again = client.delete(f"{TOKENS}/{token_id}")
    assert again.json()["revoked_at"] == revoked_at
    (event,) = events("security.ApiTokenRevoked")
    assert event["token_id"] == token_id
    assert event["actor_id"] == str(ada.pk)


def test_people_cannot_see_or_revoke_others_tokens(ada, bob):
    token_id = create(client_for(bob)).json()["id"]
    client = client_for(ada)
    assert error_of(client.get(f"{TOKENS}/{token_id}"), 404)["code"] == "not_found"
    assert error_of(client.delete(f"{TOKENS}/{token_id}"), 404)["code"] == "not_found"
    assert error_of(client.get(TOKENS, {"user": str(bob.pk)}), 403)["code"] == "permission_denied"
    assert error_of(create(client, user=str(bob.pk)), 403)["code"] == "permission_denied"
    assert ApiToken.objects.get(pk=token_id).revoked_at is None


def test_staff_without_a_role_may_not_list_or_revoke_other_users_tokens(staff, bob, admin_user):
    """The attack: is_staff alone listed and revoked a superuser's tokens."""
    root_token = create(client_for(admin_user)).json()
    bob_token = create(client_for(bob)).json()
    client = client_for(staff)
    for owner, token in ((admin_user, root_token), (bob, bob_token)):
        listing = client.get(TOKENS, {"user": str(owner.pk)})
        assert error_of(listing, 403)["code"] == "permission_denied"
        assert error_of(client.get(f"{TOKENS}/{token['id']}"), 404)["code"] == "not_found"
        assert error_of(client.delete(f"{TOKENS}/{token['id']}"), 404)["code"] == "not_found"
    assert ApiToken.objects.count() == 2
    assert not ApiToken.objects.filter(revoked_at__isnull=False).exists()
    refusals = events("security.AccessDenied")
    assert [event["resource_id"] for event in refusals] == [str(admin_user.pk), str(bob.pk)]


def test_token_managers_may_list_and_revoke_but_not_mint_other_users_tokens(bob):
    manager = user_with_role("Admin")  # holds security.tokens.manage
    created = create(client_for(bob), name="bob's own")
    assert created.status_code == 201
    client = client_for(manager)
    listing = client.get(TOKENS, {"user": str(bob.pk)}).json()
    assert [row["id"] for row in listing["results"]] == [created.json()["id"]]
    assert client.delete(f"{TOKENS}/{created.json()['id']}").status_code == 200
    assert client.get(TOKENS).json()["count"] == 0  # the manager's own list stays their own
    # A token carries its user's rights: minting one for someone else would borrow them.
    refused = create(client, user=str(bob.pk), name="for bob")
    assert error_of(refused, 403)["code"] == "permission_denied"
    assert ApiToken.objects.filter(user=bob, revoked_at__isnull=True).count() == 0


@pytest.mark.parametrize("target", ["superuser", "owner"])
def test_token_managers_may_not_touch_the_tokens_of_someone_holding_more(admin_user, target):
    """Only a superuser manages a superuser's tokens; an Admin not those of an Owner."""
    holder = admin_user if target == "superuser" else user_with_role("Owner")
    token = create(client_for(holder)).json()
    client = client_for(user_with_role("Admin"))
    assert error_of(client.get(TOKENS, {"user": str(holder.pk)}), 403)["code"] == (
        "permission_denied"
    )
    assert error_of(client.get(f"{TOKENS}/{token['id']}"), 404)["code"] == "not_found"
    assert error_of(client.delete(f"{TOKENS}/{token['id']}"), 404)["code"] == "not_found"
    assert ApiToken.objects.get(pk=token["id"]).revoked_at is None
    (refusal,) = events("security.AccessDenied")
    expected = "only a superuser" if target == "superuser" else "holds permissions"
    assert expected in refusal["reason"]
    # The control: a superuser may.
    assert client_for(admin_user_other()).delete(f"{TOKENS}/{token['id']}").status_code == 200


def test_staff_cannot_mint_a_token_for_a_superuser(staff, django_user_model):
    root = django_user_model.objects.create_superuser("root2@example.com", "pw-long-enough-1")
    refused = create(client_for(staff), user=str(root.pk))
    assert error_of(refused, 403)["code"] == "permission_denied"
    assert not ApiToken.objects.filter(user=root).exists()


def test_superusers_may_mint_tokens_for_others(admin_user, bob):
    created = create(client_for(admin_user), user=str(bob.pk), name="for bob")
    assert created.status_code == 201
    assert created.json()["user_id"] == str(bob.pk)


def test_tokens_cannot_be_created_for_unknown_or_inactive_users(admin_user, bob):
    bob.is_active = False
    bob.save()
    client = client_for(admin_user)
    assert "user" in error_of(create(client, user=str(bob.pk)), 400)["fields"]
    assert "user" in error_of(create(client, user=str(uuid.uuid4())), 400)["fields"]
    assert "user" in error_of(create(client, user="not-a-uuid"), 400)["fields"]


def test_unknown_token_id_is_a_404(ada):
    assert client_for(ada).get(f"{TOKENS}/{uuid.uuid4()}").status_code == 404


def test_token_endpoints_need_authentication():
    response = APIClient().get(TOKENS)
    assert error_of(response, 401)["code"] == "not_authenticated"


def test_a_token_cannot_mint_a_token_reaching_further_than_itself(ada):
    scoped = create(client_for(ada), scopes=["security.tokens.*", "memory.read"]).json()["token"]
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {scoped}")
    assert error_of(create(client, scopes=["*"]), 403)["code"] == "permission_denied"
    assert error_of(create(client, scopes=["memory.*"]), 403)["code"] == "permission_denied"
    assert create(client, scopes=["memory.read"]).status_code == 201


def test_a_token_without_a_token_scope_cannot_manage_tokens(ada):
    narrow = create(client_for(ada), scopes=["memory.read"]).json()["token"]
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {narrow}")
    assert client.get(TOKENS).status_code == 403
    assert create(client, scopes=["memory.read"]).status_code == 403


def bearer(secret: str) -> APIClient:
    return APIClient(HTTP_AUTHORIZATION=f"Bearer {secret}")


def test_a_token_cannot_mint_a_token_that_outlives_it(ada):
    """The attack: an expiring token minted a token with no expiry."""
    soon = timezone.now() + dt.timedelta(hours=1)
    parent = create(
        client_for(ada), scopes=["security.tokens.manage", "memory.read"], expires_at=soon
    ).json()
    client = bearer(parent["token"])
    later = create(client, scopes=["memory.read"], expires_at=soon + dt.timedelta(days=1))
    assert "expires_at" in error_of(later, 403)["fields"]
    unbounded = create(client, scopes=["memory.read"])  # asks for no expiry at all
    assert unbounded.status_code == 201, unbounded.content
    child = ApiToken.objects.get(pk=unbounded.json()["id"])
    assert child.expires_at == ApiToken.objects.get(pk=parent["id"]).expires_at
    assert str(child.parent_id) == parent["id"]
    (created,) = [e for e in events("security.ApiTokenCreated") if e["token_id"] == str(child.pk)]
    assert created["parent_id"] == parent["id"]
    sooner = create(client, scopes=["memory.read"], expires_at=soon - dt.timedelta(minutes=5))
    assert sooner.status_code == 201
    wider = create(client, scopes=["memory.*"])
    assert "scopes" in error_of(wider, 403)["fields"]


def test_revoking_a_token_revokes_the_tokens_minted_with_it(ada):
    root = create(client_for(ada), scopes=["*"]).json()
    child = create(bearer(root["token"]), scopes=["*"]).json()
    grandchild = create(bearer(child["token"]), scopes=["memory.read"]).json()
    sibling = create(client_for(ada)).json()  # minted by the session: nobody's child
    for token in (root, child, grandchild, sibling):
        assert bearer(token["token"]).get("/api/v1/auth/me").status_code == 200  # now cached

    assert client_for(ada).delete(f"{TOKENS}/{root['id']}").status_code == 200

    for token in (root, child, grandchild):
        refused = bearer(token["token"]).get("/api/v1/auth/me")
        assert error_of(refused, 401)["code"] == "token_revoked"
    assert bearer(sibling["token"]).get("/api/v1/auth/me").status_code == 200
    revoked = {event["token_id"]: event for event in events("security.ApiTokenRevoked")}
    assert set(revoked) == {root["id"], child["id"], grandchild["id"]}
    assert revoked[root["id"]]["revoked_with"] is None
    assert revoked[grandchild["id"]]["revoked_with"] == root["id"]


def test_revoking_a_child_leaves_its_parent_alone(ada):
    root = create(client_for(ada), scopes=["*"]).json()
    child = create(bearer(root["token"]), scopes=["*"]).json()
    assert client_for(ada).delete(f"{TOKENS}/{child['id']}").status_code == 200
    assert bearer(root["token"]).get("/api/v1/auth/me").status_code == 200
