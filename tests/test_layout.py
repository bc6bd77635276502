"""The import graph the layout promises (README, "How it works"), read from the source itself.

- `core` is the Reflex-free core: it never imports `rxapp`, and `providers` only from the
  composition root (`core/root.py`), the one place that knows both.
- `providers` depend on the core one way: the contract and a few helpers, never the services.
- `models` (tables and views) use nothing of the core but the contract's enums.
- nothing of the product outside `rxapp` imports `rxapp`; tests of the web layer may.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("core", "models", "providers", "rxapp", "deploy", "bench", "rxconfig.py")
#: What a provider may use of the core: the contract and infrastructure helpers, no service.
PROVIDER_MAY_USE = {"core.contract", "core.db", "core.logs", "core.settings", "core.retries", "core.errors"}
COMPOSITION_ROOT = "core/root.py"


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
