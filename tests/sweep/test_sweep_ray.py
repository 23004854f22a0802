"""The Ray engine on a real local Ray cluster: a head and a worker node started here on 127.0.0.1 (one CPU each),
bounded in time and torn down after (their own process groups, killed by id). Same results as the process pool;
one data load per actor; both nodes did work."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from botkit.backtest.sweep import Sweep, SweepSpec
from botkit.backtest.sweep_exec import ProcessEngine
from botkit.backtest.sweep_report import write_results
from botkit.backtest.sweep_space import parse_space

from .helpers import ROOT, make_config

pytest.importorskip("ray", reason="Ray is in the dev extra: pip install -e .[dev]")

RAY = Path(sys.executable).with_name("ray")
READY = "block forever"
# A test cluster without token authentication, whatever ~/.ray/auth_token an earlier local Ray left behind: the
# nodes and the drivers (this process and the CLI it starts) must agree on it.
AUTH = {"RAY_AUTH_MODE": "disabled"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as fh:
        return subprocess.Popen([str(RAY), "start", "--block", "--num-cpus", "1", "--object-store-memory",
                                 "80000000", "--disable-usage-stats", *args], stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True, env={**os.environ, **AUTH})


def _wait_ready(proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if READY in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    pytest.fail(f"ray node did not start in {timeout:.0f} s:\n{log.read_text(errors='replace')[-3000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the node's own process group, SIGKILL to whatever is left after 10 s."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                proc.poll()
                return
            time.sleep(0.2)
    proc.poll()


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths must stay under 107 bytes
    port = _free_port()
    address = f"127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in AUTH}
    os.environ.update(AUTH)
    head = _start(["--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--include-dashboard", "false",
                   "--temp-dir", temp], Path(temp) / "head.log")
    procs = [head]
    try:
        _wait_ready(head, Path(temp) / "head.log", 90)
        worker = _start(["--address", address, "--node-ip-address", "127.0.0.1"], Path(temp) / "worker.log")
        procs.append(worker)
        _wait_ready(worker, Path(temp) / "worker.log", 90)
        yield address
    finally:
        for p in reversed(procs):
            _stop(p)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(temp, ignore_errors=True)


def test_ray_cluster_gives_the_process_pool_results(cluster: str, tmp_path: Path) -> None:
    cfg = make_config(tmp_path / "data")
    dims = parse_space(["fast=4,8,12", "slow=30,45"])
    engine = ProcessEngine(2)
    try:
        local = Sweep(SweepSpec(cfg, dims, out=tmp_path / "local")).run(engine)
    finally:
        engine.close()
    # through the CLI, as a user runs it
    out = tmp_path / "ray"
    cli = subprocess.run([sys.executable, "-m", "botkit.cli", "sweep", str(cfg), "--grid", "fast=4,8,12", "--grid",
                          "slow=30,45", "--engine", "ray", "--address", cluster, "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    assert cli.returncode == 0, cli.stderr[-3000:]
    assert "2 workers (Ray at 127.0.0.1" in cli.stderr
    assert "6 backtests run" in cli.stdout and "data loaded 2 times by 2 workers" in cli.stdout
    assert (out / "results.csv").read_text() == write_results(local, tmp_path / "local.csv").read_text()


def test_ray_actors_load_data_once_on_both_nodes(cluster: str, tmp_path: Path) -> None:
    from botkit.backtest.sweep_exec import RayEngine

    cfg = make_config(tmp_path / "data")
    spec = SweepSpec(cfg, parse_space(["fast=3..10", "slow=30,45"]), out=tmp_path / "ray2")
    engine = RayEngine(cluster, workers=2)
    try:
        outcome = Sweep(spec).run(engine)
    finally:
        engine.close()
    assert outcome.ran == 16
    assert len(outcome.workers) == 2 and list(outcome.workers.values()) == [1, 1]  # 16 backtests, 2 loads
    nodes = {w.rpartition("/")[2] for w in outcome.workers}
    assert len(nodes) == 2, outcome.workers  # one actor on the head, one on the worker node
