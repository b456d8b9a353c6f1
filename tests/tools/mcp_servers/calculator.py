"""A tiny real MCP server for tests, built with the SDK's MCPServer (FastMCP in v1).

Run as ``python -m tests.tools.mcp_servers.calculator`` (stdio) or with ``--http PORT``
(streamable HTTP on 127.0.0.1). Besides honest tools it has two that misbehave on
purpose: ``crash`` kills the process mid-call and ``hang`` never answers.
"""

from __future__ import annotations

import argparse
import os
import time

from mcp.server.mcpserver import MCPServer

server = MCPServer("calculator", version="1.0.0")


@server.tool(description="Add two integers.")
def add(a: int, b: int) -> int:
    return a + b


@server.tool(description="Repeat a word a number of times, separated by spaces.")
def echo(word: str, times: int = 1) -> str:
    return " ".join([word] * times)


@server.tool(description="Fail with an error the server reports as a tool error.")
def fail(reason: str) -> str:
    raise ValueError(reason)


@server.tool(description="Exit the server process in the middle of the call.")
def crash() -> str:
    os._exit(3)


@server.tool(description="Never answer.")
def hang() -> str:
    while True:
        time.sleep(60)


@server.tool(description="This server's process id and one of its environment variables.")
def whoami(variable: str = "CALCULATOR_TAG") -> str:
    return f"{os.getpid()} {os.environ.get(variable, '')}"


@server.tool(description="Return a large text, to test output limits.")
def big(size: int) -> str:
    return "x" * size


# CALCULATOR_TOOLS=add,echo offers only those, as a server whose tools change would.
if os.environ.get("CALCULATOR_TOOLS"):
    offered = set(os.environ["CALCULATOR_TOOLS"].split(","))
    for tool in ("add", "echo", "fail", "crash", "hang", "big", "whoami"):
        if tool not in offered:
            server.remove_tool(tool)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=int, default=None, help="serve streamable HTTP on this port")
    options = parser.parse_args()
    if options.http is None:
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=options.http)


if __name__ == "__main__":
    main()
