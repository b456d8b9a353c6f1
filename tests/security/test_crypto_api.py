"""The encryption endpoints, the rotate-keys command and the data key admin page."""

import io
import logging

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from lumina.security.models.audit import AuditEntry
from lumina.security.models.crypto import DataKey
from tests.security.crypto_support import key_b64, keyring, owner

pytestmark = pytest.mark.django_db

SECRET = "sk-live-7d1e0b-api-secret"


@pytest.fixture(autouse=True)
def _keyring_v1(settings):
    settings.LUMINA_MASTER_KEYS = keyring(1)


@pytest.fixture
def user_client(django_user_model):
    user = django_user_model.objects.create_user("user@example.com", "a long passphrase")
    client = APIClient()  # apart from admin_client, which shares the api_client fixture
    client.force_authenticate(user)
    client.user = user
    return client


def _encrypt(client, plaintext=SECRET, label=None):
    label = label or owner()
    response = client.post(
        "/api/v1/encryption/encrypt", {"plaintext": plaintext, "owner": label}, format="json"
    )
    return response, label


def test_encrypt_then_decrypt_round_trips(admin_client):
    response, label = _encrypt(admin_client)
    assert response.status_code == 201
    ciphertext = response.json()["ciphertext"]
    assert ciphertext.startswith("lsec1.")
    assert SECRET not in response.content.decode()

    response = admin_client.post(
        "/api/v1/encryption/decrypt", {"ciphertext": ciphertext, "owner": label}, format="json"
    )
    assert response.status_code == 200
    assert response.json() == {"plaintext": SECRET}


def test_leading_and_trailing_whitespace_in_a_secret_is_kept(admin_client):
    response, label = _encrypt(admin_client, plaintext="  padded secret \n")
    response = admin_client.post(
        "/api/v1/encryption/decrypt",
        {"ciphertext": response.json()["ciphertext"], "owner": label},
        format="json",
    )
    assert response.json()["plaintext"] == "  padded secret \n"


def test_decrypt_is_audited(admin_client, admin_user, django_capture_on_commit_callbacks):
    response, label = _encrypt(admin_client)
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            "/api/v1/encryption/decrypt",
            {"ciphertext": response.json()["ciphertext"], "owner": label},
            format="json",
        )
    entry = AuditEntry.objects.get(action="security.SecretDecrypted")
    assert entry.actor_id == admin_user.pk
    assert entry.outcome == "success"
    assert entry.target == label
    assert SECRET not in str(entry.details)


