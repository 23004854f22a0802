"""A signer written straight from WhiteBIT's docs (docs/whitebit.md §2.3), for the sandbox tests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx

_last_nonce = [0]


def next_nonce() -> int:
    n = max(int(time.time() * 1000), _last_nonce[0] + 1)
    _last_nonce[0] = n
    return n


def signed_request(
    path: str, params: dict[str, Any] | None = None, *, key: str = "demo-key", secret: str = "demo-secret",
    nonce: int | None = None, nonce_window: bool | None = True,
) -> tuple[dict[str, str], bytes]:
    """Headers and body bytes exactly as the docs build them: compact JSON, base64 payload, HMAC-SHA512 hex."""
    body: dict[str, Any] = {**(params or {}), "request": path, "nonce": next_nonce() if nonce is None else nonce}
    if nonce_window is not None:
        body["nonceWindow"] = nonce_window
    raw = json.dumps(body, separators=(",", ":")).encode()
    payload = base64.b64encode(raw)
    signature = hmac.new(secret.encode(), payload, hashlib.sha512).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-TXC-APIKEY": key,
        "X-TXC-PAYLOAD": payload.decode(),
        "X-TXC-SIGNATURE": signature,
    }
    return headers, raw


async def post_signed(
    client: httpx.AsyncClient, path: str, params: dict[str, Any] | None = None, **kw: Any
) -> httpx.Response:
    headers, raw = signed_request(path, params, **kw)
    return await client.post(path, content=raw, headers=headers)
