"""The package's shape: commands are thin and never import each other, and no
module imports itself back through others (imports inside functions count:
they run too, only later). Imports made for type checkers only do not."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parents[2] / "analyzer"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py") if not p.name.endswith(("_pb2.py", "_pb2_grpc.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
           (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The package's modules that `name` imports, wherever in it (not under `if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.add(sub if sub in known else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {m for m in out if m in known and m != name}


def import_graph() -> nx.DiGraph:
    modules = _modules()
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        graph.add_edges_from((name, dep) for dep in _imports(path, name, set(modules)))
    return graph


def test_the_walk_sees_imports_inside_functions():
    graph = import_graph()
    # analyzer/cli.py imports its commands only inside main(), by name; launch inside main()
    assert graph.has_edge("analyzer.cli", "analyzer.launch")
    assert graph.has_edge("analyzer.commands.build", "analyzer.pipeline")  # inside run()
    assert not graph.has_edge("analyzer.pipeline", "analyzer.sources")  # type hints only


def test_no_command_imports_another_command():
    graph = import_graph()
    commands = {n for n in graph if n.startswith("analyzer.commands.")}
    crossing = sorted((a, b) for a, b in graph.edges if a in commands and b in commands)
    assert crossing == [], f"commands importing commands (move the shared code to a library module): {crossing}"


def test_no_import_cycle_in_the_package():
    cycles = sorted(sorted(c) for c in nx.simple_cycles(import_graph()))
    assert cycles == [], f"import cycles: {cycles}"
