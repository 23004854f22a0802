"""`[auth]` config section: which authorization server, which dialect, where tokens live.

The client secret is read from the environment only (BOTKIT_AUTH__CLIENT_SECRET): config files get copied,
committed and pasted into issues; environment variables at least stay on the machine.
"""

from __future__ import annotations

import os
import tomllib
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

SECRET_ENV = "BOTKIT_AUTH__CLIENT_SECRET"

# The loopback hosts a redirect may use (RFC 8252 §7.3/§8.3, OAuth 2.1 §8.4.2): literal addresses, never `localhost`
# (a name can resolve elsewhere, or to the other address family than the one the listener bound).
LOOPBACK_HOSTS = ("127.0.0.1", "::1")
# Login against a local sandbox (a loopback base_url) listens here unless told otherwise: the redirect registered for
# the sandbox's demo client (botkit/sandbox/default.toml), a port of its own next to the sandbox's 8765.
SANDBOX_REDIRECT_PORT = 8766

_WHITEBIT_PATHS = {
    "authorize_path": "/auth/login",
    "token_path": "/oauth2/token",
    "refresh_path": "/oauth2/refresh_token",
    "revoke_path": None,
    "apikey_info_path": "/oauth2/api-key/info",
    "apikey_secret_path": "/oauth2/api-key/{externalId}/secret",
    "apikey_delete_path": "/oauth2/api-key/{externalId}",
}
_RFC_PATHS = {
    "authorize_path": "/authorize",
    "token_path": "/token",
    "refresh_path": "/token",
    "revoke_path": "/revoke",
    "apikey_info_path": None,
    "apikey_secret_path": None,
    "apikey_delete_path": None,
}


