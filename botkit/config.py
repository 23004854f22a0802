"""Bot configuration: one TOML file plus `BOTKIT_*` environment overrides, validated before anything runs
(read and reported by botkit/configfile.py, the one loader every config of botkit goes through).

Environment variables override the file (`BOTKIT_RISK__MAX_OPEN_ORDERS=5` sets ``[risk] max_open_orders``).
Unknown keys are errors, so a typo never passes silently. Secrets never live here: they come from the environment
or the token store (see botkit/auth).
"""

from __future__ import annotations

import difflib
import os
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from botkit.configfile import ConfigError as ConfigError  # the one config error type, re-exported
from botkit.configfile import env_variables, format_errors, read_toml
from botkit.execution.oco import OcoMode
from botkit.execution.risk import RiskLimits
from botkit.market.grants import WHITEBIT_SCOPES
from botkit.market.rules import MarketRules
from botkit.venues.simulated import FillModel

Repair = Literal["sort", "drop_duplicates", "fill_gaps", "allow_gaps"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StrategyConfig(_Strict):
    plugin: str = Field(description="'path/file.py:Class', 'package.module:Class' or an entry-point name")
    params: dict[str, Any] = Field(default_factory=dict)
    on_error: Literal["halt", "continue"] = Field(
        "halt", description="a callback that raises: halt the bot safely (default) or log it and continue")


class MarketConfig(_Strict):
    """A market's rules, as WhiteBIT's markets endpoint gives them (fees in percent)."""

    stock: str | None = None
    money: str | None = None
    stock_prec: int = Field(6, ge=0, le=18)
    money_prec: int = Field(2, ge=0, le=18)
    fee_prec: int = Field(4, ge=0, le=18)
    min_amount: Decimal = Field(Decimal(0), ge=0)
    min_total: Decimal = Field(Decimal(0), ge=0)
    max_total: Decimal = Field(Decimal(0), ge=0, description="0 = no limit")
    maker_fee: Decimal | None = Field(None, ge=0, le=100)
    taker_fee: Decimal | None = Field(None, ge=0, le=100)


class FeesConfig(_Strict):
    """Default maker/taker fees in percent ("0.1" = 0.1 %), used where a market sets none."""

    maker: Decimal = Field(Decimal("0.1"), ge=0, le=100)
    taker: Decimal = Field(Decimal("0.1"), ge=0, le=100)


class RiskConfig(_Strict):
    max_order_notional: Decimal | None = Field(None, gt=0)
    max_position: dict[str, Decimal] = Field(default_factory=dict)
    max_open_orders: int | None = Field(None, ge=1)
    price_band_pct: Decimal | None = Field(None, gt=0)
    daily_loss_limit: Decimal | None = Field(None, gt=0)

    @field_validator("max_position")
    @classmethod
    def _positive_positions(cls, v: dict[str, Decimal]) -> dict[str, Decimal]:
        for market, limit in v.items():
            if limit < 0:
                raise ValueError(f"max_position for {market} must be >= 0, got {limit}")
        return v


class GrantConfig(_Strict):
    """The scopes a backtest or paper run pretends to hold, so a missing scope fails as it would live."""

    scopes: list[str] = Field(
        default_factory=lambda: ["orders.create", "orders.delete", "orders.read", "balances.read"]
    )

    @field_validator("scopes")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        bad = [s for s in v if s not in WHITEBIT_SCOPES]
        if bad:
            hints = {s: difflib.get_close_matches(s, WHITEBIT_SCOPES, n=1) for s in bad}
            tips = ", ".join(f"{s!r}" + (f" (did you mean {h[0]!r}?)" if h else "") for s, h in hints.items())
            raise ValueError(f"unknown WhiteBIT scope(s): {tips}; allowed: {sorted(WHITEBIT_SCOPES)}")
        return v


Feed = Literal["trades", "book"]


def _trades_only() -> list[Feed]:
    return ["trades"]


class DataConfig(_Strict):
    files: dict[str, str] = Field(default_factory=dict, description="market -> candle file (CSV or freqtrade JSON)")
    store: Path | None = Field(None, description="a store directory (botkit data import/fetch): replay its "
                                                 "trades (and book) datasets of the [markets]")
    recording: Path | None = Field(None, description="a `botkit record` directory: replay what it recorded (put "
                                                     "into [data] store, default <recording>/store)")
    feed: list[Feed] = Field(
        default_factory=_trades_only, description="store/recording: the datasets replayed (book: on_book)")
    format: Literal["auto", "csv", "freqtrade"] = "auto"
    timeframe: str | None = None
    repair: list[Repair] = Field(default_factory=list)
    start: datetime | None = None
    end: datetime | None = None

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        return v.replace(tzinfo=UTC) if v is not None and v.tzinfo is None else v


class BacktestConfig(_Strict):
    slippage_pct: Decimal = Field(Decimal(0), ge=0, le=50)
    touch: bool = False
    oco: OcoMode = Field(
        "emulated", description='one-cancels-other groups in backtests and paper runs: "emulated" (the execution '
                                'layer holds the stop, as on WhiteBIT and the sandbox, where every run of a config '
                                'trades), "native" (the simulated venue\'s own OCO)')
    progress: bool = True
    book_depth: int = Field(20, ge=1, le=1000, description="order-book replays: levels per side in on_book")
    fills: Literal["candles", "trades", "book"] = Field(
        "candles", description="fill model: candles, trades or book (both need [data] store or recording)")
    latency_ms: int = Field(0, ge=0, le=3_600_000, description="decision -> arrival at the simulated exchange")
    fill_latency_ms: int = Field(0, ge=0, le=3_600_000, description="fill -> the strategy sees it")
    queue_ahead: Decimal = Field(Decimal(0), ge=0, description="trades fills without book data: base amount "
                                                               "assumed queued ahead of a new order at its price")


class OutputConfig(_Strict):
    dir: Path | None = Field(None, description="where reports go; none = out/<name>")


# Candle intervals WhiteBIT serves, in seconds, and their names (kline style).
_RUN_INTERVALS: dict[str, int] = {
    "1s": 1, "5s": 5, "10s": 10, "15s": 15, "30s": 30, "1m": 60, "3m": 180, "5m": 300, "15m": 900, "30m": 1800,
    "1h": 3600, "2h": 7200, "4h": 14400, "6h": 21600, "8h": 28800, "12h": 43200, "1d": 86400, "3d": 259200,
    "1w": 604800, "1M": 2592000,
}


class RunConfig(_Strict):
    """`botkit run`: where the bot trades and how it listens. Credentials only from the environment."""

    mode: Literal["sandbox", "paper", "live"] = "sandbox"
    duration_s: float | None = Field(None, gt=0, description="stop after this many seconds; none = until Ctrl-C")
    interval: str | int = Field("1m", description='candle interval: "1m", "5m", ... or seconds (1, 5, 60, ...)')
    sandbox_config: Path | None = None
    speed: float = Field(1.0, gt=0, le=1000, description="sandbox only: synthetic liquidity runs this much faster")
    account: str = "demo"
    base_url: str = "https://whitebit.com"
    ws_url: str | None = None
    staleness_s: float = Field(30.0, gt=0)
    ping_interval_s: float = Field(50.0, gt=0, le=55)
    history: int = Field(200, ge=0, le=1440, description="closed candles loaded before the first callback")
    keep_candles: int = Field(5000, ge=1, le=10_000_000, description="closed candles kept per market (a ring)")
    status_every_s: float = Field(10.0, ge=0, description="seconds between status lines; 0 = none")
    connect_timeout_s: float = Field(10.0, gt=0, description="give up at start when the stream cannot connect")
    max_in_flight: int = Field(8, ge=1, le=100, description="order requests in flight at once; the rest queue")
    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    sandbox_access_ttl_s: float | None = Field(None, gt=0, description="sandbox: OAuth access token lifetime")
    sandbox_refresh_ttl_s: float | None = Field(None, gt=0, description="sandbox: OAuth refresh token lifetime")
    kill_switch_s: int | None = Field(
        None, ge=5, le=600, description="sandbox/live: dead-man switch; the exchange cancels the account's orders "
                                        "when the bot has not re-armed it for this long, also after it stops "
                                        "(WhiteBIT: 5-600 s)")
    credentials: Literal["auto", "apikey", "oauth"] = Field(
        "auto", description='live: "oauth" needs the OAuth session from `botkit auth login` (no session: stop and '
                            'ask for a login); "apikey" uses a key only; "auto" whatever is there')
    journal: Path | None = Field(
        None, description="sandbox/live: SQLite order journal; none = <[output] dir>/<name>/journal.sqlite")

    @field_validator("interval")
    @classmethod
    def _interval(cls, v: str | int) -> str | int:
        secs = _RUN_INTERVALS.get(v) if isinstance(v, str) else v
        if isinstance(v, str) and secs is None and v.isdigit():
            secs = int(v)
        if secs not in _RUN_INTERVALS.values():
            raise ValueError(
                f"candle interval {v!r} is not one WhiteBIT serves; use one of {', '.join(_RUN_INTERVALS)} "
                f"or seconds {sorted(_RUN_INTERVALS.values())}"
            )
        return v

    @field_validator("base_url", "ws_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://", "ws://", "wss://")):
            raise ValueError(f"{v!r} is not a URL; write e.g. https://whitebit.com or ws://127.0.0.1:8765/ws")
        return v.rstrip("/") if v is not None else None

    @property
    def interval_s(self) -> int:
        v = self.interval
        return _RUN_INTERVALS[v] if isinstance(v, str) and v in _RUN_INTERVALS else int(v)

    def resolved_ws_url(self) -> str:
        """`ws_url`, or the one that goes with `base_url` (WhiteBIT: wss://api.whitebit.com/ws)."""
        if self.ws_url is not None:
            return self.ws_url
        host = self.base_url.split("://", 1)[1]
        if host in ("whitebit.com", "www.whitebit.com"):
            return "wss://api.whitebit.com/ws"
        if host in ("whitebit.eu", "www.whitebit.eu"):
            return "wss://api.whitebit.eu/ws"
        scheme = "wss" if self.base_url.startswith("https") else "ws"
        return f"{scheme}://{host}/ws"


