"""No secret reaches logs, reprs or exception texts; the token store refuses unsafe or foreign files."""

from __future__ import annotations

import io
import json
import logging
import os

import pytest
from pydantic import SecretStr

from botkit.auth import redact
from botkit.auth.errors import ReauthRequired, TokenStoreRejected
from botkit.auth.store import StoredCredentials, TokenStore
from botkit.auth.tokens import TokenSet
from botkit.sandbox.testing import FakeClock


async def test_debug_log_of_a_whole_session_contains_no_secret(harness, tmp_path, http, login):
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    redact.install(handler, pin_noisy=False)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    # The CLI pins httpx/httpcore to WARNING for the process (redact.install); an in-process CLI test run earlier in
    # the session leaves that pin, and this test must see what httpx logs at DEBUG to prove it is scrubbed.
    noisy = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    for name in noisy:
        logging.getLogger(name).setLevel(logging.DEBUG)
    seen: set[str] = set()
    try:
        s = await login(harness, tmp_path, http)
        seen |= {s.code, harness.secret} | ({s.verifier} if s.verifier else set())

        def collect() -> None:
            t = s.manager.token
            seen.add(t.access_token.get_secret_value())
            if t.refresh_token is not None:
                seen.add(t.refresh_token.get_secret_value())

        collect()
        await s.rest.call("ok")
        await harness.elapse(harness.at_ttl - s.settings.leeway_s + 0.1)
        await s.rest.call("ok")  # proactive refresh
        collect()
        await harness.revoke_access(http, s.client, s.manager.token.access_token.get_secret_value())
        await s.rest.call("ok")  # 401 -> forced refresh
        collect()
        logging.getLogger("botkit.test").debug("token set now %r, manager %r", s.manager.token, s.manager)
        s.manager._reauth = ReauthRequired("simulated", command="botkit auth login x")
        try:
            await s.manager.force_refresh("whatever")
        except ReauthRequired:
            logging.getLogger("botkit.test").exception("reauth, with traceback")
        # what a careless caller might log: the secrets themselves, as args and inside a dict
        t = s.manager.token
        logging.getLogger("botkit.test").debug(
            "Authorization: Bearer %s body=%s", t.access_token.get_secret_value(),
            json.dumps({"refresh_token": t.refresh_token.get_secret_value() if t.refresh_token else "x",
                        "client_secret": harness.secret}),
        )
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        for name, level in noisy.items():
            logging.getLogger(name).setLevel(level)
    text = buf.getvalue()
    assert "refresh.ok" in text and "HTTP Request" in text  # the log really covered the session, httpx included
    leaked = [x[:6] for x in seen if x and x in text]
    assert leaked == [], f"secrets in the DEBUG log (prefixes): {leaked}"


def test_scrub_patterns():
    s = redact.scrub(
        'GET /cb?code=abc123XYZ&state=s1 {"access_token": "tok-123456", "apiSecret":"sec-99999"} '
        "Authorization: Bearer eyJabcdef.ghi client_secret=hunter22 X-TXC-SIGNATURE: deadbeefcafe"
    )
    for secret in ("abc123XYZ", "tok-123456", "sec-99999", "eyJabcdef.ghi", "hunter22", "deadbeefcafe"):
        assert secret not in s
    assert "state=s1" in s and "code_challenge=keepme" in redact.scrub("code_challenge=keepme")


def _token(at: str = "at-secret-value", rt: str = "rt-secret-value") -> TokenSet:
    return TokenSet(SecretStr(at), SecretStr(rt), "Bearer", 2e9, 1.9e9, frozenset({"orders.read"}))


def test_reprs_hide_secrets(tmp_path):
    t = _token()
    store = TokenStore(tmp_path / "t", "https://whitebit.com", "cid")
    for text in (repr(t), str(t), repr(store), repr(StoredCredentials(token=t))):
        assert "at-secret-value" not in text and "rt-secret-value" not in text


def test_store_round_trip_mode_and_atomic_write(tmp_path):
    store = TokenStore(tmp_path / "t", "https://whitebit.com", "cid", "acct")
    store.save(StoredCredentials(token=_token()))
    assert (store.path.stat().st_mode & 0o777) == 0o600
    assert (store.directory.stat().st_mode & 0o777) == 0o700
    doc = json.loads(store.path.read_text())
    assert doc["schema"] == 1 and doc["base_url"] == "https://whitebit.com" and doc["client_id"] == "cid"
    assert doc["token"]["scopes"] == ["orders.read"] and "expires_at" in doc["token"] and "obtained_at" in doc["token"]
    loaded = store.load()
    assert loaded is not None and loaded.token is not None and loaded.token.refresh_token is not None
    assert loaded.token.refresh_token.get_secret_value() == "rt-secret-value"
    assert [p.name for p in store.directory.iterdir() if p.suffix == ".tmp"] == []


