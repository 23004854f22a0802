"""Candles for a config's [data] files, on the caller's thread or on a second core (`load_series_in_background`):
the command line starts the load as soon as the config is read, and Arrow parses the files (without the GIL)
while the rest of the backtest is imported and the strategy is built."""

from __future__ import annotations

from datetime import datetime

from botkit.backtest.background import Background
from botkit.backtest.data import CandleSeries, DataError, load_candles
from botkit.config import BotConfig


def plain_candle_files(cfg: BotConfig) -> bool:
    """The backtest replays the candle files of [data] files (not a store, a recording, trades or book events)."""
    return cfg.data.store is None and cfg.data.recording is None and cfg.backtest.fills == "candles"


def load_series_in_background(cfg: BotConfig) -> Background[list[CandleSeries]] | None:
    """`load_series(cfg)` started on a second thread, or None when the config's data is not plain candle files."""
    if not plain_candle_files(cfg) or not cfg.data.files:
        return None
    return Background("botkit-load-candles", load_series, cfg)


def epoch_ms(dt: datetime | None) -> int | None:
    return int(dt.timestamp() * 1000) if dt is not None else None


def load_series(cfg: BotConfig) -> list[CandleSeries]:
    """Candles for every market in [data] files, in config order of [markets].

    A bad [data] option (timeframe "5x", fill_gaps with allow_gaps) is a DataError naming the key, like bad data.
    """
    out = []
    for market in cfg.markets:
        path = cfg.data.files.get(market)
        if path is None:
            continue
        try:
            series = load_candles(
                path,
                market,
                fmt=cfg.data.format,
                timeframe=cfg.data.timeframe,
                repair=cfg.data.repair,
                start_ms=epoch_ms(cfg.data.start),
                end_ms=epoch_ms(cfg.data.end),
            )
        except DataError:
            raise
        except ValueError as exc:  # the options, not the file: load_candles checks them before reading
            key = "timeframe" if "timeframe" in str(exc) else "repair" if "repair" in str(exc) else "format"
            where = " (or the --repair flags)" if key == "repair" else ""
            raise DataError(f"[data] {key}", None, str(exc), f"Fix [data] {key} in the config{where}.") from None
        out.append(series)
    return out