class BotConfig(BaseSettings):
    """The whole bot: strategy, markets, money, limits, data, output."""

    model_config = SettingsConfigDict(env_prefix="BOTKIT_", env_nested_delimiter="__", extra="forbid")

    name: str = "bot"
    strategy: StrategyConfig
    markets: dict[str, MarketConfig]
    balances: dict[str, Decimal] = Field(default_factory=dict, description="backtest and paper: starting balances")
    fees: FeesConfig = Field(default_factory=FeesConfig)
    risk: RiskConfig = Field(default_factory=RiskConfig)
    grant: GrantConfig = Field(default_factory=GrantConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    backtest: BacktestConfig = Field(default_factory=BacktestConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    run: RunConfig = Field(default_factory=RunConfig)
    auth: dict[str, Any] | None = Field(None, description="validated by botkit.auth.settings (AuthSettings)")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init kwargs; the environment overrides them.
        return (env_settings, init_settings)

    @field_validator("markets")
    @classmethod
    def _market_names(cls, v: dict[str, MarketConfig]) -> dict[str, MarketConfig]:
        if not v:
            raise ValueError("at least one market is needed, e.g. [markets.BTC_USDT]")
        for name, m in v.items():
            if (m.stock is None or m.money is None) and name.count("_") != 1:
                raise ValueError(f"market {name!r}: name it BASE_QUOTE (e.g. BTC_USDT) or set stock and money")
        return v

    @field_validator("balances")
    @classmethod
    def _balances(cls, v: dict[str, Decimal]) -> dict[str, Decimal]:
        for asset, amount in v.items():
            if amount < 0:
                raise ValueError(f"balance of {asset} must be >= 0, got {amount}")
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> BotConfig:
        for market in self.data.files:
            if market not in self.markets:
                raise ValueError(f"data.files has {market!r}, which is not in [markets] ({sorted(self.markets)})")
        for market in self.risk.max_position:
            if market not in self.markets:
                raise ValueError(
                    f"risk.max_position has {market!r}, which is not in [markets] ({sorted(self.markets)})"
                )
        if self.data.files and (self.data.store is not None or self.data.recording is not None):
            raise ValueError("data: give candle files or a store/recording, not both (files replay candles; a store "
                             "or recording replays trades)")
        if self.data.start and self.data.end and self.data.start >= self.data.end:
            raise ValueError(f"data.start ({self.data.start}) must be before data.end ({self.data.end})")
        return self

    @property
    def out_dir(self) -> Path:
        """`[output] dir`, or out/<name>."""
        return self.output.dir if self.output.dir is not None else Path("out") / self.name

    def risk_limits(self) -> RiskLimits:
        r = self.risk
        return RiskLimits(
            max_order_notional=r.max_order_notional,
            max_position=dict(r.max_position),
            max_open_orders=r.max_open_orders,
            price_band_pct=r.price_band_pct,
            daily_loss_limit=r.daily_loss_limit,
        )

    def oco_mode(self) -> OcoMode:
        """How a backtest and a paper run treat OCO groups (`[backtest] oco`)."""
        return self.backtest.oco

    def fill_model(self) -> FillModel:
        """The backtest fill model, also used by paper trading."""
        b = self.backtest
        return FillModel(slippage_pct=b.slippage_pct, touch=b.touch, kind=b.fills, latency_ms=b.latency_ms,
                         fill_latency_ms=b.fill_latency_ms, queue_ahead=b.queue_ahead)

    def market_rules(self, exchange: dict[str, MarketRules] | None = None) -> dict[str, MarketRules]:
        """Rules per configured market. With `exchange` (what the exchange's markets endpoint says, in sandbox, paper
        and live runs) the exchange's values are used, and a value the config sets that differs from the exchange's
        is an error naming both, so an order is never refused for a precision the config got wrong."""
        if exchange is not None:
            return self._rules_from_exchange(exchange)
        out: dict[str, MarketRules] = {}
        for name, m in self.markets.items():
            stock, _, money = name.partition("_")
            out[name] = MarketRules(
                name=name,
                stock=m.stock or stock,
                money=m.money or money,
                stock_prec=m.stock_prec,
                money_prec=m.money_prec,
                fee_prec=m.fee_prec,
                min_amount=m.min_amount,
                min_total=m.min_total,
                max_total=m.max_total,
                maker_fee=m.maker_fee if m.maker_fee is not None else self.fees.maker,
                taker_fee=m.taker_fee if m.taker_fee is not None else self.fees.taker,
            )
        return out


    def _rules_from_exchange(self, exchange: dict[str, MarketRules]) -> dict[str, MarketRules]:
        missing = [m for m in self.markets if m not in exchange]
        if missing:
            near = {m: difflib.get_close_matches(m, list(exchange), n=1) for m in missing}
            tips = ", ".join(f"{m}" + (f" (did you mean {h[0]}?)" if h else "") for m, h in near.items())
            raise ConfigError(f"[markets] names {tips}, which the exchange does not list; it has "
                              f"{len(exchange)} markets, e.g. {', '.join(sorted(exchange)[:8])}")
        problems: list[str] = []
        out: dict[str, MarketRules] = {}
        for name, m in self.markets.items():
            ex = exchange[name]
            for key in sorted(m.model_fields_set):
                mine, theirs = getattr(m, key), getattr(ex, key)  # [markets] keys are MarketRules' attribute names
                if mine != theirs:
                    problems.append(f"  markets.{name}.{key} = {mine} in the config, but the exchange says {theirs}; "
                                    "remove the key (the exchange's value is used) or correct it")
            out[name] = ex
        if problems:
            raise ConfigError("the config disagrees with the exchange's market rules:\n" + "\n".join(problems))
        return out


def format_validation_error(exc: ValidationError, source: str, model: type[BaseModel] = BotConfig) -> str:
    return format_errors(exc, source, model)


_TABLES = tuple(f for f in BotConfig.model_fields if f != "name")
_FILE_FORBIDDEN = {("run", "api_key"): "BOTKIT_RUN__API_KEY", ("run", "api_secret"): "BOTKIT_RUN__API_SECRET"}


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> BotConfig:
    """Read the file once, merge the `BOTKIT_*` environment (which wins) and `overrides` (command-line flags, which
    win over both), validate. Raises ConfigError with a message for humans."""
    p = Path(path)
    raw = read_toml(p)
    env = env_variables(os.environ, _TABLES, ("name",))  # pydantic-settings merges them; this names them
    for (section, key), var in _FILE_FORBIDDEN.items():
        table = raw.get(section)
        if isinstance(table, dict) and key in table:
            raise ConfigError(f"invalid config {p}:\n  {section}.{key}: keys never go in the config file; set {var} "
                              "in the environment instead")
    raw.setdefault("name", p.stem)  # configs/my_bot.toml is "my_bot" unless it says otherwise
    for section, values in (overrides or {}).items():
        if isinstance(values, dict):
            raw.setdefault(section, {}).update(values)
        else:
            raw[section] = values
    try:
        cfg = BotConfig(**raw)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, str(p), BotConfig, env=env)) from None
    if cfg.auth is not None:
        # [auth] has its own model (secrets only from the environment); check it now, not at first use.
        from botkit.auth.settings import auth_settings_from_mapping

        auth_settings_from_mapping(cfg.auth, os.environ, source=str(p))
    return cfg
