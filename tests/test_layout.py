"""The house's layout: no import cycles, and each room imports only what its role allows.

Imports are read statically (ast), every `import` in a file, also inside functions and
under TYPE_CHECKING, so a cycle cannot hide behind either.
"""

from __future__ import annotations

import pathlib

import pytest

from tests.support.scripts import load_script

ROOT = pathlib.Path(__file__).resolve().parents[1]
pins = load_script(ROOT / "deploy/docker/pins.py", "docker_pins_for_layout")
PACKAGES = ("cadenza", "services", "gateway", "training", "tools", "bench")
SERVICES = ("retrieval", "recommend", "generate")


def _modules() -> dict[str, pathlib.Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "_pb2" not in path.name:
                found[pins.module_name(path, ROOT)] = path
    return found


MODULES = _modules()


def _imports(path: pathlib.Path) -> set[str]:
    """Every dotted name the file's import statements mention (the images' walker's rule)."""
    return pins.imported_names(path.read_text())


def _local(name: str) -> str | None:
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in MODULES:
            return candidate
    return None


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        targets = {_local(i) for i in _imports(path)}
        # A package's own __init__ is imported on the way to any of its modules; only
        # edges to real modules (not the importer itself) make cycles.
        graph[name] = {t for t in targets if t and t != name and MODULES[t].name != "__init__.py"}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _third_party(path: pathlib.Path) -> set[str]:
    return {name.split(".")[0] for name in _imports(path)}


def test_there_are_no_import_cycles():
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("room", ["cadenza", "gateway", *(f"services.{s}" for s in SERVICES)])
def test_what_runs_in_production_never_imports_training_tools_or_torch(room):
    for name, path in MODULES.items():
        if name == room or name.startswith(room + "."):
            imported = _imports(path)
            bad = {i for i in imported if i.split(".")[0] in {"training", "tools", "bench",
                                                                 "tests", "torch"}}
            assert not bad, (name, bad)


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_no_other_service(service):
    others = {f"services.{s}" for s in SERVICES if s != service}
    for name, path in MODULES.items():
        if name.startswith(f"services.{service}."):
            crossing = {i for i in _imports(path) if any(i == o or i.startswith(o + ".")
                                                         for o in others)}
            assert not crossing, (name, crossing)


def test_torch_is_imported_only_by_training():
    users = {name for name, path in MODULES.items() if "torch" in _third_party(path)}
    assert users, "nothing imports torch: the check would pass vacuously"
    assert {u for u in users if not u.startswith(("training.", "bench."))} == set()


@pytest.mark.parametrize("service", SERVICES)
def test_servicers_never_import_storage_or_inference_libraries(service):
    path = ROOT / "services" / service / "servicer.py"
    assert not _third_party(path) & {"qdrant_client", "onnxruntime", "tritonclient",
                                     "soundfile", "librosa", "sqlite3"}, service
