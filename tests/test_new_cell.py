"""Adding a cell is one file with its step and one row in the cell table: everything else picks it up.

In a copy of the package, a toy cell — a leaky tanh RNN, h_t = (1 − α)·h_{t−1} + α·tanh(x_t W_ihᵀ + b_ih +
h_{t−1} W_hhᵀ + b_hh), α = 1/2, with its hand-written backward — is added as ARCHITECTURE.md says: a new file
`cells/leaky.py` and one row (and its import) in `cells/__init__.py`; nothing else. A subprocess running that
copy then uses it through every door: the module (`make_recurrent`), the engine's forward and backward against
autograd through the same step (float64), truncation, recording, the diagnostics, the monitor,
initialisation, the run config and the CLI's choices. Run: `.venv/bin/pytest tests/test_new_cell.py`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import rnnlab

CELL_FILE = textwrap.dedent(
    '''
    """A toy cell for tests/test_new_cell.py: h_t = h_{t-1}/2 + tanh(x_t W_ihᵀ + b + h_{t-1} W_hhᵀ)/2."""

    import torch

    from rnnlab.recurrent.cells.base import Cell, StepGrads


    class LeakyCell(Cell):
        name, gates = "leaky_tanh", 1

        def step(self, x_pre, h, c, weight_hh, bias_h):
            g = torch.tanh(torch.addmm(x_pre, h, weight_hh.t()))
            return 0.5 * h + 0.5 * g, None, g

        def step_backward(self, dh, dc, saved, h_prev, c_prev):
            d_pre = 0.5 * dh * (1 - saved * saved)
            return StepGrads(d_pre, d_pre, 0.5 * dh, None, None)
    '''
)

SCRIPT = textwrap.dedent(
    """
    import json

    import torch

    import rnnlab
    from rnnlab.cli import build_parser
    from rnnlab.lab.config import make_config
    from rnnlab.recurrent.init import SCHEMES

    torch.manual_seed(0)
    module = rnnlab.make_recurrent("leaky_tanh", 3, 5, num_layers=2, dtype=torch.float64)
    x = torch.randn(7, 2, 3, dtype=torch.float64)
    with rnnlab.record_gradients(module) as rec:
        out, h_n = module(x)
        (out * torch.linspace(-1, 1, 5, dtype=torch.float64)).sum().backward()
    grads = [p.grad.clone() for p in module.parameters()]

    # The reference: the same step under autograd, layer by layer.
    weights = [p.detach().clone().requires_grad_() for p in module.parameters()]
    layer_input, states = x, []
    for layer in range(2):
        w_ih, w_hh, b_ih, b_hh = weights[4 * layer : 4 * layer + 4]
        h, outs = torch.zeros(2, 5, dtype=torch.float64), []
        for t in range(7):
            h, _, _ = module.cell.step(layer_input[t] @ w_ih.t() + b_ih + b_hh, h, None, w_hh, None)
            h.retain_grad()
            outs.append(h)
        states.append(outs)
        layer_input = torch.stack(outs)
    (layer_input * torch.linspace(-1, 1, 5, dtype=torch.float64)).sum().backward()
    norms = torch.stack([torch.stack([s.grad.norm(dim=-1).mean() for s in outs]) for outs in states])

    truncated = rnnlab.make_recurrent("leaky_tanh", 3, 5, truncate=2, dtype=torch.float64)
    truncated(x)[0].sum().backward()
    flow = rnnlab.gradient_flow(module, x)
    monitor = rnnlab.monitor(torch.nn.Sequential(module), every=1, warn=False)
    monitor.model(x)[0].sum().backward()
    rnnlab.init.apply(module, "orthogonal")
    config = make_config({"cell": "leaky_tanh", "task": "adding", "seq_len": 10, "hidden_size": 4, "steps": 1})
    cli = build_parser().parse_args(["train", "--cell", "leaky_tanh"])  # argparse exits on an unknown choice
    print(json.dumps({
        "file": rnnlab.__file__,
        "type": type(module).__name__,
        "repr": repr(module),
        "output": list(out.shape),
        "grads_match": all(torch.allclose(g, w.grad, rtol=1e-10, atol=1e-12) for g, w in zip(grads, weights)),
        "norms_match": torch.allclose(rec.norms, norms, rtol=1e-10, atol=1e-12),
        "compiled": module.cell.native_kind,
        "truncated_grad": truncated.weight_hh_l0.grad is not None,
        "flow_steps": flow.num_steps,
        "monitor_rows": len(monitor.history),
        "config_cell": config.cell,
        "orthogonal_applies": "leaky_tanh" in SCHEMES["orthogonal"].cells,
        "cli_cell": cli.cell,
    }))
    """
)


def _add_the_cell(package: Path) -> None:
    """What a new cell touches: its own file, and one row (with its import) in the table."""
    (package / "recurrent" / "cells" / "leaky.py").write_text(CELL_FILE, encoding="utf-8")
    table = package / "recurrent" / "cells" / "__init__.py"
    text = table.read_text(encoding="utf-8")
    anchor_import = "from rnnlab.recurrent.cells.gru import GRUCell\n"
    anchor_row = "        GRUCell(),\n"
    assert anchor_import in text and anchor_row in text, "the table's layout changed: update this test"
    text = text.replace(anchor_import, anchor_import + "from rnnlab.recurrent.cells.leaky import LeakyCell\n")
    table.write_text(text.replace(anchor_row, anchor_row + "        LeakyCell(),\n"), encoding="utf-8")


def test_a_new_cell_is_one_file_and_one_row_in_the_table(tmp_path):
    shutil.copytree(Path(rnnlab.__file__).parent, tmp_path / "rnnlab", ignore=shutil.ignore_patterns("__pycache__"))
    _add_the_cell(tmp_path / "rnnlab")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "RNNLAB_ENGINE": "auto"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["file"].startswith(str(tmp_path)), "the subprocess ran the copy"
    assert seen["type"] == "Recurrent" and "cell='leaky_tanh'" in seen["repr"]
    assert seen["output"] == [7, 2, 5]
    assert seen["grads_match"], "the engine's backward through the new step equals autograd's"
    assert seen["norms_match"], "recorded ‖∂L/∂h_t‖ equals autograd's retain_grad on every state"
    assert seen["compiled"] is None, "no kernel: the Python loop serves it"
    assert seen["truncated_grad"] and seen["flow_steps"] == 7 and seen["monitor_rows"] == 2
    assert seen["config_cell"] == "leaky_tanh" and seen["orthogonal_applies"]
    assert seen["cli_cell"] == "leaky_tanh", "rnnlab train --cell offers it"
