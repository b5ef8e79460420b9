"""The house's layout, checked from the source: imports flow one way and the engine package stays in rooms.

- no cycle among the modules of `rnnlab` (an import inside a function or under TYPE_CHECKING counts: it is
  still an arrow), and no private name imported from another module;
- no module of `rnnlab/recurrent/` imports `rnnlab.lab`, `rnnlab.report`, `rnnlab.cli` or the integrations;
- no module of `rnnlab/report/` imports the task registry or the trainer (it reads the store only);
- no module of `rnnlab/recurrent/` (nor the package face, nor `cli/diagnose.py`) over 450 lines, no function
  there over 60.

The graph is read with `ast` from the files, not from what happens to be imported. Run:
`.venv/bin/pytest tests/test_layout.py`.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

import rnnlab

ROOT = Path(rnnlab.__file__).parent
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 450, 60


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _imports(name: str) -> list[tuple[str, str]]:
    """(the rnnlab module imported, the name taken from it or '') for every import statement of `name`."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names if alias.name.split(".")[0] == "rnnlab"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # a relative import, resolved against this module's package
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            if base.split(".")[0] != "rnnlab":
                continue
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.append((child, "") if child in MODULES else (base, alias.name))
    return found


GRAPH = {name: {target for target, _ in _imports(name) if target in MODULES} for name in MODULES}


def _check_acyclic(graph: dict[str, set[str]]) -> None:
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        pytest.fail(f"an import cycle: {' → '.join(error.args[1])}")


def test_the_modules_import_each_other_one_way_only():
    _check_acyclic(GRAPH)


def test_no_private_name_is_imported_from_another_module():
    private = [
        f"{name} imports {source}.{taken}"
        for name in MODULES
        for source, taken in _imports(name)
        if taken.startswith("_") and not taken.startswith("__")
    ]
    assert not private, private


def test_the_recurrent_layer_knows_nothing_above_it():
    above = ("rnnlab.lab", "rnnlab.report", "rnnlab.cli", "rnnlab.integrations")
    wrong = [
        f"{name} → {target}"
        for name, targets in GRAPH.items()
        if name.startswith("rnnlab.recurrent")
        for target in targets
        if target.startswith(above)
    ]
    assert not wrong, wrong


def test_nothing_below_the_face_imports_the_package_face():
    """`rnnlab/__init__.py` imports every layer, so an arrow back to it from a layer is an arrow back up."""
    layers = ("rnnlab.recurrent", "rnnlab.lab", "rnnlab.report", "rnnlab.integrations")
    wrong = [name for name, targets in GRAPH.items() if name.startswith(layers) and "rnnlab" in targets]
    assert not wrong, wrong


def test_the_report_reads_the_store_only():
    wrong = [
        f"{name} → {target}"
        for name, targets in GRAPH.items()
        if name.startswith("rnnlab.report")
        for target in targets
        if target.startswith(("rnnlab.lab.tasks", "rnnlab.lab.trainer"))
    ]
    assert not wrong, wrong


def test_the_engine_package_stays_in_rooms():
    """One concept per module: no module of recurrent/ (nor the package face, nor cli/diagnose.py) over 450
    lines, no function there over 60."""
    paths = [p for name, p in MODULES.items() if name.startswith("rnnlab.recurrent")]
    paths += [MODULES["rnnlab"], MODULES["rnnlab.cli.diagnose"]]
    too_long = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(ROOT)}: {node.name} {lines} lines")
    assert not too_long, too_long


def test_the_graph_is_read_from_the_source():
    """The checks above would pass on an empty graph: the known arrows must be in it."""
    assert "rnnlab.recurrent.engine" in GRAPH["rnnlab.recurrent.modules"]
    assert "rnnlab.recurrent.cells" in GRAPH["rnnlab.recurrent.engine"]
    assert "rnnlab.lab.store" in GRAPH["rnnlab.report.html"]
    assert "rnnlab.recurrent.cells.base" in GRAPH["rnnlab.recurrent.cells.lstm"]
