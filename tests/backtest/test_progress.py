"""The progress bar's speed and ETA, on a fake clock: the first chunk is the baseline, not counted in the rate."""

from __future__ import annotations

import io

import pytest

from botkit.backtest.run import ProgressBar

CHUNK = 16_384


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_rate_and_eta_exclude_the_first_chunk() -> None:
    clock = FakeClock()
    out = io.StringIO()
    bar = ProgressBar(out, clock=clock, tty=False)
    total = 1_000_000
    bar(CHUNK, total)  # the engine's first call comes after its first chunk: the clock starts here
    for k in range(2, 11):
        clock.t += 0.5  # each further chunk takes half a second
        bar(k * CHUNK, total)
    expected = CHUNK / 0.5  # 32,768 candles/s; counting the first chunk too would say 36,409
    assert bar.speed() == pytest.approx(expected)
    assert bar.eta() == pytest.approx((total - 10 * CHUNK) / expected, abs=1.0)  # rich rounds up to a second
    lines = out.getvalue().splitlines()
    assert lines, "a run longer than a second prints progress"
    assert f"{expected:,.0f}/s" in lines[-1] and "ETA" in lines[-1]


def test_the_speed_follows_a_slowdown_within_its_window() -> None:
    clock = FakeClock()
    bar = ProgressBar(io.StringIO(), clock=clock, tty=False)
    total = 100 * CHUNK
    bar(CHUNK, total)
    for k in range(2, 60):
        clock.t += 0.1 if k < 10 else 1.0  # fast start, then 10x slower for 50 s
        bar(k * CHUNK, total)
    # rich keeps 30 s of samples: only the slow chunks are in the window by now
    assert bar.speed() == pytest.approx(CHUNK / 1.0)


def test_a_run_shorter_than_a_second_prints_only_its_end() -> None:
    clock = FakeClock()
    out = io.StringIO()
    bar = ProgressBar(out, clock=clock, tty=False)
    bar(CHUNK, 3 * CHUNK)
    clock.t += 0.1
    bar(2 * CHUNK, 3 * CHUNK)
    assert out.getvalue() == ""
    clock.t += 0.1
    bar(3 * CHUNK, 3 * CHUNK)
    (line,) = out.getvalue().splitlines()
    assert "100%" in line and f"{CHUNK / 0.1:,.0f}/s" in line


def test_terminal_bar_shows_rate_and_eta() -> None:
    clock = FakeClock()
    out = io.StringIO()
    bar = ProgressBar(out, clock=clock, tty=True)
    total = 8 * CHUNK
    bar(CHUNK, total)
    for k in range(2, 9):
        clock.t += 1.0
        bar(k * CHUNK, total)
    text = out.getvalue()
    assert f"{CHUNK:,.0f}/s" in text and "candles" in text and "100%" in text
