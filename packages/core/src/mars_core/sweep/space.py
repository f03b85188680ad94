"""The search space as the user typed it: ``--grid``, ``--range``, ``--choice``.

Values are parsed as YAML, like ``--set`` values, so ``--grid trainer.lr=1e-3,3e-3``
gives floats and ``--choice model.name=unet,fpn`` gives strings. Parsing is free of
Optuna: the CLI checks syntax before importing anything heavy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import yaml

from mars_core.errors import MarsError

Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class Range:
    """A numeric interval; integers when both bounds are integers; ``log`` samples the
    logarithm uniformly (learning rates)."""

    low: float | int
    high: float | int
    log: bool = False

    @property
    def is_int(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)


@dataclass
class SearchSpace:
    """``grid`` (every combination, Optuna's GridSampler) or ``ranges``/``choices``
    (Optuna's default sampler); never both."""

    grid: dict[str, list[Scalar]] = field(default_factory=dict)
    ranges: dict[str, Range] = field(default_factory=dict)
    choices: dict[str, list[Scalar]] = field(default_factory=dict)

    @property
    def is_grid(self) -> bool:
        return bool(self.grid)

    @property
    def keys(self) -> list[str]:
        return [*self.grid, *self.ranges, *self.choices]

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid.values()) if self.grid else 0

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly form, stored with the study so a rerun can check it matches."""
        return {
            "grid": self.grid,
            "ranges": {k: [r.low, r.high, r.log] for k, r in self.ranges.items()},
            "choices": self.choices,
        }


def _split_key(text: str, option: str) -> tuple[str, str]:
    key, sep, rest = text.partition("=")
    key = key.strip()
    if not sep or not key or not rest.strip():
        raise MarsError(f"{option} '{text}': expected KEY=VALUES, e.g. {option} trainer.lr=0.001,0.01")
    if any(c.isspace() for c in key):
        raise MarsError(f"{option} '{text}': the key contains spaces")
    return key, rest


def _scalar(text: str, option: str, key: str) -> Scalar:
    try:
        value = yaml.safe_load(text.strip())
    except yaml.YAMLError:
        raise MarsError(f"{option} {key}: cannot parse value '{text}'") from None
    if value is not None and not isinstance(value, (str, int, float, bool)):
        raise MarsError(f"{option} {key}: value '{text}' is a {type(value).__name__}; "
                        "sweeps take numbers, strings or booleans")
    return value


def _values(key: str, rest: str, option: str) -> list[Scalar]:
    parts = rest.split(",")
    if any(not p.strip() for p in parts):
        raise MarsError(f"{option} {key}={rest}: empty value in the list")
    values = [_scalar(p, option, key) for p in parts]
    if len(set(map(repr, values))) != len(values):
        raise MarsError(f"{option} {key}={rest}: a value is repeated")
    return values


def _number(text: str, option: str, key: str) -> float | int:
    value = _scalar(text, option, key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MarsError(f"{option} {key}: '{text}' is not a finite number")
    return value


def _range(key: str, rest: str) -> Range:
    parts = rest.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2].strip() != "log"):
        raise MarsError(f"--range {key}={rest}: expected LOW:HIGH or LOW:HIGH:log")
    low, high = _number(parts[0], "--range", key), _number(parts[1], "--range", key)
    log = len(parts) == 3
    if not low < high:
        raise MarsError(f"--range {key}={rest}: LOW must be below HIGH")
    if log and low <= 0:
        raise MarsError(f"--range {key}={rest}: a log range needs LOW > 0")
    return Range(low, high, log)


def parse_space(grid: list[str], ranges: list[str], choices: list[str]) -> SearchSpace:
    """Parse the options; any mistake is a one-line :class:`MarsError` (exit 2)."""
    space = SearchSpace()
    seen: set[str] = set()

    def claim(key: str, option: str) -> str:
        if key in seen:
            raise MarsError(f"{option} {key}: the key is given twice")
        seen.add(key)
        return key

    for text in grid:
        key, rest = _split_key(text, "--grid")
        space.grid[claim(key, "--grid")] = _values(key, rest, "--grid")
    for text in ranges:
        key, rest = _split_key(text, "--range")
        space.ranges[claim(key, "--range")] = _range(key, rest)
    for text in choices:
        key, rest = _split_key(text, "--choice")
        space.choices[claim(key, "--choice")] = _values(key, rest, "--choice")
    if space.grid and (space.ranges or space.choices):
        raise MarsError("--grid cannot be combined with --range/--choice: a grid is searched exhaustively")
    if not space.keys:
        raise MarsError("nothing to sweep: give --grid KEY=V1,V2 (or --range / --choice)")
    return space


def override(key: str, value: Scalar) -> str:
    """``KEY=VALUE`` for the config loader, with the value in YAML so that it parses back
    to the same type (a string "1" stays a string)."""
    text = yaml.safe_dump(value, default_flow_style=True).strip()
    if text.endswith("\n...") or text.endswith("..."):
        text = text.removesuffix("...").strip()
    return f"{key}={text}"
