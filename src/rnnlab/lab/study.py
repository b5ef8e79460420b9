"""Study files: a named set of runs, each reproducing a claim, validated before anything runs.

A study is YAML with shared defaults, an optional grid (the cartesian product of lists of values) and an
optional list of named variants; every variant is combined with every grid point::

    name: remedies
    claim: Gated cells, orthogonal or identity initialisation … let a network learn the adding task at longer T.
    source: Le et al. 2015; Arjovsky et al. 2016; Tallec & Ollivier 2018
    defaults: {task: adding, hidden_size: 64, steps: 2000, clip: global_norm, clip_threshold: 1.0}
    grid: {seq_len: [25, 50, 100, 200]}
    variants:
      - {name: tanh RNN (Xavier), cell: rnn_tanh, init: xavier_uniform, clip: none}
      - {name: LSTM, cell: lstm}

Run names are the variant name plus the grid values that vary (``LSTM · seq_len=100``). Every run is a
validated `RunConfig`; a mistake anywhere is a one-line error naming the study, the run and the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from rnnlab.lab.config import ConfigError, RunConfig, load_yaml, make_config
from rnnlab.lab.store.records import FINISHED

STUDY_KEYS = (
    "name",
    "claim",
    "source",
    "description",
    "defaults",
    "grid",
    "variants",
    "order",
    "skip_after_failure",
    "finding",
    "paper",
    "verdict",
)
# The order runs are claimed and run in. "variants": variant by variant (the file's order); "seeds": seed by seed,
# every variant at seed 0 first — for studies longer than one sitting, so that one stopped part-way has every
# variant at its first seeds rather than one variant at all of them.
ORDERS = ("variants", "seeds")
# A study with `skip_after_failure: seq_len` does not run a run whose next shorter version (the run equal to it
# but for the next smaller seq_len in the grid) finished without solving its task: a cell that cannot learn the
# copy task at T = 100 is not given hours to fail at T = 1000 too. Reports count such a run as not solved.
SKIPPED = "skipped"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # safe as a file name: no '/', no '..'
FINDING_PATTERN = re.compile(r"^F\d+(\s|$)")  # 'F3' or 'F3 adding at T = 200: …' (the finding, then its title)
# The keys of a study that reproduces a published finding, for the README's table (rnnlab.report.findings):
FINDING_KEYS = {
    "finding": "the finding's number and a short title, e.g. 'F3 adding at T = 200, 400, 750 (Arjovsky et al. 2016)'",
    "paper": "the paper's number and budget, one line",
    "verdict": "the verdict in words (markdown), e.g. '**reproduced** at T = 200'",
}


@dataclass
class Study:
    """A validated study: its metadata and the configs of its runs (each with a unique name)."""

    name: str
    claim: str
    source: str
    runs: list[RunConfig]
    description: str = ""
    path: Path | None = None
    grid: dict[str, list[Any]] = field(default_factory=dict)
    skip_after_failure: str | None = None  # a grid key; see SKIPPED
    whole: list[RunConfig] | None = None  # a part's (select_runs) whole study's runs, where shorter runs are found
    finding: str | None = None  # see FINDING_KEYS; None for a study that reproduces no numbered finding
    paper: str | None = None
    verdict: str | None = None


def variant_name(run_name: str) -> str:
    """A study run's name without its seed and sequence length ('IRNN · lr=0.001 · seed=2' → 'IRNN · lr=0.001'):
    what the runs that reports and verdicts draw together have in common."""
    parts = run_name.split(" · ")
    return " · ".join([parts[0], *(p for p in parts[1:] if not p.startswith(("seed=", "seq_len=")))])


def check_name(name: Any, what: str = "study name") -> str:
    """Names become file and folder names: letters, digits, '_', '-', '.', at most 64, no path separators."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or name in (".", ".."):
        raise ConfigError(
            f"{what} {name!r} is not allowed: use letters, digits, '_', '-' and '.', starting with a letter or "
            "digit (it becomes a file name)"
        )
    return name


def bundled_studies() -> dict[str, Path]:
    """The studies shipped with rnnlab, by name."""
    folder = resources.files("rnnlab") / "studies"
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if str(p).endswith(".yaml")}


def load_study(name_or_path: str | Path) -> Study:
    """Load a bundled study by name, or a study file by path, and validate every run."""
    bundled = bundled_studies()
    path = Path(name_or_path)
    if str(name_or_path) in bundled and not path.exists():
        path = bundled[str(name_or_path)]
    elif not path.exists():
        raise ConfigError(
            f"no study file {str(name_or_path)!r} and no bundled study of that name; bundled: {', '.join(sorted(bundled))}"
        )
    return make_study(load_yaml(path), path=path)


