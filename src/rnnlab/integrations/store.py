"""A monitor's history as runs of rnnlab's results store, so `rnnlab runs list` and `rnnlab runs show` see it.

    monitor = rnnlab.monitor(model, every=20)
    ...                                                  # your training loop
    save_monitor(monitor, "runs/rnnlab.db", name="my-model")
    # rnnlab runs list; rnnlab runs show <id>

The store holds one gradient profile per run and step, so each recurrent layer becomes one run, named
`<name>/<module>/layer_<l>`: its recorded steps are the run's flow snapshots (horizon, decay rate, r², profile
by lag), its status 'completed', its metric the latest horizon. The config records what is known of the
layer (cell, sizes, sequence length, the monitor's settings); the user's loss, data and init are not known
to the monitor and are not recorded. No extra package is needed.

These are single runs, outside any study: `rnnlab runs list/show/export` read them, and `rnnlab report --run ID`
draws one (its profiles against lag and over training; there is no task, so no learning curve).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from rnnlab.integrations import layer_label
from rnnlab.lab.environment import environment
from rnnlab.lab.store import DEFAULT_PATH, Store
from rnnlab.recurrent.diagnostics import fit_decay
from rnnlab.recurrent.monitor import Monitor, MonitorRow

METRIC = "horizon"  # the runs' metric: the latest gradient horizon, in steps


def save_monitor(monitor: Monitor, store: Store | str | Path = DEFAULT_PATH, name: str | None = None) -> list[int]:
    """Write the history of `monitor` to `store` (a `Store` or a path), one run per recurrent layer recorded;
    each run is written in one transaction. `name` defaults to the model's class name. Returns the run ids,
    in the order of the monitor's layers. Saving again adds new runs (the history may have grown)."""
    name = name or type(monitor.model).__name__
    history = monitor.history
    if not history:
        raise ValueError("save_monitor: the monitor has recorded nothing yet (no training step with a backward)")
    layers = list(dict.fromkeys(r.key for r in history))  # (module, layer, direction), in the order recorded
    owned = not isinstance(store, Store)
    db = Store(store) if owned else store
    try:
        where = environment()
        ids = []
        for module, layer, direction in layers:
            rows = [r for r in history if r.key == (module, layer, direction)]
            config = _config(monitor, module, layer, rows)
            if direction == "reverse":  # only then: forward runs keep the config (and hash) they always had
                config["direction"] = direction
            text = json.dumps(config, sort_keys=True)
            config_hash = hashlib.sha256(text.encode()).hexdigest()[:16]
            run_name = f"{name}/{module}/{layer_label(layer, direction)}"
            ids.append(db.record_run(run_name, config, config_hash, where, _result(monitor, rows)))
        return ids
    finally:
        if owned:
            db.close()


def _config(monitor: Monitor, module: str, layer: int, rows: list[MonitorRow]) -> dict[str, Any]:
    recurrent = dict(monitor.modules)[module]
    return {
        "source": "rnnlab.monitor",
        "task": "own loop",  # not one of rnnlab's tasks: the user's model, data and loss
        "model": type(monitor.model).__name__,
        "module": module,
        "layer": layer,
        "cell": recurrent.cell.name,
        "input_size": recurrent.input_size,
        "hidden_size": recurrent.hidden_size,
        "num_layers": recurrent.num_layers,
        "seq_len": rows[-1].seq_len,
        "every": monitor.every,
        "threshold": monitor.threshold,
    }


def _result(monitor: Monitor, rows: list[MonitorRow]) -> dict[str, Any]:
    """The store's result dict (see `Store.finish_run`): a flow snapshot per recorded step, nothing else."""
    evaluations = []
    for row in rows:
        r2 = fit_decay(torch.tensor(row.profile, dtype=torch.float64)).r2  # the fit behind row.decay_rate
        flow = {"horizon": row.horizon, "decay_rate": row.decay_rate, "r2": r2, "profile": row.profile}
        evaluations.append({"step": row.step, "flow": flow})
    return {
        "status": "completed",
        "steps": monitor.forwards,
        "metric_name": METRIC,
        "final_metric": rows[-1].horizon,
        "final_loss": None,
        "solved_at": None,
        "diverged_at": None,
        "clip_rate": None,
        "wall_time": None,
        "evaluations": evaluations,
        "train_losses": [],
    }
