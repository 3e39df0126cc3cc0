"""The layers of ``src/lcsc``, lowest first (docs/guide/architecture.md): a module may import its own package and the
layers below its own, never a layer above, nor another package of its own layer (the packages of a layer are
independent of each other). Every top-level package and module of ``src/lcsc`` must be placed in :data:`LAYERS`.

Every import counts: top-level and lazy ones inside functions, ``TYPE_CHECKING`` ones, and relative ones."""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "lcsc"

# "lcsc" is the package's own __init__ (its public names: CheckpointStack, Coefficients, …); "__main__" is
# ``python -m lcsc``. A new package or top-level module goes into the lowest layer above everything it imports.
LAYERS: list[tuple[str, ...]] = [
    ("errors", "units", "progress", "spaces"),  # foundation: no lcsc import
    ("atomic", "precision", "devices", "protocol", "rates", "metadata"),  # foundation over the modules above
    ("data", "diffusion", "consistency", "report"),  # data; the two model families' math; tables and figures
    ("models",),
    ("generate",),
    ("generate_grad", "checkpoints"),
    ("training", "metrics"),
    ("merge", "objectives"),
    ("search", "lcsc"),
    ("experiment",),  # what the experiments share: DemoConfig, the scorer, the stages, the headlines
    ("demo", "distill"),  # the experiments: neither imports the other
    ("analysis",),
    ("cli",),
    ("__main__",),
]

# (package, name) that any layer may import: the version string (below the facade lcsc/__init__.py only lazily,
# inside a function: a top-level import there would meet a half-initialised package)
ANY_LAYER = {("lcsc", "__version__")}


def layer_index(layers: Sequence[Sequence[str]]) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, names in enumerate(layers):
        for name in names:
            assert name not in index, f"{name} is in layers {index[name]} and {i}"
            index[name] = i
    return index


def unit_of(path: Path, root: Path) -> str:
    """The top-level package or module a file belongs to ("lcsc" for the package's own __init__.py)."""
    parts = path.relative_to(root).parts
    if len(parts) > 1:
        return parts[0]
    return "lcsc" if parts[0] == "__init__.py" else parts[0][:-3]


def units(root: Path) -> set[str]:
    """Every top-level package (a folder holding Python files) and module under ``root``."""
    return {unit_of(p, root) for p in root.rglob("*.py") if "__pycache__" not in p.parts}


def imports(path: Path, root: Path) -> Iterator[tuple[int, str, str]]:
    """(line, imported unit, imported name) of every import of the ``lcsc`` package in one file."""
    parts = path.relative_to(root).parts
    package = ["lcsc", *parts[:-1]]  # the file's package, which relative imports start from
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                dotted = alias.name.split(".")
                if dotted[0] == "lcsc":
                    yield node.lineno, dotted[1] if len(dotted) > 1 else "lcsc", alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if node.level > len(package):
                    raise AssertionError(f"{path}:{node.lineno}: a relative import beyond the lcsc package")
                module = package[: len(package) - node.level + 1] + (node.module.split(".") if node.module else [])
            else:
                module = (node.module or "").split(".")
            if module[0] != "lcsc":
                continue
            if len(module) > 1:
                yield node.lineno, module[1], ".".join(module)
                continue
            for alias in node.names:  # from lcsc import protocol (a module) / __version__ (a name of the facade)
                is_unit = (root / alias.name).is_dir() or (root / f"{alias.name}.py").is_file()
                yield node.lineno, alias.name if is_unit else "lcsc", f"lcsc.{alias.name}"


