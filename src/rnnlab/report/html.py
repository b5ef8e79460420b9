"""The study report: one self-contained HTML page (images embedded as data URIs, no network) plus the PNGs.

Sections: the claim and its source; the gradient profile against lag before and after training (the
picture of the vanishing gradient); a heatmap of the profile over training steps; learning curves; for
stream tasks, the comparison at equal budgets; success against sequence length (table and plot); pre-clip
gradient norms (exploding or vanishing?); where and when the runs trained; and a summary table of every run.
Everything comes from the store (the task's facts are stored with each run). Every string that came from a
user (study and run names, claims, config values) is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from rnnlab.lab.store import FINISHED, MetricName, Run, Store
from rnnlab.lab.study import Study, check_name, variant_name
from rnnlab.report import plots
from rnnlab.report.budgets import budget_section
from rnnlab.report.format import fmt
from rnnlab.report.gradnorms import gradient_norm_section
from rnnlab.report.sittings import NotStarted, not_started, sittings_section
from rnnlab.report.success import has_criterion, success_section, task_level

Figure = tuple[str, Path, str]  # (title, PNG path, caption)


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
        if r.status in FINISHED:
            groups[variant_name(r.name)][_seq_len(r)].append(r)
    return groups


def build_report(
    store: Store,
    study: str,
    out_dir: str | Path | None = None,
    extra=(),
    command: str | None = None,
    plan: Study | None = None,
) -> Report:
    """Write `<out_dir>/index.html` and its PNGs for `study` (default folder: out/report-<study>).
    `extra`: more (title, png path, caption) figures to put first; `command`: the command that regenerates
    this page, for its footer (default: `rnnlab report <study>`); `plan`: the study file the runs came from,
    whose runs the store lacks are then listed (not run yet, or not needed after a shorter one failed), and
    whose claim, source and description the page shows: the store keeps them as the last sweep found them, and
    a study's claim is rewritten as its runs come in."""
    check_name(study)
    meta = store.study(study)
    if plan is not None:
        meta.update(claim=plan.claim, source=plan.source, description=plan.description)
    out = Path(out_dir) if out_dir is not None else Path("out") / f"report-{study}"
    runs = store.runs(study=study)
    absent = not_started(plan, runs) if plan is not None else []
    skip_key = plan.skip_after_failure if plan is not None else None
    return _write(
        store, f"Study {study}", meta, runs, out, extra, command or f"rnnlab report {study}", absent, skip_key
    )


def build_run_report(store: Store, run_id: int, out_dir: str | Path | None = None) -> Report:
    """The same page for one run — an `rnnlab train` run, a study's run, or a monitor's history saved to the
    store — with its configuration in place of a study's claim (default folder: out/report-run-<id>)."""
    run = store.run(run_id)  # StoreError when there is no such run
    out = Path(out_dir) if out_dir is not None else Path("out") / f"report-run-{run_id}"
    meta = {"config": run.config}
    return _write(store, f"Run {run_id} ({run.name})", meta, [run], out, (), f"rnnlab report --run {run_id}")


def _write(
    store: Store,
    title: str,
    meta: dict,
    runs: list[Run],
    out: Path,
    extra,
    command: str,
    absent: list[NotStarted] = (),
    skip_key: str | None = None,
) -> Report:
    out.mkdir(parents=True, exist_ok=True)
    groups = _by_variant_and_length(runs)
    lengths = sorted({t for by_length in groups.values() for t in by_length})
    facts = _facts(runs)
    metric = next((r.metric_name for r in runs if r.metric_name), "metric")
    images: list[Figure] = [(t, Path(p), c) for t, p, c in extra]
    images += _flow_figures(store, runs, groups, lengths, out)
    images += _learning_curves(store, groups, facts, metric, out)
    sections = ""
    if any(r.stream_task for r in runs):
        figures, table = budget_section(store, runs, out, metric)
        images += figures
        sections += table
    if groups and has_criterion(runs):
        figures, table = success_section(store, groups, lengths, facts, out)
        images += figures
        sections += table
    figures, table = gradient_norm_section(store, groups, out)
    images += figures
    sections += table
    checkpointed = frozenset(r.id for r in runs if r.status == "running" and store.checkpoint_path(r.id).exists())
    sections += sittings_section(runs, _resume_command(store, meta, runs), absent, skip_key, checkpointed)
    index = out / "index.html"
    tmp = out / ".index.html.tmp"
    tmp.write_text(_page(title, meta, runs, images, sections, command), encoding="utf-8")
    os.replace(tmp, index)
    return Report(html=index, images=[p for _, p, _ in images], runs=len(runs))


