"""What the benchmark scripts do with their table: print each line as it is measured, and write the whole table
to the script's results file (benchmarks/results/…) at the end."""

from __future__ import annotations

from pathlib import Path


def emit(lines: list[str], line: str) -> None:
    """Add `line` to the table and print it now (a long benchmark shows its rows as they come)."""
    lines.append(line)
    print(line, flush=True)


def write_lines(lines: list[str], path: str | Path) -> Path:
    """Write the table to `path`, creating its folder; → the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out