def violations(root: Path, layers: Sequence[Sequence[str]]) -> list[str]:
    """One line per import that points up a layer, or across to another package of the same layer."""
    index, out = layer_index(layers), []
    for path in sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts):
        unit = unit_of(path, root)
        rel = path.relative_to(root.parent)
        for line, target, name in imports(path, root):
            if target == unit or (target, name.rpartition(".")[2]) in ANY_LAYER and name.count(".") == 1:
                continue
            if unit not in index or target not in index:
                continue  # reported by test_every_package_is_placed
            mine, theirs = index[unit], index[target]
            if theirs > mine:
                out.append(f"{rel}:{line}: {unit} (layer {mine}) imports {name} from {target} (layer {theirs}): "
                           "an upward import; move what both need down a layer, or pass it in")
            elif theirs == mine:
                out.append(f"{rel}:{line}: {unit} imports {name} from {target}, another package of its own layer "
                           f"{mine} {tuple(layers[mine])}: the packages of a layer are independent")
    return out


def unplaced(root: Path, layers: Sequence[Sequence[str]]) -> tuple[list[str], list[str]]:
    """(packages and modules under ``root`` missing from ``layers``, entries of ``layers`` that no longer exist)."""
    index, have = layer_index(layers), units(root)
    return sorted(have - set(index)), sorted(set(index) - have)


def test_every_package_and_top_level_module_is_placed_in_a_layer():
    missing, stale = unplaced(SRC, LAYERS)
    assert not missing, f"src/lcsc/{{{', '.join(missing)}}}: not in tests/test_import_layers.py's LAYERS; place " \
                        "each in the lowest layer above everything it imports"
    assert not stale, f"LAYERS names {', '.join(stale)}, which src/lcsc no longer holds"


def test_no_module_imports_a_higher_layer_or_another_package_of_its_own():
    found = violations(SRC, LAYERS)
    assert not found, "\n".join(found)


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / "lcsc" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "lcsc" / name).write_text(text)
    return root / "lcsc"


def test_the_check_names_file_line_and_packages_of_upward_sideways_lazy_and_relative_imports(tmp_path):
    root = _tree(tmp_path, {
        "__init__.py": "from lcsc.low import x\n__version__ = '1'\n",
        "low.py": "def f():\n    from lcsc import __version__\n    return __version__\n",
        "models/__init__.py": "",
        "models/build.py": "from lcsc.low import x\n\n\ndef f():\n    from lcsc.checkpoints.format import y\n",
        "models/rel.py": "from ..checkpoints import format\nfrom . import build\n",
        "checkpoints/__init__.py": "from lcsc.models import build\n",
        "checkpoints/format.py": "",
        "demo/__init__.py": "import lcsc.distill.run\n",
        "distill/run.py": "",
        "extra.py": "",
    })
    layers = [("low",), ("models",), ("checkpoints",), ("lcsc",), ("demo", "distill")]
    assert unplaced(root, layers) == (["extra"], [])
    assert unplaced(root, [*layers, ("gone",)])[1] == ["gone"]
    found = violations(root, layers)
    assert len(found) == 3, found
    sideways, lazy, relative = found  # by file
    assert lazy.startswith("lcsc/models/build.py:5: models (layer 1) imports lcsc.checkpoints.format from "
                           "checkpoints (layer 2): an upward import")
    assert relative.startswith("lcsc/models/rel.py:1: models (layer 1) imports lcsc.checkpoints from checkpoints")
    assert sideways.startswith("lcsc/demo/__init__.py:1: demo imports lcsc.distill.run from distill, another package "
                               "of its own layer 4")
    # the version string may be read from any layer; any other name of the facade may not
    (root / "low.py").write_text("def f():\n    from lcsc import __version__, CheckpointStack\n")
    [facade] = [v for v in violations(root, layers) if v.startswith("lcsc/low.py")]
    assert facade.startswith("lcsc/low.py:2: low (layer 0) imports lcsc.CheckpointStack from lcsc (layer 3)")


def test_type_checking_imports_count(tmp_path):
    root = _tree(tmp_path, {
        "low.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from lcsc.high import Thing\n",
        "high.py": "",
    })
    assert violations(root, [("low",), ("high",)]) == [
        "lcsc/low.py:3: low (layer 0) imports lcsc.high from high (layer 1): an upward import; move what both need "
        "down a layer, or pass it in"]
