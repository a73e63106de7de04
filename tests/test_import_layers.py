"""The package's import structure: one-way layers, no cycles, methods only via the registry.

Every ``import`` in ``wsris/`` is read with ``ast`` (those inside functions too: a lazy
import is still a dependency) and resolved to a module of the package. The checks fail
when a cycle or an upward import comes back.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "wsris"

# Bottom first: a module may import modules of its own layer or of a lower one.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundations", ("wsris._version", "wsris._thread_policy", "wsris.errors", "wsris.device",
                     "wsris.strict", "wsris.safe_files", "wsris.progress", "wsris.url_fetch",
                     "wsris.colours",
                     "wsris.images", "wsris.registry")),
    ("data and text", ("wsris.data", "wsris.text", "wsris.domain")),
    ("weights", ("wsris.weights", "wsris.model_card")),
    ("building blocks", ("wsris.backbones", "wsris.blocks", "wsris.pipelines", "wsris.result")),
    ("training", ("wsris.training",)),
    ("api", ("wsris.api", "wsris.export")),
    ("evaluation", ("wsris.evaluation",)),
    ("method implementations", ()),  # wsris.methods.NAME.MODULE, see layer_of
    ("web demo", ("wsris.demo",)),
    ("command line", ("wsris.cli",)),
    ("facade", ("wsris",)),  # wsris/__init__.py: lazy names over the layers below
]
METHOD_IMPL = re.compile(r"^wsris\.methods\.([A-Za-z_]\w*)")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def layer_of(module: str) -> int:
    if module.endswith(".__main__"):
        return len(LAYERS) - 1  # entry points sit with the command line
    if module == "wsris":
        return [n for n, _ in LAYERS].index("facade")
    if module == "wsris.methods" or METHOD_IMPL.match(module):
        return [n for n, _ in LAYERS].index("method implementations")
    best, level = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if prefix == "wsris":
                continue
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, level = len(prefix), i
    assert level >= 0, f"{module} is in no layer: add it to LAYERS"
    return level


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _deepest(name: str) -> str:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def imports_of(module: str) -> set[str]:
    """The wsris modules ``module`` imports: ``from X import a`` is ``X.a`` when that is a
    module, else ``X``; ``import X.Y`` is the deepest module of ``X.Y``."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {_deepest(a.name) for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, path.name == "__init__.py", node)
            out |= {_deepest(f"{target}.{a.name}") for a in node.names}
    out.discard("")
    out.discard(module)
    return out


GRAPH = {m: imports_of(m) for m in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    assert _cycles(GRAPH) == []


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return [
        f"{a} ({LAYERS[layer_of(a)][0]}) imports {b} ({LAYERS[layer_of(b)][0]})"
        for a, targets in sorted(graph.items()) for b in sorted(targets)
        if layer_of(b) > layer_of(a)
    ]


def test_the_checker_sees_a_cycle_and_an_upward_import():
    # the checks above cannot pass by reading nothing
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]
    assert upward_imports({"wsris.training.loop": {"wsris.api", "wsris.errors"}}) == [
        "wsris.training.loop (training) imports wsris.api (api)"]
    assert "wsris.methods.chunk.gradcam" in GRAPH["wsris.methods.chunk.pipeline"]
    assert "wsris.weights.folder" in GRAPH["wsris.api"]
    order = ["wsris.errors", "wsris.registry", "wsris.weights.manifest", "wsris.backbones.vit",
             "wsris.training.loop", "wsris.api", "wsris.evaluation.loop",
             "wsris.methods.sag.model", "wsris.cli.segment", "wsris"]
    assert [layer_of(m) for m in order] == sorted(layer_of(m) for m in order)
    assert layer_of("wsris.registry") < layer_of("wsris.weights.sources") < layer_of(
        "wsris.training.config")


def test_imports_run_one_way_down_the_layers():
    # the only module above everything is the lazy facade, wsris/__init__.py
    assert upward_imports(GRAPH) == []


def test_training_models_blocks_and_data_never_import_api_cli_or_evaluation():
    lower = ("wsris.training", "wsris.backbones", "wsris.blocks", "wsris.data",
             "wsris.weights", "wsris.registry")
    higher = ("wsris.api", "wsris.cli", "wsris.evaluation")
    found = [f"{a} -> {b}" for a, targets in GRAPH.items() if a.startswith(lower)
             for b in targets if b.startswith(higher)]
    assert found == []


def test_only_its_own_folder_imports_a_methods_implementation():
    # the rest of wsris reaches a method through the registry (wsris.registry)
    leaks = []
    for a, targets in GRAPH.items():
        for b in targets:
            m = METHOD_IMPL.match(b)
            if m and not a.startswith(f"wsris.methods.{m.group(1)}"):
                leaks.append(f"{a} -> {b}")
    assert leaks == []


def test_hub_and_library_do_not_import_converters_or_the_command_line():
    assert not {m for m in GRAPH["wsris.weights.sources"] if "convert" in m}
    library = [m for m in GRAPH if not m.startswith("wsris.cli") and not m.endswith("__main__")]
    assert [m for m in library if any(t.startswith("wsris.cli") for t in GRAPH[m])] == []


# Modules that serve every method and so must not name one in their code.
METHOD_NEUTRAL = ("wsris.api", "wsris.weights", "wsris.registry", "wsris.model_card",
                  "wsris.export", "wsris.evaluation", "wsris.training", "wsris.cli",
                  "wsris.pipelines.base", "wsris.backbones", "wsris.blocks")


def _string_constants(tree: ast.AST) -> set[str]:
    docstrings = {
        id(n.body[0].value) for n in ast.walk(tree)
        if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
        and n.body and isinstance(n.body[0], ast.Expr)
        and isinstance(n.body[0].value, ast.Constant)
    }
    return {n.value for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings}


@pytest.mark.parametrize("prefix", METHOD_NEUTRAL)
def test_shared_code_names_no_method(prefix):
    from wsris.registry import method_names

    names = set(method_names())
    found = {
        m: sorted(_string_constants(ast.parse(p.read_text(encoding="utf-8"))) & names)
        for m, p in MODULES.items()
        if (m == prefix or m.startswith(prefix + ".")) and not m.endswith("__main__")
    }
    assert {m: s for m, s in found.items() if s} == {}
