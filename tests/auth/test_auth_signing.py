"""HMAC signer: checked by a tiny real server that verifies requests exactly as WhiteBIT documents (§2.3)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from typing import Any

import httpx
import pytest
from aiohttp import web
from pydantic import SecretStr

from botkit.auth.signing import HmacSigner, NonceSource
from botkit.market.grants import Grant, InsufficientScope
from botkit.whitebit.endpoints import DEFAULT_REGISTRY
from botkit.whitebit.errors import OutcomeUnknown, WhiteBitAuthError, WhiteBitUnavailable, WhiteBitValidationError
from botkit.whitebit.rest import WhiteBitRest

KEY, SECRET = "k-public-123", "s3cret-value-for-hmac"


class Verifier:
    """Server side, written from the docs: payload == base64(body), signature == hex HMAC-SHA512(payload)."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.rejected = 0
        self.nonces: set[int] = set()
        self.fail_next: list[int] = []  # statuses to answer before verifying (gateway faults)
        self.hits = 0

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.hits += 1
        if self.fail_next:
            return web.Response(status=self.fail_next.pop(0), text="gateway says no", headers={"Retry-After": "0"})
        payload = request.headers.get("X-TXC-PAYLOAD", "")
        sig = request.headers.get("X-TXC-SIGNATURE", "")
        expected = hmac.new(SECRET.encode(), payload.encode(), hashlib.sha512).hexdigest()
        if request.headers.get("X-TXC-APIKEY") != KEY or not hmac.compare_digest(sig, expected):
            self.rejected += 1
            return web.json_response({"code": 10, "message": "Unauthorized request."}, status=401)
        if base64.b64decode(payload) != raw:
            self.rejected += 1
            return web.json_response({"code": 9, "message": "Invalid payload."}, status=400)
        body = json.loads(raw)
        if body["request"] != request.path or body["nonce"] in self.nonces or body.get("nonceWindow") is not True:
            self.rejected += 1
            return web.json_response({"code": 0, "errors": {}, "message": "Too many requests."}, status=429)
        self.nonces.add(body["nonce"])
        self.seen.append(body)
        if body.get("amount") == "0":
            return web.json_response(
                {"code": 32, "message": "Validation failed", "errors": {"amount": ["Amount must be positive"]}},
                status=422,
            )
        return web.json_response({"ok": True, "echo": body})


