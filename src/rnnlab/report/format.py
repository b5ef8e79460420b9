"""Formatting of values for tables, shared by the terminal (cli) and the HTML report."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable


def fmt(value, digits: int = 4, missing: str = "-") -> str:
    """None → `missing`; floats with `digits` significant digits; anything else as str."""
    if value is None:
        return missing
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def fmt_rate(value: float | None, missing: str = "-") -> str:
    """A fraction as a percentage with one decimal ('99.8%'): the one way clip rates are shown everywhere."""
    return missing if value is None else f"{value:.1%}"


def spread(values: list[float], show: Callable[[float], str]) -> str:
    """'median (min–max)' of a few numbers (one per seed), each written by `show`, or the single value."""
    ordered = sorted(values)
    middle = show(statistics.median(ordered))
    return middle if len(ordered) == 1 else f"{middle} ({show(ordered[0])}–{show(ordered[-1])})"


def median_range(values: list[float], counts: bool = False, digits: int = 4) -> str:
    """`spread` with counts (updates) written as integers, other values with `digits` significant digits."""
    return spread(values, (lambda v: f"{v:.0f}") if counts else (lambda v: fmt(v, digits, missing="–")))


def hours_minutes(seconds: float) -> str:
    """Seconds as h:mm, rounded to the nearest minute: 4980 → '1:23', 1201 → '0:20'."""
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours}:{minutes:02d}"


def sig3(value: float) -> str:
    """A measured value with 3 significant digits, trailing zeros kept: 0.95833 → '0.958', 1.0 → '1.00',
    0.1646 → '0.165', 6789.0 → '6790', 0.000123 → '0.000123'; beyond 1e6 or below 1e-4, '1.23e+07'."""
    if value == 0:
        return "0.00"
    magnitude = math.floor(math.log10(abs(value)))
    if not -4 <= magnitude < 6:
        return f"{value:.2e}"
    decimals = 2 - magnitude
    rounded = round(value, decimals)
    if rounded != 0 and math.floor(math.log10(abs(rounded))) > magnitude:  # 0.9996 → 1.00, not 1.000
        decimals -= 1
    return f"{rounded:.{max(0, decimals)}f}"
