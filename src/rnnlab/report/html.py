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
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from rnnlab.lab.store import MetricName, Run, Store
from rnnlab.lab.study import check_name, variant_name
from rnnlab.lab.tasks import TASKS, StreamTask, get_task_class
from rnnlab.report import plots
from rnnlab.report.budgets import budget_section
from rnnlab.report.format import fmt


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


def _seq_len(run: Run) -> int:
    return run.config.get("seq_len") or 0


def _by_variant_and_length(runs: list[Run]) -> dict[str, dict[int, list[Run]]]:
    """Finished runs grouped by variant, then sequence length; the list holds one run per seed."""
    groups: dict[str, dict[int, list[Run]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        if r.status != "running":
            groups[variant_name(r.name)][_seq_len(r)].append(r)
    return groups


def _median_range(values: list[float], counts: bool = False) -> str:
    """'median (min–max)' of a few numbers, or the single value; `counts` (updates) are written in full."""
    ordered = sorted(values)
    middle = statistics.median(ordered)
    show = (lambda v: f"{v:.0f}") if counts else _fmt
    if len(ordered) == 1:
        return show(middle)
    return f"{show(middle)} ({show(ordered[0])}–{show(ordered[-1])})"


def success_cell(group: list[Run], baseline_loss: float | None = None) -> tuple[str, bool]:
    """A table cell for the seeds of one variant at one T: success rate, median (min–max) updates-to-solve,
    and the final test metric of the unsolved seeds — or, given the task's `baseline_loss` (the "beats the
    baseline" criterion), their final loss as a fraction of it; and whether every seed solved it."""
    solved = [r for r in group if r.status == "solved"]
    text = f"{len(solved)}/{len(group)} solved"
    if solved:
        text += f" · updates {_median_range([float(r.solved_at) for r in solved], counts=True)}"
    if baseline_loss:
        ratios = [r.final_loss / baseline_loss for r in group if r.status != "solved" and r.final_loss is not None]
        if ratios:
            text += f" · unsolved final loss/baseline {_median_range(ratios)}"
    unsolved = [r.final_metric for r in group if r.status != "solved" and r.final_metric is not None]
    if unsolved and not baseline_loss:
        text += f" · unsolved final {group[0].metric_name} {_median_range(unsolved)}"
    diverged = sum(r.status == "diverged" for r in group)
    if diverged:
        text += f" · {diverged} diverged"
    return text, len(solved) == len(group)


def build_report(
    store: Store, study: str, out_dir: str | Path | None = None, extra=(), command: str | None = None
) -> Report:
    """Write `<out_dir>/index.html` and its PNGs for `study` (default folder: out/report-<study>).
    `extra`: more (title, png path, caption) figures to put first; `command`: the command that regenerates
    this page, for its footer (default: `rnnlab report <study>`)."""
    check_name(study)
    meta = store.study(study)
    out = Path(out_dir) if out_dir is not None else Path("out") / f"report-{study}"
    return _write(
        store, f"Study {study}", meta, store.runs(study=study), out, extra, command or f"rnnlab report {study}"
    )


def build_run_report(store: Store, run_id: int, out_dir: str | Path | None = None) -> Report:
    """The same page for one run — an `rnnlab train` run, a study's run, or a monitor's history saved to the
    store — with its configuration in place of a study's claim (default folder: out/report-run-<id>)."""
    run = store.run(run_id)  # StoreError when there is no such run
    out = Path(out_dir) if out_dir is not None else Path("out") / f"report-run-{run_id}"
    meta = {"config": run.config}
    return _write(store, f"Run {run_id} ({run.name})", meta, [run], out, (), f"rnnlab report --run {run_id}")


def _write(store: Store, title: str, meta: dict, runs: list[Run], out: Path, extra, command: str) -> Report:
    out.mkdir(parents=True, exist_ok=True)
    images: list[tuple[str, Path, str]] = [(t, Path(p), c) for t, p, c in extra]  # (title, path, caption)
    groups = _by_variant_and_length(runs)
    lengths = sorted({t for by_length in groups.values() for t in by_length})

    flows = {r.id: store.flows(r.id) for r in runs if r.status != "running"}
    if any(flows.values()):
        panels = {
            t: {
                variant: [(flows[r.id][0]["profile"], flows[r.id][-1]["profile"]) for r in by_length[t] if flows[r.id]]
                for variant, by_length in groups.items()
                if t in by_length
            }
            for t in lengths
        }
        path = plots.profiles_before_after(
            panels, out / "gradient-profiles.png", "‖∂L/∂h_t‖ against lag: the vanishing gradient"
        )
        images.append(
            (
                "Gradient flow before and after training",
                path,
                "‖∂L/∂h_t‖ (default probe loss, batch mean) against the lag from the loss, untrained and at the "
                "last evaluation; one row per sequence length. Lines: median over seeds; bands: min–max over "
                "seeds. A steep fall is a vanishing gradient: the network cannot learn from that far back.",
            )
        )
        # One heatmap per variant (its first seed) at the longest T: how the profile changes over training.
        longest = lengths[-1]
        heat = {}
        for variant, by_length in groups.items():
            first = min(by_length.get(longest, []), key=lambda r: r.config.get("seed", 0), default=None)
            if first is not None and flows[first.id]:
                label = f"{variant} (T = {longest}, seed {first.config.get('seed', 0)})"
                heat[label] = ([f["step"] for f in flows[first.id]], [f["profile"] for f in flows[first.id]])
        path = plots.flow_heatmaps(
            heat, out / "gradient-heatmaps.png", "log₁₀‖∂L/∂h_t‖ over training: does training keep the gradient alive?"
        )
        images.append(
            (
                "Gradient profile over training",
                path,
                "Rows are evaluations during training, columns lags; bright means a gradient that survives. "
                "The colour scale spans the values in the figure.",
            )
        )

    # Runs without a task (a monitor's history from the user's own training) have only gradient flows.
    task_cls = get_task_class(runs[0].config["task"]) if runs and runs[0].config.get("task") in TASKS else None
    metric = runs[0].metric_name or (task_cls.metric.name if task_cls else "metric") if runs else "metric"
    curves: dict[str, dict[str, list[tuple[list[int], list[float]]]]] = defaultdict(dict)
    for variant, by_length in groups.items():
        for t, group in by_length.items():
            seeds = []
            for r in group:
                points = [
                    (step, value) for step, _, value in store.metrics(r.id, MetricName.TEST_METRIC) if value is not None
                ]
                if points:
                    seeds.append(([p[0] for p in points], [p[1] for p in points]))
            if seeds:
                curves[f"T = {t}"][variant] = seeds
    if curves:
        lower_better = task_cls is not None and not task_cls.metric.higher_is_better
        chance = task_level(store, runs[0], MetricName.CHANCE) if runs else None
        path = plots.learning_curves(
            dict(sorted(curves.items(), key=lambda kv: _length_key(kv[0]))),
            out / "learning-curves.png",
            "Learning curves",
            metric,
            lower_better,
            chance,
        )
        images.append(
            (
                "Learning curves",
                path,
                f"Test {metric} at each evaluation, one line per seed, one colour per variant (dashed: chance level).",
            )
        )

    if task_cls is not None and issubclass(task_cls, StreamTask):
        figures, budget_table = budget_section(store, runs, out, metric)
        images += figures
    else:
        budget_table = ""

    success_rows = ""
    solvable = any(r.config.get("success") == "baseline" for r in runs) or (
        task_cls is not None and task_cls.metric.solved_at is not None
    )
    if solvable and groups:
        series = {
            variant: [(t, r.solved_at if r.status == "solved" else None) for t in lengths for r in by_length.get(t, [])]
            for variant, by_length in groups.items()
        }
        budget = max(r.config.get("steps", 0) for r in runs)
        path = plots.success_vs_length(
            series, out / "success-vs-length.png", "Updates until solved, per seed", budget, lengths
        )
        images.append(
            (
                "Success against sequence length",
                path,
                "Each dot is one seed's number of updates until the success criterion was met; the bar is the "
                "median of the solved seeds; ✗ above the dotted budget line marks a seed that never met it.",
            )
        )
        header = "".join(f"<th>T = {_e(t)}</th>" for t in lengths)
        body = ""
        for variant, by_length in groups.items():
            tds = ""
            for t in lengths:
                if t not in by_length:
                    tds += "<td>–</td>"
                    continue
                group = by_length[t]
                baseline = (
                    task_level(store, group[0], MetricName.BASELINE_LOSS) if _criterion_is_baseline(group[0]) else None
                )
                text, all_solved = success_cell(group, baseline)
                tds += f'<td class="{"ok" if all_solved else "bad"}">{_e(text)}</td>'
            body += f"<tr><th>{_e(variant)}</th>{tds}</tr>"
        criterion = criterion_text(runs[0]) if runs else ""
        success_rows = (
            f"<h2>Solved?</h2><p>Success criterion: {_e(criterion)}. Over the seeds of each variant: how many "
            f"solved it, the median (min–max) number of updates they needed, and the final test metric of "
            f"those that did not.</p><table><tr><th>variant</th>{header}</tr>{body}</table>"
        )

    page = _page(title, meta, runs, images, budget_table + success_rows, command)
    index = out / "index.html"
    tmp = out / ".index.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, index)
    return Report(html=index, images=[p for _, p, _ in images], runs=len(runs))


def _criterion_is_baseline(run: Run) -> bool:
    return run.config.get("success") == "baseline"


def criterion_text(run: Run) -> str:
    """The success criterion of a run, in words."""
    config = run.config
    if config.get("success") == "baseline":
        margin = config.get("baseline_margin", 0.1)
        return f"test loss below (1 − {margin:g}) × the memoryless baseline's loss"
    task_cls = get_task_class(config["task"])
    m = task_cls.metric
    if m.solved_at is None:
        return "none (the runs use their whole budget)"
    return f"test {m.name} {'≥' if m.higher_is_better else '<'} {m.solved_at:g}"


def _length_key(label: str) -> int:
    try:
        return int(label.split("=")[1])
    except (IndexError, ValueError):
        return 0


def task_level(store: Store, run: Run, name: str) -> float | None:
    """The task's memoryless 'chance' (metric) or 'baseline_loss' recorded with the run. Runs stored before
    rnnlab recorded them fall back to asking the task (which for some tasks means generating its data)."""
    recorded = [value for _, _, value in store.metrics(run.id, name)]
    if recorded:
        return recorded[0]
    from rnnlab.lab.tasks import make_task

    try:
        task = make_task(run.config["task"], seq_len=run.config.get("seq_len"), **run.config.get("task_options", {}))
    except Exception:  # a report must render even for runs of a task that changed since
        return None
    return getattr(task, name, None)


def _description(text: str) -> str:
    """The study's description: one paragraph per line (paper setting, what is run here, deviations)."""
    return "".join(f"<p>{_e(line)}</p>" for line in text.splitlines() if line.strip())


def _heading(meta: dict) -> str:
    """A study's claim, source and description, or a single run's configuration."""
    if "config" in meta:
        rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in sorted(meta["config"].items()))
        return f"<h2>Configuration</h2><table>{rows}</table>"
    return (
        f"<blockquote><p><strong>Claim.</strong> {_e(meta.get('claim', ''))}</p>"
        f"<p><strong>Source.</strong> {_e(meta.get('source', ''))}</p></blockquote>"
        f"{_description(meta.get('description', ''))}"
    )


def _page(title: str, meta: dict, runs: list[Run], images, success_rows: str, command: str) -> str:
    figures = ""
    for name, path, caption in images:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        figures += (
            f'<h2>{_e(name)}</h2><figure><img src="data:image/png;base64,{data}" alt="{_e(name)}" '
            f"onload=\"this.dataset.loaded='1'\"><figcaption>{_e(caption)} "
            f'(<a href="{_e(path.name)}">{_e(path.name)}</a>)</figcaption></figure>'
        )
    rows = ""
    for r in runs:
        rows += (
            f"<tr><td>{_e(r.id)}</td><td>{_e(r.name)}</td><td>{_e(r.config.get('cell'))}</td>"
            f"<td>{_e(r.config.get('init'))}</td><td>{_e(r.config.get('seq_len'))}</td><td>{_e(r.config.get('seed'))}</td>"
            f'<td class="{"ok" if r.status == "solved" else ""}">{_e(r.status)}</td>'
            f"<td>{_e(_fmt(r.solved_at))}</td><td>{_e(_fmt(r.final_metric))}</td>"
            f"<td>{_e('–' if r.wall_time is None else f'{r.wall_time:.1f} s')}</td>"
            f"<td>{_e('–' if r.clip_rate is None else f'{r.clip_rate:.0%}')}</td></tr>"
        )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>rnnlab: {_e(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1250px; margin: 2em auto; padding: 0 1em; color: #222; }}
img {{ max-width: 100%; border: 1px solid #ddd; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }}
td, th {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }}
.ok {{ background: #e3f6e3; }} .bad {{ background: #fbe9e7; }}
blockquote {{ border-left: 4px solid #6a8; margin: 1em 0; padding: 0.3em 1em; background: #f5faf7; }}
figcaption {{ color: #555; font-size: 0.9em; }}
</style></head><body>
<h1>{_e(title)}</h1>
{_heading(meta)}
{figures}
{success_rows}
<h2>Every run</h2>
<table><tr><th>id</th><th>run</th><th>cell</th><th>init</th><th>T</th><th>seed</th><th>status</th><th>solved at step</th>
<th>final test metric</th><th>wall time</th><th>clip rate</th></tr>
{rows}</table>
<p>Generated by rnnlab from {_e(len(runs))} runs in the results store; regenerate with
<code>{_e(command)}</code>.</p>
</body></html>
"""
