"""The outbound-URL guard: which addresses Lumina may connect to on its users' behalf.

People other than the operator choose URLs that the server then calls: provider base URLs,
identity providers' issuers (and the endpoints their discovery documents name), tools'
URLs. Unguarded, each is a server-side request forgery: the server's position reaches
loopback services, the private network and cloud metadata endpoints. ADR 0008.

The rule: an address is allowed when it is public unicast and not a metadata address, or
when it lies in a network of the operator's allow-list (``LUMINA_OUTBOUND_ALLOW``). A
metadata address (169.254.169.254, fd00:ec2::254, …) is allowed only when the list names
that one address: a broad entry such as ``169.254.0.0/16`` does not open it. IPv6 forms
that carry an IPv4 address (mapped, 6to4, NAT64) are judged by that address or refused.

It is applied twice:

* **when a URL is saved** (``check_url``): scheme, host, and any address literal in any
  notation (``2130706433``, ``0x7f.1``, ``[::ffff:127.0.0.1]`` …), so a bad URL is a 400
  naming its field. Names are not resolved here: what they resolve to can change.
* **when connecting** (``aiohttp_connector``, ``requests_session``): every address a
  connection is actually opened to, after DNS resolution, so a name that resolves (or
  rebinds) to a refused address is refused too. Neither client follows redirects, so a
  redirect cannot lead a request, or the credentials it carries, elsewhere.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from lumina.kernel.errors import ApplicationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SCHEMES = ("http", "https")
# Instance metadata and host endpoints of the common clouds. Some are public addresses
# (Azure's 168.63.129.16, Oracle's 192.0.0.192), so "not public" alone would miss them.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, …
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.170.23",  # AWS EKS pod identity
        "169.254.0.23",  # Tencent Cloud
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
        "168.63.129.16",  # Azure WireServer
        "fd00:ec2::254",  # AWS, over IPv6
        "fd00:ec2::23",  # AWS EKS pod identity, over IPv6
    )
)
# Names of metadata services; like "localhost" and "*.localhost", refused at save time for
# a clear message (at connect time their addresses are refused anyway).
RESERVED_NAMES = frozenset({"metadata.google.internal", "metadata.goog"})
# Ranges ``ipaddress`` of Python 3.11 counts as global but that no AI provider or identity
# provider is reached through: protocol assignments, the 6to4 relay, transition prefixes.
_NOT_PUBLIC = tuple(
    ipaddress.ip_network(network)
    for network in ("192.0.0.0/24", "192.88.99.0/24", "64:ff9b::/96", "64:ff9b:1::/48", "::/96")
)
_SIXTOFOUR = ipaddress.ip_network("2002::/16")
_NUMERIC_HOST = re.compile(r"^[0-9a-fx.]+$", re.IGNORECASE)


class OutboundRefused(ApplicationError):
    """A URL whose destination the outbound policy refuses; names the field it came from."""

    code = "outbound_refused"
    status = 400

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, fields={field: [message]})


class DestinationRefused(OSError):
    """Raised while connecting: the address is refused. Carries no secret, only the address."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        super().__init__(f"{host} ({address}) is refused by the outbound policy: {reason}")
        self.host = host
        self.address = address
        self.reason = reason


# --- The policy -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class OutboundPolicy:
    """The networks the operator allows beyond the public Internet."""

    allowed: tuple[IPNetwork, ...] = ()

    def refusal(self, address: str | IPAddress) -> str | None:
        """Why connecting to ``address`` is refused, or None when it is allowed."""
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        judged = _embedded_ipv4(ip) or ip
        reason = _not_public_reason(judged)
        if reason is None and ip is not judged:
            reason = None if ip.ipv4_mapped is not None else "an IPv6 form of an IPv4 address"
        if reason is None:
            return None
        if self._listed(ip, judged, exact=reason == "a cloud metadata address"):
            return None
        return reason

    def allows(self, address: str | IPAddress) -> bool:
        return self.refusal(address) is None

    def _listed(self, ip: IPAddress, judged: IPAddress, *, exact: bool) -> bool:
        for network in self.allowed:
            if exact and network.num_addresses != 1:
                continue
            if ip in network or judged in network:
                return True
        return False


