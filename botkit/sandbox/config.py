"""The sandbox's configuration: markets, accounts, liquidity, faults and OAuth, read from one TOML file.

A bad file fails with `SandboxConfigError` naming the key, the value found and how to fix it, because a sandbox
that silently ignores a typo produces tests that pass for the wrong reason.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from botkit.configfile import ConfigError, read_toml, validate
from botkit.market.rules import MarketRules
from botkit.sandbox.endpoints import SCOPES
from botkit.sandbox.oauth import OAuthSandboxConfig


class SandboxConfigError(ConfigError):
    """A sandbox config that cannot be used; the message names key, value and fix for every problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LiquidityConfig(_Strict):
    """Background liquidity of one market: a seeded synthetic walk, or a recorded file replayed at `speed`."""

    kind: Literal["synthetic", "candles", "trades"] = "synthetic"
    seed: int = 1
    start_price: Decimal = Decimal("40000")
    volatility: float = Field(default=0.0005, ge=0, le=0.1)
    tick_interval: float = Field(default=1.0, gt=0)
    file: Path | None = None
    speed: float = Field(default=60.0, gt=0)
    loop: bool = True
    levels: int = Field(default=20, ge=1, le=500)
    level_step: Decimal = Field(default=Decimal("0.0005"), gt=0)
    level_amount: Decimal = Field(default=Decimal("0.5"), gt=0)
    trade_amount: Decimal = Field(default=Decimal("0.01"), gt=0)
    history_minutes: int = Field(default=1440, ge=0, le=100_000)
    # "time": a replay prints at `speed` times real time; "step": only when told (POST /_sandbox/replay,
    # Sandbox.replay_step), stamped with the data's own times moved whole days ahead: a lock-step replay.
    pace: Literal["time", "step"] = "time"
    # The house quotes its first level at the last print itself on both sides (bid = ask = last), so a market
    # order fills at exactly the replayed price; further levels are `level_step` apart.
    zero_spread: bool = False

    @model_validator(mode="after")
    def _file_needed(self) -> LiquidityConfig:
        if self.kind != "synthetic" and self.file is None:
            raise ValueError(f"kind = {self.kind!r} replays a recorded file; set `file` to its path")
        if self.pace == "step" and self.kind == "synthetic":
            raise ValueError('pace = "step" replays a recorded file; set kind = "candles" or "trades" and `file`')
        if self.file is not None and not self.file.is_file():
            raise ValueError(f"file {str(self.file)!r} does not exist; give the path of a candles or trades CSV")
        return self


class MarketConfig(_Strict):
    """One spot market, with the fields of WhiteBIT's markets endpoint (fees in percent)."""

    name: str = Field(pattern=r"^[A-Z0-9]+_[A-Z0-9]+$")
    stock: str
    money: str
    stock_prec: int = Field(ge=0, le=18)
    money_prec: int = Field(ge=0, le=18)
    fee_prec: int = Field(default=4, ge=0, le=18)
    min_amount: Decimal = Field(default=Decimal(0), ge=0)
    min_total: Decimal = Field(default=Decimal(0), ge=0)
    max_total: Decimal = Field(default=Decimal(0), ge=0)
    maker_fee: Decimal = Field(default=Decimal("0.1"), ge=0)
    taker_fee: Decimal = Field(default=Decimal("0.1"), ge=0)
    liquidity: LiquidityConfig = Field(default_factory=LiquidityConfig)

    @model_validator(mode="after")
    def _name_matches(self) -> MarketConfig:
        if self.name != f"{self.stock}_{self.money}":
            raise ValueError(f"name {self.name!r} must be stock_money, i.e. {self.stock}_{self.money!s}")
        return self

    def rules(self) -> MarketRules:
        return MarketRules(
            name=self.name,
            stock=self.stock,
            money=self.money,
            stock_prec=self.stock_prec,
            money_prec=self.money_prec,
            fee_prec=self.fee_prec,
            min_amount=self.min_amount,
            min_total=self.min_total,
            max_total=self.max_total,
            maker_fee=self.maker_fee,
            taker_fee=self.taker_fee,
        )


class ApiKeyConfig(_Strict):
    """An HMAC API key of an account; `permissions` are WhiteBIT scope strings."""

    key: str = Field(min_length=1)
    secret: SecretStr
    permissions: list[str] = Field(
        default_factory=lambda: [
            "orders.create",
            "orders.delete",
            "orders.read",
            "balances.read",
            "deals.read",
            "orders_history.read",
            "markets.read",  # POST /api/v4/market/fee
        ]
    )
    enabled: bool = True

    @field_validator("permissions")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - SCOPES)
        if unknown:
            raise ValueError(f"unknown permission(s) {unknown}; use WhiteBIT scope strings such as 'orders.create'")
        return value


