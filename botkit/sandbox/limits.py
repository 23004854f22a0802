"""REST rate limits as WhiteBIT's gateway applies them: per client IP, per endpoint, per scope and globally.

The buckets come from the sandbox's own table (botkit/sandbox/endpoints.py, written from docs/whitebit.md §2.6),
never from the client's, so a client limit that disagrees with the documentation is caught by testing against the
sandbox. `[server] rest_limit_scale` multiplies the request counts and `rest_limit_window_scale` the windows (tests
make limits reachable with small values; the benchmark raises them). A request over any limit gets 429 with a
non-JSON body and is not counted; it never reaches the handler. Paths under /api/ missing from the table count
against the global limit only.
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from botkit.sandbox.endpoints import GLOBAL_LIMIT, ROUTES, Limit, Route
from botkit.sandbox.faults import injected_response

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Window:
    """At most `capacity` requests in any `window_s` seconds (a log of arrival times)."""

    __slots__ = ("_log", "capacity", "window_s")

    def __init__(self, capacity: int, window_s: float) -> None:
        self.capacity = capacity
        self.window_s = window_s
        self._log: deque[float] = deque()

    def count(self, now: float) -> int:
        while self._log and self._log[0] <= now - self.window_s:
            self._log.popleft()
        return len(self._log)

    def full(self, now: float) -> bool:
        return self.count(now) >= self.capacity

    def record(self, now: float) -> None:
        self._log.append(now)


class RestLimits:
    """Sliding-window counters per (client IP, bucket); `accepted`/`rejected`/`peak` are per bucket key."""

    def __init__(
        self, scale: float = 1.0, window_scale: float = 1.0, routes: tuple[Route, ...] = ROUTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.scale = scale
        self.window_scale = window_scale
        self.clock = clock
        self._routes = {r.path: r for r in routes}
        self._windows: dict[tuple[str, str], Window] = {}
        self.accepted: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()  # by the bucket that was full
        self.peak: dict[str, int] = {}  # most requests seen in one window, per bucket key (over all IPs' maxima)

    def reset(self) -> None:
        self._windows.clear()
        self.accepted.clear()
        self.rejected.clear()
        self.peak.clear()

    def capacity_of(self, limit: Limit) -> int:
        """Requests allowed per window after scaling; never below 1."""
        return max(1, math.floor(limit[0] * self.scale + 1e-9))

    def buckets(self, path: str, route: str | None) -> list[tuple[str, Limit]]:
        for candidate in (route, path):
            r = self._routes.get(candidate) if candidate is not None else None
            if r is not None:
                return r.buckets()
        if path.startswith("/api/"):
            return [("global", GLOBAL_LIMIT)]
        return []

    def admit(self, ip: str, path: str, route: str | None = None) -> str | None:
        """Count the request and return None, or return the key of the full bucket (the request is refused)."""
        buckets = self.buckets(path, route)
        if not buckets:
            return None
        now = self.clock()
        windows = []
        for key, limit in buckets:
            w = self._windows.get((ip, key))
            if w is None:
                w = self._windows[(ip, key)] = Window(self.capacity_of(limit), limit[1] * self.window_scale)
            if w.full(now):
                self.rejected[key] += 1
                return key
            windows.append((key, w))
        for key, w in windows:
            w.record(now)
            self.accepted[key] += 1
            self.peak[key] = max(self.peak.get(key, 0), w.count(now))
        return None


def make_limit_middleware(limits: RestLimits) -> Middleware:
    @web.middleware
    async def limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        canonical = resource.canonical if resource is not None else None
        if limits.admit(request.remote or "", request.path, canonical) is not None:
            return injected_response(429)
        return await handler(request)

    return limit_middleware
