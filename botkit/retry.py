"""The one retry policy every retrying path shares (REST calls, token refresh, order lookups after a lost answer,
WebSocket reconnects, API-key polling): tenacity, exponential backoff with full jitter, a cap on each wait, a
`Retry-After` from the server honoured up to a cap, and bounds on attempts and total time.

Defined once, so "how long does botkit keep trying?" has one answer and no loop can hammer a server.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from email.utils import parsedate_to_datetime

from tenacity import AsyncRetrying, RetryCallState, before_nothing, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_fixed, wait_random_exponential

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

BASE_S = 0.5  # first backoff step (full jitter: a wait is uniform in [0, min(cap, base * 2**n)])


def backoff_wait(max_wait_s: float, retry_after_cap_s: float = 60.0,
                 base_s: float = BASE_S) -> Callable[[RetryCallState], float]:
    """The wait before the next attempt: the server's Retry-After (capped) when the error carries one, else
    exponential backoff with full jitter, capped at `max_wait_s`."""
    jitter = wait_random_exponential(multiplier=base_s, max=max_wait_s)

    def wait(rs: RetryCallState) -> float:
        exc = rs.outcome.exception() if rs.outcome is not None else None
        ra = getattr(exc, "retry_after", None)
        if isinstance(ra, int | float) and ra >= 0:
            return float(min(ra, retry_after_cap_s))
        return float(jitter(rs))

    return wait


class stop_before_total(stop_base):
    """tenacity's `stop_before_delay` on an injectable clock: stop when the next wait would end `total_s` or more
    after the first attempt started. With `sleep` and `clock` from one fake clock, a test of a 30 s bound takes no
    time (tenacity's own timer is always the real `time.monotonic`). One retry loop at a time, like tenacity's own
    per-object state: `policy()` makes a fresh one for every loop."""

    def __init__(self, total_s: float, clock: Clock = time.monotonic) -> None:
        self.total_s = total_s
        self.clock = clock
        self._start: float | None = None

    def started(self, rs: RetryCallState) -> None:
        """The `before` hook: remember when the first attempt of this loop started."""
        if rs.attempt_number == 1 or self._start is None:
            self._start = self.clock()

    def __call__(self, rs: RetryCallState) -> bool:
        elapsed = self.clock() - self._start if self._start is not None else 0.0
        return elapsed + rs.upcoming_sleep >= self.total_s


def _retrying(retry_on: Callable[[BaseException], bool], attempts: int | None, total_s: float | None,
              wait: Callable[[RetryCallState], float], sleep: Sleep, clock: Clock) -> AsyncRetrying:
    stops: list[stop_base] = []
    if attempts is not None:
        stops.append(stop_after_attempt(attempts))
    deadline = stop_before_total(total_s, clock) if total_s is not None else None
    if deadline is not None:
        stops.append(deadline)
    if not stops:
        raise ValueError("a retry policy needs a bound: attempts, total_s or both")
    stop = stops[0] if len(stops) == 1 else stops[0] | stops[1]
    return AsyncRetrying(stop=stop, wait=wait, retry=retry_if_exception(retry_on), reraise=True, sleep=sleep,
                         before=deadline.started if deadline is not None else before_nothing)


def policy(
    retry_on: Callable[[BaseException], bool],
    *,
    attempts: int | None,
    total_s: float | None,
    max_wait_s: float,
    retry_after_cap_s: float = 60.0,
    base_s: float = BASE_S,
    sleep: Sleep = asyncio.sleep,
    clock: Clock = time.monotonic,
) -> AsyncRetrying:
    """`async for attempt in policy(...): with attempt: ...` — retries what `retry_on` accepts, re-raises the last
    error when the attempts or the time run out (None: no bound of that kind; one of them must be set). `total_s`
    is measured on `clock` (seconds, monotonic), waited out with `sleep`: inject both from one clock in tests."""
    return _retrying(retry_on, attempts, total_s, backoff_wait(max_wait_s, retry_after_cap_s, base_s), sleep, clock)


def poll(
    not_yet: Callable[[BaseException], bool],
    *,
    every_s: float,
    total_s: float,
    sleep: Sleep = asyncio.sleep,
    clock: Clock = time.monotonic,
) -> AsyncRetrying:
    """The same policy for waiting on a state another party changes (an API key appearing after consent): a fixed
    `every_s` between looks, since backing off would only delay noticing it, bounded by `total_s` on `clock`; the
    last "not yet" error is re-raised when the time is up."""
    return _retrying(not_yet, None, total_s, wait_fixed(every_s), sleep, clock)


def reconnect_delay(attempt: int, max_wait_s: float, base_s: float = BASE_S) -> float:
    """The wait before reconnect number `attempt` (0-based) of a connection that retries for as long as it runs
    (a market data stream): the same capped exponential step, with "equal jitter" (a uniform draw from the upper
    half of the step), so a flapping server is never hammered by an immediate reconnect."""
    step = float(min(max_wait_s, base_s * 2**attempt))
    return step / 2 + random.uniform(0, step / 2)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: delay-seconds or an HTTP-date (RFC 9110 §10.2.3); None if absent or garbage."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
