"""Where the monitor's records go, and the frameworks it plugs into. Each module needs its own optional extra
and says so in one line when it is missing:

- `rnnlab.integrations.tensorboard`: `TensorBoardWriter`, horizon and decay rate per layer as scalars, the
  profile over training as an image (`pip install 'rnnlab[tensorboard]'`);
- `rnnlab.integrations.lightning`: `GradientMonitor`, the monitor as a `lightning.Trainer` callback, and
  `TruncatedBPTT`, the truncated BPTT that Lightning 2 removed (`pip install 'rnnlab[lightning]'`);
- `rnnlab.integrations.store`: `save_monitor`, the monitor's history as runs of rnnlab's results store, for
  `rnnlab runs list/show` (no extra needed).
"""

from __future__ import annotations

import importlib
from types import ModuleType


def require(package: str, extra: str, feature: str) -> ModuleType:
    """Import `package`, or raise a one-line ImportError saying which rnnlab extra installs it."""
    try:
        return importlib.import_module(package)
    except ImportError:
        raise ImportError(
            f"{feature} needs the {package!r} package, which is not installed: pip install 'rnnlab[{extra}]'"
        ) from None


def layer_label(layer: int, direction: str = "forward") -> str:
    """`layer_<l>`, or `layer_<l>_reverse` for the reverse direction of a bidirectional layer."""
    return f"layer_{layer}" + ("_reverse" if direction == "reverse" else "")


def scalar_tags(module: str, layer: int, direction: str = "forward") -> dict[str, str]:
    """The names a layer's scalars are logged under (TensorBoard tags, Lightning logger keys): grouped by
    quantity first, so TensorBoard draws the horizons of all layers side by side."""
    label = layer_label(layer, direction)
    return {
        "horizon": f"gradient_horizon/{module}/{label}",
        "decay_rate": f"gradient_decay_rate/{module}/{label}",
    }
