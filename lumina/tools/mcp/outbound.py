"""An httpx2 client for MCP's streamable HTTP that connects only where the outbound policy
allows, and reads at most a given number of bytes per connection.

The MCP SDK talks HTTP through httpx2 (httpcore2 underneath), which the kernel guard
(``lumina.kernel.outbound``, ADR 0008) does not cover. httpcore2 opens every connection
through a pluggable network backend; the one here resolves the host once, checks every
address with the kernel's policy and connects only to a checked address, so a name that
resolves, or rebinds, to a refused address is refused. TLS still verifies the URL's host
name: httpcore2 passes the origin's host as the server name, not the address.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from typing import Any

import anyio
import httpcore2
import httpx2

from lumina.kernel.outbound import OutboundPolicy, check_address, current_policy


class ResponseTooLarge(OSError):
    """The server sent more bytes than the call may read."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the MCP server sent more than {limit} bytes")
        self.limit = limit


class _CountingStream(httpcore2.AsyncNetworkStream):
    """A network stream that refuses to read past ``budget`` bytes in total."""

    def __init__(self, inner: httpcore2.AsyncNetworkStream, budget: list[int], limit: int) -> None:
        self._inner = inner
        self._budget = budget
        self._limit = limit

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = await self._inner.read(max_bytes, timeout)
        self._budget[0] -= len(data)
        if self._budget[0] < 0:
            raise ResponseTooLarge(self._limit)
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore2.AsyncNetworkStream:
        inner = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        return _CountingStream(inner, self._budget, self._limit)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class GuardedBackend(httpcore2.AsyncNetworkBackend):
    """httpcore2's anyio backend, connecting only to addresses the policy allows."""

    def __init__(self, policy: Callable[[], OutboundPolicy], max_bytes: int | None) -> None:
        self._inner = httpcore2.AnyIOBackend()
        self._policy = policy
        self._max_bytes = max_bytes
        self._budget = [max_bytes or 0]

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        policy = self._policy()
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = [str(info[4][0]) for info in infos]
        allowed = [address for address in addresses if policy.allows(address.split("%", 1)[0])]
        if not allowed:
            check_address(host, addresses[0] if addresses else host, policy)
            raise OSError(f"{host} did not resolve")
        last: Exception | None = None
        for address in allowed:
            try:
                stream = await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (OSError, httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                last = exc
                continue
            if self._max_bytes is None:
                return stream
            return _CountingStream(stream, self._budget, self._max_bytes)
        raise last or OSError(f"could not connect to {host}")

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> Any:
        raise OSError("MCP servers are reached over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx2.AsyncHTTPTransport):
    def __init__(self, backend: GuardedBackend) -> None:
        super().__init__(trust_env=False, retries=0)
        # The stock pool with our network backend: the only way httpx2 takes one.
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=self._pool._ssl_context, network_backend=backend, retries=0
        )


def guarded_http_client(
    *,
    headers: dict[str, str] | None = None,
    timeout_seconds: float,
    max_bytes: int | None = None,
    policy: Callable[[], OutboundPolicy] = current_policy,
) -> httpx2.AsyncClient:
    """An ``httpx2.AsyncClient`` for one MCP call: guarded, capped, no proxies, no redirects."""
    return httpx2.AsyncClient(
        transport=_GuardedTransport(GuardedBackend(policy, max_bytes)),
        headers=headers,
        timeout=httpx2.Timeout(timeout_seconds),
        follow_redirects=False,
        trust_env=False,
    )