class AccountConfig(_Strict):
    name: str = Field(min_length=1)
    balances: dict[str, Decimal] = Field(default_factory=dict)
    api_keys: list[ApiKeyConfig] = Field(default_factory=list)

    @field_validator("balances")
    @classmethod
    def _non_negative(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        for asset, amount in value.items():
            if amount < 0:
                raise ValueError(f"balance of {asset} is {amount}; balances start at 0 or more")
        return value


class FaultsConfig(_Strict):
    """Faults switched on from the start; the admin endpoint POST /_sandbox/faults changes them at run time.

    `error_rates` maps a path pattern (fnmatch, e.g. "/api/v4/order/*" or "*") to {"500": 0.1, "503": 0.5, ...};
    503 and 429 answer with a non-JSON body as WhiteBIT's gateway does. `error_counts` has the same shape with
    counts: the next N matching requests get that status (then it is used up). `retry_after_s` adds a Retry-After
    header to injected 429 and 503 answers.
    """

    seed: int = 7
    latency_ms: float = Field(default=0.0, ge=0)
    latency_jitter_ms: float = Field(default=0.0, ge=0)
    error_rates: dict[str, dict[Literal["500", "503", "429"], float]] = Field(default_factory=dict)
    error_counts: dict[str, dict[Literal["500", "503", "429"], int]] = Field(default_factory=dict)
    retry_after_s: int | None = Field(default=None, ge=0)
    ws_drop_rate: float = Field(default=0.0, ge=0, le=1)
    skip_depth_ids: float = Field(default=0.0, ge=0, le=1)
    clock_skew_s: float = 0.0
    maintenance: bool = False
    refresh_outage: bool = False

    @field_validator("error_rates")
    @classmethod
    def _rates(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for pattern, rates in value.items():
            for status, rate in rates.items():
                if not 0 <= rate <= 1:
                    raise ValueError(f"error_rates[{pattern!r}][{status!r}] = {rate}; a rate is between 0 and 1")
        return value

    @field_validator("error_counts")
    @classmethod
    def _counts(cls, value: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
        for pattern, counts in value.items():
            for status, n in counts.items():
                if n < 0:
                    raise ValueError(f"error_counts[{pattern!r}][{status!r}] = {n}; a count is 0 or more")
        return value


class ServerConfig(_Strict):
    """Timing of the server's own loops; tests shorten these, the defaults are WhiteBIT's."""

    tick_interval: float = Field(default=0.05, gt=0)
    depth_interval: float = Field(default=0.1, ge=0)
    depth_keepalive: float = Field(default=10.0, gt=0)
    lastprice_interval: float = Field(default=1.0, gt=0)
    candles_interval: float = Field(default=0.5, gt=0)
    ws_idle_timeout: float = Field(default=60.0, gt=0)
    ws_requests_per_minute: int = Field(default=200, ge=1)
    ws_token_ttl: float = Field(default=300.0, gt=0)
    nonce_window_ms: int = Field(default=5000, ge=0)
    # REST limits per client IP from the endpoint registry (botkit/sandbox/limits.py): counts x rest_limit_scale,
    # windows x rest_limit_window_scale; tests use small values so the limits are reachable.
    rest_limit_scale: float = Field(default=1.0, gt=0)
    rest_limit_window_scale: float = Field(default=1.0, gt=0)
    # NOT in WhiteBIT's public documentation (trading is HMAC only there): when true, the trading endpoints also
    # accept `Authorization: Bearer` with the endpoint's scopes. Off by default, like the real exchange.
    bearer_trading: bool = False


class SandboxConfig(_Strict):
    server: ServerConfig = Field(default_factory=ServerConfig)
    markets: list[MarketConfig] = Field(default_factory=list)
    accounts: list[AccountConfig] = Field(default_factory=list)
    faults: FaultsConfig = Field(default_factory=FaultsConfig)
    oauth: OAuthSandboxConfig = Field(default_factory=OAuthSandboxConfig)

    @model_validator(mode="after")
    def _unique(self) -> SandboxConfig:
        for what, names in (
            ("markets", [m.name for m in self.markets]),
            ("accounts", [a.name for a in self.accounts]),
            ("api key", [k.key for a in self.accounts for k in a.api_keys]),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{what} {dupes} appear more than once; each must be unique")
        return self


def _fix_for(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return "remove it or check its spelling (unknown keys are refused)"
    if kind == "missing":
        return "add it"
    if kind.startswith("decimal") or kind == "decimal_parsing":
        return 'write the number as a string, e.g. "0.001"'
    return "see botkit/sandbox/README.md for the allowed values"


def parse_sandbox_config(data: dict[str, Any], source: str = "<dict>") -> SandboxConfig:
    """Validate a config mapping; errors name key, value and fix (botkit/configfile.py, like every config)."""
    return validate(SandboxConfig, data, f"sandbox config {source}", fix=_fix_for, error=SandboxConfigError)


def load_sandbox_config(path: Path | None) -> SandboxConfig:
    """Read a sandbox TOML file; None reads the packaged default.toml."""
    if path is None:
        text = resources.files("botkit.sandbox").joinpath("default.toml").read_text(encoding="utf-8")
        return parse_sandbox_config(tomllib.loads(text), "default.toml")
    try:
        data = read_toml(path, "sandbox config")
    except ConfigError as exc:
        raise SandboxConfigError(str(exc)) from None
    return parse_sandbox_config(data, str(path))