@pytest.fixture
async def verifier_url():
    v = Verifier()
    app = web.Application()
    app.router.add_post("/{tail:.*}", v.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield v, f"http://127.0.0.1:{port}"
    await runner.cleanup()


def test_signature_matches_documented_algorithm():
    s = HmacSigner(KEY, SecretStr(SECRET))
    req = s.sign("/api/v4/order/new", {"market": "BTC_USDT", "amount": "0.01", "clientOrderId": None})
    body = json.loads(req.body)
    assert b" " not in req.body  # compact JSON
    assert "clientOrderId" not in body  # None dropped, not sent as null
    assert body["request"] == "/api/v4/order/new" and body["nonceWindow"] is True
    assert base64.b64decode(req.headers["X-TXC-PAYLOAD"]) == req.body
    expected = hmac.new(SECRET.encode(), req.headers["X-TXC-PAYLOAD"].encode(), hashlib.sha512).hexdigest()
    assert req.headers["X-TXC-SIGNATURE"] == expected
    assert SECRET not in repr(req) and SECRET not in repr(s)


def test_nonce_strictly_increasing_even_with_a_stuck_clock():
    n = NonceSource(clock_ms=lambda: 1_700_000_000_000)
    got = [n.next() for _ in range(1000)]
    assert got == sorted(set(got)) and len(got) == 1000


def test_reserved_fields_and_bad_path_are_clear_errors():
    s = HmacSigner(KEY, SecretStr(SECRET))
    with pytest.raises(ValueError, match="nonce"):
        s.sign("/api/v4/orders", {"nonce": 1})
    with pytest.raises(ValueError, match="must start with '/'"):
        s.sign("api/v4/orders")
    with pytest.raises(ValueError, match="api_secret is empty"):
        HmacSigner(KEY, SecretStr(""))


async def test_concurrent_signed_calls_all_verify(verifier_url):
    v, url = verifier_url
    async with httpx.AsyncClient() as http:
        rest = WhiteBitRest(url, http, signer=HmacSigner(KEY, SecretStr(SECRET)),
                            key_grant=Grant.of("orders.read,balances.read"))
        results = await asyncio.gather(*(rest.call("open_orders", {"market": "BTC_USDT"}) for _ in range(100)))
    assert all(r["ok"] for r in results)
    assert v.rejected == 0 and len(v.nonces) == 100


async def test_scope_check_blocks_before_any_io(verifier_url):
    v, url = verifier_url
    async with httpx.AsyncClient() as http:
        rest = WhiteBitRest(url, http, signer=HmacSigner(KEY, SecretStr(SECRET)), key_grant=Grant.of("orders.read"))
        with pytest.raises(InsufficientScope) as ei:
            await rest.call("order_new", {"market": "BTC_USDT", "side": "buy", "amount": "1", "price": "1"})
    assert ei.value.missing == {"orders.create"}
    assert rest.attempts == 0 and v.seen == [] and v.rejected == 0


async def test_typed_errors_carry_code_and_field_messages_not_bodies(verifier_url):
    _v, url = verifier_url
    async with httpx.AsyncClient() as http:
        good = WhiteBitRest(url, http, signer=HmacSigner(KEY, SecretStr(SECRET)), key_grant=Grant.of("orders.create"))
        with pytest.raises(WhiteBitValidationError) as ei:
            await good.call("order_new", {"market": "BTC_USDT", "side": "buy", "amount": "0", "price": "1"})
        assert ei.value.code == 32 and ei.value.errors == {"amount": ["Amount must be positive"]}
        assert ei.value.path == "/api/v4/order/new" and good.attempts == 1  # non-idempotent: not retried
        bad = WhiteBitRest(url, http, signer=HmacSigner(KEY, SecretStr("wrong-secret")),
                           key_grant=Grant.of("orders.read"))
        with pytest.raises(WhiteBitAuthError) as ei2:
            await bad.call("open_orders")
    assert ei2.value.code == 10 and "wrong-secret" not in str(ei2.value)


def test_registry_rows_are_consistent():
    names = [ep.name for ep in DEFAULT_REGISTRY]
    assert len(names) == len(set(names))
    for ep in DEFAULT_REGISTRY:
        assert ep.path.startswith("/") and ep.auth
        if "public" in ep.auth:
            assert not ep.scopes
    assert DEFAULT_REGISTRY.get("/api/v4/order/new").idempotent is False
    assert DEFAULT_REGISTRY.get("apikey_secret").url_path(externalId="x") == "/oauth2/api-key/x/secret"
    with pytest.raises(KeyError, match="unknown endpoint"):
        DEFAULT_REGISTRY.get("/api/v4/nope")


async def test_retry_policy_follows_the_registry(verifier_url):
    v, url = verifier_url
    waits: list[float] = []

    async def sleep(d: float) -> None:
        waits.append(d)

    async with httpx.AsyncClient() as http:
        rest = WhiteBitRest(url, http, signer=HmacSigner(KEY, SecretStr(SECRET)), sleep=sleep,
                            key_grant=Grant.of("orders.read,orders.create"))
        v.fail_next = [500, 502]
        assert (await rest.call("open_orders"))["ok"]  # idempotent read: retried through 5xx
        assert v.hits == 3 and waits == [0.0, 0.0]
        for status in (500, 503):  # order creation may have happened: never resent, the outcome is unknown
            v.fail_next = [status]
            with pytest.raises(OutcomeUnknown) as ei:
                await rest.call("order_new", {"market": "BTC_USDT", "side": "buy", "amount": "1", "price": "1"})
            assert isinstance(ei.value, WhiteBitUnavailable) and ei.value.status == status
        assert v.hits == 5
        v.fail_next = [429, 429]  # a gateway 429 is "not processed": safe to resend even an order, with a fresh nonce
        r = await rest.call("order_new", {"market": "BTC_USDT", "side": "buy", "amount": "1", "price": "1"})
        assert r["ok"] and v.hits == 8 and v.rejected == 0


async def test_signer_against_the_sandbox_exchange_under_concurrency():
    from botkit.sandbox.testing import running_sandbox, test_config

    async with running_sandbox(test_config()) as sb, httpx.AsyncClient() as http:
        rest = WhiteBitRest(sb.base_url, http, signer=HmacSigner("demo-key", SecretStr("demo-secret")),
                            key_grant=Grant.of("orders.read,balances.read"))
        results = await asyncio.gather(*(rest.call("trade_balance") for _ in range(50)))
        assert all(isinstance(r, dict) for r in results)
        assert rest.attempts == 50  # no 429 nonce rejections, no retries
        wrong = WhiteBitRest(sb.base_url, http, signer=HmacSigner("demo-key", SecretStr("not-the-secret")),
                             key_grant=Grant.of("balances.read"))
        with pytest.raises(WhiteBitAuthError) as ei:
            await wrong.call("trade_balance")
        assert "not-the-secret" not in str(ei.value)
