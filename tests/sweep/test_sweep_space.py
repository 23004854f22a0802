"""Parsing --grid specs and drawing parameter sets: forms, errors, order, seeded draws."""

from __future__ import annotations

import pytest

from botkit.backtest.sweep_space import (
    SpaceError,
    grid_sets,
    grid_size,
    parse_dimension,
    parse_space,
    random_sets,
    set_path,
)


def test_forms() -> None:
    d = parse_dimension("fast=5,10,20")
    assert d.path == ("strategy", "params", "fast") and d.values() == (5, 10, 20)
    assert parse_dimension("slow=50..80:10").values() == (50, 60, 70, 80)
    assert parse_dimension("slow=3..5").values() == (3, 4, 5)
    s = parse_dimension("backtest.slippage_pct=0..0.3:0.1")
    assert s.path == ("backtest", "slippage_pct") and s.values() == (0.0, 0.1, 0.2, 0.3)
    assert parse_dimension("market=BTC_USDT,ETH_USDT").values() == ("BTC_USDT", "ETH_USDT")
    assert parse_dimension("backtest.touch=true,false").values() == (True, False)
    cont = parse_dimension("fraction=0.1..0.9")
    assert not cont.finite and cont.low == 0.1 and cont.high == 0.9


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("fast", "KEY=v1,v2"),
        ("fast=", "KEY=v1,v2"),
        ("=1,2", "KEY=v1,v2"),
        ("fast=1,,2", "empty value"),
        ("fast=1,1", "twice"),
        ("fast=9..3", "above HIGH"),
        ("fast=1..x", "needs numbers"),
        ("fast=1..5:0", "STEP must be positive"),
        ("a..b=1,2", "empty key"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec: str, words: str) -> None:
    with pytest.raises(SpaceError, match=words.replace(".", r"\.")):
        parse_dimension(spec)


def test_same_key_twice_is_an_error() -> None:
    with pytest.raises(SpaceError, match="same key"):
        parse_space(["fast=1,2", "strategy.params.fast=3"])


def test_grid_is_the_product_last_key_fastest() -> None:
    dims = parse_space(["fast=1,2", "slow=10,20,30"])
    sets = grid_sets(dims)
    assert grid_size(dims) == 6 == len(sets)
    assert sets[:3] == [{"fast": 1, "slow": 10}, {"fast": 1, "slow": 20}, {"fast": 1, "slow": 30}]
    with pytest.raises(SpaceError, match="without a step"):
        grid_sets(parse_space(["fraction=0.1..0.9"]))
    assert grid_size(parse_space(["fraction=0.1..0.9"])) is None


def test_random_sets_are_seeded_distinct_and_in_range() -> None:
    dims = parse_space(["fast=2..60", "fraction=0.1..0.9"])
    a = random_sets(dims, 40, seed=3)
    assert a == random_sets(dims, 40, seed=3)
    assert a != random_sets(dims, 40, seed=4)
    assert len({tuple(sorted(s.items())) for s in a}) == 40
    assert all(2 <= s["fast"] <= 60 and 0.1 <= s["fraction"] <= 0.9 for s in a)  # type: ignore[operator]
    small = parse_space(["fast=1,2", "slow=5,6"])
    assert random_sets(small, 10, seed=0) == grid_sets(small)  # asking for more than there is: the whole grid


def test_set_path_refuses_to_descend_into_a_value() -> None:
    raw: dict[str, object] = {"backtest": {"touch": False}}
    set_path(raw, ("backtest", "slippage_pct"), 0.1)
    assert raw == {"backtest": {"touch": False, "slippage_pct": 0.1}}
    with pytest.raises(SpaceError, match="is a value"):
        set_path(raw, ("backtest", "touch", "x"), 1)
