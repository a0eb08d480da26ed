"""The package's layers: every import points down, and packages of one layer form no cycle.

The layers, lowest first (a module may import its own layer and the layers below it):

1. leaves: configuration, site names, version, device and input checks;
2. building blocks: plain-torch networks, metrics, datasets;
3. contracts: the protocols and the registry;
4. programs: the model families, their shared components and presets;
5. inference: ELBO terms, the refinement ELBO, GECO, schedules;
6. decomposition: `decompose` and the diagnostics built on it;
7. files: checkpoints, official weights, the shipped models;
8. evaluation and figures;
9. training;
10. the command line and the top-level package.

Every import counts, including imports inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pyro_emorl

PACKAGE = Path(pyro_emorl.__file__).resolve().parent

LAYERS: list[tuple[str, ...]] = [
    (
        "pyro_emorl.config",
        "pyro_emorl.sites",
        "pyro_emorl.version",
        "pyro_emorl.devices",
        "pyro_emorl.validation",
    ),
    ("pyro_emorl.nn", "pyro_emorl.metrics", "pyro_emorl.data"),
    ("pyro_emorl.protocols", "pyro_emorl.registry"),
    ("pyro_emorl.models", "pyro_emorl.presets"),
    ("pyro_emorl.infer",),
    ("pyro_emorl.decompose", "pyro_emorl.diagnostics"),
    ("pyro_emorl.io", "pyro_emorl.pretrained"),
    ("pyro_emorl.evaluation", "pyro_emorl.viz"),
    ("pyro_emorl.train",),
    ("pyro_emorl.cli", "pyro_emorl"),
]


def _unit(module: str) -> str:
    """The layer entry ``module`` belongs to (its longest matching prefix)."""
    units = [u for layer in LAYERS for u in layer]
    matches = [u for u in units if module == u or module.startswith(u + ".")]
    assert matches, f"{module} is in no layer: add it to LAYERS in {__file__}"
    return max(matches, key=len)


def _layer(unit: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if unit in layer)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:]) if "." in name else Path()
    base = PACKAGE / relative
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _imports(path: Path) -> list[tuple[str, int]]:
    """The pyro_emorl modules ``path`` imports, with line numbers."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("pyro_emorl")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not node.module.startswith("pyro_emorl"):
                continue
            for alias in node.names:
                # `from pyro_emorl import presets` imports the module pyro_emorl.presets.
                candidate = f"{node.module}.{alias.name}"
                found.append((candidate if _is_module(candidate) else node.module, node.lineno))
    return found


def _edges() -> list[tuple[str, str, str]]:
    """``(importer unit, imported unit, where)`` for every import between different units."""
    edges = []
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = _unit(_module_name(path))
        for imported, line in _imports(path):
            target = _unit(imported)
            if target != importer:
                edges.append((importer, target, f"{path.relative_to(PACKAGE.parent)}:{line}"))
    return edges


def test_every_import_points_down_the_layers() -> None:
    upward = [
        f"{where}: {importer} imports {imported}"
        for importer, imported, where in _edges()
        if _layer(imported) > _layer(importer)
    ]
    assert upward == []


def test_evaluation_never_imports_training() -> None:
    assert _layer("pyro_emorl.train") > _layer("pyro_emorl.evaluation")
    assert not [e for e in _edges() if e[0] == "pyro_emorl.evaluation" and "train" in e[1]]


def test_no_cycle_between_the_units_of_a_layer() -> None:
    graph: dict[str, set[str]] = {}
    for importer, imported, _ in _edges():
        graph.setdefault(importer, set()).add(imported)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted(unit for unit in graph if reaches(unit, unit, {unit}))
    assert cycles == []


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    # The test is only as good as its parser: a function-level import of the trainer from a
    # building block must be found and ranked as upward.
    source = tmp_path / "block.py"
    source.write_text("def f():\n    from pyro_emorl.train.loop import fit\n    return fit\n")
    ((imported, line),) = _imports(source)
    assert (imported, line) == ("pyro_emorl.train.loop", 2)
    assert _layer(_unit(imported)) > _layer(_unit("pyro_emorl.nn.encoder"))
