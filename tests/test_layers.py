"""The import graph of rharm_lib: no upward import between layers, no cycle between modules.

The layers are those of docs/ARCHITECTURE.md, lowest first. A module may import modules of
its own layer or of lower layers; every in-package import counts, at the top of a module or
inside a function (a function-level import is where a cycle hides). Imports guarded by
``if TYPE_CHECKING:`` count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "rharm_lib"

#: lowest first; a module belongs to the first layer with an entry equal to it or a prefix
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("errors", "batch", "seed", "paths", "provenance", "device", "outputs")),
    ("data", ("data",)),
    ("model", ("model", "losses", "metrics", "baselines")),
    # fullres: full-resolution inference (built on inference, not on the trainer)
    ("inference", ("checkpoint", "config_io", "inference", "fullres", "weights")),
    ("evaluate", ("evaluate", "calibration", "diagnose", "bench_infer")),
    ("train", ("train",)),
    ("study", ("study",)),
    ("cli", ("cli",)),
]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path, root: Path) -> set[str]:
    """Every ``rharm_lib`` module ``path`` imports (absolute or relative, any depth).

    ``from pkg import name`` counts as an import of ``pkg.name`` when that is a module of the
    package, else of ``pkg``.
    """
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), filename=str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == root.name}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != root.name:
                continue
            for a in node.names:
                sub = f"{target}.{a.name}"
                rel = Path(*sub.split(".")[1:])
                is_module = (root / rel).with_suffix(".py").is_file() or (root / rel).is_dir()
                out.add(sub if is_module else target)
    return out


def import_graph(root: Path = PKG) -> dict[str, set[str]]:
    """module -> the package modules it imports (the package ``__init__`` files included)."""
    return {
        module_name(p, root): imports_of(p, root) - {module_name(p, root)}
        for p in sorted(root.rglob("*.py"))
    }


def layer_of(module: str, layers=LAYERS) -> int | None:
    """The layer index of ``rharm_lib.<...>`` (None for the package root itself)."""
    rest = module.split(".", 1)[1] if "." in module else ""
    if not rest:
        return None
    for i, (_, prefixes) in enumerate(layers):
        if any(rest == p or rest.startswith(p + ".") for p in prefixes):
            return i
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS and ARCHITECTURE.md")


def violations(graph: dict[str, set[str]], layers=LAYERS) -> list[str]:
    """Upward imports and import cycles in ``graph``, as readable lines (empty = clean)."""
    out = []
    for mod, deps in sorted(graph.items()):
        lm = layer_of(mod, layers)
        for dep in sorted(deps):
            ld = layer_of(dep, layers)
            if lm is not None and ld is not None and ld > lm:
                out.append(
                    f"upward import: {mod} ({layers[lm][0]}) imports {dep} ({layers[ld][0]})"
                )
    # cycles: depth-first search; a package importing its own submodules (``__init__``
    # re-exports) is an edge like any other
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                cyc = stack[stack.index(d) :] + [d]
                out.append("import cycle: " + " -> ".join(cyc))
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    return out


def test_rharm_lib_has_no_upward_import_and_no_cycle():
    graph = import_graph()
    assert "rharm_lib.inference" in graph and len(graph) > 40
    assert violations(graph) == []


def test_every_module_has_a_layer():
    for mod in import_graph():
        layer_of(mod)


def test_deployed_code_does_not_import_the_trainer():
    graph = import_graph()

    def closure(m: str) -> set[str]:
        seen, todo = set(), [m]
        while todo:
            for d in graph.get(todo.pop(), ()):
                if d not in seen:
                    seen.add(d)
                    todo.append(d)
        return seen

    for m in ("rharm_lib.inference", "rharm_lib.cli.harmonize"):
        assert not {d for d in closure(m) if d.startswith("rharm_lib.train")}, m


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def test_checker_finds_a_function_level_upward_import(tmp_path):
    pkg = _write(
        tmp_path / "rharm_lib",
        {
            "__init__.py": "",
            "errors.py": "",
            "inference.py": "def f():\n    from .train.engine import build\n",
            "train/__init__.py": "",
            "train/engine.py": "from ..inference import f\nfrom rharm_lib import errors\n",
        },
    )
    found = violations(import_graph(pkg))
    assert any(
        "upward import: rharm_lib.inference (inference) imports rharm_lib.train.engine" in v
        for v in found
    ), found
    assert any(v.startswith("import cycle:") for v in found), found


def test_checker_finds_a_cycle_within_a_layer(tmp_path):
    pkg = _write(
        tmp_path / "rharm_lib",
        {
            "__init__.py": "",
            "data/__init__.py": "",
            "data/photos.py": "def load():\n    from . import pack\n",
            "data/pack.py": "from .photos import load\n",
            "data/imageio.py": "import rharm_lib.errors\n",
            "errors.py": "",
        },
    )
    found = violations(import_graph(pkg))
    assert found == [
        "import cycle: rharm_lib.data.pack -> rharm_lib.data.photos -> rharm_lib.data.pack"
    ]


def test_checker_rejects_a_module_outside_the_layers(tmp_path):
    pkg = _write(tmp_path / "rharm_lib", {"__init__.py": "", "utils.py": ""})
    with pytest.raises(AssertionError, match="utils belongs to no layer"):
        violations(import_graph(pkg))
