"""What an MCP tool call costs through Lumina's MCP client, by transport and session use.

Three ways to call ``add`` on the test calculator server (``tests/tools/mcp_servers``,
built with the SDK's MCPServer), each ``--calls`` times after 3 warm-up calls:

* stdio, a new server process per call (``lumina.tools.mcp.client.call_tool``);
* stdio, a warm session (``lumina.tools.mcp.pool.call``, what the ``mcp`` runner uses);
* streamable HTTP, a new MCP session per call to a server process on 127.0.0.1.

Prints the median and p95 wall time per call in milliseconds. No database is needed: the
endpoints are built here, not read from the registry.

    .venv/bin/python benchmarks/mcp_calls.py [--calls 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from asgiref.sync import async_to_sync  # noqa: E402

from lumina.tools.mcp import pool  # noqa: E402
from lumina.tools.mcp.client import call_tool  # noqa: E402
from lumina.tools.mcp.types import McpEndpoint  # noqa: E402
from tests.tools.mcp_servers.process import http_server, script_command  # noqa: E402

ARGUMENTS = {"a": 2, "b": 3}


def _measure(call, calls: int) -> list[float]:
    for _ in range(3):
        call()
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        outcome = call()
        times.append((time.perf_counter() - started) * 1000)
        if outcome.status != "succeeded":
            raise SystemExit(f"call failed: {outcome.status} {outcome.error}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    calls = parser.parse_args().calls
    stdio = McpEndpoint("stdio", command=script_command())
    rows = []

    rows.append(
        (
            "stdio, new process per call",
            _measure(
                lambda: async_to_sync(call_tool)(stdio, "add", ARGUMENTS, timeout_seconds=60),
                calls,
            ),
        )
    )
    rows.append(
        (
            "stdio, warm session (runner)",
            _measure(
                lambda: pool.call(
                    server_id="bench",
                    revision="1",
                    endpoint=stdio,
                    name="add",
                    arguments=ARGUMENTS,
                    timeout_seconds=60,
                    max_bytes=1_000_000,
                ),
                calls,
            ),
        )
    )
    pool.stop()
    with http_server() as url:
        endpoint = McpEndpoint("http", url=url)
        rows.append(
            (
                "streamable HTTP, new session per call",
                _measure(
                    lambda: async_to_sync(call_tool)(
                        endpoint, "add", ARGUMENTS, timeout_seconds=60
                    ),
                    calls,
                ),
            )
        )

    print(f"MCP tool call 'add', {calls} calls each (ms)")
    print(f"{'path':40} {'median':>9} {'p95':>9}")
    for label, times in rows:
        ordered = sorted(times)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        print(f"{label:40} {statistics.median(times):9.1f} {p95:9.1f}")


if __name__ == "__main__":
    main()
