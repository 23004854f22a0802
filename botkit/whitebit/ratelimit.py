"""Client-side rate limiting per WhiteBIT limit bucket, so a bot waits instead of sending a request that is refused.

WhiteBIT limits per IP and per 10 s, at three levels at once (docs/whitebit.md §2.6): the endpoint's own limit, its
scope (path group, e.g. `/api/v4/trade-account/*`) and the global default. Requests over a limit are rejected, not
queued, and repeated 429s can get the IP restricted, so the limiter only lets a request go when every bucket that
applies has room. Buckets are sliding logs ("at most N grants in any window of W seconds"), which is exactly the
published rule. A gateway 429 (non-JSON body) blocks the endpoint's group for Retry-After, or for a doubling
back-off when it is absent; the JSON nonce rejection "Too many requests." is not a rate limit and changes nothing.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from botkit.whitebit.endpoints import DEFAULT_GROUP_LIMITS, GLOBAL_LIMIT, Endpoint

Limit = tuple[int, float]  # (requests, per seconds)


def buckets_for(
    ep: Endpoint, group_limits: Mapping[str, Limit] = DEFAULT_GROUP_LIMITS, global_limit: Limit = GLOBAL_LIMIT
) -> list[tuple[str, Limit]]:
    """The (bucket key, published limit) pairs a call to `ep` counts against; the sandbox enforces the same list."""
    out: list[tuple[str, Limit]] = []
    if ep.rate_limit is not None:
        out.append((f"endpoint:{ep.name}", ep.rate_limit))
    group = group_limits.get(ep.rate_group)
    if group is not None:
        out.append((f"group:{ep.rate_group}", group))
    out.append(("global", global_limit))
    return out


class SlidingWindow:
    """At most `capacity` grants in any `window_s` seconds: a log of grant times, pruned as they age out."""

    __slots__ = ("_log", "capacity", "window_s")

    def __init__(self, capacity: int, window_s: float) -> None:
        if capacity < 1 or window_s <= 0:
            raise ValueError(f"a window needs capacity >= 1 and window_s > 0 (got {capacity}, {window_s})")
        self.capacity = capacity
        self.window_s = window_s
        self._log: deque[float] = deque()

    def _prune(self, now: float) -> None:
        while self._log and self._log[0] <= now - self.window_s:
            self._log.popleft()

    def delay(self, now: float) -> float:
        """Seconds until one more grant fits (0 when it fits now)."""
        self._prune(now)
        if len(self._log) < self.capacity:
            return 0.0
        return self._log[len(self._log) - self.capacity] + self.window_s - now

    def record(self, now: float) -> None:
        self._log.append(now)

    def count(self, now: float) -> int:
        self._prune(now)
        return len(self._log)


@dataclass(slots=True)
class LimiterStats:
    """What the limiter did: grants, how many had to wait and for how long, gateway 429 back-offs."""

    granted: int = 0
    waits: int = 0
    wait_s: float = 0.0
    max_wait_s: float = 0.0
    penalties: int = 0


def capacity(limit: Limit, count_scale: float = 1.0, headroom: float = 1.0) -> int:
    """Requests allowed per window after scaling; never below 1 so a scaled-down limit still lets traffic through."""
    return max(1, math.floor(limit[0] * count_scale * headroom + 1e-9))


class RateLimiter:
    """Waits (asyncio.sleep) until every bucket of an endpoint has room, then records the grant in all of them.

    `headroom` keeps a margin below the published limit (0.9 = use 90 %); `margin_s` widens each window a little,
    because the server stamps a request when it arrives, a bit after we stamp it. `count_scale`/`window_scale` match
    a sandbox run with `rest_limit_scale`/`rest_limit_window_scale`. One limiter per IP: share it between clients.
    Fairness: callers of one endpoint queue on a FIFO lock and only its holder sleeps, so a burst never wakes up
    all at once to race for the same slot.
    """

    def __init__(
        self,
        *,
        headroom: float = 0.9,
        margin_s: float = 0.1,
        count_scale: float = 1.0,
        window_scale: float = 1.0,
        backoff_s: float = 1.0,
        backoff_max_s: float = 30.0,
        group_limits: Mapping[str, Limit] = DEFAULT_GROUP_LIMITS,
        global_limit: Limit = GLOBAL_LIMIT,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        for name, value, ok in (
            ("headroom", headroom, 0 < headroom <= 1),
            ("margin_s", margin_s, margin_s >= 0),
            ("count_scale", count_scale, count_scale > 0),
            ("window_scale", window_scale, window_scale > 0),
            ("backoff_s", backoff_s, backoff_s >= 0),
            ("backoff_max_s", backoff_max_s, backoff_max_s >= backoff_s),
        ):
            if not ok:
                raise ValueError(
                    f"RateLimiter {name}={value!r} is out of range; use 0 < headroom <= 1, margin_s >= 0, "
                    "scales > 0 and 0 <= backoff_s <= backoff_max_s"
                )
        self.headroom = headroom
        self.margin_s = margin_s
        self.count_scale = count_scale
        self.window_scale = window_scale
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.group_limits = dict(group_limits)
        self.global_limit = global_limit
        self._clock = clock
        self._sleep = sleep
        self._windows: dict[str, SlidingWindow] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._blocked_until: dict[str, float] = {}  # group -> clock time of the end of a 429 back-off
        self._strikes: dict[str, int] = {}  # group -> consecutive gateway 429s
        self.stats = LimiterStats()

    def windows_for(self, ep: Endpoint) -> list[SlidingWindow]:
        out = []
        for key, limit in buckets_for(ep, self.group_limits, self.global_limit):
            w = self._windows.get(key)
            if w is None:
                w = SlidingWindow(
                    capacity(limit, self.count_scale, self.headroom), limit[1] * self.window_scale + self.margin_s
                )
                self._windows[key] = w
            out.append(w)
        return out

    def delay(self, ep: Endpoint) -> float:
        """Seconds until a call to `ep` could go (0 = now)."""
        now = self._clock()
        blocked = self._blocked_until.get(ep.rate_group, 0.0) - now
        return max(0.0, blocked, *(w.delay(now) for w in self.windows_for(ep)))

    async def acquire(self, ep: Endpoint) -> float:
        """Wait for room in all of `ep`'s buckets and take it; returns the seconds waited."""
        lock = self._locks.setdefault(ep.name, asyncio.Lock())
        waited = 0.0
        async with lock:
            while True:
                d = self.delay(ep)
                if d <= 0:
                    break
                t0 = self._clock()
                await self._sleep(d)
                waited += self._clock() - t0
            now = self._clock()
            for w in self.windows_for(ep):
                w.record(now)
        s = self.stats
        s.granted += 1
        if waited > 0:
            s.waits += 1
            s.wait_s += waited
            s.max_wait_s = max(s.max_wait_s, waited)
        return waited

    def penalize(self, ep: Endpoint, retry_after: float | None) -> float:
        """A gateway 429 on `ep`: block its group for Retry-After, else 1 s doubling per strike (capped)."""
        group = ep.rate_group
        strikes = self._strikes.get(group, 0) + 1
        self._strikes[group] = strikes
        if retry_after is not None and retry_after >= 0:
            pause = retry_after
        else:
            pause = min(self.backoff_s * 2 ** (strikes - 1), self.backoff_max_s)
        until = self._clock() + pause
        self._blocked_until[group] = max(self._blocked_until.get(group, 0.0), until)
        self.stats.penalties += 1
        return pause

    def relieve(self, ep: Endpoint) -> None:
        """A call in `ep`'s group got through: the next 429 starts the back-off from the beginning again."""
        self._strikes.pop(ep.rate_group, None)
