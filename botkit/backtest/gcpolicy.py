"""The garbage collector's setting for batch work (a replay, its report, a command that does nothing else).

A backtest keeps most of what it allocates (orders, fills, journal rows, report rows) until it ends, so at the
default first-generation threshold (700) a collection runs every few orders and finds nothing to free. Importing
numpy, pydantic and the rest does the same: ~100 collections before the first candle. mypy raises the threshold for
the same reason. Cycles are still collected, only less often; the setting is restored afterwards.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

GC_YOUNG_THRESHOLD = 100_000  # first-generation threshold of the garbage collector in replays and the CLI


@contextlib.contextmanager
def rare_young_collections() -> Iterator[None]:
    """Fewer garbage-collector passes inside the block (see the module docstring), restored afterwards."""
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], GC_YOUNG_THRESHOLD), old[1], old[2])
    try:
        yield
    finally:
        gc.set_threshold(*old)
