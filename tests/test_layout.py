"""The import graph the layout promises (README, "How it works"), read from the source itself.

- `core` is the Reflex-free core: it never imports `rxapp`, and `providers` only from the
  composition root (`core/root.py`), the one place that knows both.
- `providers` depend on the core one way: the contract and a few helpers, never the services.
- `models` (tables and views) use nothing of the core but the contract's enums.
- nothing of the product outside `rxapp` imports `rxapp`; tests of the web layer may.
- `core` is rooms by feature (packages), each using only the rooms below it, and a few flat
  modules of plumbing every room may use (`ROOMS_MAY_USE`); at most `MAX_FLAT` of those.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("core", "models", "providers", "rxapp", "deploy", "bench", "rxconfig.py")
#: What a provider may use of the core: the contract and infrastructure helpers, no service.
PROVIDER_MAY_USE = {"core.contract", "core.db", "core.logs", "core.settings", "core.retries", "core.errors"}
COMPOSITION_ROOT = "core/root.py"
#: The core's rooms, from the bottom up, and the rooms each may import ("core": the flat plumbing,
#: which imports no room). Jobs settle nodes and grant their images; the realtime layer writes what
#: browsers confirmed into the jobs' timelines; nothing below imports what is above it.
ROOMS_MAY_USE = {
    "core": set(),
    "core.media": {"core"},
    "core.people": {"core", "core.media"},
    "core.notebook": {"core", "core.media", "core.people"},
    "core.jobs": {"core", "core.media", "core.people", "core.notebook"},
    "core.realtime": {"core", "core.jobs"},
}
MAX_FLAT = 10


def _modules(place: str) -> list[Path]:
    path = ROOT / place
    return [path] if path.is_file() else sorted(p for p in path.rglob("*.py") if ".web" not in p.parts)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, absolute names (the project uses no relative imports)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}: relative import of {node.module}"
            found.add(node.module)
    return found


def _top(module: str) -> str:
    return module.split(".", 1)[0]


def _graph(places: tuple[str, ...]) -> dict[str, set[str]]:
    return {str(p.relative_to(ROOT)): _imports(p) for place in places for p in _modules(place)}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return _graph(PRODUCT)


def test_every_part_of_the_layout_exists(graph: dict[str, set[str]]) -> None:
    for package in ("core", "models", "providers", "rxapp"):
        assert any(name.startswith(f"{package}/") for name in graph), package
    assert COMPOSITION_ROOT in graph


def test_the_core_never_imports_the_web_layer_nor_providers_outside_the_composition_root(
    graph: dict[str, set[str]],
) -> None:
    offending = {
        name: sorted(m for m in imported if _top(m) == "rxapp" or (_top(m) == "providers" and name != COMPOSITION_ROOT))
        for name, imported in graph.items()
        if name.startswith("core/")
    }
    assert {name: mods for name, mods in offending.items() if mods} == {}


def test_the_core_is_free_of_reflex(graph: dict[str, set[str]]) -> None:
    offending = {name: sorted(m for m in imported if _top(m) == "reflex") for name, imported in graph.items()}
    assert {n: m for n, m in offending.items() if m and n.startswith(("core/", "models/", "providers/"))} == {}


def test_providers_use_only_the_contract_and_helpers_of_the_core(graph: dict[str, set[str]]) -> None:
    offending = {
        name: sorted(m for m in imported if _top(m) == "core" and m not in PROVIDER_MAY_USE)
        for name, imported in graph.items()
        if name.startswith("providers/")
    }
    assert {name: mods for name, mods in offending.items() if mods} == {}
    assert any("core.contract" in imported for name, imported in graph.items() if name.startswith("providers/"))


def test_models_use_nothing_of_the_core_but_the_contract(graph: dict[str, set[str]]) -> None:
    offending = {
        name: sorted(m for m in imported if _top(m) in ("core", "providers", "rxapp") and m != "core.contract")
        for name, imported in graph.items()
        if name.startswith("models/")
    }
    assert {name: mods for name, mods in offending.items() if mods} == {}


def test_nothing_of_the_product_outside_rxapp_imports_rxapp(graph: dict[str, set[str]]) -> None:
    offending = {
        name: sorted(m for m in imported if _top(m) == "rxapp")
        for name, imported in graph.items()
        if not name.startswith("rxapp/")
    }
    assert {name: mods for name, mods in offending.items() if mods} == {}


def test_the_checks_see_a_forbidden_import(tmp_path: Path) -> None:
    """The reader itself works: a planted import is found (so the checks above can fail)."""
    planted = tmp_path / "planted.py"
    planted.write_text("from rxapp.runtime import core\nimport providers.kie\n")
    assert {"rxapp.runtime", "providers.kie"} <= _imports(planted)


def _room(module: str) -> str:
    """`core.jobs.book` -> `core.jobs.book`; a flat module (`core.db`) -> `core`."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 or (ROOT / "core" / parts[1]).is_dir() else "core"


def test_the_core_is_rooms_by_feature_with_a_few_flat_modules() -> None:
    flat = sorted(p.name for p in (ROOT / "core").glob("*.py") if p.name != "__init__.py")
    assert len(flat) <= MAX_FLAT, flat
    rooms = {f"core.{p.name}" for p in (ROOT / "core").iterdir() if (p / "__init__.py").is_file()} - {"core.migrations"}
    assert rooms == set(ROOMS_MAY_USE) - {"core"}


def test_each_room_of_the_core_uses_only_the_rooms_below_it(graph: dict[str, set[str]]) -> None:
    offending = {}
    for name, imported in graph.items():
        if not name.startswith("core/") or name == COMPOSITION_ROOT or name.startswith("core/migrations/"):
            continue
        room = _room(name.removesuffix(".py").replace("/", "."))
        used = {_room(m) for m in imported if _top(m) == "core" and m != "core"} - {room}
        if used - ROOMS_MAY_USE[room]:
            offending[name] = sorted(used - ROOMS_MAY_USE[room])
    assert offending == {}


def test_providers_import_neither_models_nor_the_web_layer(graph: dict[str, set[str]]) -> None:
    offending = {
        name: sorted(m for m in imported if _top(m) in ("models", "rxapp"))
        for name, imported in graph.items()
        if name.startswith("providers/")
    }
    assert {name: mods for name, mods in offending.items() if mods} == {}


def test_importing_the_web_layer_builds_nothing(tmp_path: Path) -> None:
    """The composition root builds the `Core` on first use: importing states, components and pages
    (as a test or a tool does) creates no database under `DATA_DIR` and migrates nothing."""
    code = "import rxapp.pages.canvas, rxapp.states.room, rxapp.runtime; print('imported')"
    env = {**os.environ, "DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "imported", done.stderr
    assert not (tmp_path / "data").exists()
