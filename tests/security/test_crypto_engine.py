"""The encryption engine on its own: keyring parsing and caching, wrapping, sealing, format."""

import base64
import uuid

import grimp
import pytest

from lumina.security.crypto import envelope, token
from lumina.security.crypto.envelope import AuthenticationFailedError
from lumina.security.crypto.keyring import (
    Keyring,
    KeyringError,
    UnknownKeyVersionError,
    current_keyring,
    parse_master_keys,
)
from lumina.security.crypto.token import MalformedCiphertextError, SealedSecret
from tests.security.crypto_support import key_b64, keyring


def test_keyring_parses_versions_and_the_highest_is_current():
    ring = Keyring(parse_master_keys(keyring(1, 3, 2)))
    assert ring.versions == (1, 2, 3)
    assert ring.current_version == 3
    assert ring.current_key == bytes([3]) * 32
    assert 2 in ring
    assert 4 not in ring
    with pytest.raises(UnknownKeyVersionError):
        ring.key(4)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (f"0:{key_b64(1)}", "versions from 1"),
        (f"x:{key_b64(1)}", "versions from 1"),
        (key_b64(1), "versions from 1"),
        ("1:not*base64", "not valid base64"),
        ("1:" + base64.b64encode(b"short").decode(), "must be 32 bytes"),
        (f"1:{key_b64(1)},1:{key_b64(2)}", "appears twice"),
    ],
)
def test_malformed_keyrings_are_refused_without_echoing_key_material(value, message):
    with pytest.raises(KeyringError, match=message) as caught:
        parse_master_keys(value)
    assert key_b64(1) not in str(caught.value)
    assert key_b64(2) not in str(caught.value)


def test_keyring_repr_shows_versions_never_keys():
    ring = Keyring(parse_master_keys(keyring(1, 2)))
    assert key_b64(1) not in repr(ring)
    assert repr(bytes([1]) * 32) not in repr(ring)
    assert "versions=(1, 2)" in repr(ring)


def test_current_keyring_is_cached_and_follows_a_changed_setting(settings):
    settings.LUMINA_MASTER_KEYS = keyring(1)
    first = current_keyring()
    assert current_keyring() is first
    settings.LUMINA_MASTER_KEYS = keyring(1, 2)
    assert current_keyring().current_version == 2


def test_an_empty_keyring_setting_is_a_clear_error(settings):
    settings.LUMINA_MASTER_KEYS = ""
    with pytest.raises(KeyringError, match="LUMINA_MASTER_KEYS is empty"):
        current_keyring()


def test_a_wrapped_data_key_unwraps_only_for_its_own_id_version_and_kek():
    kek, other_kek = bytes([1]) * 32, bytes([2]) * 32
    data_key, key_id = envelope.new_data_key(), uuid.uuid4()
    wrapped = envelope.wrap_data_key(data_key, kek=kek, kek_version=1, data_key_id=key_id)
    assert data_key not in wrapped
    assert envelope.unwrap_data_key(wrapped, kek=kek, kek_version=1, data_key_id=key_id) == data_key
    for kwargs in (
        {"kek": kek, "kek_version": 1, "data_key_id": uuid.uuid4()},
        {"kek": kek, "kek_version": 2, "data_key_id": key_id},
        {"kek": other_kek, "kek_version": 1, "data_key_id": key_id},
    ):
        with pytest.raises(AuthenticationFailedError):
            envelope.unwrap_data_key(wrapped, **kwargs)
    with pytest.raises(AuthenticationFailedError):
        envelope.unwrap_data_key(wrapped[:-1], kek=kek, kek_version=1, data_key_id=key_id)


def test_a_sealed_secret_opens_only_with_the_same_associated_data():
    data_key, key_id = envelope.new_data_key(), uuid.uuid4()
    aad = envelope.secret_aad(key_id, "providers.Provider:a:api_key")
    nonce, sealed = envelope.seal(b"sk-test", data_key=data_key, aad=aad)
    assert envelope.open_sealed(nonce, sealed, data_key=data_key, aad=aad) == b"sk-test"
    other = envelope.secret_aad(key_id, "providers.Provider:b:api_key")
    with pytest.raises(AuthenticationFailedError):
        envelope.open_sealed(nonce, sealed, data_key=data_key, aad=other)


def test_the_ciphertext_format_round_trips_and_rejects_foreign_strings():
    sealed = SealedSecret(data_key_id=uuid.uuid4(), nonce=b"n" * 12, ciphertext=b"c" * 20)
    text = token.encode(sealed)
    assert text.startswith("lsec1.")
    assert "=" not in text
    assert token.decode(text) == sealed
    for bad in ("", "lsec2." + text[6:], "lsec1.", "lsec1.!!!!", "lsec1.AAAA", text + "A"):
        with pytest.raises(MalformedCiphertextError):
            token.decode(bad)


def test_max_length_bounds_the_longest_ciphertext():
    sealed = SealedSecret(data_key_id=uuid.uuid4(), nonce=b"n" * 12, ciphertext=b"c" * (100 + 16))
    assert len(token.encode(sealed)) <= token.max_length(100)


def test_the_engine_imports_only_itself_and_the_kernel():
    graph = grimp.build_graph("lumina", cache_dir=None)
    engine = "lumina.security.crypto"
    for module in graph.find_descendants(engine) | {engine}:
        for imported in graph.find_modules_directly_imported_by(module):
            assert imported.startswith((engine, "lumina.kernel")), f"{module} imports {imported}"
