"""Typed experiment configuration: one `RunConfig` per training run, loadable from YAML with overrides.

Validation happens here, before any work starts: an unknown key, a wrong type or an impossible value is a
`ConfigError` whose one-line message names the key, what was given and what is expected.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Hashable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rnnlab.lab.clip import MODES as CLIP_MODES
from rnnlab.lab.optimizers import get_optimizer
from rnnlab.lab.tasks import TASKS, StreamTask, get_task_class, task_options
from rnnlab.recurrent import init as init_schemes
from rnnlab.recurrent.cells import CELLS
from rnnlab.recurrent.convert import cell_options, make_recurrent
from rnnlab.recurrent.omega import OMEGA_CELLS

# Keys added after the first stores were written, with their defaults (see RunConfig.canonical).
LATER_KEYS: dict[str, Any] = {
    "alpha": None,
    "success": "task",
    "baseline_margin": 0.1,
    "readout_std": None,
    "regularizer": "none",
    "omega_weight": None,
    "omega_form": "norm",
    "orthogonal_lr": None,
    "cell_options": {},
    "initial_state": "zeros",
    "readout_init": "default",
}


#: The cells whose initial state a config may learn (`initial_state: learned`): torch.nn's, and the LSTM with an
#: output-gate peephole, whose paper (Arjovsky et al. 2016) learns it; each checked against a reference.
LEARNED_STATE_CELLS = [name for name, cell in CELLS.items() if cell.torch_module is not None] + ["lstm_peephole_out"]


class ConfigError(ValueError):
    """A configuration that cannot run; the message is one line."""


class RunConfig(BaseModel):
    """Everything that defines a training run. Two configs with the same `hash()` give the same result."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # every number finite

    name: str | None = None  # label for tables and reports (not part of the hash)
    # --- task
    task: str = "adding"  # one of rnnlab.lab.tasks.TASKS
    # sequence length T (text: the default BPTT window; digits, mnist: their one length when not given)
    seq_len: int | None = Field(100, ge=1)
    task_options: dict[str, Any] = {}  # extra task options, e.g. {symbols: 3} or {order: pixels}
    # --- model
    cell: str = "lstm"  # one of rnnlab.recurrent.cells.CELLS
    hidden_size: int = Field(128, ge=1)  # H
    num_layers: int = Field(1, ge=1)
    cell_options: dict[str, Any] = {}  # the module's own options, e.g. {dt: 0.042, gamma: 2.7} for cornn
    dropout: float = Field(0.0, ge=0.0, lt=1.0)  # between layers
    init: str = "default"  # init schemes joined by '+', e.g. orthogonal+chrono; default: the cell's own
    init_options: dict[str, float] = {}  # e.g. {scale: 1.0} for identity, {input_std: 0.001} for input_normal
    readout_std: float | None = Field(None, gt=0)  # readout weight N(0, σ²), bias 0; None: torch.nn.Linear's init
    # xavier_uniform: readout weight U(±√(6/(H+O))), bias 0 (the uRNN code's out_mat); default: torch.nn.Linear's
    readout_init: Literal["default", "xavier_uniform"] = "default"
    initial_state: Literal["zeros", "learned"] = "zeros"  # learned: h_0 (and c_0) parameters, zero at first (uRNN code)
    # --- optimisation
    optimizer: str = "adam"  # one of rnnlab.lab.optimizers.OPTIMIZERS
    lr: float = Field(1e-3, gt=0)  # learning rate
    orthogonal_lr: float | None = Field(None, gt=0)  # exprnn: A's own learning rate (the authors: lr / 10); None: lr
    momentum: float | None = Field(None, ge=0.0, lt=1.0)  # for optimizers that take one (unset: 0, as torch.optim)
    alpha: float | None = Field(None, gt=0.0, lt=1.0)  # RMSprop's smoothing constant (unset: torch.optim's 0.99)
    lr_schedule: Literal["constant", "cosine", "step"] = "constant"  # step: ×0.1 at 50 % and 75 % of steps
    batch_size: int = Field(64, ge=1)
    steps: int = Field(3000, ge=1)  # optimizer updates
    clip: Literal["none", "global_norm", "value", "per_param_norm"] = "none"  # see rnnlab.lab.clip
    clip_threshold: float | None = Field(None, gt=0)  # needed unless clip is none
    regularizer: Literal["none", "omega"] = "none"  # omega: Pascanu et al.'s Ω added to the loss (rnnlab.omega)
    omega_weight: float | None = Field(None, ge=0)  # Ω's weight α (RNN.py: 2.0); 0 measures Ω without applying it
    omega_form: Literal["norm", "squared"] = "norm"  # Ω's ratio: the paper's eq. 9 (norms), or RNN.py's (squared norms)
    # --- truncation
    truncate: int | None = Field(None, ge=1)  # sequence tasks: engine truncation (∂L_s/∂h_t kept for s−t < k)
    bptt_k1: int | None = Field(None, ge=1)  # stream tasks: update every k1 steps … (default seq_len)
    bptt_k2: int | None = Field(None, ge=1)  # … back-propagating over the last k2 steps (default k1)
    # --- evaluation and run control
    eval_every: int = Field(250, ge=1)  # evaluate on the test set (and snapshot gradient flow) every N updates
    stop_when_solved: bool = True  # stop at the first evaluation that meets the success criterion
    success: Literal["task", "baseline"] = "task"  # solved when: the task's own criterion (e.g. MSE < 0.01), or
    # the test loss is below the task's memoryless baseline by `baseline_margin` (Arjovsky et al.'s "beats the baseline")
    baseline_margin: float = Field(0.1, ge=0.0, lt=1.0)  # "baseline": solved when loss < (1 − margin) · baseline
    seed: int = Field(0, ge=0)  # weights, data order, dropout
    checkpoint_every: int | None = Field(None, ge=1)  # updates between checkpoints (default: eval_every)

    @model_validator(mode="before")
    @classmethod
    def _task_length(cls, data: Any) -> Any:
        """A task with one length (the digit images: 8 rows or 64 pixels) gets it when no seq_len is given,
        rather than the default 100 it would refuse. Options it does not take are left for `_check` to name."""
        task = data.get("task") if isinstance(data, dict) else None
        if isinstance(task, str) and task in TASKS and "seq_len" not in data:
            options = data.get("task_options") or {}
            if isinstance(options, dict) and set(options) <= set(task_options(task)):
                try:
                    fixed = get_task_class(task).fixed_length(**options)
                except (ValueError, TypeError):
                    fixed = None  # a bad option value: `_check` reports it
                if fixed is not None:
                    data = {**data, "seq_len": fixed}
        return data

    @model_validator(mode="after")
    def _check(self) -> RunConfig:
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; choose from: {', '.join(TASKS)}")
        valid = task_options(self.task)
        for option in self.task_options:
            if option not in valid:
                raise ValueError(
                    f"task {self.task!r} has no option {option!r}; its options: {', '.join(valid) or 'none'}"
                )
        self._check_task()
        if self.cell not in CELLS:
            raise ValueError(f"unknown cell {self.cell!r}; choose from: {', '.join(CELLS)}")
        self._check_cell_options()
        init_schemes.check_applicable(self.cell, self.init, **self.resolved_init_options())
        optimizer = get_optimizer(self.optimizer)
        if self.clip != "none" and self.clip_threshold is None:
            raise ValueError(f"clip={self.clip!r} needs clip_threshold > 0")
        if self.alpha is not None and optimizer.default_alpha is None:
            raise ValueError(f"alpha is RMSprop's smoothing constant; optimizer {self.optimizer!r} has none")
        if self.clip not in CLIP_MODES:  # pragma: no cover - Literal already guarantees it
            raise ValueError(f"unknown clip mode {self.clip!r}")
        stream = issubclass(get_task_class(self.task), StreamTask)
        if stream and self.truncate is not None:
            raise ValueError("truncate applies to sequence tasks; for the text task use bptt_k1 / bptt_k2")
        if not stream and (self.bptt_k1 is not None or self.bptt_k2 is not None):
            raise ValueError(f"bptt_k1 / bptt_k2 apply to stream tasks (text), not {self.task!r}; use truncate")
        if stream:
            k1, k2 = self.bptt
            if k2 < k1:
                raise ValueError(f"bptt_k2 ({k2}) must be ≥ bptt_k1 ({k1}): each update looks back at least k1 steps")
        self._check_regularizer()
        if self.readout_std is not None and self.readout_init != "default":
            raise ValueError(
                f"readout_std and readout_init {self.readout_init!r} both set the readout's weights; give one of them"
            )
        if self.initial_state == "learned" and self.cell not in LEARNED_STATE_CELLS:
            raise ValueError(
                f"initial_state 'learned' applies to the cells {', '.join(LEARNED_STATE_CELLS)}; got cell {self.cell!r}"
            )
        if self.orthogonal_lr is not None and not CELLS[self.cell].weight_hh_computed:
            raise ValueError(f"orthogonal_lr is the learning rate of ExpRNN's A; cell {self.cell!r} has none")
        return self

    def _check_task(self) -> None:
        """The task's own checks (lengths, option values), here rather than when the run starts."""
        length = {} if self.seq_len is None else {"seq_len": self.seq_len}  # None: the task's own default
        get_task_class(self.task).check(**length, **self.task_options)

    def _check_cell_options(self) -> None:
        """Each option is one the cell's module takes, with a value it accepts (a tiny module is built to ask)."""
        known = cell_options(self.cell)
        for option in self.cell_options:
            if option not in known:
                raise ValueError(
                    f"cell {self.cell!r} has no option {option!r}; its options: {', '.join(known) or 'none'}"
                )
        if self.cell_options:
            try:
                make_recurrent(self.cell, 1, 2, **self.cell_options)  # the module's own one-line errors
            except TypeError as error:
                raise ValueError(f"cell_options of {self.cell!r}: {error}") from None

    def _check_regularizer(self) -> None:
        if self.regularizer == "none":
            for key, default in (("omega_weight", None), ("omega_form", "norm")):
                if getattr(self, key) != default:
                    raise ValueError(f"{key} applies to regularizer 'omega'; set regularizer: omega or drop it")
            return
        if self.omega_weight is None:
            raise ValueError("regularizer 'omega' needs omega_weight ≥ 0 (the paper's α; its code uses 2.0)")
        if self.cell not in OMEGA_CELLS:
            raise ValueError(f"regularizer 'omega' supports the cells {', '.join(OMEGA_CELLS)}; got cell {self.cell!r}")
        if self.truncate is not None:
            raise ValueError("regularizer 'omega' needs the full gradient ∂L/∂h; drop truncate")
        if issubclass(get_task_class(self.task), StreamTask):
            raise ValueError(f"regularizer 'omega' applies to sequence tasks, not the stream task {self.task!r}")

    # ------------------------------------------------------------------------------------------ derived

    @property
    def bptt(self) -> tuple[int, int]:
        """(k1, k2) for stream tasks: defaults k1 = seq_len, k2 = k1."""
        k1 = self.bptt_k1 or self.seq_len or 50
        return k1, self.bptt_k2 or k1

    @property
    def resolved_momentum(self) -> float:
        """The momentum the optimizer gets: 0 unless given, as in torch.optim."""
        return self.momentum or 0.0

    @property
    def resolved_init(self) -> str:
        """The init spec as it runs on this cell ('default' → torch_default for RNN/LSTM/GRU; `init.resolve`)."""
        return init_schemes.resolve(self.cell, self.init)

    def resolved_init_options(self) -> dict[str, Any]:
        """init_options plus what the experiment implies: chrono's t_max is the sequence length."""
        options = dict(self.init_options)
        if "chrono" in self.init.split("+") and "t_max" not in options:
            options["t_max"] = self.seq_len or 100
        return options

    @property
    def checkpoint_interval(self) -> int:
        return self.checkpoint_every or self.eval_every

    def label(self) -> str:
        """A short human label: the name, or cell[:init] plus what differs from the defaults."""
        if self.name:
            return self.name
        own = self.resolved_init in ("default", "torch_default")
        parts = [self.cell if own else f"{self.cell}:{self.init}"]
        parts += [f"{key}={value}" for key, value in self.cell_options.items()]
        if self.clip != "none":
            parts.append(f"clip {self.clip} {self.clip_threshold:g}")
        if self.truncate:
            parts.append(f"truncate {self.truncate}")
        if self.initial_state == "learned":
            parts.append("learned h0")
        if self.regularizer == "omega":
            parts.append(f"omega {self.omega_weight:g}" + (" squared" if self.omega_form == "squared" else ""))
        return " ".join(parts)

    def canonical(self) -> dict[str, Any]:
        """The config as plain JSON-able data, without the cosmetic name.

        Stores written before a key existed must still find their runs by hash, so keys added later are left
        out while at their defaults, and the momentum is written as the first stores wrote it: Adam runs
        carried the old default 0.9 (unused by Adam), SGD/RMSprop runs carry the momentum they ran with.
        """
        data = self.model_dump(mode="json", exclude={"name"})
        data["init"] = self.resolved_init  # 'default' of an LSTM is the torch_default its runs were stored under
        for key, default in LATER_KEYS.items():
            if data[key] == default:
                del data[key]
        data["momentum"] = 0.9 if self.optimizer == "adam" else self.resolved_momentum
        return data

    def hash(self) -> str:
        """Stable identity of the experiment: sha256 of the canonical JSON (sorted keys), 16 hex digits."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _describe(error: ValidationError) -> str:
    """pydantic's multi-line report → one line naming the first bad key."""
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "config"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        close = difflib.get_close_matches(where, list(RunConfig.model_fields), n=1, cutoff=0.6)
        if close:
            return f"unknown config key {where!r}; did you mean {close[0]!r}?"
        known = ", ".join(RunConfig.model_fields)
        return f"unknown config key {where!r}; valid keys: {known}"
    if first["type"] in ("model_type", "dict_type") and not first["loc"]:
        return "config must be a mapping of keys to values"
    given = first.get("input")
    shown = "" if isinstance(given, dict) or not first["loc"] else f" (got {given!r})"
    return f"{where}: {message}{shown}" if first["loc"] else message