class AuthSettings(BaseModel):
    """The `[auth]` table. Paths default per dialect; any can be overridden (whitebit.eu, sandbox, RFC servers)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dialect: Literal["whitebit", "rfc6749"] = "whitebit"
    base_url: str = "https://whitebit.com"
    issuer: str | None = None
    use_metadata: bool = False
    authorize_path: str | None = None
    token_path: str | None = None
    refresh_path: str | None = None
    revoke_path: str | None = None
    apikey_info_path: str | None = None
    apikey_secret_path: str | None = None
    apikey_delete_path: str | None = None
    client_id: str = Field(min_length=1)
    client_secret: SecretStr | None = None
    client_auth: Literal["client_secret_post", "client_secret_basic"] = "client_secret_post"
    scopes: list[str] = Field(default_factory=list)
    redirect_uri: str | None = None
    redirect_host: str = "127.0.0.1"
    redirect_port: int = Field(default=0, ge=0, le=65535)
    redirect_path: str = "/callback"
    account: str = Field(default="default", pattern=r"^[A-Za-z0-9._-]{1,64}$")
    token_dir: Path | None = None
    leeway_s: float = Field(default=60.0, ge=0)
    keepalive: bool = True
    default_expires_in: float = Field(default=300.0, gt=0)
    refresh_min_interval_s: float = Field(default=1.0, ge=0)
    refresh_token_lifetime_s: float | None = Field(default=None, gt=0)
    retry_attempts: int = Field(default=5, ge=1, le=20)
    retry_max_wait_s: float = Field(default=20.0, gt=0)
    retry_after_cap_s: float = Field(default=60.0, gt=0)
    retry_total_s: float = Field(default=30.0, gt=0)
    http_timeout_s: float = Field(default=10.0, gt=0)
    encryption_key_env: str | None = None
    apikey_param: str = "apiKey"
    apikey_poll_s: float = Field(default=1.5, gt=0)
    apikey_poll_timeout_s: float = Field(default=30.0, gt=0)
    apikey_lock_backoff_s: float = Field(default=5.0, gt=0)
    apikey_lock_timeout_s: float = Field(default=180.0, gt=0)
    trading_auth: Literal["hmac", "bearer"] = "hmac"
    open_browser: bool = True
    login_timeout_s: float = Field(default=300.0, gt=0)

    @field_validator("base_url", "issuer")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not v.startswith(("https://", "http://")):
            raise ValueError(f"{v!r} is not an http(s) URL; write e.g. 'https://whitebit.com'")
        return v.rstrip("/")

    @field_validator("redirect_uri")
    @classmethod
    def _loopback_uri(cls, v: str | None) -> str | None:
        if v is None:
            return v
        u = urllib.parse.urlsplit(v)
        try:
            port = u.port
        except ValueError:
            port = None
        if u.scheme == "http" and u.hostname == "localhost":
            fixed = urllib.parse.urlunsplit(("http", f"127.0.0.1:{port}" if port else "127.0.0.1", u.path, u.query, ""))
            raise ValueError(
                f"'localhost' is not allowed as a redirect host (RFC 8252 §8.3, OAuth 2.1 §8.4.2: the name may resolve "
                f"elsewhere); write {fixed!r} (or http://[::1]:PORT/...) and register that exact URI with the server"
            )
        if u.scheme != "http" or u.hostname not in LOOPBACK_HOSTS or not port:
            raise ValueError(
                f"{v!r} is not a loopback redirect botkit can listen on; use e.g. 'http://127.0.0.1:8766/callback'"
            )
        return v

    @field_validator("redirect_host")
    @classmethod
    def _loopback(cls, v: str) -> str:
        if v == "localhost":
            raise ValueError(
                "'localhost' is not allowed as a redirect host (RFC 8252 §8.3, OAuth 2.1 §8.4.2); write '127.0.0.1' "
                "(or '::1')"
            )
        if v not in LOOPBACK_HOSTS:
            raise ValueError(f"{v!r} is not a loopback address; use '127.0.0.1' or '::1' (never 0.0.0.0)")
        return v

    @model_validator(mode="after")
    def _paths(self) -> AuthSettings:
        defaults = _WHITEBIT_PATHS if self.dialect == "whitebit" else _RFC_PATHS
        for name, default in defaults.items():
            if getattr(self, name) is None and default is not None:
                object.__setattr__(self, name, default)
        if self.dialect == "whitebit" and self.redirect_uri is None and self.local_server:
            host = f"[{self.redirect_host}]" if ":" in self.redirect_host else self.redirect_host
            port = self.redirect_port or SANDBOX_REDIRECT_PORT
            object.__setattr__(self, "redirect_uri", f"http://{host}:{port}{self.redirect_path}")
        return self

    @property
    def local_server(self) -> bool:
        """The authorization server runs on this machine (the sandbox): a loopback base_url."""
        return urllib.parse.urlsplit(self.base_url).hostname in (*LOOPBACK_HOSTS, "localhost")

    @property
    def refresh_token_lifetime(self) -> float | None:
        """Known RT life bounds the refresh retries (WhiteBIT documents 600 s); None = unknown."""
        if self.refresh_token_lifetime_s is not None:
            return self.refresh_token_lifetime_s
        return 600.0 if self.dialect == "whitebit" else None

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}{path}"

    @property
    def expected_issuer(self) -> str:
        return self.issuer or self.base_url

    @property
    def state_dir(self) -> Path:
        """Token directory: config, else $XDG_STATE_HOME/botkit, else ~/.local/state/botkit."""
        if self.token_dir is not None:
            return self.token_dir.expanduser()
        xdg = os.environ.get("XDG_STATE_HOME")
        return (Path(xdg) if xdg else Path.home() / ".local" / "state") / "botkit"

    def reauth_command(self, config_path: str | None = None) -> str:
        return f"botkit auth login {config_path or 'CONFIG'}"

    def apikey_command(self, config_path: str | None = None) -> str:
        return f"botkit auth apikey {config_path or 'CONFIG'}"


from botkit.configfile import ConfigError as ConfigError  # noqa: E402 - the one config error type (re-exported)


def load_auth_settings(path: str | Path, environ: Mapping[str, str] | None = None) -> AuthSettings:
    """AuthSettings from the TOML file's [auth] table plus the secret from the environment."""
    env = os.environ if environ is None else environ
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"config file {str(p)!r} not found; pass the path of a TOML file with an [auth] table"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(p)!r} is not valid TOML: {exc}") from None
    table = doc.get("auth")
    if not isinstance(table, dict):
        raise ConfigError(
            f"{p}: no [auth] table; add one with at least client_id = \"...\" (see botkit/auth/README.md)"
        )
    return auth_settings_from_mapping(table, env, source=str(p))


def auth_settings_from_mapping(
    table: Mapping[str, Any], environ: Mapping[str, str], source: str = "config"
) -> AuthSettings:
    secret = environ.get(SECRET_ENV)
    given = table.get("client_secret")
    if isinstance(given, SecretStr):
        given = given.get_secret_value()
    # BotConfig (pydantic-settings, env_nested_delimiter="__") merges the env var into its `auth` dict: accept
    # that exact value, refuse anything that can only have come from a file.
    if given is not None and not (secret and given == secret):
        raise ConfigError(
            f"{source}: auth.client_secret must not be in a file; remove it and set the environment variable "
            f"{SECRET_ENV} instead"
        )
    data = {k: v for k, v in table.items() if k != "client_secret"}
    if secret:
        data["client_secret"] = SecretStr(secret)
    try:
        return AuthSettings.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = ".".join(str(x) for x in err["loc"]) or "auth"
            value = err.get("input")
            shown = "<hidden>" if "secret" in field else ("(missing)" if err["type"] == "missing" else repr(value))
            if err["type"] == "extra_forbidden":
                fix = "remove it or check the spelling (see botkit/auth/README.md for the fields)"
            elif err["type"] == "missing":
                fix = "add it"
            else:
                fix = err["msg"]
            lines.append(f"auth.{field} = {shown}: {fix}")
        raise ConfigError(f"{source}: invalid [auth] section:\n  " + "\n  ".join(lines)) from None
