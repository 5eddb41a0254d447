"""Imports only run downwards: each folder of pipeline/ may import its own modules and
those of the folders below it, in the order data flows, never those above."""

from __future__ import annotations

import ast
from pathlib import Path

PIPELINE = Path(__file__).resolve().parents[2] / "pipeline"

# Bottom to top. A folder may import from itself and any folder before it.
LAYERS = (
    "core",
    "protocol",
    "read",
    "prepare",
    "cache",
    "traffic",
    "spend",
    "dispatch",
    "workflow",
    "write",
    "state",
    "engines",
    "observe",
    "run",
    "report",
    "serve",
)
# The simulator stands beside the client: it may share the wire format, never the
# client's heuristics (limits, retries, caching).
SIMULATOR_MAY_USE = ("core", "protocol", "simulator")
# What pipeline/__init__.py holds (no code): any module may read it.
PACKAGE_CONSTANTS = frozenset({"__version__"})


def _imported_folders(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    folders = {name.split(".")[1] for name in names if name.startswith("pipeline.")}
    return folders - PACKAGE_CONSTANTS


def _modules() -> list[tuple[str, Path]]:
    return [
        (p.relative_to(PIPELINE).parts[0], p)
        for p in PIPELINE.rglob("*.py")
        if p.parent != PIPELINE
    ]


def test_every_module_lives_in_a_stage_folder() -> None:
    loose = [p.name for p in PIPELINE.glob("*.py") if p.name != "__init__.py"]
    assert loose == []
    folders = {p.name for p in PIPELINE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == {*LAYERS, "simulator"}


def test_each_folder_holds_a_few_modules_with_one_job() -> None:
    sizes = {
        folder.name: len([p for p in folder.glob("*.py") if p.name != "__init__.py"])
        for folder in PIPELINE.iterdir()
        if folder.is_dir() and folder.name != "__pycache__"
    }
    assert {name: n for name, n in sizes.items() if not 2 <= n <= 10} == {}


def test_imports_only_run_downwards() -> None:
    upward = []
    for folder, path in _modules():
        allowed = SIMULATOR_MAY_USE if folder == "simulator" else LAYERS[: LAYERS.index(folder) + 1]
        for imported in _imported_folders(path) - set(allowed):
            upward.append(f"{path.relative_to(PIPELINE)} imports pipeline.{imported}")
    assert upward == []


def test_the_engine_never_imports_the_cli() -> None:
    for _, path in _modules():
        assert "cli" not in {n.split(".")[0] for n in _top_level_imports(path)}, path


def _top_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found
