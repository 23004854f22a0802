"""The token store: one 0600 file per (base URL, client id, account), written atomically, locked across processes.

A rotated refresh token exists in exactly one place; losing it means a new human login. Hence temp file + fsync +
`os.replace` + directory fsync (never an in-place write), and an flock held around refresh-and-persist so two
processes never both spend the same refresh token (oauth-client-rules.md §6, C2, D1-D3).

A crash between the fsynced temp file and the rename leaves the newest credentials only in that temp file. Whoever
next takes the store lock (and `load()`, when the lock is free) adopts it if it is whole, ours and newer than the
file, and removes it otherwise: a rotated refresh token survives a crash at any point of a save.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import stat
import tempfile
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from botkit.auth.errors import PersistenceError, TokenStoreRejected
from botkit.auth.settings import AuthSettings
from botkit.auth.tokens import ApiKeyCredentials, TokenSet

log = logging.getLogger("botkit.auth.store")

SCHEMA_VERSION = 1
_LEGACY_TMP_PREFIX = ".tok-"  # temp files of earlier versions: attributed to a store by their header


@dataclass(frozen=True, slots=True)
class StoredCredentials:
    """What one file holds. `token`: the login's session (Flow A / RFC 6749, refreshable). `api_key`: the Fast API
    key. `key_token`: the Flow B access token that came with the key (4 h, no refresh; for /oauth2/api-key/*)."""

    token: TokenSet | None = None
    api_key: ApiKeyCredentials | None = None
    key_token: TokenSet | None = None

    @property
    def empty(self) -> bool:
        return self.token is None and self.api_key is None and self.key_token is None


def _token_to_json(t: TokenSet) -> dict[str, Any]:
    return {
        "access_token": t.access_token.get_secret_value(),
        "refresh_token": t.refresh_token.get_secret_value() if t.refresh_token else None,
        "token_type": t.token_type,
        "expires_at": t.expires_at,
        "obtained_at": t.obtained_at,
        "scopes": sorted(t.scopes),
    }


def _token_from_json(d: Mapping[str, Any]) -> TokenSet:
    rt = d.get("refresh_token")
    return TokenSet(
        access_token=SecretStr(str(d["access_token"])),
        refresh_token=SecretStr(str(rt)) if rt else None,
        token_type=str(d.get("token_type", "Bearer")),
        expires_at=float(d["expires_at"]),
        obtained_at=float(d["obtained_at"]),
        scopes=frozenset(str(s) for s in d.get("scopes", [])),
    )


def _key_to_json(k: ApiKeyCredentials) -> dict[str, Any]:
    return {
        "api_key": k.api_key,
        "api_secret": k.api_secret.get_secret_value(),
        "external_id": k.external_id,
        "permissions": sorted(k.permissions),
        "obtained_at": k.obtained_at,
    }


def _key_from_json(d: Mapping[str, Any]) -> ApiKeyCredentials:
    return ApiKeyCredentials(
        api_key=str(d["api_key"]),
        api_secret=SecretStr(str(d["api_secret"])),
        external_id=str(d["external_id"]) if d.get("external_id") else None,
        permissions=frozenset(str(p) for p in d.get("permissions", [])),
        obtained_at=float(d.get("obtained_at", 0.0)),
    )


class _Fernet:
    """Optional encryption at rest; `cryptography` is imported only when a key is configured."""

    def __init__(self, key: SecretStr, env_name: str) -> None:
        try:
            from cryptography.fernet import Fernet
        except ImportError:  # pragma: no cover - depends on the environment
            raise TokenStoreRejected(
                f"{env_name} is set but the 'cryptography' package is missing; pip install cryptography"
            ) from None
        try:
            self._f = Fernet(key.get_secret_value().encode())
        except (ValueError, TypeError):
            raise TokenStoreRejected(
                f"{env_name} is not a valid Fernet key; create one with "
                "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
            ) from None
        self.env_name = env_name

    def encrypt(self, data: bytes) -> str:
        return self._f.encrypt(data).decode("ascii")

    def decrypt(self, token: str) -> bytes:
        from cryptography.fernet import InvalidToken

        try:
            return self._f.decrypt(token.encode("ascii"))
        except InvalidToken:
            raise TokenStoreRejected(
                f"token file cannot be decrypted with the key in {self.env_name}; restore the old key or "
                "delete the file and log in again"
            ) from None


class TokenStore:
    """File-backed credentials for one (base URL, client id, account)."""

    def __init__(
        self,
        directory: Path,
        base_url: str,
        client_id: str,
        account: str = "default",
        *,
        encryption_key: SecretStr | None = None,
        encryption_key_env: str = "BOTKIT_TOKEN_KEY",
    ) -> None:
        self.directory = Path(directory)
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self.account = account
        host = urllib.parse.urlsplit(self.base_url).netloc.replace(":", "_") or "local"
        ident = hashlib.sha256(f"{self.base_url}\0{client_id}\0{account}".encode()).hexdigest()[:16]
        self.path = self.directory / f"{host}-{account}-{ident}.json"
        self.lock_path = self.path.with_suffix(".lock")
        self._fernet = _Fernet(encryption_key, encryption_key_env) if encryption_key is not None else None
        self.before_replace: Callable[[], None] | None = None  # crash-injection seam for tests

    @classmethod
    def from_env_key(
        cls, directory: Path, base_url: str, client_id: str, account: str, env_name: str | None,
        environ: Mapping[str, str] | None = None,
    ) -> TokenStore:
        """Store whose encryption key (if any) comes from the environment, never from beside the file."""
        env = os.environ if environ is None else environ
        key = None
        if env_name:
            raw = env.get(env_name)
            if not raw:
                raise TokenStoreRejected(f"auth.encryption_key_env names {env_name}, which is not set; export it")
            key = SecretStr(raw)
        return cls(directory, base_url, client_id, account, encryption_key=key, encryption_key_env=env_name or "")

    def __repr__(self) -> str:
        return f"TokenStore(path={str(self.path)!r}, encrypted={self._fernet is not None})"

    # -- directory and permission checks --------------------------------------------------------------------------
    def _ensure_dir(self) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise PersistenceError(f"cannot create token directory {self.directory}: {exc.strerror}") from None
        st = self.directory.stat()
        if st.st_mode & 0o077:
            raise TokenStoreRejected(
                f"token directory {self.directory} is accessible by group/others (mode "
                f"{stat.S_IMODE(st.st_mode):03o}); fix with: chmod 700 {self.directory}"
            )

    def _check_file(self, st: os.stat_result, path: Path) -> None:
        if st.st_mode & 0o077:
            raise TokenStoreRejected(
                f"token file {path} is readable by group/others (mode {stat.S_IMODE(st.st_mode):03o}); "
                f"fix with: chmod 600 {path}"
            )
        if st.st_uid != os.getuid():
            raise TokenStoreRejected(f"token file {path} belongs to uid {st.st_uid}, not to you; remove it")

    def preflight(self) -> None:
        """Before a login spends its one-time code: the folder exists (0700) and takes files, the lock can be
        taken, and a file already there is ours and safe. Raises with the fix, exactly as a save would later."""
        self._ensure_dir()
        try:
            fd, probe = tempfile.mkstemp(prefix=".botkit-probe-", dir=self.directory)
            os.close(fd)
            os.unlink(probe)
            os.close(os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600))
        except OSError as exc:
            raise PersistenceError(
                f"token directory {self.directory} is not writable ({exc.strerror}); fix its owner or permissions "
                f"(chmod 700 {self.directory}) or set auth.token_dir"
            ) from None
        if self.path.exists():
            self.load()

    # -- read ------------------------------------------------------------------------------------------------------
    def load(self) -> StoredCredentials | None:
        """The stored credentials, None if there is no file; refuses unsafe or foreign files with the fix.

        If an interrupted save left a temp file and the store lock is free, it is recovered first (never blocks:
        a lock holder recovers on acquisition, and a temp file it is writing right now is not ours to touch)."""
        if self._temp_files():
            self._recover_if_unlocked()
        return self._read()

    def _read(self) -> StoredCredentials | None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TokenStoreRejected(f"cannot open token file {self.path}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as f:
            self._check_file(os.fstat(f.fileno()), self.path)
            raw = f.read()
        return self._parse(raw, self.path)[0]

    def _parse(self, raw: bytes, where: Path) -> tuple[StoredCredentials, float]:
        """Credentials and the save time (for "which is newer") from a file's bytes."""
        try:
            doc = json.loads(raw)
        except ValueError:
            raise TokenStoreRejected(
                f"token file {where} is not valid JSON; delete it and run `botkit auth login`"
            ) from None
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA_VERSION:
            raise TokenStoreRejected(
                f"token file {where} has schema {doc.get('schema') if isinstance(doc, dict) else None!r}, "
                f"expected {SCHEMA_VERSION}; delete it and log in again"
            )
        if doc.get("base_url") != self.base_url or doc.get("client_id") != self.client_id:
            raise TokenStoreRejected(
                f"token file {where} belongs to {doc.get('base_url')} / client {doc.get('client_id')}, not "
                f"{self.base_url} / client {self.client_id}; check auth.base_url (region) and auth.client_id"
            )
        body: Mapping[str, Any] = doc
        if "encrypted" in doc:
            if self._fernet is None:
                raise TokenStoreRejected(
                    f"token file {where} is encrypted; set auth.encryption_key_env and export that key"
                )
            try:
                body = json.loads(self._fernet.decrypt(str(doc["encrypted"])))
            except ValueError:
                raise TokenStoreRejected(f"token file {where} is incomplete; delete it and log in again") from None
        elif self._fernet is not None:
            raise TokenStoreRejected(
                f"token file {where} is not encrypted but encryption is configured; log in again to rewrite it"
            )
        try:
            token = _token_from_json(body["token"]) if body.get("token") else None
            key = _key_from_json(body["api_key"]) if body.get("api_key") else None
            key_token = _token_from_json(body["key_token"]) if body.get("key_token") else None
            saved_at = float(doc.get("saved_at") or 0.0)
        except (KeyError, TypeError, ValueError):
            raise TokenStoreRejected(f"token file {where} is incomplete; delete it and log in again") from None
        creds = StoredCredentials(token=token, api_key=key, key_token=key_token)
        if not saved_at:  # files written before `saved_at` existed: the newest credential in them
            saved_at = max([0.0] + [t.obtained_at for t in (token, key, key_token) if t is not None])
        return creds, saved_at

    # -- interrupted saves ---------------------------------------------------------------------------------------
    @property
    def _tmp_prefix(self) -> str:
        return f".{self.path.name}."

    def _temp_files(self) -> list[Path]:
        """Temp files that may be this store's: its own prefix, or an earlier version's `.tok-*.tmp`."""
        try:
            names = os.listdir(self.directory)
        except OSError:
            return []
        return [
            self.directory / n for n in sorted(names)
            if n.endswith(".tmp") and (n.startswith(self._tmp_prefix) or n.startswith(_LEGACY_TMP_PREFIX))
        ]

    def _recover_if_unlocked(self) -> None:
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # someone holds the lock: it recovered on acquisition, or is saving right now
            try:
                self._recover_temp_files()
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _recover_temp_files(self) -> None:
        """Under the store lock: adopt the newest whole temp file that is ours and newer than the file; remove the
        rest of ours. Another store's legacy temp file (other server, client or account) is left to that store."""
        candidates = self._temp_files()
        if not candidates:
            return
        try:
            current: tuple[StoredCredentials, float] | None = self._current()
        except TokenStoreRejected:
            current = None  # an unreadable file cannot win against a whole temp file
        best: tuple[float, Path] | None = None
        losers: list[Path] = []
        for tmp in candidates:
            verdict = self._read_temp(tmp)
            if verdict is None:
                continue  # another store's: not ours to touch
            saved_at = verdict[1] if isinstance(verdict, tuple) else None
            if saved_at is None or (current is not None and saved_at <= current[1]):
                losers.append(tmp)
            elif best is None or saved_at > best[0]:
                if best is not None:
                    losers.append(best[1])
                best = (saved_at, tmp)
            else:
                losers.append(tmp)
        if best is not None:
            try:
                os.replace(best[1], self.path)
                self._fsync_dir()
                log.warning("token store: recovered newer credentials from an interrupted save (%s)", best[1].name)
            except OSError as exc:
                raise PersistenceError(
                    f"cannot recover the interrupted save {best[1]} into {self.path}: {exc.strerror}; fix the "
                    f"directory's permissions, then run again (the temp file is kept)"
                ) from None
        for tmp in losers:
            with contextlib.suppress(OSError):
                tmp.unlink()
                log.info("token store: removed a stale temp file %s", tmp.name)

    def _current(self) -> tuple[StoredCredentials, float] | None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TokenStoreRejected(f"cannot open token file {self.path}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as f:
            raw = f.read()
        return self._parse(raw, self.path)

    def _read_temp(self, tmp: Path) -> tuple[StoredCredentials, float] | bool | None:
        """(creds, saved_at) for a whole temp file of ours; False for ours but unusable (partial, unsafe);
        None for a legacy temp file that belongs to another store."""
        own = tmp.name.startswith(self._tmp_prefix)
        try:
            fd = os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return False if own else None
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            raw = f.read()
        try:
            doc = json.loads(raw)
        except ValueError:
            return False  # a save cut short before its fsync: nothing of value, and no owner can be told
        if not own and not (
            isinstance(doc, dict) and doc.get("base_url") == self.base_url and doc.get("client_id") == self.client_id
            and doc.get("account", "default") == self.account
        ):
            return None
        if st.st_mode & 0o077 or st.st_uid != os.getuid():
            log.warning("token store: temp file %s has unsafe permissions or owner; removing it", tmp.name)
            return False
        try:
            return self._parse(raw, tmp)
        except (TokenStoreRejected, ValueError):
            return False

    # -- write -----------------------------------------------------------------------------------------------------
    def save(self, creds: StoredCredentials) -> None:
        """Atomic replace; any failure raises PersistenceError (a rotated token must not live only in memory).
        Callers hold the store lock (`locked()`), so no one recovers a temp file while it is being written."""
        body = {
            "token": _token_to_json(creds.token) if creds.token else None,
            "api_key": _key_to_json(creds.api_key) if creds.api_key else None,
            "key_token": _token_to_json(creds.key_token) if creds.key_token else None,
        }
        doc: dict[str, Any] = {
            "schema": SCHEMA_VERSION,
            "base_url": self.base_url,
            "client_id": self.client_id,
            "account": self.account,
            "saved_at": time.time(),
        }
        if self._fernet is not None:
            doc["encrypted"] = self._fernet.encrypt(json.dumps(body).encode())
        else:
            doc.update(body)
        data = json.dumps(doc, indent=1).encode()
        self._ensure_dir()
        tmp: str | None = None
        try:
            fd, tmp = tempfile.mkstemp(prefix=self._tmp_prefix, suffix=".tmp", dir=self.directory)  # created 0600
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            if self.before_replace is not None:
                self.before_replace()
            os.replace(tmp, self.path)
            tmp = None
            self._fsync_dir()
        except OSError as exc:
            raise PersistenceError(f"cannot write token file {self.path}: {exc.strerror}") from None
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

    def _fsync_dir(self) -> None:
        dfd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def delete(self) -> bool:
        """Remove the file and any temp file of an interrupted save (call it holding the lock, as logout does)."""
        for tmp in self._temp_files():
            if tmp.name.startswith(self._tmp_prefix) or self._read_temp(tmp) is not None:
                with contextlib.suppress(OSError):
                    tmp.unlink()
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True

    # -- cross-process lock ----------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked_sync(self) -> Iterator[None]:
        self._ensure_dir()
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                self._recover_temp_files()
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    @contextlib.asynccontextmanager
    async def locked(self) -> AsyncIterator[None]:
        """flock taken in a worker thread so a waiting process never blocks the event loop; the holder first
        recovers what an interrupted save left behind."""
        self._ensure_dir()
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
            try:
                if self._temp_files():
                    await asyncio.to_thread(self._recover_temp_files)
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def store_for(settings: AuthSettings, environ: Mapping[str, str] | None = None) -> TokenStore:
    """The store a config points at: its directory, base URL, client id, account and encryption key env."""
    return TokenStore.from_env_key(
        settings.state_dir, settings.base_url, settings.client_id, settings.account, settings.encryption_key_env,
        environ,
    )
