"""Layers point one way: no module imports from a layer above its own.

Every ``import`` and ``from ... import`` of the package is read from the source,
including the ones inside functions (a lazy import is still a dependency). The
layers, lowest first, are those drawn in ``docs/architecture.md``.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "allocator"

#: Components (``allocator.<name>``) by layer, lowest first; a component may import
#: its own layer and the layers below.
_NAMES = (
    "_enum _version exceptions _kernels",
    "_validate _group safety distributed",
    "network",
    "events",
    "ledger",
    "journal",
    "sourcing",
    "channels replenishment",
    "scenarios",
    "simulation",
    "compilation workers bench _reference",
    "commands cli __main__",
)
LAYERS: tuple[frozenset[str], ...] = (
    *(frozenset(f"allocator.{name}" for name in names.split()) for names in _NAMES),
    frozenset({"allocator"}),  # the top level re-exports from every layer
)


def _layer_of(component: str) -> int:
    for i, layer in enumerate(LAYERS):
        if component in layer:
            return i
    raise AssertionError(f"{component} is in no layer: add it to LAYERS and the docs")


def _component(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


def _module_of(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """``(line, component)`` of every import of the package in ``path``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "allocator":
                for alias in node.names:  # a submodule, or a name of the top level
                    sub = SRC / alias.name
                    is_module = sub.is_dir() or sub.with_suffix(".py").exists()
                    out.append(
                        (node.lineno, f"allocator.{alias.name}" if is_module else "allocator")
                    )
            elif node.module.startswith("allocator."):
                out.append((node.lineno, _component(node.module)))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "allocator" or alias.name.startswith("allocator."):
                    out.append((node.lineno, _component(alias.name)))
    return out


def test_no_module_imports_a_layer_above_it() -> None:
    wrong = []
    for path in sorted(SRC.rglob("*.py")):
        module = _module_of(path)
        own = _layer_of(_component(module))
        for line, target in _imports(path):
            if _layer_of(target) > own:
                wrong.append(f"{path.relative_to(SRC.parent)}:{line}: {module} -> {target}")
    assert not wrong, "imports from a higher layer:\n" + "\n".join(wrong)


def test_every_component_is_in_a_layer() -> None:
    components = {_component(_module_of(p)) for p in SRC.rglob("*.py")}
    for component in components:
        _layer_of(component)
