"""The package's imports point down its layers and form no cycle.

Read from the source with `ast` (every import, those inside functions too), so a lazy import that climbs a
layer or closes a loop fails here as surely as a top-level one. The layer table is README's "Layout".
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "hf_fma"

# README "Layout": lowest first. A module may import its own layer or a lower one.
LAYERS = {
    "foundation": ("geometry", "argparsing", "metadata", "multi_label", "run_folder", "runs", "configs", "metrics"),
    "data": ("hf_fma", "data", "hub_datasets", "demo"),
    # The feature extractor is saved beside each model as its code (so it sits in models/), but it is the
    # features' definition: the fbank and MFCC modules build on it.
    "features": ("models.feature_extraction_fma_ast", "audio", "fbank", "augment", "transforms", "fbank_cache", "fbank_stats"),
    "models": ("models",),
    "training and evaluation": (
        "arguments", "checkpoints", "trainer", "run_splits", "training", "multi_label_evaluation", "evaluation", "evaluation_report",
    ),
    "reporting, hub and inference": (
        "train", "cards", "results", "published", "evaluate_run", "plots", "export", "hub_checks", "hub",
        "audio_files", "track_windows", "prediction_output", "predict", "environment", "cli",
    ),
}  # fmt: skip
RANK = {name: rank for rank, names in enumerate(LAYERS.values()) for name in names}


def module_name(path: Path, package_dir: Path = PACKAGE_DIR) -> str:
    parts = path.relative_to(package_dir.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, package_dir: Path = PACKAGE_DIR) -> set[str]:
    """The hf_fma modules `path` imports, by absolute name (`from . import x` resolved as Python does)."""
    name = module_name(path, package_dir)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
    modules = {module_name(p, package_dir) for p in package_dir.rglob("*.py")}
    return {module for module in found if module in modules} - {name}


def layer_of(module: str) -> str:
    """The layer table's entry for a module: its longest listed name (hf_fma.models.cnn -> models); the
    package itself is hf_fma."""
    parts = module.split(".")[1:] or ["hf_fma"]
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in RANK:
            return ".".join(parts[:end])
    return ".".join(parts)


GRAPH = {module_name(path): imported_modules(path) for path in sorted(PACKAGE_DIR.rglob("*.py"))}


def test_every_module_has_a_layer():
    unplaced = sorted(name for name in GRAPH if layer_of(name) not in RANK and name != "hf_fma")
    assert not unplaced, f"modules missing from the layer table (README Layout): {unplaced}"


def test_imports_point_down():
    upward = [
        f"{importer} -> {imported}"
        for importer, imports in GRAPH.items()
        for imported in imports
        if RANK[layer_of(imported)] > RANK[layer_of(importer)]
    ]
    assert not upward, "imports of a higher layer:\n" + "\n".join(sorted(upward))


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle():
    # A package's __init__ importing its own submodules is how a package exposes them, not a cycle.
    graph = {a: {b for b in bs if not b.startswith(a + ".")} for a, bs in GRAPH.items()}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize(
    "graph, expected",
    [({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]), ({"a": {"b"}, "b": set(), "c": {"a", "b"}}, None)],
)
def test_find_cycle(graph, expected):
    assert find_cycle(graph) == expected


def test_lazy_and_relative_imports_are_read(tmp_path):
    package = tmp_path / "hf_fma"
    (package / "models").mkdir(parents=True)
    for name in ("__init__", "cards", "train", "models/__init__", "models/cnn"):
        (package / f"{name}.py").write_text("")
    low = package / "models" / "cnn.py"
    low.write_text("import torch\n\ndef f():\n    from hf_fma.cards import model_card\n    from ..train import main\n")
    assert imported_modules(low, package) == {"hf_fma.cards", "hf_fma.train"}