def test_denied_decrypt_for_an_ordinary_user_is_403_and_audited(
    admin_client, user_client, django_capture_on_commit_callbacks
):
    response, label = _encrypt(admin_client)
    ciphertext = response.json()["ciphertext"]
    with django_capture_on_commit_callbacks(execute=True):
        response = user_client.post(
            "/api/v1/encryption/decrypt", {"ciphertext": ciphertext, "owner": label}, format="json"
        )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert SECRET not in response.content.decode()
    entry = AuditEntry.objects.get(action="security.AccessDenied")
    assert entry.outcome == "denied"
    assert entry.actor_id == user_client.user.pk
    assert entry.details["action"] == "security.secrets.decrypt"
    assert entry.details["resource_id"] == label
    assert SECRET not in str(entry.details)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/v1/encryption/encrypt"),
        ("get", "/api/v1/encryption/keys"),
        ("post", "/api/v1/encryption/rotate"),
    ],
)
def test_ordinary_users_are_refused_every_encryption_endpoint(user_client, method, path):
    body = {"plaintext": SECRET, "owner": owner()} if path.endswith("encrypt") else None
    response = getattr(user_client, method)(path, body, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert not DataKey.objects.exists()


def test_anonymous_requests_are_refused(api_client):
    response = api_client.get("/api/v1/encryption/keys")
    assert response.status_code in (401, 403)  # 401 where a token scheme is offered
    assert response.json()["error"]["code"] == "not_authenticated"


def test_a_ciphertext_moved_to_another_owner_is_a_400_saying_nothing_more(admin_client):
    response, _ = _encrypt(admin_client)
    response = admin_client.post(
        "/api/v1/encryption/decrypt",
        {"ciphertext": response.json()["ciphertext"], "owner": owner()},
        format="json",
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "decryption_failed"
    assert list(error["fields"]) == ["ciphertext"]
    assert "owner_mismatch" not in response.content.decode()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"owner": "x:1"}, "plaintext"),
        ({"plaintext": SECRET}, "owner"),
        ({"plaintext": SECRET, "owner": "spaces are not allowed"}, "owner"),
        ({"plaintext": SECRET, "owner": "x" * 256}, "owner"),
        ({"plaintext": "", "owner": "x:1"}, "plaintext"),
        ({"plaintext": ["a"], "owner": "x:1"}, "plaintext"),
        ({"plaintext": "a" * (64 * 1024 + 1), "owner": "x:1"}, "plaintext"),
        ({"plaintext": "é" * (32 * 1024 + 1), "owner": "x:1"}, "plaintext"),  # bytes, not chars
        ({"plaintext": "nul\x00byte", "owner": "x:1"}, "plaintext"),
    ],
)
def test_bad_encrypt_input_is_a_400_naming_the_field(admin_client, body, field):
    response = admin_client.post("/api/v1/encryption/encrypt", body, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert field in error["fields"]
    assert "a" * 100 not in response.content.decode()


def test_a_lone_surrogate_in_the_plaintext_is_a_400_naming_the_field(admin_client):
    response = admin_client.post(
        "/api/v1/encryption/encrypt",
        '{"plaintext": "bad \\ud800 text", "owner": "x:1"}',
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "plaintext" in response.json()["error"]["fields"]


def test_the_largest_allowed_plaintext_is_accepted(admin_client):
    response, _ = _encrypt(admin_client, plaintext="a" * (64 * 1024))
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"owner": "x:1"}, "ciphertext"),
        ({"ciphertext": "lsec1.AAAA"}, "owner"),
        ({"ciphertext": "lsec1." + "A" * 100_000, "owner": "x:1"}, "ciphertext"),
        ({"ciphertext": "not a ciphertext", "owner": "x:1"}, "ciphertext"),
    ],
)
def test_bad_decrypt_input_is_a_400_naming_the_field(admin_client, body, field):
    response = admin_client.post("/api/v1/encryption/decrypt", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_a_malformed_json_body_is_a_400(admin_client):
    response = admin_client.post(
        "/api/v1/encryption/encrypt", "{not json", content_type="application/json"
    )
    assert response.status_code == 400


def test_keys_lists_versions_and_usage_but_no_key_material(admin_client, settings):
    _encrypt(admin_client)
    settings.LUMINA_MASTER_KEYS = keyring(2, 3)
    _encrypt(admin_client)
    response = admin_client.get("/api/v1/encryption/keys")
    assert response.status_code == 200
    body = response.json()
    assert body["current_version"] == 3
    assert body["versions"] == [2, 3]
    assert body["usage"] == [
        {"kek_version": 1, "data_keys": 1, "in_keyring": False, "current": False},
        {"kek_version": 2, "data_keys": 0, "in_keyring": True, "current": False},
        {"kek_version": 3, "data_keys": 1, "in_keyring": True, "current": True},
    ]
    for version in (1, 2, 3):
        assert key_b64(version) not in response.content.decode()


def test_rotate_endpoint_reports_counts_and_is_idempotent(admin_client, settings):
    for _ in range(3):
        _encrypt(admin_client)
    settings.LUMINA_MASTER_KEYS = keyring(1, 2)
    first = admin_client.post("/api/v1/encryption/rotate").json()
    assert first["kek_version"] == 2
    assert (first["total"], first["rewrapped"], first["already_current"]) == (3, 3, 0)
    second = admin_client.post("/api/v1/encryption/rotate").json()
    assert (second["rewrapped"], second["already_current"]) == (0, 3)


def test_no_plaintext_or_key_in_responses_or_logs(admin_client, caplog, settings):
    caplog.set_level(logging.DEBUG)
    response, label = _encrypt(admin_client)
    ciphertext = response.json()["ciphertext"]
    admin_client.post(
        "/api/v1/encryption/decrypt", {"ciphertext": ciphertext, "owner": label}, format="json"
    )
    admin_client.post(
        "/api/v1/encryption/decrypt", {"ciphertext": ciphertext, "owner": owner()}, format="json"
    )
    settings.LUMINA_MASTER_KEYS = keyring(1, 2)
    rotate = admin_client.post("/api/v1/encryption/rotate")
    keys = admin_client.get("/api/v1/encryption/keys")
    assert caplog.records
    assert SECRET not in caplog.text
    assert ciphertext not in caplog.text
    for response in (rotate, keys):
        for version in (1, 2):
            assert key_b64(version) not in response.content.decode()
            assert key_b64(version) not in caplog.text


def test_rotate_keys_command_prints_counts_and_is_idempotent(admin_client, settings):
    _encrypt(admin_client)
    _encrypt(admin_client)
    settings.LUMINA_MASTER_KEYS = keyring(1, 2)
    out = io.StringIO()
    call_command("security", "rotate-keys", stdout=out)
    assert "2 data keys, 2 rewrapped, 0 already current" in out.getvalue()
    out = io.StringIO()
    call_command("security", "rotate-keys", "--batch-size", "1", stdout=out)
    assert "2 data keys, 0 rewrapped, 2 already current" in out.getvalue()


def test_rotate_keys_command_warns_about_keys_it_cannot_unwrap(admin_client, settings):
    _encrypt(admin_client)
    settings.LUMINA_MASTER_KEYS = keyring(2)
    out, err = io.StringIO(), io.StringIO()
    call_command("security", "rotate-keys", stdout=out, stderr=err)
    assert "0 rewrapped" in out.getvalue()
    assert "missing from LUMINA_MASTER_KEYS (1)" in err.getvalue()


def test_data_key_admin_is_a_read_only_list_without_key_bytes(client, admin_user, admin_client):
    _encrypt(admin_client)
    key = DataKey.objects.get()
    client.force_login(admin_user)
    page = client.get("/admin/security/datakey/")
    assert page.status_code == 200
    assert str(key.id) in page.content.decode()
    assert key.owner in page.content.decode()
    detail = client.get(f"/admin/security/datakey/{key.id}/change/")
    assert detail.status_code == 200
    assert "wrapped" not in detail.content.decode().lower()
    assert client.get("/admin/security/datakey/add/").status_code == 403
    assert client.post(f"/admin/security/datakey/{key.id}/delete/").status_code == 403
    assert DataKey.objects.filter(pk=key.pk).exists()
