"""One bundle of the three times the token layer runs on: wall time (token `obtained_at`/`expires_at`), monotonic
time (when the next refresh is due) and sleeping (keep-alive, rate-limit waits, retry back-off).

`OAuthClient(clock=...)` and `TokenManager(clock=..., monotonic=..., sleep=...)` take them one by one; a bot's run
passes one `TokenClock` (`open_account(clock=...)`, `LiveRunner(token_clock=...)`). `SYSTEM_CLOCK` is the real one
and the default. `ScaledClock(rate)` runs `rate` times faster than the wall: give it to the bot and its `time` to the
sandbox's authorization server (`sandbox.oauth.clock = clock.time`), and a minute of token lifetimes, refreshes and
rotations passes in 60/rate wall seconds over real sockets while the market and the orders keep the run's own clock.
HTTP round trips are then `rate` times longer in token time than they are: the timing is harsher than in life,
never kinder. A driven fake clock with the same three methods (botkit/sandbox/testing.py FakeClock) fits as well.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class TokenClock(Protocol):
    def time(self) -> float:
        """Seconds since the epoch: token `obtained_at` and `expires_at` are on this clock."""
        ...

    def monotonic(self) -> float:
        """Seconds, never going back: when the next refresh is due."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The system clock (the default)."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK: TokenClock = SystemClock()


class ScaledClock:
    """Token time running `rate` times faster than the wall, from the moment it is made (tests, benchmarks)."""

    def __init__(self, rate: float) -> None:
        if not rate > 0:
            raise ValueError(f"rate = {rate!r}: a clock rate is a positive number (1 = real time)")
        self.rate = rate
        self._wall0 = time.time()
        self._mono0 = time.monotonic()

    def monotonic(self) -> float:
        return self._mono0 + (time.monotonic() - self._mono0) * self.rate

    def time(self) -> float:
        return self._wall0 + (time.monotonic() - self._mono0) * self.rate

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.rate)

    def __repr__(self) -> str:
        return f"ScaledClock(rate={self.rate:g})"
