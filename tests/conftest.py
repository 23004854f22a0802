"""Suite-wide fixtures. `shared_data` is the real recorded data at ../shared/data (beside the project root).

A user's clone has no ../shared: tests that need it skip, saying why. CI sets BOTKIT_REQUIRE_SHARED_DATA=1 (in
.ci/run), which turns that absence into a failure, so CI never skips them silently.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
REQUIRE_ENV = "BOTKIT_REQUIRE_SHARED_DATA"


def need_shared(relative: str = "") -> Path:
    """The path under ../shared/data, or skip (fail under BOTKIT_REQUIRE_SHARED_DATA=1) when it is absent."""
    path = SHARED_DATA / relative if relative else SHARED_DATA
    if not path.exists():
        why = f"real recorded data not found at {path} (only CI and developers have ../shared/data)"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{why}; {REQUIRE_ENV}=1 makes it mandatory")
        pytest.skip(why)
    return path


@pytest.fixture
def shared_data() -> Path:
    return need_shared()
