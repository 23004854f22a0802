"""`botkit run CONFIG`: run a bot on the embedded sandbox (default), on paper, or live on WhiteBIT."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT, EXIT_REAUTH = 0, 1, 2, 3


def _positive(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds, e.g. 20 or 0.5") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return v


def _cmd_run(args: argparse.Namespace) -> int:
    import asyncio  # here, as every import of a command: each `botkit` start imports this module

    from botkit.auth.errors import ReauthRequired
    from botkit.config import ConfigError, load_config
    from botkit.execution.journal import JournalError
    from botkit.market.grants import InsufficientScope
    from botkit.plugins import PluginError
    from botkit.runner import LiveRunner, RunError, RunFailed, RunHalted, RunNeedsReauth
    from botkit.sandbox.config import SandboxConfigError
    from botkit.whitebit.errors import WhiteBitError

    run: dict[str, Any] = {}
    if args.mode is not None:
        run["mode"] = args.mode
    if args.duration is not None:
        run["duration_s"] = args.duration
    if args.speed is not None:
        run["speed"] = args.speed
    try:
        cfg = load_config(args.config, {"run": run} if run else None)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        runner = LiveRunner(cfg, out=sys.stdout)
        asyncio.run(runner.run())
    except (PluginError, RunError, InsufficientScope, SandboxConfigError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RunHalted as exc:
        print(f"error: {exc.failure.text()}", file=sys.stderr)
        print("the bot halted: on_stop ran, its open orders were cancelled where the key allows, the journal is "
              "flushed (set [strategy] on_error = \"continue\" to log such errors and go on)", file=sys.stderr)
        logging.getLogger("botkit.run").debug("%s", exc.failure.traceback)
        return EXIT_FAIL
    except RunNeedsReauth as exc:
        print(f"error: {exc}\nthe bot halted: its open orders were cancelled where the API key allows and the "
              f"journal is flushed; log in again with:\n  {exc.command.replace('CONFIG', str(args.config))}",
              file=sys.stderr)
        return EXIT_REAUTH
    except ReauthRequired as exc:  # at start: nothing usable in the store
        print(f"error: {exc}\nlog in with:\n  {exc.command.replace('CONFIG', str(args.config))}", file=sys.stderr)
        return EXIT_REAUTH
    except (RunFailed, JournalError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except (WhiteBitError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        print("interrupted before the bot started", file=sys.stderr)
        return EXIT_FAIL
    except Exception as exc:  # a strategy or run failure: say what failed, details at -vv
        logging.getLogger("botkit.run").debug("run failed", exc_info=True)
        print(f"error: the run failed: {type(exc).__name__}: {exc} (run with -vv for the traceback)",
              file=sys.stderr)
        return EXIT_FAIL
    return EXIT_OK


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "run", help="run a bot: embedded sandbox (default), paper or live",
        description="Run the strategy of CONFIG live. Modes: sandbox (an embedded local WhiteBIT, the default), "
                    "paper (live market data, simulated fills), live (WhiteBIT; API key from the environment).")
    p.add_argument("config", type=Path, help="bot config file (TOML), e.g. configs/sma_cross.toml")
    p.add_argument("--mode", choices=["sandbox", "paper", "live"], help="default: [run] mode, else sandbox")
    p.add_argument("--duration", type=_positive, metavar="SECONDS", help="stop after this long (default: Ctrl-C)")
    p.add_argument("--speed", type=_positive, metavar="X", help="sandbox: synthetic liquidity X times faster")
    p.set_defaults(func=_cmd_run)
