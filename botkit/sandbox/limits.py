"""REST rate limits as WhiteBIT's gateway applies them: per client IP, per endpoint, per scope and globally.

The buckets come from the endpoint registry through `botkit.whitebit.ratelimit.buckets_for`, the same list the
client's limiter waits on, so client and server cannot disagree about which limits apply. `[server]
rest_limit_scale` multiplies the request counts and `rest_limit_window_scale` the windows (tests make limits
reachable with small values). A request over any limit gets 429 with a non-JSON body and is not counted; it never
reaches the handler. Paths under /api/ that the registry lacks count against the global limit only.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from botkit.sandbox.faults import injected_response
from botkit.whitebit.endpoints import DEFAULT_GROUP_LIMITS, DEFAULT_REGISTRY, GLOBAL_LIMIT, Endpoint, EndpointRegistry
from botkit.whitebit.ratelimit import Limit, SlidingWindow, buckets_for, capacity

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RestLimits:
    """Sliding-window counters per (client IP, bucket); `accepted`/`rejected`/`peak` are per bucket key."""

    def __init__(
        self,
        scale: float = 1.0,
        window_scale: float = 1.0,
        registry: EndpointRegistry = DEFAULT_REGISTRY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.scale = scale
        self.window_scale = window_scale
        self.registry = registry
        self.clock = clock
        self._windows: dict[tuple[str, str], SlidingWindow] = {}
        self.accepted: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()  # by the bucket that was full
        self.peak: dict[str, int] = {}  # most requests seen in one window, per bucket key (over all IPs' maxima)

    def reset(self) -> None:
        self._windows.clear()
        self.accepted.clear()
        self.rejected.clear()
        self.peak.clear()

    def capacity_of(self, limit: Limit) -> int:
        return capacity(limit, self.scale)

    def buckets(self, path: str, route: str | None) -> list[tuple[str, Limit]]:
        ep: Endpoint | None = None
        for candidate in (route, path):
            if candidate is None:
                continue
            try:
                ep = self.registry.get(candidate)
                break
            except KeyError:
                continue
        if ep is not None:
            return buckets_for(ep, DEFAULT_GROUP_LIMITS, GLOBAL_LIMIT)
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
                w = SlidingWindow(self.capacity_of(limit), limit[1] * self.window_scale)
                self._windows[(ip, key)] = w
            if w.delay(now) > 0:
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
        route = request.match_info.route.resource
        canonical = route.canonical if route is not None else None
        if limits.admit(request.remote or "", request.path, canonical) is not None:
            return injected_response(429)
        return await handler(request)

    return limit_middleware
