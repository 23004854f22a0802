"""Streaming indicators: O(1) per closed candle, identical in backtest and live.

Each has `update(x) -> value | None` (None until warmed up) and `value`. For vectorised research over arrays,
use numpy on `ctx.candles(...)`; these exist so that per-candle strategies stay fast.
"""

from __future__ import annotations

import math
from collections import deque


class SMA:
    """Simple moving average of the last `n` values: a ring buffer with a running sum, re-summed exactly
    (math.fsum) once per lap so rounding drift never accumulates."""

    __slots__ = ("_buf", "_full", "_i", "_sum", "n", "value")

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"SMA period must be >= 1, got {n}")
        self.n = n
        self._buf = [0.0] * n
        self._i = 0
        self._sum = 0.0
        self._full = False
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        buf = self._buf
        i = self._i
        s = self._sum + x - buf[i]
        buf[i] = x
        i += 1
        if i == self.n:
            i = 0
            s = math.fsum(buf)
            self._full = True
        self._i = i
        self._sum = s
        if self._full:
            self.value = s / self.n
        return self.value


class EMA:
    """Exponential moving average, alpha = 2/(n+1), seeded with the SMA of the first n values."""

    __slots__ = ("_alpha", "_seed", "n", "value")

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"EMA period must be >= 1, got {n}")
        self.n = n
        self._alpha = 2.0 / (n + 1)
        self._seed: list[float] = []
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        if self.value is None:
            self._seed.append(x)
            if len(self._seed) == self.n:
                self.value = sum(self._seed) / self.n
            return self.value
        self.value += self._alpha * (x - self.value)
        return self.value


class RSI:
    """Wilder's relative strength index over `n` periods (0-100)."""

    __slots__ = ("_avg_gain", "_avg_loss", "_count", "_prev", "n", "value")

    def __init__(self, n: int = 14) -> None:
        if n < 1:
            raise ValueError(f"RSI period must be >= 1, got {n}")
        self.n = n
        self._prev: float | None = None
        self._avg_gain = 0.0
        self._avg_loss = 0.0
        self._count = 0
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        if self._prev is None:
            self._prev = x
            return None
        change = x - self._prev
        self._prev = x
        gain, loss = (change, 0.0) if change > 0 else (0.0, -change)
        self._count += 1
        if self._count <= self.n:
            self._avg_gain += gain / self.n
            self._avg_loss += loss / self.n
            if self._count < self.n:
                return None
        else:
            self._avg_gain = (self._avg_gain * (self.n - 1) + gain) / self.n
            self._avg_loss = (self._avg_loss * (self.n - 1) + loss) / self.n
        if self._avg_loss == 0:
            self.value = 100.0 if self._avg_gain > 0 else 50.0
        else:
            self.value = 100.0 - 100.0 / (1.0 + self._avg_gain / self._avg_loss)
        return self.value


class Bollinger:
    """Bollinger bands: mean of the last `n` values plus/minus `k` population standard deviations."""

    __slots__ = ("_buf", "k", "lower", "mid", "n", "upper")

    def __init__(self, n: int = 20, k: float = 2.0) -> None:
        if n < 2:
            raise ValueError(f"Bollinger period must be >= 2, got {n}")
        self.n = n
        self.k = k
        self._buf: deque[float] = deque(maxlen=n)
        self.mid: float | None = None
        self.upper: float | None = None
        self.lower: float | None = None

    def update(self, x: float) -> float | None:
        self._buf.append(x)
        if len(self._buf) < self.n:
            return None
        mean = math.fsum(self._buf) / self.n
        var = math.fsum((v - mean) ** 2 for v in self._buf) / self.n
        sd = math.sqrt(var)
        self.mid, self.upper, self.lower = mean, mean + self.k * sd, mean - self.k * sd
        return self.mid
