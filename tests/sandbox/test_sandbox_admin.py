"""Admin endpoint hardening (JSON only, per-process token), the `botkit sandbox` command's help and start-up lines,
and a client that hangs up mid-request."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import subprocess
import sys

import httpx
import pytest

from botkit.sandbox.faults import ADMIN_HEADER
from botkit.sandbox.server import Sandbox


async def test_admin_needs_json_and_the_token(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
    token = {ADMIN_HEADER: sandbox.admin_token}
    body = '{"latency_ms": 5}'
    # what a web page in a local browser can send without a preflight: text/plain, no custom header
    r = await client.post("/_sandbox/faults", content=body, headers={"Content-Type": "text/plain"})
    assert r.status_code == 403 and ADMIN_HEADER in r.text
    r = await client.post("/_sandbox/faults", content=body, headers={"Content-Type": "text/plain", **token})
    assert r.status_code == 415 and "application/json" in r.text
    r = await client.post("/_sandbox/faults", json={"latency_ms": 5}, headers={ADMIN_HEADER: "wrong"})
    assert r.status_code == 403
    assert sandbox.faults.config.latency_ms == 0  # none of the above changed anything
    assert (await client.post("/_sandbox/reset", headers={"Content-Type": "text/plain", **token})).status_code == 415
    assert (await client.post("/_sandbox/reset", json={})).status_code == 403
    assert (await client.get("/_sandbox/faults")).status_code == 403
    assert (await client.delete("/_sandbox/faults")).status_code == 403
    r = await client.post("/_sandbox/faults", json={"latency_ms": 5}, headers=token)
    assert r.status_code == 200 and sandbox.faults.config.latency_ms == 5
    assert (await client.post("/_sandbox/reset", json={}, headers=token)).json() == {"status": "reset"}
    assert Sandbox().admin_token != sandbox.admin_token  # per process (per server), never a fixed value


async def test_a_client_that_hangs_up_mid_request_is_one_info_line(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    _reader, writer = await asyncio.open_connection("127.0.0.1", sandbox.port)
    writer.write(b"POST /api/v4/order/new HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 1000\r\n\r\n{\"market\":")  # 10 of the promised 1000 bytes
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.close()
    for _ in range(250):  # up to 5 s on a loaded machine
        if any("went away" in r.getMessage() for r in caplog.records):
            break
        await asyncio.sleep(0.02)
    gone = [r for r in caplog.records if "went away" in r.getMessage()]
    assert len(gone) == 1 and gone[0].levelno == logging.INFO and gone[0].exc_info is None
    assert "/api/v4/order/new" in gone[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def test_cli_help_describes_the_command_and_every_option() -> None:
    out = subprocess.run([sys.executable, "-m", "botkit.sandbox.cli", "sandbox", "--help"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    assert "WhiteBIT-compatible exchange on 127.0.0.1" in text and "admin token" in text
    assert re.search(r"--config FILE sandbox TOML file", text) and re.search(r"--port N TCP port", text)
    assert "-h, --help show this help message" in text


def test_cli_prints_the_demo_credentials_and_the_admin_token() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "botkit.sandbox.cli", "sandbox", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = []
        while not lines or "Ctrl-C" not in lines[-1]:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            assert line, lines
            lines.append(line)
        text = "".join(lines)
        base = re.search(r"(http://127\.0\.0\.1:\d+)", text).group(1)  # type: ignore[union-attr]
        assert "API key:        demo-key / secret demo-secret" in text
        assert "OAuth client:   botkit-demo, redirect http://127.0.0.1:8766/callback" in text
        assert "botkit-demo-secret" not in text  # the OAuth client secret stays in the config file
        token = re.search(rf"{ADMIN_HEADER}: (\S+)", text).group(1)  # type: ignore[union-attr]
        headers = {ADMIN_HEADER: token}
        assert httpx.post(base + "/_sandbox/faults", json={"latency_ms": 1}, headers=headers).status_code == 200
        assert httpx.post(base + "/_sandbox/faults", json={}, headers={ADMIN_HEADER: "x"}).status_code == 403
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    assert text.count(token) == 1  # printed once, and nowhere else
    assert token not in proc.stderr.read()  # type: ignore[union-attr]
