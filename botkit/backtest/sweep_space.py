"""The parameter space of a sweep: `--grid KEY=SPEC` parsed into dimensions, and the parameter sets drawn from them.

A key is a dotted config path (`backtest.slippage_pct`, `strategy.params.fast`); a bare name (`fast`) is a strategy
parameter. A spec is a list of values (`5,10,20`), an integer range (`5..50`, or `5..50:5` with a step) or a float
range (`0.5..2.0`, `0.5..2.0:0.25`). Grid search needs finite dimensions; random and Optuna search also take a
float range without a step. Values parse as TOML scalars (`5` int, `0.5` float, `true`), anything else is a string.
Random draws come from one seeded numpy Generator, so a sweep is the same on every machine and worker count.
"""

from __future__ import annotations

import itertools
import math
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Scalar = int | float | str | bool
ParamSet = dict[str, Scalar]


class SpaceError(ValueError):
    """A --grid spec that cannot be understood; the message names it and shows the accepted forms."""


FORMS = "KEY=v1,v2,... or KEY=LOW..HIGH[:STEP] (e.g. fast=5,10,20  slow=50..200:50  backtest.slippage_pct=0..0.1)"


@dataclass(frozen=True, slots=True)
class Dimension:
    """One swept key: a list of choices, or a numeric range (a step makes a range finite)."""

    name: str  # as the user wrote it; the results table's column
    path: tuple[str, ...]  # where it goes in the config, e.g. ("strategy", "params", "fast")
    choices: tuple[Scalar, ...] = ()
    low: float | None = None
    high: float | None = None
    step: float | None = None
    integer: bool = False

    @property
    def finite(self) -> bool:
        return bool(self.choices) or self.integer or self.step is not None

    def values(self) -> tuple[Scalar, ...]:
        """Every value of a finite dimension, in order."""
        if self.choices:
            return self.choices
        if not self.finite or self.low is None or self.high is None:
            raise SpaceError(f"--grid {self.name}: a float range needs a step for grid search (LOW..HIGH:STEP)")
        if self.integer:
            return tuple(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        assert self.step is not None
        count = math.floor((self.high - self.low) / self.step + 1e-9) + 1
        return tuple(_tidy(self.low + i * self.step) for i in range(count))

    def draw(self, rng: np.random.Generator) -> Scalar:
        """One random value: uniform over the choices or the range."""
        if self.finite:
            vals = self.values()
            return vals[int(rng.integers(len(vals)))]
        assert self.low is not None and self.high is not None
        return _tidy(float(rng.uniform(self.low, self.high)))


def _tidy(x: float) -> float:
    """12 significant digits: 0.1 + 2 * 0.1 is written 0.3, not 0.30000000000000004."""
    return float(f"{x:.12g}")


def _scalar(text: str) -> Scalar:
    text = text.strip()
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
    if isinstance(value, bool | int | float | str):
        return value
    return text


def config_path(key: str) -> tuple[str, ...]:
    """`fast` -> strategy.params.fast; a dotted key is taken as written."""
    parts = tuple(p.strip() for p in key.split("."))
    if not key or any(not p for p in parts):
        raise SpaceError(f"--grid {key!r}: empty key; {FORMS}")
    return ("strategy", "params", *parts) if len(parts) == 1 else parts


def parse_dimension(spec: str) -> Dimension:
    key, sep, body = spec.partition("=")
    key, body = key.strip(), body.strip()
    if not sep or not key or not body:
        raise SpaceError(f"--grid {spec!r}: write {FORMS}")
    path = config_path(key)
    if ".." in body and "," not in body:
        span, _, step_text = body.partition(":")
        lo_text, _, hi_text = span.partition("..")
        lo, hi = _scalar(lo_text), _scalar(hi_text)
        step = _scalar(step_text) if step_text else None
        nums = [v for v in (lo, hi, step) if v is not None]
        if any(isinstance(v, bool) or not isinstance(v, int | float) for v in nums):
            raise SpaceError(f"--grid {spec!r}: a range needs numbers, LOW..HIGH[:STEP]; {FORMS}")
        assert isinstance(lo, int | float) and isinstance(hi, int | float)
        if hi < lo:
            raise SpaceError(f"--grid {spec!r}: LOW {lo} is above HIGH {hi}")
        if step is not None and (not isinstance(step, int | float) or step <= 0):
            raise SpaceError(f"--grid {spec!r}: STEP must be positive")
        integer = all(isinstance(v, int) for v in nums)
        return Dimension(key, path, low=lo, high=hi, step=None if step is None else float(step), integer=integer)
    choices = tuple(_scalar(v) for v in body.split(","))
    if any(v == "" for v in choices):
        raise SpaceError(f"--grid {spec!r}: an empty value in the list; {FORMS}")
    if len(set(map(repr, choices))) != len(choices):
        raise SpaceError(f"--grid {spec!r}: a value is listed twice")
    return Dimension(key, path, choices=choices)


def parse_space(specs: Sequence[str]) -> list[Dimension]:
    dims = [parse_dimension(s) for s in specs]
    seen: dict[tuple[str, ...], str] = {}
    for d in dims:
        if d.path in seen:
            raise SpaceError(f"--grid {d.name}: the same key as --grid {seen[d.path]}; give each key once")
        seen[d.path] = d.name
    return dims


def grid_sets(dims: Sequence[Dimension]) -> list[ParamSet]:
    """Every combination, the last dimension varying fastest."""
    for d in dims:
        if not d.finite:
            raise SpaceError(f"--grid {d.name}: a float range without a step has no grid; add :STEP or use --search N")
    names = [d.name for d in dims]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(d.values() for d in dims))]


def grid_size(dims: Sequence[Dimension]) -> int | None:
    """Number of combinations, or None when a dimension is continuous."""
    if not all(d.finite for d in dims):
        return None
    return math.prod(len(d.values()) for d in dims)


def random_sets(dims: Sequence[Dimension], n: int, seed: int) -> list[ParamSet]:
    """n distinct random sets (fewer when the space is smaller than n: then every set, in grid order)."""
    size = grid_size(dims)
    if size is not None and size <= n:
        return grid_sets(dims)
    rng = np.random.default_rng(seed)
    out: list[ParamSet] = []
    seen: set[str] = set()
    attempts = 0
    while len(out) < n and attempts < 100 * n:
        attempts += 1
        ps = {d.name: d.draw(rng) for d in dims}
        k = repr(sorted(ps.items()))
        if k not in seen:
            seen.add(k)
            out.append(ps)
    return out


def set_path(raw: dict[str, Any], path: tuple[str, ...], value: Scalar) -> None:
    """Put `value` at `path` in a nested dict, creating tables on the way."""
    node = raw
    for i, part in enumerate(path[:-1]):
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise SpaceError(f"{'.'.join(path)}: {'.'.join(path[: i + 1])} is a value in the config, not a table")
        node = nxt
    node[path[-1]] = value