def make_study(data: dict[str, Any], path: Path | None = None) -> Study:
    """Validate a study mapping and expand it into runs."""
    where = f"study file {str(path)!r}" if path else "study"
    unknown = [k for k in data if k not in STUDY_KEYS]
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; valid keys: {', '.join(STUDY_KEYS)}")
    name = check_name(data.get("name", path.stem if path else None))
    findings = _finding_keys(data, where)
    defaults = data.get("defaults") or {}
    grid = data.get("grid") or {}
    variants = data.get("variants") or [{}]
    if not isinstance(defaults, dict):
        raise ConfigError(f"{where}: 'defaults' must be a mapping of config keys")
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise ConfigError(f"{where}: 'grid' must map config keys to non-empty lists of values")
    if not isinstance(variants, list) or not all(isinstance(v, dict) for v in variants):
        raise ConfigError(f"{where}: 'variants' must be a list of mappings (each a name and config keys)")
    runs: list[RunConfig] = []
    seen: set[str] = set()
    varying = [k for k, values in grid.items() if len(values) > 1]
    for index, variant in enumerate(variants):
        variant = dict(variant)
        label = str(variant.pop("name", f"variant {index + 1}" if len(variants) > 1 else name))
        for point in itertools.product(*grid.values()) if grid else [()]:
            values = dict(zip(grid.keys(), point, strict=True))
            run_name = " · ".join([label, *(f"{k}={values[k]}" for k in varying)])
            try:
                config = make_config({**defaults, **values, **variant, "name": run_name})
            except ConfigError as error:
                raise ConfigError(f"{where}, run {run_name!r}: {error}") from None
            if run_name in seen:
                raise ConfigError(f"{where}: two runs are named {run_name!r}; give each variant a distinct name")
            seen.add(run_name)
            runs.append(config)
    order = data.get("order", "variants")
    if order not in ORDERS:
        raise ConfigError(f"{where}: unknown order {order!r}; choose from: {', '.join(ORDERS)}")
    if order == "seeds":
        runs.sort(key=lambda r: r.seed)  # stable: within a seed, the variants keep the file's order
    skip_key = _skip_key(data.get("skip_after_failure"), grid, where)
    hashes = [r.hash() for r in runs]
    if len(set(hashes)) != len(hashes):
        duplicate = next(r.name for r, h in zip(runs, hashes, strict=True) if hashes.count(h) > 1)
        raise ConfigError(f"{where}: run {duplicate!r} has the same config as another run")
    return Study(
        name=name,
        claim=str(data.get("claim", "")),
        source=str(data.get("source", "")),
        description=str(data.get("description", "")),
        runs=runs,
        path=path,
        grid={k: list(v) for k, v in grid.items()},
        skip_after_failure=skip_key,
        **findings,
    )


def _skip_key(key: Any, grid: dict[str, list[Any]], where: str) -> str | None:
    """`skip_after_failure` names a grid key with two or more numbers (the runs' lengths, usually seq_len)."""
    if key is None:
        return None
    numbers = [
        k for k, values in grid.items() if k != "seed" and len(values) > 1 and all(_is_number(v) for v in values)
    ]  # a seed is no length: seed 1 does not get harder after seed 0 fails
    if key not in numbers:
        keys = ", ".join(numbers) or "none in this study"
        raise ConfigError(
            f"{where}: skip_after_failure must name a grid key with two or more numbers, as in "
            f"'skip_after_failure: seq_len'; got {key!r} (such keys: {keys})"
        )
    return key


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def predecessors(study: Study) -> dict[str, RunConfig]:
    """For a study with `skip_after_failure`: each run's hash → its next shorter version, the run equal to it
    but for the next smaller value of that key (runs at the smallest value have none). Empty without the key."""
    key = study.skip_after_failure
    if key is None:
        return {}
    families: dict[str, list[RunConfig]] = {}
    for run in study.whole or study.runs:  # a part's runs wait on shorter runs outside it too
        rest = {k: v for k, v in run.canonical().items() if k != key}
        families.setdefault(json.dumps(rest, sort_keys=True), []).append(run)
    before = {}
    for family in families.values():
        family.sort(key=lambda r: getattr(r, key))
        for shorter, longer in itertools.pairwise(family):
            before[longer.hash()] = shorter
    return before


