"""`botkit sandbox [--config FILE] [--port N]`: run the sandbox exchange in the foreground until Ctrl-C / SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from pathlib import Path

from botkit.sandbox.config import SandboxConfigError, load_sandbox_config
from botkit.sandbox.server import Sandbox


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("sandbox", help="run the local WhiteBIT-compatible sandbox exchange")
    p.add_argument("--config", type=Path, default=None, help="sandbox TOML file (default: the packaged default.toml)")
    p.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (0 picks a free one; default 8765)")
    p.set_defaults(func=main)


async def serve(config_path: Path | None, port: int) -> None:
    started = time.perf_counter()
    sandbox = Sandbox(load_sandbox_config(config_path), port=port)
    await sandbox.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    print(f"botkit sandbox ready in {time.perf_counter() - started:.2f} s", flush=True)
    print(f"  REST and OAuth: {sandbox.base_url}", flush=True)
    print(f"  WebSocket:      {sandbox.ws_url}", flush=True)
    print(f"  markets:        {', '.join(m.name for m in sandbox.config.markets)}", flush=True)
    print(f"  admin:          {sandbox.base_url}/_sandbox/faults, {sandbox.base_url}/_sandbox/reset", flush=True)
    print("  Ctrl-C to stop", flush=True)
    try:
        await stop.wait()
    finally:
        await sandbox.stop()


def main(args: argparse.Namespace) -> int:
    try:
        asyncio.run(serve(args.config, args.port))
    except SandboxConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror}; choose another --port", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="botkit")
    register(parser.add_subparsers(dest="command", required=True))
    ns = parser.parse_args()
    sys.exit(ns.func(ns))