def parse_allow_list(entries: Iterable[str]) -> OutboundPolicy:
    """``["127.0.0.1", "10.0.0.0/8", "::1"]`` to a policy; ``ValueError`` naming a bad entry."""
    networks: list[IPNetwork] = []
    for entry in entries:
        text = entry.strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=True))
        except ValueError as exc:
            raise ValueError(
                f"{text!r} is not an IP address or network (CIDR); names are not accepted, "
                f"as what they resolve to can change ({exc})"
            ) from None
    return OutboundPolicy(tuple(networks))


@functools.lru_cache(maxsize=8)
def _policy_for(entries: tuple[str, ...]) -> OutboundPolicy:
    return parse_allow_list(entries)


def current_policy() -> OutboundPolicy:
    """The operator's policy (``settings.LUMINA_OUTBOUND_ALLOW``), read at each use."""
    return _policy_for(tuple(getattr(settings, "LUMINA_OUTBOUND_ALLOW", ())))


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _SIXTOFOUR:
        return ip.sixtofour
    return None


def _not_public_reason(ip: IPAddress) -> str | None:
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global or ip.is_reserved or any(ip in network for network in _NOT_PUBLIC):
        return "not a public address"
    return None


# --- Save time --------------------------------------------------------------------------


def check_url(
    url: str,
    *,
    field: str,
    policy: OutboundPolicy | None = None,
    schemes: tuple[str, ...] = SCHEMES,
) -> None:
    """Raise ``OutboundRefused`` naming ``field`` unless ``url`` may be called.

    Checks the scheme, that there is a host, and the host when it is an address literal
    or a name reserved for loopback or metadata; names are resolved only at connect time.
    """
    policy = policy or current_policy()
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError:
        raise OutboundRefused(field, "Enter a valid URL.") from None
    if parts.scheme not in schemes:
        raise OutboundRefused(field, f"Use a URL starting with {' or '.join(schemes)}://.")
    if not host:
        raise OutboundRefused(field, "The URL needs a host.")
    problem = host_problem(host, policy)
    if problem:
        raise OutboundRefused(field, problem)


def host_problem(host: str, policy: OutboundPolicy | None = None) -> str | None:
    """Why a URL's host is refused at save time, or None."""
    policy = policy or current_policy()
    try:
        # IDNA maps look-alike characters ("ⓛocalhost") to what the resolver will see.
        name = host.encode("idna").decode("ascii").lower().rstrip(".")
    except UnicodeError:
        return "The host name is not valid."
    literal = _literal(name)
    if literal is None:
        if name == "localhost" or name.endswith(".localhost"):
            if policy.allows(ipaddress.ip_address("127.0.0.1")):
                return None
            return _refused_message(host, "a loopback name")
        if name in RESERVED_NAMES:
            return _refused_message(host, "a cloud metadata name")
        return None
    address, canonical = literal
    reason = policy.refusal(address)
    if reason:
        return _refused_message(host, reason)
    if not canonical:
        return f"Write the address {host!r} as {address} (dotted decimal)."
    return None


def _literal(name: str) -> tuple[IPAddress, bool] | None:
    """The address a host literal stands for and whether it is written canonically
    (``127.1``, ``2130706433`` and ``0x7f.1`` are not), or None when the host is a name."""
    try:
        return ipaddress.ip_address(name), True
    except ValueError:
        pass
    if _NUMERIC_HOST.match(name):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(name)), False
        except OSError:
            return None
    return None


def _refused_message(host: str, reason: str) -> str:
    return (
        f"{host} is {reason}; Lumina does not connect there unless the operator allows it "
        "in LUMINA_OUTBOUND_ALLOW."
    )


# --- Connect time -----------------------------------------------------------------------


def check_address(host: str, address: str, policy: OutboundPolicy | None = None) -> None:
    """Raise ``DestinationRefused`` unless connecting to ``address`` (for ``host``) is allowed."""
    reason = (policy or current_policy()).refusal(_bare(address))
    if reason:
        raise DestinationRefused(host, address, reason)


def refusal_in(exc: BaseException | None) -> DestinationRefused | None:
    """The ``DestinationRefused`` behind an HTTP client's error, if that is what it was.

    aiohttp and urllib3 wrap connection errors (``os_error``, ``reason``, ``args``,
    ``__cause__``); this looks through them.
    """
    seen: set[int] = set()
    pending: list[Any] = [exc]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, DestinationRefused):
            return current
        pending.extend((current.__cause__, current.__context__, *current.args))
        for attribute in ("os_error", "reason", "original_error"):
            pending.append(getattr(current, attribute, None))
    return None


