"""A separate bot process for the multi-process tests: shares a token file with its siblings.

argv[1] is a JSON object: {"auth": {...[auth] table...}, "mode": "loop"|"crash-before-replace"|"crash-after-save",
"seconds": float}. The client secret comes from BOTKIT_AUTH__CLIENT_SECRET, as in production.
Prints one JSON line with what it did.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

import httpx

from botkit.auth.errors import AuthError
from botkit.auth.manager import TokenManager
from botkit.auth.oauth import OAuthClient
from botkit.auth.settings import auth_settings_from_mapping
from botkit.auth.store import store_for


async def main(cfg: dict[str, Any]) -> dict[str, Any]:
    s = auth_settings_from_mapping(cfg["auth"], os.environ)
    async with httpx.AsyncClient(timeout=10) as http:
        client = OAuthClient(s, http)
        if s.use_metadata:
            await client.discover()
        store = store_for(s, environ={})
        mgr = TokenManager(client, store, s)
        await mgr.load()
        mode = cfg["mode"]
        if mode == "crash-before-replace":
            store.before_replace = lambda: os._exit(17)
            assert mgr.token is not None
            await mgr.force_refresh(mgr.token.access_token.get_secret_value())
            return {"error": "did not crash"}
        if mode == "crash-after-save":
            real_save = store.save

            def save_then_die(creds: Any) -> None:
                real_save(creds)
                os._exit(18)

            store.save = save_then_die  # type: ignore[method-assign]
            assert mgr.token is not None
            await mgr.force_refresh(mgr.token.access_token.get_secret_value())
            return {"error": "did not crash"}
        calls = errors = 0
        deadline = time.monotonic() + float(cfg["seconds"])
        while time.monotonic() < deadline:
            try:
                await mgr.access_token()
                calls += 1
            except AuthError as exc:
                errors += 1
                return {"calls": calls, "errors": errors, "error": type(exc).__name__, "refreshes": mgr.refresh_count}
            await asyncio.sleep(0.02)
        return {"calls": calls, "errors": errors, "refreshes": mgr.refresh_count}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))), flush=True)
