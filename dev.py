#!/usr/bin/env python3
"""Set-up and everyday commands for a fresh machine with only Python 3.11+.

    python3 dev.py demo    create .venv, install botkit, run a bot on the embedded sandbox exchange for 20 s, then
                           backtest the same strategy on the sample data
    python3 dev.py test    create .venv, install botkit with test tools, run ruff, mypy, the import contracts and pytest
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
DEMO_RUN_SECONDS = 20


def sh(*cmd: str | Path) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")  # the venv's node/npm first
    code = subprocess.call([str(c) for c in cmd], cwd=ROOT, env=env)
    if code:
        sys.exit(code)


def ensure_venv(extras: str) -> None:
    if not (BIN / "python").exists():
        print(f"creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    sh(BIN / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", f".{extras}")


def demo() -> None:
    ensure_venv("")
    print(f"\n== 1/2  a bot trading against the embedded sandbox exchange for {DEMO_RUN_SECONDS} s "
          "(orders and fills as they happen)", flush=True)
    sh(BIN / "botkit", "run", "configs/sandbox_sma.toml", "--duration", str(DEMO_RUN_SECONDS))
    print("\n== 2/2  the same strategy backtested on the project's sample data", flush=True)
    sh(BIN / "botkit", "backtest", "configs/sma_cross.toml")
    print(NEXT_STEPS, flush=True)


NEXT_STEPS = """
Outputs
  out/sandbox_sma/sandbox/   the bot's trades.csv, report.json and order journal
  out/sma_cross/             the backtest: report.html (open it in a browser), report.json, trades.csv, ...

Try next (after `source .venv/bin/activate`)
  botkit run configs/sandbox_sma.toml --duration 60     a longer sandbox run
  botkit backtest configs/grid.toml                      a grid bot with many resting orders
  botkit sandbox                                         the sandbox exchange on its own, for any WhiteBIT client
  README.md "A five-minute tour"                         write your own strategy
"""


def test() -> None:
    ensure_venv("[dev]")
    # The official WhiteBIT SDK pins websockets<11 (botkit needs >=13): installed without its dependencies, for the
    # sandbox conformance test only (tests/sandbox/test_sandbox_sdk.py), where its REST client is what is tested.
    sh(BIN / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
       "whitebit-python-sdk==1.1.17")
    setup = ROOT / "tests" / "auth" / "rfc_server" / "setup"
    if setup.exists():
        sh("sh", setup)  # npm ci of the RFC 6749 test server (oidc-provider), node from the venv
    browser = ROOT / "tests" / "report" / "setup"
    if browser.exists():
        sh("sh", browser)  # Chromium from the system packages for the report.html browser test
    sh(BIN / "ruff", "check", "botkit", "strategies", "tests", "backtests", "dev.py")
    sh(BIN / "mypy", "botkit", "strategies")
    sh(BIN / "lint-imports")  # the import contracts in pyproject.toml: layers point one way
    sh(BIN / "pytest", "-q", "-p", "no:cacheprovider")


def main() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - run by whatever python3 the machine has
        sys.exit(f"botkit needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    commands = {"demo": demo, "test": test}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]]()


if __name__ == "__main__":
    main()
