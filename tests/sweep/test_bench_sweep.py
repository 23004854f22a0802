"""backtests/bench_sweep.py at a tiny size, so the script cannot rot: it runs every engine installed, prints each
figure next to its target and finds the same results on every engine and worker count. No timing is asserted."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

from .helpers import ROOT


def test_bench_sweep_tiny() -> None:
    engines = "process,ray" if importlib.util.find_spec("ray") else "process"
    r = subprocess.run([sys.executable, str(ROOT / "backtests" / "bench_sweep.py"), "--rows", "1500", "--sets", "4",
                        "--engines", engines], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode in (0, 1), r.stderr[-3000:]
    out = r.stdout
    assert "identical results.csv across engines and worker counts: YES" in out, out
    for engine in engines.split(","):
        assert f"{engine}: speed-up 1 -> 2 workers" in out and "(target >= 1.8x)" in out
        assert f"{engine}: whole sweep on 2 workers" in out and "(target < 120 s)" in out
        assert f"  {engine} x2: 4 backtests" in out
    assert (r.returncode == 1) == ("MISSED" in out)  # exit 1 exactly when a target is missed
