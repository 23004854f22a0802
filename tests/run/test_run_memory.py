"""A live bot keeps nothing per order: backtests/bench_live_memory.py at a small size (a real sandbox process, the
bot in live mode against it) with --trace must show the Python heap flat after its warm-up (< 100 KB per 1,000
orders; keeping each closed order would cost ~1,000). RSS, which moves in allocator steps, is judged by the
benchmark's long run (30 minutes at 10 orders/s)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_rss_growth_per_thousand_orders_is_near_zero() -> None:
    r = subprocess.run([sys.executable, str(ROOT / "backtests" / "bench_live_memory.py"), "--orders", "4000",
                        "--rate", "100", "--warmup", "2000", "--trace"], capture_output=True, text=True, timeout=300,
                       cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    m = re.search(r"Python heap growth after warm-up: ([+-][\d.]+) KB per 1,000 orders", r.stdout)
    assert m is not None, r.stdout + r.stderr
    assert r.returncode == 0, r.stdout  # the script's own verdict
    assert float(m.group(1)) < 100
    assert "orders placed: 4,000" in r.stdout and "RSS growth after warm-up" in r.stdout
