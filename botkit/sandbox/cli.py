"""`botkit sandbox [--config FILE] [--port N]`: run the sandbox exchange in the foreground until Ctrl-C / SIGTERM."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the server (aiohttp and the rest) is imported when the command runs: `botkit` starts quick
    from botkit.sandbox.server import Sandbox

DESCRIPTION = (
    "Run botkit's local WhiteBIT-compatible exchange on 127.0.0.1: REST v4 and v1 (public and HMAC-signed "
    "private), OAuth (both flows) and the WebSocket API on one port, with a matching engine, background liquidity "
    "and switchable faults. Point any WhiteBIT client at the printed URLs; it prints the demo credentials it serves "
    "and the admin token for /_sandbox/faults and /_sandbox/reset. See botkit/sandbox/README.md."
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "sandbox", help="run the local WhiteBIT-compatible sandbox exchange", description=DESCRIPTION
    )
    p.add_argument("--config", type=Path, default=None, metavar="FILE",
                   help="sandbox TOML file: markets, accounts, liquidity, faults, OAuth clients "
                        "(default: the packaged botkit/sandbox/default.toml)")
    p.add_argument("--port", type=int, default=8765, metavar="N",
                   help="TCP port on 127.0.0.1 (0 picks a free one; default 8765)")
    p.set_defaults(func=main)


def _credentials(sandbox: Sandbox) -> list[str]:
    """The demo credentials the sandbox serves (sandbox-only values from its config, meant to be shown)."""
    lines = []
    for account in sandbox.config.accounts:
        for k in account.api_keys:
            lines.append(f"  API key:        {k.key} / secret {k.secret.get_secret_value()} "
                         f"(account {account.name}; {', '.join(k.permissions)})")
    for c in sandbox.config.oauth.clients:
        lines.append(f"  OAuth client:   {c.client_id}, redirect {', '.join(c.redirect_uris)} "
                     "(its secret is in the config file)")
    return lines


async def serve(config_path: Path | None, port: int) -> None:
    import asyncio

    from botkit.sandbox.config import load_sandbox_config
    from botkit.sandbox.faults import ADMIN_HEADER
    from botkit.sandbox.server import Sandbox

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
    for line in _credentials(sandbox):
        print(line, flush=True)
    print(f"  admin:          {sandbox.base_url}/_sandbox/faults, {sandbox.base_url}/_sandbox/reset", flush=True)
    print(f"  admin token:    {ADMIN_HEADER}: {sandbox.admin_token}  (POST bodies as application/json)", flush=True)
    scale = sandbox.config.server.rest_limit_scale, sandbox.config.server.rest_limit_window_scale
    if scale != (1.0, 1.0):
        print(f"  REST limits:    WhiteBIT's x{scale[0]:g} requests per window x{scale[1]:g} "
              "(rest_limit_scale / rest_limit_window_scale)", flush=True)
    print("  Ctrl-C to stop", flush=True)
    try:
        await stop.wait()
    finally:
        await sandbox.stop()


def main(args: argparse.Namespace) -> int:
    import asyncio  # here: importing this module (every `botkit` start does) stays quick

    from botkit.sandbox.config import SandboxConfigError

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
