"""Fixtures for the sandbox tests: a real server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest_asyncio

from botkit.sandbox.server import Sandbox
from botkit.sandbox.testing import admin_headers, running_sandbox, test_config


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with running_sandbox(test_config()) as sb:
        yield sb


@pytest_asyncio.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=10) as c:
        yield c


@pytest_asyncio.fixture
async def admin(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    """A client for /_sandbox/*: carries the admin token and the JSON content type."""
    async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=10, headers=admin_headers(sandbox)) as c:
        yield c
