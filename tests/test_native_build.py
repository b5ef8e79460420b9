"""How the compiled engine (`recurrent/_ext/`, several C++ files, one extension) is built and cached:

- the build's name (its cache key and lock) changes when any one source or header file changes, is renamed or
  is added, and is the same for two copies of equal files;
- every local header a source includes is one of the files the name covers;
- every source compiles to an object file of its own (torch names them by the file's base name);
- the package ships every file of the build.
Needs no compiler. Run: `.venv/bin/pytest tests/test_native_build.py`.
"""

import glob
import re
import shutil
import tomllib
from pathlib import Path

from rnnlab.recurrent import native

FLAGS = ["-O3", "-fopenmp"]
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.MULTILINE)


def _copy_of_the_sources(tmp_path: Path, monkeypatch) -> Path:
    """A copy of `_ext/` that `native` builds from instead of the real one; returns the copy's folder."""
    folder = tmp_path / "_ext"
    shutil.copytree(native.SOURCE.parent, folder)
    monkeypatch.setattr(native, "SOURCE", folder / native.SOURCE.name)
    return folder


def test_the_sources_are_several_files_with_headers_in_subfolders():
    files = [path.relative_to(native.SOURCE.parent).as_posix() for path in native.source_files()]
    assert native.SOURCE.name in files
    assert {".cpp", ".h"} <= {Path(name).suffix for name in files}
    assert any("/" in name for name in files), files  # the per-cell kernels sit in a subfolder


def test_the_build_name_changes_when_any_one_file_changes(tmp_path, monkeypatch):
    here = native.build_name(FLAGS)
    folder = _copy_of_the_sources(tmp_path, monkeypatch)
    original = native.build_name(FLAGS)
    # build.ninja names the sources by absolute path: a checkout elsewhere shares no build folder with this one
    assert original != here, "equal files elsewhere: a build of their own"
    names = {}
    for path in native.source_files():
        text = path.read_bytes()
        path.write_bytes(text + b"\n// one edit\n")
        names[path.relative_to(folder).as_posix()] = native.build_name(FLAGS)
        path.write_bytes(text)
    assert native.build_name(FLAGS) == original, "every file restored: the same build again"
    assert len(names) == len(native.source_files()) >= 10
    assert original not in names.values()
    assert len(set(names.values())) == len(names), "each file's edit gives a build of its own"


def test_the_build_name_changes_when_a_file_is_added_or_renamed(tmp_path, monkeypatch):
    original = native.build_name(FLAGS)
    folder = _copy_of_the_sources(tmp_path, monkeypatch)
    (folder / "kernels" / "new_cell.cpp").write_text("// a new cell's kernel\n")
    added = native.build_name(FLAGS)
    assert added != original
    (folder / "kernels" / "new_cell.cpp").rename(folder / "kernels" / "newer_cell.cpp")
    assert native.build_name(FLAGS) not in (original, added)


def test_hidden_files_such_as_an_editors_swap_file_do_not_change_the_build(tmp_path, monkeypatch):
    folder = _copy_of_the_sources(tmp_path, monkeypatch)
    original = native.build_name(FLAGS)
    (folder / ".bptt.cpp.swp").write_bytes(b"\x00swap")
    assert native.build_name(FLAGS) == original


def test_every_local_header_a_source_includes_is_covered_by_the_build_name():
    files = set(native.source_files())
    for path in files:
        for name in INCLUDE.findall(path.read_text(encoding="utf-8")):
            header = (path.parent / name).resolve()
            assert header in {p.resolve() for p in files}, f"{path.name} includes {name}, which the key misses"


def test_every_source_compiles_to_an_object_file_of_its_own():
    """torch.utils.cpp_extension names each object file after its source's base name (`kernels/gru.cpp` →
    `gru.o`), so two sources with one base name would overwrite each other's object."""
    stems = [path.stem for path in native.source_files() if path.suffix == ".cpp"]
    assert len(stems) == len(set(stems)), sorted(stems)


def test_the_package_ships_every_file_of_the_build():
    root = Path(__file__).resolve().parents[1]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["rnnlab"]
    package = native.SOURCE.parents[2]  # src/rnnlab
    shipped = {Path(match) for pattern in patterns for match in glob.glob(pattern, root_dir=package, recursive=True)}
    missing = [path for path in native.source_files() if path.relative_to(package) not in shipped]
    assert not missing, f"not in pyproject's package-data: {missing}"