def make_config(data: dict[str, Any]) -> RunConfig:
    """Validate a mapping into a RunConfig, or raise ConfigError with a one-line message."""
    if not isinstance(data, dict):
        raise ConfigError(f"config must be a mapping of keys to values, got {type(data).__name__}")
    try:
        return RunConfig(**data)
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None
    except ValueError as error:  # raised outside pydantic's wrapping, e.g. by init checks
        raise ConfigError(str(error).splitlines()[0]) from None


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, first: int, second: int):
        super().__init__(f"key {key!r} is given twice (lines {first} and {second}); keep one")


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a key given twice in one mapping: PyYAML would keep the last one silently, so a
    study with two `grid:` lines, or a config that sets `lr` twice, would run something its author did not read."""

    def construct_mapping(self, node, deep=False):
        lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # '<<: *defaults' merges another mapping, whose keys the file may override
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                continue  # PyYAML reports an unhashable key itself
            if key in lines:
                raise _DuplicateKey(key, lines[key], key_node.start_mark.line + 1)
            lines[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with the safe loader only (no Python objects can be constructed)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read config file {str(path)!r}: {type(error).__name__}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no Python objects
    except _DuplicateKey as error:
        raise ConfigError(f"config file {str(path)!r}: {error}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"config file {str(path)!r} is not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of keys to values, got {type(data).__name__}")
    return data


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """A RunConfig from an optional YAML file, with `overrides` (e.g. from the CLI) applied on top."""
    data = load_yaml(path) if path is not None else {}
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return make_config(data)
