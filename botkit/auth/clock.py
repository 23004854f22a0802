"""The token layer's sense of time: wall time (token expiry, `obtained_at`), monotonic time (when to refresh) and
sleeping (keep-alive, rate-limit waits, retry back-off), behind one seam.

`SYSTEM_CLOCK` is the real one and the default everywhere. `ScaledClock(rate)` runs `rate` times faster than the
wall: give it to the bot's OAuthClient/TokenManager (`LiveRunner(token_clock=...)`) and its `time` to the sandbox's
authorization server (`sandbox.oauth.clock`), and a minute of token lifetimes, refreshes and rotations passes in
60/rate wall seconds over real sockets, while the market and the orders keep wall time. The HTTP round trips are then
`rate` times longer in token time than they are, so the timing is harsher than in life, never kinder.
"""

from __future__ import annotations

import asyncio
import time


class TokenClock:
    """The system clock (the default)."""

    def time(self) -> float:
        """Seconds since the epoch: token `obtained_at` and `expires_at` are on this clock."""
        return time.time()

    def monotonic(self) -> float:
        """Seconds, never going back: when the next refresh is due."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


SYSTEM_CLOCK = TokenClock()


class ScaledClock(TokenClock):
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