def _wall_time(run: Run) -> str:
    """A run's training time; for a run recorded as another's outcome (`same_as`), that run's number."""
    if (same := run.environment.get("same_as")) is not None:
        return f"– (run {same['run']}'s outcome)"
    return "–" if run.wall_time is None else f"{run.wall_time:.1f} s"


def _facts(runs: list[Run]) -> Run | None:
    """A run whose task facts (metric direction, success threshold, stream) are stored: a study's runs share
    one task, and a run not yet finished has none."""
    return next((r for r in runs if r.higher_is_better is not None), runs[0] if runs else None)


def _flow_figures(store: Store, runs: list[Run], groups, lengths: list[int], out: Path) -> list[Figure]:
    """The profile against lag before and after training, and one heatmap over training per variant."""
    flows = {r.id: store.flows(r.id) for r in runs if r.status != "running"}
    if not any(flows.values()):
        return []
    panels = {
        t: {
            variant: [(flows[r.id][0]["profile"], flows[r.id][-1]["profile"]) for r in by_length[t] if flows[r.id]]
            for variant, by_length in groups.items()
            if t in by_length
        }
        for t in lengths
    }
    profiles = plots.profiles_before_after(
        panels, out / "gradient-profiles.png", "‖∂L/∂h_t‖ against lag: the vanishing gradient"
    )
    # One heatmap per variant (its first seed) at the longest T: how the profile changes over training.
    longest = lengths[-1]
    heat = {}
    for variant, by_length in groups.items():
        first = min(by_length.get(longest, []), key=lambda r: r.config.get("seed", 0), default=None)
        if first is not None and flows[first.id]:
            label = f"{variant} (T = {longest}, seed {first.config.get('seed', 0)})"
            heat[label] = ([f["step"] for f in flows[first.id]], [f["profile"] for f in flows[first.id]])
    heatmaps = plots.flow_heatmaps(
        heat, out / "gradient-heatmaps.png", "log₁₀‖∂L/∂h_t‖ over training: does training keep the gradient alive?"
    )
    return [
        (
            "Gradient flow before and after training",
            profiles,
            "‖∂L/∂h_t‖ (default probe loss, batch mean) against the lag from the loss, untrained and at the "
            "last evaluation; one row per sequence length. Lines: median over seeds; bands: min–max over "
            "seeds. A steep fall is a vanishing gradient: the network cannot learn from that far back.",
        ),
        (
            "Gradient profile over training",
            heatmaps,
            "Rows are evaluations during training, columns lags; bright means a gradient that survives. "
            "The colour scale spans the values in the figure.",
        ),
    ]


def _learning_curves(store: Store, groups, facts: Run | None, metric: str, out: Path) -> list[Figure]:
    """Test metric against updates, one panel per T, one line per seed (runs without a task have none)."""
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
    if not curves:
        return []
    path = plots.learning_curves(
        dict(sorted(curves.items(), key=lambda kv: _length_key(kv[0]))),
        out / "learning-curves.png",
        "Learning curves",
        metric,
        facts is not None and facts.higher_is_better is False,  # a loss-like metric: log scale
        task_level(store, facts, MetricName.CHANCE) if facts is not None else None,
    )
    caption = f"Test {metric} at each evaluation, one line per seed, one colour per variant (dashed: chance level)."
    return [("Learning curves", path, caption)]


def _resume_command(store: Store, meta: dict, runs: list[Run]) -> str:
    """The command that continues unfinished runs: the study's sweep on the same store, or the run's train."""
    if "config" in meta:
        return "the same rnnlab train command (it resumes from the run's checkpoint)"
    study = runs[0].study if runs else ""
    return f"rnnlab sweep {study} --store {store.path} (or make study S={study})"


def _length_key(label: str) -> int:
    try:
        return int(label.split("=")[1])
    except (IndexError, ValueError):
        return 0


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


def _page(title: str, meta: dict, runs: list[Run], images: list[Figure], sections: str, command: str) -> str:
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
            f"<td>{_e(_wall_time(r))}</td>"
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
{sections}
<h2>Every run</h2>
<table><tr><th>id</th><th>run</th><th>cell</th><th>init</th><th>T</th><th>seed</th><th>status</th><th>solved at step</th>
<th>final test metric</th><th>wall time</th><th>clip rate</th></tr>
{rows}</table>
<p>Generated by rnnlab from {_e(len(runs))} runs in the results store; regenerate with
<code>{_e(command)}</code>.</p>
</body></html>
"""
