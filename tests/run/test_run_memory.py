"""A live bot's memory stays flat: backtests/bench_live_memory.py at a small size (a real sandbox process, the bot
in live mode against it) must show RSS growth under 100 KB per 1,000 orders after its warm-up."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_rss_growth_per_thousand_orders_is_near_zero() -> None:
    r = subprocess.run([sys.executable, str(ROOT / "backtests" / "bench_live_memory.py"), "--orders", "5000",
                        "--rate", "250", "--warmup", "3000"], capture_output=True, text=True, timeout=300, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    m = re.search(r"RSS growth after warm-up: ([+-][\d.]+) KB per 1,000 orders", r.stdout)
    assert m is not None, r.stdout + r.stderr
    assert r.returncode == 0, r.stdout  # the script's own verdict: < 100 KB per 1,000 orders
    assert float(m.group(1)) < 100
    assert "orders placed: 5,000" in r.stdout
