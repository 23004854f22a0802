"""The token store: one 0600 file per (base URL, client id, account), written atomically, locked across processes.

A rotated refresh token exists in exactly one place; losing it means a new human login. Hence temp file + fsync +
`os.replace` + directory fsync (never an in-place write), and an flock held around refresh-and-persist so two
processes never both spend the same refresh token (oauth-client-rules.md §6, C2, D1-D3).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import stat
import tempfile
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from botkit.auth.errors import PersistenceError, TokenStoreRejected
from botkit.auth.settings import AuthSettings
from botkit.auth.tokens import ApiKeyCredentials, TokenSet

SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class StoredCredentials:
    """What one file holds: an OAuth token set and/or a Fast API key."""

    token: TokenSet | None = None
    api_key: ApiKeyCredentials | None = None


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

    def _check_file(self, st: os.stat_result) -> None:
        if st.st_mode & 0o077:
            raise TokenStoreRejected(
                f"token file {self.path} is readable by group/others (mode {stat.S_IMODE(st.st_mode):03o}); "
                f"fix with: chmod 600 {self.path}"
            )
        if st.st_uid != os.getuid():
            raise TokenStoreRejected(f"token file {self.path} belongs to uid {st.st_uid}, not to you; remove it")

    # -- read ------------------------------------------------------------------------------------------------------
    def load(self) -> StoredCredentials | None:
        """The stored credentials, None if there is no file; refuses unsafe or foreign files with the fix."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TokenStoreRejected(f"cannot open token file {self.path}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as f:
            self._check_file(os.fstat(f.fileno()))
            raw = f.read()
        try:
            doc = json.loads(raw)
        except ValueError:
            raise TokenStoreRejected(
                f"token file {self.path} is not valid JSON; delete it and run `botkit auth login`"
            ) from None
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA_VERSION:
            raise TokenStoreRejected(
                f"token file {self.path} has schema {doc.get('schema') if isinstance(doc, dict) else None!r}, "
                f"expected {SCHEMA_VERSION}; delete it and log in again"
            )
        if doc.get("base_url") != self.base_url or doc.get("client_id") != self.client_id:
            raise TokenStoreRejected(
                f"token file {self.path} belongs to {doc.get('base_url')} / client {doc.get('client_id')}, not "
                f"{self.base_url} / client {self.client_id}; check auth.base_url (region) and auth.client_id"
            )
        body: Mapping[str, Any] = doc
        if "encrypted" in doc:
            if self._fernet is None:
                raise TokenStoreRejected(
                    f"token file {self.path} is encrypted; set auth.encryption_key_env and export that key"
                )
            body = json.loads(self._fernet.decrypt(str(doc["encrypted"])))
        elif self._fernet is not None:
            raise TokenStoreRejected(
                f"token file {self.path} is not encrypted but encryption is configured; log in again to rewrite it"
            )
        try:
            token = _token_from_json(body["token"]) if body.get("token") else None
            key = _key_from_json(body["api_key"]) if body.get("api_key") else None
        except (KeyError, TypeError, ValueError):
            raise TokenStoreRejected(f"token file {self.path} is incomplete; delete it and log in again") from None
        return StoredCredentials(token=token, api_key=key)

    # -- write -----------------------------------------------------------------------------------------------------
    def save(self, creds: StoredCredentials) -> None:
        """Atomic replace; any failure raises PersistenceError (a rotated token must not live only in memory)."""
        body = {
            "token": _token_to_json(creds.token) if creds.token else None,
            "api_key": _key_to_json(creds.api_key) if creds.api_key else None,
        }
        doc: dict[str, Any] = {
            "schema": SCHEMA_VERSION,
            "base_url": self.base_url,
            "client_id": self.client_id,
            "account": self.account,
        }
        if self._fernet is not None:
            doc["encrypted"] = self._fernet.encrypt(json.dumps(body).encode())
        else:
            doc.update(body)
        data = json.dumps(doc, indent=1).encode()
        self._ensure_dir()
        tmp: str | None = None
        try:
            fd, tmp = tempfile.mkstemp(prefix=".tok-", suffix=".tmp", dir=self.directory)  # created 0600
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            if self.before_replace is not None:
                self.before_replace()
            os.replace(tmp, self.path)
            tmp = None
            dfd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as exc:
            raise PersistenceError(f"cannot write token file {self.path}: {exc.strerror}") from None
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

    def delete(self) -> bool:
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
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @contextlib.asynccontextmanager
    async def locked(self) -> AsyncIterator[None]:
        """flock taken in a worker thread so a waiting process never blocks the event loop."""
        self._ensure_dir()
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def store_for(settings: AuthSettings, environ: Mapping[str, str] | None = None) -> TokenStore:
    """The store a config points at: its directory, base URL, client id, account and encryption key env."""
    return TokenStore.from_env_key(
        settings.state_dir, settings.base_url, settings.client_id, settings.account, settings.encryption_key_env,
        environ,
    )
