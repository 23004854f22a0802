"""Benchmarks must not rot: every script in backtests/ runs end to end at a tiny size (`--smoke`), prints its
figures next to their targets, and the sandbox benchmark survives the sandbox's rate limits."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from botkit.sandbox.config import parse_sandbox_config
from botkit.sandbox.testing import running_sandbox, test_config

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "backtests"


def run(script: str, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def load(script: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(script.removesuffix(".py"), BENCH / script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_benchmark_script_has_a_smoke_test() -> None:
    """A new script in backtests/ needs a small-size run somewhere in the suite (here, or beside its subject)."""
    tests = [p.read_text(encoding="utf-8") for p in (ROOT / "tests").rglob("test_*.py")]
    for script in sorted(p.name for p in BENCH.glob("bench_*.py")):
        assert any(script in text for text in tests), f"backtests/{script} has no small-size run in tests/"


def test_bench_sandbox_smoke() -> None:
    out = run("bench_sandbox.py", "--smoke", "--seconds", "0.3", "--clients", "2", "--subscribers", "1")
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "rest_limit_scale = 100" in text  # the scaled limits are stated
    for figure, target in (("round trips/s", ">= 500"), ("request p99", "< 50 ms"),
                           ("depth messages/s", ">= 20,000")):
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(figure))
        assert target in line, line  # figure and target side by side
    assert "all targets met:" in text


def test_bench_sandbox_without_smoke_exits_1_on_a_missed_target() -> None:
    """One subscriber can never receive 20,000 depth messages/s (4 markets, one update per ms at most)."""
    out = run("bench_sandbox.py", "--seconds", "0.3", "--clients", "1", "--subscribers", "1")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "missed:" in out.stdout and "depth messages/s" in out.stdout.split("missed:")[1]


def test_bench_backtest_smoke() -> None:
    """Without --smoke: a tiny data set always misses the memory target (interpreter overhead vs 0.1 MiB), so the
    run must exit 1; the trades of both engines must still be the same."""
    pytest.importorskip("backtesting", reason="bench_backtest compares with backtesting.py: pip install -e .[dev]")
    out = run("bench_backtest.py", "--rows", "3000")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "trades, both filling at the next open: SAME" in out.stdout
    assert ">= 3x" in out.stdout and ">= 1,000,000" in out.stdout and "< 3x" in out.stdout
    assert "botkit peak memory" in out.stdout.split("missed:")[1]


def test_bench_tokens_smoke(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    out = run("bench_tokens.py", "2000", "--smoke")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "target < 5.0 µs" in out.stdout
    bench = load("bench_tokens.py")
    monkeypatch.setattr(bench, "TARGET_US", 0.0)  # no machine meets this
    assert bench.main(["1000"]) == 1 and "OVER TARGET" in capsys.readouterr().out
    assert bench.main(["1000", "--smoke"]) == 0


def test_bench_sandbox_config_lifts_the_per_ip_limit_above_the_target() -> None:
    """All benchmark clients share 127.0.0.1: unscaled, WhiteBIT's 10,000 per 10 s is below 1,000 signed req/s."""
    bench = load("bench_sandbox.py")
    import tomllib

    cfg = parse_sandbox_config(tomllib.loads(bench.bench_config(20, fast_depth=False)))
    per_second = 10_000 * cfg.server.rest_limit_scale / 10
    assert per_second >= 2 * 1_000  # twice the target's signed requests per second


async def test_bench_sandbox_counts_a_gateway_429_instead_of_crashing() -> None:
    """The HTML 429 of the sandbox's rate limiter used to crash the benchmark (JSON decode)."""
    bench = load("bench_sandbox.py")
    base = test_config(rest_limit_scale=0.001, rest_limit_window_scale=1.0)  # global limit: 10 per 10 s
    accounts = parse_sandbox_config({"accounts": [
        {"name": "bench0", "balances": {"USDT": "1000000"},
         "api_keys": [{"key": "bench-key-0", "secret": "bench-secret-0"}]}]}).accounts
    async with running_sandbox(base.model_copy(update={"accounts": accounts})) as sb:
        result = await bench.round_trips(sb.base_url, 1, 0.3)
    assert result["errors"] > 0  # counted; main() then exits 2


def test_bench_command_smoke() -> None:
    r = run("bench_command.py", "--rows", "2000", "--repeat", "1", "--smoke")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2,000 candles, SMA crossover, whole command: best" in r.stdout and "report.json" in r.stdout
    assert "backtesting.py engine only (same file), 1 runs:" in r.stdout and "(target >= 3x)" in r.stdout
    assert "best against best: backtesting.py" in r.stdout


def test_bench_book_smoke(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """bench_book.py at a tiny size: figures beside the target; without --smoke a missed target exits 1."""
    out = run("bench_book.py", "--smoke", "--events", "2000")
    assert out.returncode == 0, out.stdout + out.stderr
    line = next(ln for ln in out.stdout.splitlines() if ln.strip().startswith("depth updates/s"))
    assert "target >= 200,000" in line
    assert "book events/s" in out.stdout and "fills" in out.stdout
    bench = load("bench_book.py")
    monkeypatch.setattr(bench, "TARGET_UPDATES_PER_S", 10**12)  # no machine meets this
    assert bench.main(["--events", "2000", "--repeat", "1"]) == 1
    assert "missed: depth updates/s" in capsys.readouterr().out


def test_bench_replay_smoke() -> None:
    """The trades replay benchmark at a tiny size: both delivery modes run, give the same fills, and print the
    rate beside the 500,000 trade events/s target."""
    out = run("bench_replay.py", "--smoke")
    assert out.returncode == 0, out.stdout + out.stderr
    line = next(ln for ln in out.stdout.splitlines() if "on_trades batches" in ln)
    assert "target >= 500,000" in line and "20,000 in" in line, line
    assert "the same in both modes: True" in out.stdout
    assert "one by one" in out.stdout


def test_compare_fills_smoke() -> None:
    """backtests/compare_fills.py records the sandbox for a few seconds and prints the three fill models' runs."""
    out = run("compare_fills.py", "--smoke")
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "window: " in text and "final equity" in text and "slippage (book)" in text
    labels = [ln.split("  ")[0] for ln in text.splitlines()[text.splitlines().index(
        next(ln for ln in text.splitlines() if ln.startswith("run "))) + 1:]]
    assert labels == ["market candles", "market trades", "market book", "market book x40 (40000 USDT)",
                      "limit candles", "limit trades", "limit book"]
