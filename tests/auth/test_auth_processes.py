"""Several OS processes on one token file; crashes in the middle of refresh-and-persist."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from botkit.auth.manager import TokenManager
from botkit.auth.store import store_for

WORKER = Path(__file__).parent / "token_worker.py"
ROOT = Path(__file__).resolve().parents[2]


def _table(s) -> dict[str, object]:
    data = s.model_dump(mode="json", exclude={"client_secret"})
    return {k: v for k, v in data.items() if v is not None}


async def run_worker(h, s, mode: str, seconds: float = 0.0) -> tuple[int | None, dict[str, Any]]:
    env = {**os.environ, "BOTKIT_AUTH__CLIENT_SECRET": h.secret, "PYTHONPATH": str(ROOT)}
    arg = json.dumps({"auth": _table(s), "mode": mode, "seconds": seconds})
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(WORKER), arg, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    result = json.loads(out.decode().strip().splitlines()[-1]) if out.strip() else {"stderr": err.decode()[-2000:]}
    return proc.returncode, result



@pytest.fixture
def harness(real_time_harness):
    """The workers are other processes on real time: the servers run on real time too."""
    return real_time_harness


async def test_two_processes_sharing_one_token_file_never_replay(harness, tmp_path, http, login):
    s = await login(harness, tmp_path, http)
    before = await harness.counts()
    seconds = 3 * (harness.at_ttl - s.settings.leeway_s) + 0.3
    (rc1, r1), (rc2, r2) = await asyncio.gather(
        run_worker(harness, s.settings, "loop", seconds), run_worker(harness, s.settings, "loop", seconds)
    )
    assert rc1 == 0 and rc2 == 0, (r1, r2)
    assert r1["errors"] == 0 and r2["errors"] == 0, (r1, r2)
    after = await harness.counts()
    refreshed = after["refresh_ok"] - before["refresh_ok"]
    assert after["refresh_rejected"] - before["refresh_rejected"] == 0  # no invalid_grant, no replay
    assert refreshed >= 2  # the token really crossed expiry several times
    # every refresh request the server saw was sent by exactly one of the processes, once
    assert after["refresh"] - before["refresh"] == r1["refreshes"] + r2["refreshes"]
    assert refreshed <= seconds / (harness.at_ttl - s.settings.leeway_s) + 1  # not one per process per expiry


@pytest.mark.parametrize("mode,exit_code", [("crash-before-replace", 17), ("crash-after-save", 18)])
async def test_a_crash_anywhere_in_refresh_and_persist_never_loses_the_rotated_token(
    harness, tmp_path, http, login, mode, exit_code
):
    s = await login(harness, tmp_path, http)
    old = s.store.load().token
    before = await harness.counts()
    rc, out = await run_worker(harness, s.settings, mode)
    assert rc == exit_code, out
    assert (await harness.counts())["refresh_ok"] - before["refresh_ok"] == 1  # the server did rotate
    if mode == "crash-before-replace":  # the newest token set exists only in the fsynced temp file
        assert [p.name for p in s.store.directory.glob("*.tmp")] != []
    stored = store_for(s.settings, environ={}).load()  # recovers the interrupted save; never a truncated file
    assert stored is not None and stored.token is not None
    assert stored.token.access_token.get_secret_value() != old.access_token.get_secret_value()
    assert list(s.store.directory.glob("*.tmp")) == []  # adopted, not left behind
    assert (s.store.path.stat().st_mode & 0o777) == 0o600
    # and the recovered refresh token is the live one: the next refresh succeeds, no re-login
    mgr = TokenManager(s.client, store_for(s.settings, environ={}), s.settings, reauth_command="botkit auth login x")
    await mgr.load()
    await asyncio.sleep(1.05)
    await mgr.force_refresh(stored.token.access_token.get_secret_value())
    assert mgr.token is not None
    assert mgr.token.access_token.get_secret_value() != stored.token.access_token.get_secret_value()
    after = await harness.counts()
    assert after["refresh_rejected"] - before["refresh_rejected"] == 0
