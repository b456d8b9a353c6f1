"""The outbound-URL guard: which addresses are refused, at save time and at connect time.

The connect-time tests aim real clients (aiohttp, requests) at a loopback server that
records what it receives, with an empty allow-list: a refusal must mean the server got
nothing. Each first proves that the same request does reach the server when allowed.
"""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest
import requests

from lumina.kernel import outbound
from lumina.kernel.outbound import OutboundRefused, check_url, parse_allow_list
from tests.kernel.outbound_support import RecordingServer

NOTHING = parse_allow_list([])
LOOPBACK = parse_allow_list(["127.0.0.0/8", "::1"])


@pytest.fixture
def no_allow_list(settings):
    settings.LUMINA_OUTBOUND_ALLOW = ()


# --- Addresses --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("::1", "loopback"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 (an address to refuse, not to bind)
        ("::", "unspecified"),
        ("10.0.0.5", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("169.254.0.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("168.63.129.16", "metadata"),  # public, yet Azure's host endpoint
        ("192.0.0.192", "metadata"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::ffff:169.254.169.254", "metadata"),
        ("2002:7f00:1::", "loopback"),  # 6to4 around 127.0.0.1
        ("2002:a9fe:a9fe::", "metadata"),  # 6to4 around 169.254.169.254
        ("64:ff9b::7f00:1", "not a public"),  # NAT64
        ("::127.0.0.1", "not a public"),  # IPv4-compatible
        ("100.64.0.1", "not a public"),  # carrier-grade NAT
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("255.255.255.255", "private"),
        ("240.0.0.1", "private"),
    ],
)
def test_non_public_addresses_are_refused(address, reason):
    refusal = NOTHING.refusal(address)
    assert refusal is not None
    assert reason in refusal


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "104.18.6.192", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_are_allowed(address):
    assert NOTHING.refusal(address) is None


def test_the_allow_list_opens_networks_but_a_metadata_address_only_when_named():
    policy = parse_allow_list(["127.0.0.0/8", "10.0.0.0/8", "169.254.0.0/16", "fd00::/8"])

    assert policy.allows("127.0.0.1")
    assert policy.allows("::ffff:127.0.0.1")
    assert policy.allows("10.20.30.40")
    assert policy.allows("169.254.10.10")
    assert not policy.allows("169.254.169.254")
    assert not policy.allows("fd00:ec2::254")
    assert not policy.allows("192.168.1.1")
    assert not policy.allows("::1")
    assert parse_allow_list(["169.254.169.254"]).allows("169.254.169.254")


@pytest.mark.parametrize("entry", ["ollama", "localhost", "10.0.0.1/8", "300.1.1.1", "*"])
def test_the_allow_list_takes_addresses_and_networks_only(entry):
    with pytest.raises(ValueError, match="not an IP address or network"):
        parse_allow_list([entry])


# --- Save time --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:11434",
        "http://2130706433/v1",  # 127.0.0.1 in decimal
        "http://0x7f.0.0.1/v1",  # hexadecimal
        "http://0177.0.0.1/v1",  # octal
        "http://127.1/v1",  # short form
        "http://0/v1",
        "http://0.0.0.0:8080",
        "http://[::]/v1",
        "http://[::1]:8080/v1",
        "http://[::ffff:127.0.0.1]/v1",
        "http://[::ffff:7f00:1]/v1",
        "http://[0:0:0:0:0:ffff:7f00:1]/v1",
        "http://localhost:11434",
        "http://LOCALHOST./v1",
        "http://api.localhost/v1",
        "http://ⓛocalhost/v1",  # IDNA maps it to localhost
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://[fe80::1%25eth0]/v1",
        "http://10.0.0.5:8000/v1",
        "http://192.168.1.10/v1",
        "ftp://api.example.com/v1",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_FLUSHALL",
        "http:///v1",
        "http://api.example.com:99999/v1",
    ],
)
def test_a_url_that_leads_where_it_may_not_is_refused_naming_the_field(url, no_allow_list):
    with pytest.raises(OutboundRefused) as caught:
        check_url(url, field="base_url")

    assert caught.value.status == 400
    assert caught.value.code == "outbound_refused"
    assert list(caught.value.fields) == ["base_url"]


@pytest.mark.parametrize(
    "url", ["https://api.openai.com/v1", "http://8.8.8.8/v1", "https://[2606:4700::1111]/"]
)
def test_public_urls_pass(url, no_allow_list):
    check_url(url, field="base_url")


def test_loopback_urls_pass_when_the_operator_allows_loopback(settings):
    settings.LUMINA_OUTBOUND_ALLOW = ("127.0.0.0/8", "::1/128")

    check_url("http://127.0.0.1:11434", field="base_url")
    check_url("http://localhost:11434", field="base_url")
    check_url("http://[::1]:8000/v1", field="base_url")
    with pytest.raises(OutboundRefused):
        check_url("http://169.254.169.254/", field="base_url")


# --- Connect time: aiohttp --------------------------------------------------------------


async def _aiohttp_get(url: str, policy: outbound.OutboundPolicy) -> int:
    connector = outbound.aiohttp_connector(lambda: policy)
    async with (
        aiohttp.ClientSession(connector=connector, trust_env=False) as session,
        session.get(url, allow_redirects=False) as response,
    ):
        return response.status


