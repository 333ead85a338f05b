"""The package's imports point one way: no circle between rooms or between modules (every import,
lazy ones too), so each room has a floor and no import runs up (scripts/import_floors.py)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "import_floors.py"


@pytest.fixture(scope="module")
def floors_tool():
    spec = importlib.util.spec_from_file_location("import_floors", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("by_room", [True, False], ids=["rooms", "modules"])
def test_no_circle(floors_tool, by_room):
    assert floors_tool.circles(floors_tool.graph(by_room=by_room)) == []


def test_the_tool_finds_a_circle_and_lazy_and_relative_imports(floors_tool, tmp_path):
    pkg = tmp_path / "valuecsv_ray"
    (pkg / "a").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "__init__.py").write_text("")
    (pkg / "a" / "x.py").write_text("from . import y\n")
    (pkg / "a" / "y.py").write_text("def f():\n    from valuecsv_ray.b import g\n")
    (pkg / "b.py").write_text("from valuecsv_ray.a.x import thing\n")
    found = floors_tool.modules(pkg)

    def imports(name: str) -> set[str]:
        return set(floors_tool.imported(name, found[name], set(found)))

    assert imports("valuecsv_ray.a.x") == {"valuecsv_ray.a.y"}  # relative, the module not its package
    assert imports("valuecsv_ray.a.y") == {"valuecsv_ray.b"}  # lazy, inside a function
    assert imports("valuecsv_ray.b") == {"valuecsv_ray.a.x"}
    edges = {"a": {"b"}, "b": {"a"}, "c": {"a"}}
    assert floors_tool.circles(edges) == [["a", "b"]]
    assert floors_tool.floors({"a": set(), "b": {"a"}, "c": {"a", "b"}}) == {"a": 0, "b": 1, "c": 2}


def test_the_script_prints_floors_and_exits_0():
    out = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, check=True)
    assert "0 circles, 0 upward imports" in out.stdout and "floor 0:" in out.stdout
