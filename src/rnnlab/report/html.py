"""The study report: one self-contained HTML page (images embedded as data URIs, no network) plus the PNGs.

Sections: the claim and its source; the gradient profile against lag before and after training (the
picture of the vanishing gradient); a heatmap of the profile over training steps; learning curves; success
against sequence length (table and plot); and a summary table of every run. Every string that came from a
user (study and run names, claims, config values) is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from rnnlab.report import plots
from rnnlab.report.format import fmt
from rnnlab.store import Run, Store
from rnnlab.study import check_name
from rnnlab.tasks import get_task_class

MAX_PROFILE_RUNS = 8  # curves in the profile plot and panels in the heatmap


@dataclass
class Report:
    """Where a report was written and what it contains."""

    html: Path
    images: list[Path]
    runs: int


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value, digits: int = 4) -> str:
    return fmt(value, digits, missing="–")


def _variant(run: Run) -> str:
    return run.name.split(" · ")[0]


def _flow_runs(runs: list[Run]) -> list[Run]:
    """The runs whose profiles are drawn: at the longest sequence length, at most MAX_PROFILE_RUNS."""
    finished = [r for r in runs if r.status != "running"]
    if not finished:
        return []
    longest = max((r.config.get("seq_len") or 0) for r in finished)
    return [r for r in finished if (r.config.get("seq_len") or 0) == longest][:MAX_PROFILE_RUNS]


def build_report(store: Store, study: str, out_dir: str | Path | None = None, extra=()) -> Report:
    """Write `<out_dir>/index.html` and its PNGs for `study` (default folder: out/report-<study>).
    `extra`: more (title, png path, caption) figures to put first."""
    check_name(study)
    meta = store.study(study)
    runs = store.runs(study=study)
    out = Path(out_dir) if out_dir is not None else Path("out") / f"report-{study}"
    out.mkdir(parents=True, exist_ok=True)
    images: list[tuple[str, Path, str]] = [(t, Path(p), c) for t, p, c in extra]  # (title, path, caption)

    flow_runs = _flow_runs(runs)
    flows = {r.id: store.flows(r.id) for r in flow_runs}
    if flow_runs:
        seq_len = flow_runs[0].config.get("seq_len")
        curves = {
            r.name: (
                flows[r.id][0]["profile"] if flows[r.id] else [],
                flows[r.id][-1]["profile"] if flows[r.id] else [],
            )
            for r in flow_runs
        }
        path = plots.profiles_before_after(
            curves, out / "gradient-profiles.png", f"‖∂L/∂h_t‖ against lag, T={seq_len}: the vanishing gradient"
        )
        images.append(
            (
                "Gradient flow before and after training",
                path,
                "Each curve is one run's ‖∂L/∂h_t‖ (default probe loss, batch mean) against the lag from the "
                "loss. A steep fall is a vanishing gradient: the network cannot learn from that far back.",
            )
        )
        heat = {
            r.name: ([f["step"] for f in flows[r.id]], [f["profile"] for f in flows[r.id]])
            for r in flow_runs
            if flows[r.id]
        }
        path = plots.flow_heatmaps(
            heat, out / "gradient-heatmaps.png", "log₁₀‖∂L/∂h_t‖ over training: does training keep the gradient alive?"
        )
        images.append(
            (
                "Gradient profile over training",
                path,
                "Rows are evaluations during training, columns lags; bright means a gradient that survives.",
            )
        )

    task_cls = get_task_class(runs[0].config["task"]) if runs else None
    metric = runs[0].metric_name or (task_cls.metric.name if task_cls else "metric") if runs else "metric"
    by_length: dict[str, dict[str, tuple[list[int], list[float]]]] = defaultdict(dict)
    for r in runs:
        points = [(step, value) for step, _, value in store.metrics(r.id, "test_metric") if value is not None]
        if points:
            by_length[f"T = {r.config.get('seq_len')}"][_variant(r)] = ([p[0] for p in points], [p[1] for p in points])
    if by_length:
        lower_better = task_cls is not None and not task_cls.metric.higher_is_better
        chance = _chance(runs[0]) if runs else None
        path = plots.learning_curves(
            dict(sorted(by_length.items(), key=lambda kv: _length_key(kv[0]))),
            out / "learning-curves.png",
            "Learning curves",
            metric,
            lower_better,
            chance,
        )
        images.append(("Learning curves", path, f"Test {metric} at each evaluation (dashed: chance level)."))

    lengths = sorted({r.config.get("seq_len") for r in runs if r.config.get("seq_len")})
    success_rows = ""
    solvable = task_cls is not None and task_cls.metric.solved_at is not None
    if solvable and len(lengths) > 1:
        series: dict[str, list[tuple[int, int | None]]] = defaultdict(list)
        table: dict[str, dict[int, Run]] = defaultdict(dict)
        for r in runs:
            if r.status in ("solved", "completed", "diverged"):
                series[_variant(r)].append((r.config["seq_len"], r.solved_at))
                table[_variant(r)][r.config["seq_len"]] = r
        budget = max(r.config.get("steps", 0) for r in runs)
        path = plots.success_vs_length(
            series, out / "success-vs-length.png", "Which remedies learn longer dependencies?", budget
        )
        images.append(
            (
                "Success against sequence length",
                path,
                "Updates until the task's criterion was met; ✗ marks runs that never met it.",
            )
        )
        header = "".join(f"<th>T = {_e(t)}</th>" for t in lengths)
        body = ""
        for variant, cells in table.items():
            tds = ""
            for t in lengths:
                r = cells.get(t)
                if r is None:
                    tds += "<td>–</td>"
                elif r.status == "solved":
                    tds += f'<td class="ok">✓ step {_e(r.solved_at)}</td>'
                else:
                    tds += f'<td class="bad">✗ {_e(r.status)} ({_e(_fmt(r.final_metric))})</td>'
            body += f"<tr><th>{_e(variant)}</th>{tds}</tr>"
        success_rows = f"<h2>Solved?</h2><table><tr><th>variant</th>{header}</tr>{body}</table>"

    page = _page(study, meta, runs, images, success_rows, out)
    index = out / "index.html"
    tmp = out / ".index.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, index)
    return Report(html=index, images=[p for _, p, _ in images], runs=len(runs))


def _length_key(label: str) -> int:
    try:
        return int(label.split("=")[1])
    except (IndexError, ValueError):
        return 0


def _chance(run: Run) -> float | None:
    from rnnlab.tasks import make_task

    try:
        task = make_task(run.config["task"], seq_len=run.config.get("seq_len"), **run.config.get("task_options", {}))
    except Exception:  # a report must render even for runs of a task that changed since
        return None
    return task.chance


def _page(study: str, meta: dict, runs: list[Run], images, success_rows: str, out: Path) -> str:
    figures = ""
    for title, path, caption in images:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        figures += (
            f'<h2>{_e(title)}</h2><figure><img src="data:image/png;base64,{data}" alt="{_e(title)}" '
            f"onload=\"this.dataset.loaded='1'\"><figcaption>{_e(caption)} "
            f'(<a href="{_e(path.name)}">{_e(path.name)}</a>)</figcaption></figure>'
        )
    rows = ""
    for r in runs:
        rows += (
            f"<tr><td>{_e(r.id)}</td><td>{_e(r.name)}</td><td>{_e(r.config.get('cell'))}</td>"
            f"<td>{_e(r.config.get('init'))}</td><td>{_e(r.config.get('seq_len'))}</td>"
            f'<td class="{"ok" if r.status == "solved" else ""}">{_e(r.status)}</td>'
            f"<td>{_e(_fmt(r.solved_at))}</td><td>{_e(_fmt(r.final_metric))}</td>"
            f"<td>{_e('–' if r.wall_time is None else f'{r.wall_time:.1f} s')}</td>"
            f"<td>{_e('–' if r.clip_rate is None else f'{r.clip_rate:.0%}')}</td></tr>"
        )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>rnnlab study {_e(study)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1250px; margin: 2em auto; padding: 0 1em; color: #222; }}
img {{ max-width: 100%; border: 1px solid #ddd; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }}
td, th {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }}
.ok {{ background: #e3f6e3; }} .bad {{ background: #fbe9e7; }}
blockquote {{ border-left: 4px solid #6a8; margin: 1em 0; padding: 0.3em 1em; background: #f5faf7; }}
figcaption {{ color: #555; font-size: 0.9em; }}
</style></head><body>
<h1>Study <code>{_e(study)}</code></h1>
<blockquote><p><strong>Claim.</strong> {_e(meta.get("claim", ""))}</p>
<p><strong>Source.</strong> {_e(meta.get("source", ""))}</p></blockquote>
<p>{_e(meta.get("description", ""))}</p>
{figures}
{success_rows}
<h2>Every run</h2>
<table><tr><th>id</th><th>run</th><th>cell</th><th>init</th><th>T</th><th>status</th><th>solved at step</th>
<th>final test metric</th><th>wall time</th><th>clip rate</th></tr>
{rows}</table>
<p>Generated by rnnlab from {_e(len(runs))} runs in the results store; regenerate with
<code>rnnlab report {_e(study)}</code>.</p>
</body></html>
"""
