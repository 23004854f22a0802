"""Every command is there, and a command whose module cannot be imported is an error, not a command that vanishes."""

from __future__ import annotations

import importlib

import pytest

from botkit import cli


def test_every_command_is_registered() -> None:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    names = set(sub.choices)  # type: ignore[arg-type]
    assert {"backtest", "run", "data", "sandbox", "auth", "report", "compare", "record"} <= names


def test_a_broken_command_module_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def broken(name: str, package: str | None = None):  # type: ignore[no-untyped-def]
        if name == "botkit.run_cli":
            raise ImportError("simulated: a dependency of `botkit run` is missing")
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", broken)
    with pytest.raises(ImportError, match="simulated"):
        cli.build_parser()


def test_building_the_parser_imports_no_module_that_only_another_command_uses() -> None:
    """Every `botkit` start (a backtest too) imports each command's module to register it: what only that command
    needs is imported when it runs."""
    import subprocess
    import sys

    only_others = ("botkit.auth.settings", "botkit.auth.tokens", "botkit.backtest.sample", "tracemalloc", "httpx")
    code = ("import sys; from botkit.cli import build_parser; build_parser(); "
            f"print(','.join(m for m in {only_others!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
