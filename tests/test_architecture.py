"""The direction of the package's dependencies: a module imports only its own layer or the layers below it.

Every module under irec/ is read with ``ast`` (nothing is imported): all its imports count, those inside
functions too, ``from irec import x`` is the module irec.x, and a string that names an irec module in a file that
calls ``importlib.import_module`` counts as an import of that module (the codec, command and benchmark registries).
Importing irec.a.b is an edge to irec.a.b only, not also to the package irec.a that Python runs first.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "irec"

# lower may not import higher; a name stands for the module and everything below it
LAYERS: dict[str, int] = {
    "irec": 0, "irec.paths": 0, "irec.fileio": 0, "irec.provenance": 0, "irec.distributions": 0,
    "irec.metrics": 0, "irec.timing": 0, "irec.data": 0, "irec.published": 0,
    "irec.coder": 1,
    "irec.models": 2,
    "irec.settings": 3, "irec.checkpoint": 3, "irec.zoo": 3,
    "irec.codecs": 4,
    "irec.training": 5, "irec.evaluation": 5, "irec.environment": 5,
    "irec.bench": 6, "irec.cli": 6, "irec.explorer": 6, "irec.__main__": 6,
}
LAYER_NAMES = {0: "base", 1: "coder", 2: "models", 3: "settings/checkpoints/zoo", 4: "codecs",
               5: "training/evaluation/environment", 6: "benchmarks/command line/explorer"}
# training and evaluation share a layer but do not import each other, except the notebooks' pipeline, which trains
APART = ("irec.training", "irec.evaluation")
MAY_CROSS = {("irec.evaluation.pipeline", "irec.training")}
# packages that only the entry points (and they themselves) may import
TOP = ("irec.bench", "irec.cli")
ENTRY_POINTS = ("irec.__main__",)
NO_INNER_CYCLES = ("irec.coder", "irec.models", "irec.codecs")
MAX_LINES = 400


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    path: Path
    line: int
    how: str  # "at import time", "inside a function" or "named for importlib"

    def __str__(self) -> str:
        where = self.path.relative_to(REPO)
        return (f"{where}:{self.line}: {self.importer} (layer {layer_of(self.importer)}) imports {self.imported} "
                f"(layer {layer_of(self.imported)}, {LAYER_NAMES.get(layer_of(self.imported))}) {self.how}")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_of(module: str) -> int | None:
    owners = [name for name in LAYERS if within(module, name)]
    return LAYERS[max(owners, key=len)] if owners else None


def _existing(name: str) -> str | None:
    """The module ``name`` names, or the package that holds the name (irec.coder.CoderParams -> irec.coder)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _targets(node: ast.AST, importer: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # relative: from . import x, from ..y import z
            parts = importer.split(".") if is_package else importer.split(".")[:-1]
            parts = parts[: len(parts) - node.level + 1]
            base = ".".join(parts + ([node.module] if node.module else []))
        # from a import b: the module a.b if there is one, else the module a (b is a name defined in it)
        return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
    return []


def _imports_of(module: str, path: Path) -> list[Import]:
    source = path.read_text()
    tree, found = ast.parse(source, filename=str(path)), []
    uses_importlib = "import_module" in source

    def visit(node: ast.AST, in_function: bool) -> None:
        for target in _targets(node, module, path.name == "__init__.py"):
            resolved = _existing(target) if within(target, "irec") else None
            if resolved and resolved != module:
                how = "inside a function" if in_function else "at import time"
                found.append(Import(module, resolved, path, node.lineno, how))
        if uses_importlib and isinstance(node, ast.Constant) and isinstance(node.value, str):
            named = node.value.partition(":")[0]
            if named in MODULES and named != module:
                found.append(Import(module, named, path, node.lineno, "named for importlib"))
        inside = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    visit(tree, False)
    return found


GRAPH: dict[str, list[Import]] = {module: _imports_of(module, path) for module, path in MODULES.items()}
ALL_IMPORTS = [imp for imports in GRAPH.values() for imp in imports]


def _fail_if_any(what: str, found: list | None) -> None:
    if found:
        pytest.fail(f"{len(found)} {what}:\n" + "\n".join(f"  {item}" for item in found), pytrace=False)


def _find_cycle(modules: set[str]) -> list[Import] | None:
    """One import cycle among ``modules`` (iterative DFS, three colours) as the imports that close it, or None."""
    colour = dict.fromkeys(modules, 0)  # 0 unseen, 1 on the current path, 2 done
    for start in sorted(modules):
        if colour[start]:
            continue
        path: list[Import] = []
        stack = [(start, iter(GRAPH[start]))]
        colour[start] = 1
        while stack:
            module, edges = stack[-1]
            edge = next((e for e in edges if e.imported in modules), None)
            if edge is None:
                colour[module] = 2
                stack.pop()
                if path:
                    path.pop()
                continue
            if colour[edge.imported] == 1:  # back to a module on the path: a cycle
                names = [m for m, _ in stack]
                return path[names.index(edge.imported):] + [edge]
            if colour[edge.imported] == 0:
                colour[edge.imported] = 1
                path.append(edge)
                stack.append((edge.imported, iter(GRAPH[edge.imported])))
    return None


def test_the_graph_is_read_from_every_module_and_sees_imports_inside_functions():
    assert {"irec", "irec.coder", "irec.coder.pfr", "irec.evaluation.pipeline", "irec.__main__"} <= set(MODULES)
    assert "irec.training.runs" in {imp.imported for imp in GRAPH["irec.evaluation.pipeline"]}
    assert any(imp.how == "inside a function" for imp in ALL_IMPORTS)
    assert {imp.imported for imp in GRAPH["irec.__main__"]} >= {"irec.cli.codec", "irec.cli.train"}


def test_every_module_belongs_to_a_layer():
    assert [m for m in MODULES if layer_of(m) is None] == [], "add new modules to LAYERS in this test"


def test_no_module_imports_a_layer_above_its_own():
    layered = [imp for imp in ALL_IMPORTS if None not in (layer_of(imp.importer), layer_of(imp.imported))]
    upward = [imp for imp in layered if layer_of(imp.imported) > layer_of(imp.importer)]
    _fail_if_any("imports of a higher layer", upward)


def test_training_and_evaluation_do_not_import_each_other_except_the_notebooks_pipeline():
    def side(module: str) -> str | None:
        return next((name for name in APART if within(module, name)), None)

    crossing = [
        imp for imp in ALL_IMPORTS
        if side(imp.importer) and side(imp.imported) and side(imp.importer) != side(imp.imported)
        and not any(within(imp.importer, a) and within(imp.imported, b) for a, b in MAY_CROSS)
    ]
    _fail_if_any("imports between training and evaluation", crossing)


def test_the_library_never_imports_the_benchmarks_or_the_command_line():
    def allowed(imp: Import, top: str) -> bool:
        return within(imp.importer, top) or imp.importer in ENTRY_POINTS

    wrong = [imp for imp in ALL_IMPORTS for top in TOP if within(imp.imported, top) and not allowed(imp, top)]
    _fail_if_any("imports of irec.bench or irec.cli from the library", wrong)


@pytest.mark.parametrize("package", NO_INNER_CYCLES)
def test_the_coder_the_models_and_the_codecs_have_no_import_cycle_inside(package):
    cycle = _find_cycle({m for m in MODULES if within(m, package)})
    _fail_if_any(f"imports that form a cycle inside {package}", cycle)


def test_there_is_no_import_cycle():
    cycle = _find_cycle(set(MODULES))
    _fail_if_any("imports that form a cycle", cycle)


def test_the_cycle_finder_finds_a_cycle_and_names_its_imports(monkeypatch):
    a, b = Import("irec.x", "irec.y", PACKAGE / "x.py", 3, "at import time"), Import(
        "irec.y", "irec.x", PACKAGE / "y.py", 7, "inside a function")
    monkeypatch.setitem(GRAPH, "irec.x", [a])
    monkeypatch.setitem(GRAPH, "irec.y", [b])
    assert _find_cycle({"irec.x", "irec.y"}) == [a, b]
    monkeypatch.setitem(GRAPH, "irec.y", [])
    assert _find_cycle({"irec.x", "irec.y"}) is None


def _long_files() -> list[str]:
    files = sorted(p for folder in (PACKAGE, REPO / "tests") for p in folder.rglob("*.py"))
    lengths = {p.relative_to(REPO): len(p.read_text().splitlines()) for p in files}
    return [f"{path}: {n} lines" for path, n in lengths.items() if n > MAX_LINES]


def test_no_python_file_in_the_package_or_the_tests_is_over_400_lines():
    long = _long_files()
    _fail_if_any(f"files over {MAX_LINES} lines", long)
