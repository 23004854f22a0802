"""Benchmark: per-call cost of "valid token + scope check" on the hot path (target < 5 µs per call).

Run: .venv/bin/python backtests/bench_tokens.py [calls] [--smoke]
No network: the token is fresh, so every call takes the fast path, which is what a trading loop sees between
refreshes. Prints each figure next to its reference. Exit status 1 when the target is missed; `--smoke` (the tiny
run in tests/bench) reports it without enforcing it.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

import httpx
from pydantic import SecretStr

from botkit.auth.manager import TokenManager
from botkit.auth.oauth import OAuthClient
from botkit.auth.settings import AuthSettings
from botkit.auth.signing import HmacSigner
from botkit.auth.store import TokenStore
from botkit.auth.tokens import TokenSet
from botkit.whitebit.endpoints import DEFAULT_REGISTRY

TARGET_US = 5.0


async def bench(calls: int) -> float:
    """Prints the figures; returns the best µs per token_for call."""
    with tempfile.TemporaryDirectory() as d:
        s = AuthSettings(client_id="bench", base_url="https://whitebit.com", token_dir=Path(d), keepalive=False)
        async with httpx.AsyncClient() as http:
            mgr = TokenManager(OAuthClient(s, http), TokenStore(Path(d), s.base_url, s.client_id), s)
            now = time.time()
            scopes = frozenset({"users.balances.read", "users.orders.read", "orders.read", "orders.create"})
            await mgr.install(TokenSet(SecretStr("a" * 48), SecretStr("r" * 48), "Bearer", now + 3600, now, scopes))
            ep = DEFAULT_REGISTRY.get("accounts_balance_main")
            required, name = ep.scopes, ep.name

            async def token_and_scope() -> float:
                t0 = time.perf_counter()
                for _ in range(calls):
                    await mgr.token_for(name, required)
                return (time.perf_counter() - t0) / calls * 1e6

            async def token_only() -> float:
                t0 = time.perf_counter()
                for _ in range(calls):
                    await mgr.access_token()
                return (time.perf_counter() - t0) / calls * 1e6

            best = min([await token_and_scope() for _ in range(5)])
            only = min([await token_only() for _ in range(5)])
    signer = HmacSigner("k" * 32, SecretStr("s" * 64))
    n = max(1000, calls // 20)
    t0 = time.perf_counter()
    for _ in range(n):
        signer.sign("/api/v4/order/new", {"market": "BTC_USDT", "side": "buy", "amount": "0.01", "price": "40000"})
    sign_us = (time.perf_counter() - t0) / n * 1e6
    verdict = "OK" if best < TARGET_US else "OVER TARGET"
    print(f"python {sys.version.split()[0]}, {calls} calls per run, best of 5")
    print(f"token_for (valid token + scope check): {best:6.3f} µs/call   target < {TARGET_US:.1f} µs   {verdict}")
    print(f"access_token (valid token only):       {only:6.3f} µs/call   (reference: part of the above)")
    print(f"HMAC sign of an order/new body:        {sign_us:6.3f} µs/call   (reference only, no target)")
    return best


def main(argv: list[str]) -> int:
    smoke = "--smoke" in argv
    rest = [a for a in argv if a != "--smoke"]
    best = asyncio.run(bench(int(rest[0]) if rest else 200_000))
    return 0 if best < TARGET_US or smoke else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
