"""Token store: what an interrupted save leaves behind is recovered or removed, never silently ignored.

A real crash between the fsynced temp file and the rename is in test_auth_processes.py (a killed process); here the
leftovers are laid down by hand to cover each case: newer, older, partial, another store's, a save in progress.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from pathlib import Path

from pydantic import SecretStr

from botkit.auth.store import StoredCredentials, TokenStore
from botkit.auth.tokens import ApiKeyCredentials, TokenSet

BASE, CID = "https://whitebit.com", "cid"


def _token(n: int) -> TokenSet:
    return TokenSet(SecretStr(f"at-{n}"), SecretStr(f"rt-{n}"), "Bearer", 2e9 + n, 1.9e9 + n, frozenset({"x"}))


def _leftover(store: TokenStore, creds: StoredCredentials, name: str) -> Path:
    """The fsynced temp file a save leaves when the process dies before `os.replace`."""
    scratch = TokenStore(store.directory / "scratch", store.base_url, store.client_id, store.account)
    scratch.save(creds)
    tmp = store.directory / name
    shutil.copyfile(scratch.path, tmp)
    os.chmod(tmp, 0o600)
    shutil.rmtree(scratch.directory)
    return tmp


def _rt(store: TokenStore) -> str | None:
    stored = store.load()
    assert stored is not None and stored.token is not None and stored.token.refresh_token is not None
    return stored.token.refresh_token.get_secret_value()


def test_a_newer_temp_file_is_adopted_and_an_older_or_partial_one_removed(tmp_path):
    store = TokenStore(tmp_path / "t", BASE, CID)
    store.save(StoredCredentials(token=_token(1)))
    newer = _leftover(store, StoredCredentials(token=_token(2)), f".{store.path.name}.crash1.tmp")
    partial = store.directory / f".{store.path.name}.crash2.tmp"
    partial.write_bytes(b'{"schema": 1, "base_url": "https://whi')  # died before its fsync
    assert _rt(store) == "rt-2"
    assert not newer.exists() and not partial.exists()
    assert (store.path.stat().st_mode & 0o777) == 0o600

    older = _leftover(store, StoredCredentials(token=_token(1)), f".{store.path.name}.crash3.tmp")
    store.save(StoredCredentials(token=_token(3)))  # a later save won (its saved_at is newer)
    assert _rt(store) == "rt-3" and not older.exists()


def test_a_temp_file_of_an_earlier_version_is_recovered_and_another_stores_is_left_alone(tmp_path):
    store = TokenStore(tmp_path / "t", BASE, CID)
    store.save(StoredCredentials(token=_token(1), api_key=ApiKeyCredentials("k", SecretStr("s"), None,
                                                                           frozenset(), 1.0)))
    legacy = _leftover(store, StoredCredentials(token=_token(5)), ".tok-abc123.tmp")  # 0.x naming, no owner in name
    eu = TokenStore(tmp_path / "t", "https://whitebit.eu", CID)
    foreign = _leftover(eu, StoredCredentials(token=_token(9)), ".tok-def456.tmp")
    assert _rt(store) == "rt-5" and not legacy.exists()
    assert foreign.exists()  # not ours: the whitebit.eu store recovers it
    assert eu.load() is not None and _rt(eu) == "rt-9" and not foreign.exists()


def test_a_save_in_progress_is_not_touched_by_a_reader(tmp_path):
    """While another holder has the lock (it may be writing its temp file right now), load() reads the file and
    leaves temp files alone; the next lock holder recovers them on acquisition."""
    store = TokenStore(tmp_path / "t", BASE, CID)
    store.save(StoredCredentials(token=_token(1)))
    holding, release = threading.Event(), threading.Event()

    def holder() -> None:
        with TokenStore(tmp_path / "t", BASE, CID).locked_sync():
            holding.set()
            release.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    assert holding.wait(10)
    tmp = _leftover(store, StoredCredentials(token=_token(2)), f".{store.path.name}.inflight.tmp")
    try:
        assert _rt(store) == "rt-1" and tmp.exists()
    finally:
        release.set()
        t.join()

    async def lock_holder_recovers() -> None:
        async with store.locked():
            assert not tmp.exists()

    asyncio.run(lock_holder_recovers())
    assert _rt(store) == "rt-2"


def test_delete_removes_temp_files_too(tmp_path):
    store = TokenStore(tmp_path / "t", BASE, CID)
    store.save(StoredCredentials(token=_token(1)))
    tmp = _leftover(store, StoredCredentials(token=_token(2)), f".{store.path.name}.crash.tmp")
    with store.locked_sync():
        assert not tmp.exists()  # recovered on acquisition ...
        tmp2 = _leftover(store, StoredCredentials(token=_token(3)), f".{store.path.name}.crash2.tmp")
        assert store.delete()
    assert not store.path.exists() and not tmp2.exists() and store.load() is None
