"""Work on a second core while the caller's thread goes on: for steps that hold no GIL most of their time (Arrow's
CSV reader and writer), so a two-core machine does them beside Python work instead of before or after it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Background(Generic[T]):
    """`fn(*args)` on a daemon thread; `result()` waits and returns its value, or raises what it raised, in the
    caller's thread. Daemon: a run that fails before it asks for the result does not wait for the work."""

    def __init__(self, name: str, fn: Callable[..., T], *args: object) -> None:
        self._value: T | None = None
        self._error: BaseException | None = None

        def work() -> None:
            try:
                self._value = fn(*args)
            except BaseException as exc:  # raised again by result(), in the caller's thread
                self._error = exc

        self._thread = threading.Thread(target=work, name=name, daemon=True)
        self._thread.start()

    def wait(self) -> None:
        """Wait for the work to end, whatever it raised (the caller has its own error to show)."""
        self._thread.join()

    def result(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # set when no error
