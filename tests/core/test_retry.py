"""The one retry policy: bounded attempts and time, jittered capped backoff, Retry-After honoured up to a cap. Time is
injected: no test here sleeps."""

from __future__ import annotations

import pytest

from botkit.retry import policy, reconnect_delay


class Flaky(Exception):
    def __init__(self, retry_after: float | None = None) -> None:
        super().__init__("flaky")
        self.retry_after = retry_after


async def test_policy_retries_what_it_is_told_and_stops_at_the_bound() -> None:
    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)

    calls = 0
    with pytest.raises(Flaky):
        async for attempt in policy(lambda e: isinstance(e, Flaky), attempts=4, total_s=None, max_wait_s=2.0,
                                    sleep=sleep):
            with attempt:
                calls += 1
                raise Flaky()
    assert calls == 4 and len(waits) == 3 and all(0 <= w <= 2.0 for w in waits)


async def test_retry_after_is_honoured_up_to_its_cap_and_other_errors_are_not_retried() -> None:
    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)

    n = 0
    async for attempt in policy(lambda e: isinstance(e, Flaky), attempts=5, total_s=None, max_wait_s=1.0,
                                retry_after_cap_s=30.0, sleep=sleep):
        with attempt:
            n += 1
            if n == 1:
                raise Flaky(retry_after=7)
            if n == 2:
                raise Flaky(retry_after=600)
    assert waits == [7.0, 30.0] and n == 3
    with pytest.raises(KeyError):
        async for attempt in policy(lambda e: isinstance(e, Flaky), attempts=5, total_s=None, max_wait_s=1.0,
                                    sleep=sleep):
            with attempt:
                raise KeyError("not retryable")


def test_a_policy_without_any_bound_is_refused() -> None:
    with pytest.raises(ValueError, match="needs a bound"):
        policy(lambda e: True, attempts=None, total_s=None, max_wait_s=1.0)


def test_reconnect_delays_grow_with_jitter_never_below_half_a_step_and_stay_capped() -> None:
    for attempt in range(20):
        step = min(30.0, 0.2 * 2 ** attempt)
        d = reconnect_delay(attempt, max_wait_s=30.0, base_s=0.2)
        assert step / 2 <= d <= step
