"""An MCP client session over real HTTP (the SDK's streamable HTTP transport), for the tests
that call a served tool."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

T = TypeVar("T")


def with_session(url: str, body: Callable[[ClientSession], Awaitable[T]],
                 headers: dict[str, str] | None = None) -> T:
    """Run `body` in an initialized MCP client session to `url`."""

    async def main() -> T:
        async with httpx.AsyncClient(headers=headers, timeout=30) as http, \
                streamable_http_client(url, http_client=http) as (read, write, _), \
                ClientSession(read, write) as session:
            await session.initialize()
            return await body(session)

    return asyncio.run(main())
