"""backtests/bench_peers.py at a tiny size so it cannot rot: botkit always; each peer only when installed (the
`peers` extra), else skipped saying so. Where a peer ran, it made as many entries as botkit on both strategies: the
rules really are the same. No timing is asserted."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

import pytest

from .helpers import ROOT

FAST_PEERS = {"backtesting.py": "backtesting", "backtrader": "backtrader"}
ROW = re.compile(
    r"^\| (sma|limit) \| ([\w.]+)[^|]* \| ([\d,]+) \| [\d.]+ \| [\d,]+ \| [\d.-]+ \| ([\d,]+) \| ([\d,]+) \|$"
)


@pytest.fixture(scope="module")
def table() -> dict[tuple[str, str], tuple[int, float]]:
    engines = ["botkit", *(e for e, m in FAST_PEERS.items() if importlib.util.find_spec(m))]
    r = subprocess.run([sys.executable, str(ROOT / "backtests" / "bench_peers.py"), "--rows", "3000", "--engines",
                        ",".join(engines)], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rows = {}
    for line in r.stdout.splitlines():
        m = ROW.match(line)
        if m:
            rows[(m[1], m[2])] = (int(m[4].replace(",", "")), float(m[5].replace(",", "")))
    assert "3,000 SYNTHETIC" in r.stdout
    return rows


def test_botkit_runs_both_strategies(table: dict[tuple[str, str], tuple[int, float]]) -> None:
    for strategy in ("sma", "limit"):
        trades, equity = table[(strategy, "botkit")]
        assert trades > 0 and equity > 0


@pytest.mark.parametrize("engine", [*FAST_PEERS, "vectorbt"])
def test_peer_makes_the_same_entries(engine: str, table: dict[tuple[str, str], tuple[int, float]]) -> None:
    if engine == "vectorbt":
        pytest.skip("vectorbt: its Numba compile takes minutes, too long for the suite; run backtests/bench_peers.py")
    if importlib.util.find_spec(FAST_PEERS[engine]) is None:
        pytest.skip(f"{engine} is not installed (it comes with the peers extra: pip install -e .[peers])")
    for strategy in ("sma", "limit"):
        assert table[(strategy, engine)][0] == table[(strategy, "botkit")][0], (strategy, engine)
        # same trades, fees charged in different assets: equities agree to well under 1 %
        assert table[(strategy, engine)][1] == pytest.approx(table[(strategy, "botkit")][1], rel=0.01)