def _aiohttp_refusal(url: str, policy: outbound.OutboundPolicy) -> outbound.DestinationRefused:
    with pytest.raises(aiohttp.ClientError) as caught:
        asyncio.run(_aiohttp_get(url, policy))
    refusal = outbound.refusal_in(caught.value)
    assert refusal is not None, repr(caught.value)
    return refusal


def test_aiohttp_connects_to_a_refused_address_never():
    with RecordingServer() as server:
        assert asyncio.run(_aiohttp_get(server.url, LOOPBACK)) == 200
        assert len(server.received) == 1  # reachable: the refusal below is the guard's

        refusal = _aiohttp_refusal(server.url, NOTHING)
        by_name = _aiohttp_refusal(f"http://localhost:{server.port}/", NOTHING)
        mapped = _aiohttp_refusal(f"http://[::ffff:127.0.0.1]:{server.port}/", NOTHING)

        assert len(server.received) == 1
    assert "loopback" in refusal.reason
    assert "loopback" in by_name.reason
    assert by_name.host == "localhost"
    assert "loopback" in mapped.reason


def test_aiohttp_refuses_a_public_looking_name_that_resolves_to_loopback(monkeypatch):
    """DNS rebinding: the name passed the save-time check; what it resolves to now decides."""
    real = socket.getaddrinfo

    def rebinding(host, *args, **kwargs):
        return real("127.0.0.1" if host == "api.rebind.test" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    check_url("http://api.rebind.test/v1", field="base_url", policy=NOTHING)
    with RecordingServer() as server:
        url = f"http://api.rebind.test:{server.port}/v1"
        assert asyncio.run(_aiohttp_get(url, LOOPBACK)) == 200

        refusal = _aiohttp_refusal(url, NOTHING)

        assert len(server.received) == 1
    assert refusal.host == "api.rebind.test"
    assert refusal.address == "127.0.0.1"


def test_aiohttp_refuses_non_canonical_ipv4_forms():
    with RecordingServer() as server, pytest.raises(aiohttp.ClientError):
        asyncio.run(_aiohttp_get(f"http://2130706433:{server.port}/", NOTHING))
    assert server.received == []


def test_the_socket_factory_checks_the_address_even_when_the_resolver_let_it_through():
    """Second layer: every socket opened is checked, whatever produced its address."""
    answers = iter([LOOPBACK, NOTHING])  # allowed while resolving, refused when connecting

    async def get(url: str) -> int:
        connector = outbound.aiohttp_connector(lambda: next(answers, NOTHING))
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.get(url) as response,
        ):
            return response.status

    with RecordingServer() as server:
        with pytest.raises(aiohttp.ClientError) as caught:
            asyncio.run(get(f"http://localhost:{server.port}/"))
        assert server.received == []
    assert outbound.refusal_in(caught.value) is not None


# --- Connect time: requests -------------------------------------------------------------


def test_requests_connects_to_a_refused_address_never():
    with RecordingServer() as server:
        allowed = outbound.requests_session(lambda: LOOPBACK)
        assert allowed.get(server.url, timeout=5).status_code == 200
        assert len(server.received) == 1

        refused = outbound.requests_session(lambda: NOTHING)
        for url in (server.url, f"http://localhost:{server.port}/", f"http://[::1]:{server.port}/"):
            with pytest.raises(requests.ConnectionError) as caught:
                refused.get(url, timeout=5)
            assert outbound.refusal_in(caught.value) is not None, url

        assert len(server.received) == 1


def test_requests_refuses_a_name_that_resolves_to_a_refused_address(monkeypatch):
    real = socket.getaddrinfo

    def rebinding(host, *args, **kwargs):
        return real("127.0.0.1" if host == "idp.rebind.test" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with RecordingServer() as server:
        url = f"http://idp.rebind.test:{server.port}/.well-known/openid-configuration"
        assert outbound.requests_session(lambda: LOOPBACK).get(url, timeout=5).ok

        with pytest.raises(requests.ConnectionError) as caught:
            outbound.requests_session(lambda: NOTHING).get(url, timeout=5)

        assert len(server.received) == 1
    assert outbound.refusal_in(caught.value).address == "127.0.0.1"


def test_no_redirect_is_followed_so_none_escapes_the_guard():
    with RecordingServer() as target, RecordingServer(status=307) as redirecting:
        redirecting.headers = {"Location": f"{target.url}/stolen"}
        session = outbound.requests_session(lambda: LOOPBACK)

        with pytest.raises(requests.TooManyRedirects):
            session.post(redirecting.url, data={"client_secret": "s3cret"}, timeout=5)

        assert len(redirecting.received) == 1
        assert target.received == []


def test_the_operators_setting_is_read_at_each_connection(settings):
    with RecordingServer() as server:
        session = outbound.requests_session()
        settings.LUMINA_OUTBOUND_ALLOW = ("127.0.0.1/32",)
        assert session.get(server.url, timeout=5).ok
        session.close()

        settings.LUMINA_OUTBOUND_ALLOW = ()
        with pytest.raises(requests.ConnectionError):
            outbound.requests_session().get(server.url, timeout=5)
        assert len(server.received) == 1