def aiohttp_connector(policy: Callable[[], OutboundPolicy] = current_policy, **kwargs: Any):
    """An ``aiohttp.TCPConnector`` that connects only to allowed addresses.

    Its resolver drops refused addresses (and refuses a name that has no other), and its
    socket factory checks every address a socket is opened to, address literals included,
    which aiohttp does not pass to the resolver. Call from within the event loop.
    """
    import aiohttp

    def socket_factory(addr_info: Any) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        check_address(str(sockaddr[0]), str(sockaddr[0]), policy())
        return socket.socket(family=family, type=type_, proto=proto)

    return aiohttp.TCPConnector(
        resolver=_GuardedResolver(policy), socket_factory=socket_factory, **kwargs
    )


class _GuardedResolver:
    """aiohttp's default resolver, keeping only the addresses the policy allows."""

    def __init__(self, policy: Callable[[], OutboundPolicy]) -> None:
        from aiohttp.resolver import DefaultResolver

        self._inner = DefaultResolver()
        self._policy = policy

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list:
        results = await self._inner.resolve(host, port, family)  # type: ignore[arg-type]
        policy = self._policy()
        allowed = [result for result in results if policy.allows(_bare(result["host"]))]
        if not allowed and results:
            check_address(host, results[0]["host"], policy)
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def requests_session(policy: Callable[[], OutboundPolicy] = current_policy, session=None):
    """A ``requests.Session`` (or ``session``, e.g. authlib's) that connects only to allowed
    addresses and follows no redirect (``TooManyRedirects`` on any)."""
    import requests

    session = session if session is not None else requests.Session()
    adapter = _guarded_adapter_class()(policy)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.max_redirects = 0
    session.trust_env = False  # no proxies or .netrc from the environment
    return session


@functools.cache
def _guarded_adapter_class():
    """Built on first use, so the kernel imports requests/urllib3 only when they are used."""
    import sys

    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
    from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
    from urllib3.util.connection import create_connection

    def guarded_socket(connection: Any, policy: OutboundPolicy) -> socket.socket:
        # Resolve once, check every address, then connect only to a checked one: the
        # address connected to is the address checked, whatever DNS answers next.
        host, port = connection._dns_host, connection.port
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        allowed = [str(info[4][0]) for info in infos if policy.allows(_bare(info[4][0]))]
        if not allowed:
            check_address(host, str(infos[0][4][0]), policy)
        last: OSError | None = None
        for address in allowed:
            try:
                return create_connection(
                    (address, port),
                    connection.timeout,
                    source_address=connection.source_address,
                    socket_options=connection.socket_options,
                )
            except OSError as exc:
                last = exc
        raise last or OSError(f"could not connect to {host}")

    def guarded(base: type, policy: Callable[[], OutboundPolicy]) -> type:
        class GuardedConnection(base):  # type: ignore[misc, valid-type]
            def _new_conn(self) -> socket.socket:
                # urllib3's own _new_conn with the connect step replaced; same error mapping.
                try:
                    sock = guarded_socket(self, policy())
                except socket.gaierror as exc:
                    raise NameResolutionError(self.host, self, exc) from exc
                except TimeoutError as exc:
                    raise ConnectTimeoutError(
                        self, f"Connection to {self.host} timed out. (timeout={self.timeout})"
                    ) from exc
                except OSError as exc:
                    raise NewConnectionError(
                        self, f"Failed to establish a new connection: {exc}"
                    ) from exc
                sys.audit("http.client.connect", self, self.host, self.port)
                return sock

        return GuardedConnection

    class GuardedAdapter(HTTPAdapter):
        def __init__(self, policy: Callable[[], OutboundPolicy]) -> None:
            self._policy = policy
            super().__init__(max_retries=0)

        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            http = guarded(HTTPConnection, self._policy)
            https = guarded(HTTPSConnection, self._policy)
            self.poolmanager.pool_classes_by_scheme = {
                "http": type("GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http}),
                "https": type("GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https}),
            }

    return GuardedAdapter


def _bare(address: object) -> str:
    """An address without its IPv6 zone (``fe80::1%eth0``)."""
    return str(address).split("%", 1)[0]
