"""Formatting of values for tables, shared by the terminal (cli) and the HTML report."""

from __future__ import annotations


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
