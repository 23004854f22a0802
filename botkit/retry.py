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

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, stop_before_delay
from tenacity.stop import stop_base
from tenacity.wait import wait_random_exponential

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


def policy(
    retry_on: Callable[[BaseException], bool],
    *,
    attempts: int | None,
    total_s: float | None,
    max_wait_s: float,
    retry_after_cap_s: float = 60.0,
    base_s: float = BASE_S,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AsyncRetrying:
    """`async for attempt in policy(...): with attempt: ...` — retries what `retry_on` accepts, re-raises the last
    error when the attempts or the time run out (None: no bound of that kind; one of them must be set)."""
    stops: list[stop_base] = []
    if attempts is not None:
        stops.append(stop_after_attempt(attempts))
    if total_s is not None:
        stops.append(stop_before_delay(total_s))
    if not stops:
        raise ValueError("a retry policy needs a bound: attempts, total_s or both")
    stop = stops[0] if len(stops) == 1 else stops[0] | stops[1]
    return AsyncRetrying(stop=stop, wait=backoff_wait(max_wait_s, retry_after_cap_s, base_s),
                         retry=retry_if_exception(retry_on), reraise=True, sleep=sleep)


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