def unsolved_predecessor(
    run: RunConfig, before: dict[str, RunConfig], status_of: Callable[[RunConfig], str | None]
) -> RunConfig | None:
    """The shorter run whose outcome means `run` need not run (see SKIPPED), or None if `run` should run.

    `status_of` gives a run's status (a finished one's, as `store.outcome` gives it, else 'running' or
    'failed'), or None if it has none. A
    shorter run that finished unsolved is the answer; one that was solved, is running or failed (a crash, to be
    retried) is not; one that has not run is looked through, since it is skipped itself if its own shorter run
    was not solved."""
    shorter = before.get(run.hash())
    while shorter is not None:
        status = status_of(shorter)
        if status is not None:
            return shorter if status in FINISHED and status != "solved" else None
        shorter = before.get(shorter.hash())
    return None


def select_runs(study: Study, only: dict[str, list[str]]) -> Study:
    """The part of `study` whose runs match every key of `only` (a config key, or 'variant' for the variant's
    name, mapped to the values allowed, as written on a command line: ``{"seq_len": ["100,200"], "seed": ["0"]}``;
    commas separate values, except inside a value that has them, such as a variant named "T=200, learned h0").

    A part keeps its runs' configs, hashes and study name, so its results are the full study's: running the
    rest later skips them. An unknown key or a value no run has is a one-line `ConfigError`."""
    runs = study.runs
    for key, written in only.items():
        if key != "variant" and key not in RunConfig.model_fields:
            close = difflib.get_close_matches(key, [*RunConfig.model_fields, "variant"], n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else "; use a config key or 'variant'"
            raise ConfigError(f"study {study.name}: unknown key {key!r} to select runs by{hint}")
        values = list({repr(v): v for v in (_run_value(r, key) for r in study.runs)}.values())  # dicts too
        texts = [text for item in written for text in _split_values(item, values)]
        if not texts:
            raise ConfigError(f"study {study.name}: no value given for {key}; write {key}=VALUE[,VALUE…]")
        missing = [t for t in texts if not any(_same(v, t) for v in values)]
        if missing:
            have = ", ".join(map(str, sorted(values, key=_sort_key)))
            raise ConfigError(f"study {study.name}: no run has {key}={missing[0]}; its runs have {key} {have}")
        runs = [r for r in runs if any(_same(_run_value(r, key), t) for t in texts)]
    return dataclasses.replace(study, runs=runs, whole=study.whole or study.runs)


def _split_values(written: str, values: list[Any]) -> list[str]:
    """'100,200' → ['100', '200']; pieces joined back where they spell one value whole ('T=200, learned h0'),
    the longest such join first."""
    pieces = written.split(",")

    def names_a_value(start: int, end: int) -> bool:
        return any(_same(v, ",".join(pieces[start:end]).strip()) for v in values)

    texts, start = [], 0
    while start < len(pieces):
        end = next((e for e in range(len(pieces), start + 1, -1) if names_a_value(start, e)), start + 1)
        texts.append(",".join(pieces[start:end]).strip())
        start = end
    return [t for t in texts if t]


def _sort_key(value: Any) -> tuple:
    """Numbers in numeric order (100 before 1000), anything else by its text; one type after another."""
    return (str(type(value)), value if _is_number(value) else str(value))


def _run_value(run: RunConfig, key: str) -> Any:
    return run.name.split(" · ")[0] if key == "variant" else getattr(run, key)


def _same(value: Any, text: str) -> bool:
    """A config value against its command-line spelling: 1e-3 is 0.001, 'true' is True, 100 is '100'."""
    if isinstance(value, bool):
        return text.lower() == str(value).lower()
    if isinstance(value, int | float):
        try:
            return float(text) == value
        except ValueError:
            return False
    return str(value) == text


def _finding_keys(data: dict[str, Any], where: str) -> dict[str, str | None]:
    """The optional finding, paper and verdict: one-line strings; the finding starts with its number."""
    values = {key: data.get(key) for key in FINDING_KEYS}
    for key, value in values.items():
        if value is not None and (not isinstance(value, str) or not value.strip() or "\n" in value.strip()):
            raise ConfigError(f"{where}: {key!r} must be one line of text: {FINDING_KEYS[key]}; got {value!r}")
    if values["finding"] is not None and not FINDING_PATTERN.match(values["finding"]):
        raise ConfigError(f"{where}: 'finding' must start with its number, as in 'F3 …'; got {values['finding']!r}")
    return {key: value.strip() if value is not None else None for key, value in values.items()}
