"""`botkit record [CONFIG] [--market M] [--channels ...]`: record WebSocket market data (botkit/recorder.py).

Markets and the candle interval come from CONFIG ([markets], [run] interval and mode) or from the flags; a config in
sandbox mode (the default) records the embedded sandbox exchange, as `botkit run` trades on it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2
_INTERVALS = {"1s": 1, "5s": 5, "10s": 10, "15s": 15, "30s": 30, "1m": 60, "3m": 180, "5m": 300, "15m": 900,
              "30m": 1800, "1h": 3600, "2h": 7200, "4h": 14400, "6h": 21600, "8h": 28800, "12h": 43200,
              "1d": 86400}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "record", help="record WebSocket market data (frames as received) for replays and backtests",
        description="Store WebSocket frames exactly as received, with the local receive time, in gzip line files "
                    "rotated by time and size, plus manifest.json (markets, channels, span, reconnects, gaps, depth "
                    "resync points). Survives disconnects: reconnects, resubscribes and marks the gap. Ctrl-C stops.")
    p.add_argument("config", nargs="?", type=Path, help="bot config (TOML): markets, [run] interval and mode")
    p.add_argument("--market", action="append", default=[], metavar="M[,M]",
                   help="market(s) to record (repeatable or comma list); replaces the config's")
    p.add_argument("--channels", default="trades,depth,candles",
                   help="comma list of trades, depth, candles, bookTicker (default trades,depth,candles)")
    p.add_argument("--interval", default=None, help="candle interval, e.g. 1m (default: the config's, else 1m)")
    p.add_argument("--depth-limit", type=int, default=100, help="depth levels per side (WhiteBIT: 1..100)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--url", help="WebSocket URL (default: the config's, else wss://api.whitebit.com/ws)")
    where.add_argument("--sandbox", action="store_true", help="record an embedded sandbox exchange")
    p.add_argument("--out", type=Path, default=None, help="new directory (default recordings/<UTC time>)")
    p.add_argument("--seconds", type=float, default=None, help="stop after this long (default: until Ctrl-C)")
    p.add_argument("--rotate-minutes", type=float, default=60.0, help="start a new file after this long")
    p.add_argument("--rotate-mb", type=float, default=64.0, help="start a new file at this compressed size")
    p.set_defaults(func=_cmd_record)


def _cmd_record(args: argparse.Namespace) -> int:
    from botkit.recorder import RecordSpec

    markets = [m.strip() for group in args.market for m in group.split(",") if m.strip()]
    interval: str = args.interval or "1m"
    url: str | None = args.url
    sandbox = bool(args.sandbox)
    sandbox_config: Path | None = None
    if args.config is not None:
        from botkit.config import ConfigError, load_config

        try:
            cfg = load_config(args.config)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        markets = markets or list(cfg.markets)
        if args.interval is None:
            interval = str(cfg.run.interval) if isinstance(cfg.run.interval, str) else f"{cfg.run.interval}s"
        if url is None and not sandbox:
            if cfg.run.mode == "sandbox":
                sandbox, sandbox_config = True, cfg.run.sandbox_config
            else:
                url = cfg.run.resolved_ws_url()
    if not markets:
        print("error: give a CONFIG or --market, e.g. botkit record --market BTC_USDT", file=sys.stderr)
        return EXIT_BAD_INPUT
    if interval not in _INTERVALS:
        print(f"error: --interval {interval!r}: use one of {', '.join(_INTERVALS)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        spec = RecordSpec(markets, [c.strip() for c in args.channels.split(",") if c.strip()],
                          interval_s=_INTERVALS[interval], depth_limit=args.depth_limit,
                          rotate_s=args.rotate_minutes * 60.0, rotate_bytes=int(args.rotate_mb * (1 << 20)))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    import asyncio  # here, as every import of a command: each `botkit` start imports this module

    out: Path = args.out or Path("recordings") / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    try:
        manifest = asyncio.run(_record(spec, out, url, sandbox, sandbox_config, args.seconds))
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        from botkit.recorder import describe, read_manifest

        print(f"\nstopped (Ctrl-C): {describe(read_manifest(out))}", file=sys.stderr)
        return EXIT_OK
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAIL
    from botkit.recorder import describe

    print(f"recorded {describe(manifest)}\n-> {out} (botkit data import recording {out})")
    return EXIT_OK if manifest["frames"] else EXIT_FAIL


async def _record(spec: object, out: Path, url: str | None, sandbox: bool, sandbox_config: Path | None,
                  seconds: float | None) -> dict[str, object]:
    from botkit.recorder import RecordSpec, record

    assert isinstance(spec, RecordSpec)

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    if not sandbox:
        return await record(url or "wss://api.whitebit.com/ws", spec, out, seconds=seconds, progress=say)
    from botkit.sandbox.config import load_sandbox_config
    from botkit.sandbox.server import Sandbox

    sb = Sandbox(load_sandbox_config(sandbox_config))
    await sb.start()
    try:
        say(f"recording the embedded sandbox at {sb.ws_url}")
        return await record(sb.ws_url, spec, out, seconds=seconds, progress=say)
    finally:
        await sb.stop()