def test_store_refuses_readable_and_foreign_files(tmp_path):
    store = TokenStore(tmp_path / "t", "https://whitebit.com", "cid")
    store.save(StoredCredentials(token=_token()))
    os.chmod(store.path, 0o644)
    with pytest.raises(TokenStoreRejected, match="chmod 600"):
        store.load()
    os.chmod(store.path, 0o600)
    eu = TokenStore(tmp_path / "t", "https://whitebit.eu", "cid")
    eu.path = store.path  # the same file offered for the other region
    with pytest.raises(TokenStoreRejected, match="whitebit.com"):
        eu.load()
    other = TokenStore(tmp_path / "t", "https://whitebit.com", "other-client")
    other.path = store.path
    with pytest.raises(TokenStoreRejected, match="client_id"):
        other.load()


def test_encryption_at_rest_with_key_from_environment(tmp_path):
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    env = {"BOTKIT_TOKEN_KEY": key}
    store = TokenStore.from_env_key(tmp_path / "t", "https://whitebit.com", "cid", "default", "BOTKIT_TOKEN_KEY", env)
    store.save(StoredCredentials(token=_token()))
    raw = store.path.read_text()
    assert "at-secret-value" not in raw and "rt-secret-value" not in raw and key not in raw
    back = store.load()
    assert back is not None and back.token is not None
    assert back.token.access_token.get_secret_value() == "at-secret-value"
    wrong = TokenStore.from_env_key(tmp_path / "t", "https://whitebit.com", "cid", "default", "K",
                                    {"K": Fernet.generate_key().decode()})
    with pytest.raises(TokenStoreRejected, match="cannot be decrypted"):
        wrong.load()
    plain = TokenStore(tmp_path / "t", "https://whitebit.com", "cid")
    with pytest.raises(TokenStoreRejected, match="encrypted"):
        plain.load()
    with pytest.raises(TokenStoreRejected, match="not set"):
        TokenStore.from_env_key(tmp_path / "t", "https://whitebit.com", "cid", "default", "MISSING", {})


async def test_server_without_refresh_token_in_answer_keeps_the_old_one(wb_harness, tmp_path, http, login):
    """Only the sandbox can be told to omit it; oidc-provider always returns one (RFC 6749 §6 allows both)."""
    h = await wb_harness(clock=FakeClock(), rotate_refresh_tokens=False)
    s = await login(h, tmp_path, http)
    rt = s.manager.token.refresh_token.get_secret_value()
    for _ in range(2):
        await h.elapse(h.at_ttl - s.settings.leeway_s + 0.1)
        await s.rest.call("ok")
    c = await h.counts()
    assert c["refresh_ok"] == 2 and c["refresh_rejected"] == 0
    assert s.manager.token.refresh_token.get_secret_value() == rt  # kept, in memory ...
    assert s.store.load().token.refresh_token.get_secret_value() == rt  # ... and on disk


async def test_failed_persist_is_an_error_and_the_unsaved_token_is_not_used(wb_harness, tmp_path, http, login):
    from botkit.auth.errors import PersistenceError

    h = await wb_harness()
    s = await login(h, tmp_path, http)
    old = s.manager.token.access_token.get_secret_value()

    def disk_full() -> None:
        raise OSError(28, "No space left on device")

    s.store.before_replace = disk_full
    with pytest.raises(PersistenceError, match="No space left"):
        await s.manager.force_refresh(old)
    assert (await h.counts())["refresh_ok"] == 1  # the server did rotate ...
    assert s.manager.token.access_token.get_secret_value() == old  # ... but the unsaved token was not adopted
    assert s.store.load().token.access_token.get_secret_value() == old
    assert [p.name for p in s.store.directory.iterdir() if p.suffix == ".tmp"] == []


async def test_the_websocket_token_never_reaches_debug_logs(caplog):
    """websockets logs each frame at DEBUG; the `authorize` frame carries the token as a positional parameter."""
    import httpx

    from botkit.auth.signing import HmacSigner
    from botkit.market.grants import Grant
    from botkit.sandbox.testing import running_sandbox, test_config
    from botkit.whitebit.rest import WhiteBitRest
    from botkit.whitebit.ws import WsClient

    caplog.set_level(logging.DEBUG)
    tokens: list[str] = []
    async with running_sandbox(test_config()) as sb, httpx.AsyncClient() as http:
        rest = WhiteBitRest(sb.base_url, http, signer=HmacSigner("demo-key", SecretStr("demo-secret")),
                            key_grant=Grant.of("orders.read,balances.read"))

        async def token() -> str:
            t = str((await rest.call("websocket_token", {}))["websocket_token"])
            tokens.append(t)
            return t

        ws = WsClient(sb.ws_url, lambda _e: None, token=token, stale_after=None)
        ws.subscribe_private(["BTC_USDT"], ["USDT"])
        await ws.start(wait=10)
        try:
            assert ws.connected and tokens
        finally:
            await ws.close()
    frames = [r.getMessage() for r in caplog.records if "authorize" in r.getMessage()]
    assert frames  # the frame was logged, masked
    text = "\n".join(r.getMessage() for r in caplog.records)
    for t in tokens:
        assert len(t) >= 16
        pieces = {t[i:i + 10] for i in range(len(t) - 9)}  # any 10 characters in a row of the token
        assert not any(p in text for p in pieces), "a part of the websocket token is in the DEBUG log"
