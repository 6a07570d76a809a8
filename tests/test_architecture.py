"""The import graph of the package stays a layered tree: surfaces (tools, evals) -> agent -> stores -> contracts.

Why: a cycle between agent/ and stores/ used to be hidden by imports inside functions, which made the import
order matter and every store `Any`. These tests read the source with `ast` (nothing is imported to build the
graph), so they fail on the commit that brings a cycle or a layer breach back, and say which modules.

Edges are the imports a module runs when it is imported: module level, including `if`/`try` blocks and class
bodies, but not `if TYPE_CHECKING:` blocks (never run) and not imports inside functions (run later). Importing
`interestlens.agent.models` from outside the agent package also runs `interestlens/agent/__init__.py`, so such an
import is an edge to the package too.
"""

from __future__ import annotations

import ast
import graphlib
import inspect
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from interestlens.agent.protocols import Behaviour, Embedder, Store
from interestlens.stores.behaviour import BehaviourStore
from interestlens.stores.chroma_store import ChromaStore

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "interestlens."

# What stores/ may import from agent/: contract modules with no project imports beyond each other.
CONTRACTS = {
    "interestlens.agent",  # the package __init__: re-exports config and models; InterestAgent only on first use
    "interestlens.agent.config",  # Settings: pydantic-settings only
    "interestlens.agent.errors",  # exception classes only
    "interestlens.agent.models",  # the pydantic domain model only
    "interestlens.agent.protocols",  # Embedder / Store / Behaviour protocols over models
}
# Function-level project imports allowed: (importing module, imported module), each with why.
LAZY_ALLOWED = {
    # PEP 562 re-export of the entry object, so that importing a contract module (what stores/ does) does not
    # run the service, which imports stores/. `from interestlens.agent import InterestAgent` works as before.
    ("interestlens.agent", "interestlens.agent.service"),
    # The CLI loads a heavy backend only in the command that needs it: `--help`, `--server URL` and the light
    # commands must not import torch, sentence-transformers, chromadb, lightgbm, the MCP SDK, uvicorn or the
    # OpenTelemetry SDK (seconds each; tests/test_cli.py runs `--server` with the local agent made to fail).
    ("interestlens.tools.cli", "interestlens.agent.tracing"),
    ("interestlens.tools.cli_context", "interestlens.agent.service"),
    ("interestlens.tools.cli_eval", "interestlens.evals.harness"),
    ("interestlens.tools.cli_eval", "interestlens.evals.fitting"),
    ("interestlens.tools.cli_eval", "interestlens.evals.suite"),
    ("interestlens.tools.cli_eval", "interestlens.evals.suite_cases"),
    ("interestlens.tools.cli_launch", "interestlens.tools.mcp_server"),
    ("interestlens.tools.cli_launch", "interestlens.tools.http_service"),
    ("interestlens.tools.cli_store", "interestlens.stores.chroma_store"),
    ("interestlens.tools.cli_store", "interestlens.stores.store_copy"),
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # an interestlens module it imports
    line: int
    in_function: bool


def _package_dirs() -> dict[str, Path]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return {pkg: ROOT / rel for pkg, rel in data["tool"]["setuptools"]["package-dir"].items()}


def _modules() -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    out: dict[str, Path] = {}
    for pkg, directory in _package_dirs().items():
        for path in sorted(directory.glob("*.py")):
            out[pkg if path.stem == "__init__" else f"{pkg}.{path.stem}"] = path
    return out


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The interestlens modules an import statement loads (a `from pkg import submodule` names the submodule)."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.startswith(PREFIX):
                yield alias.name
        return
    base = node.module or ""
    if node.level:  # relative: resolve against the importing module's package
        parts = module.split(".")
        pkg = parts if Path(MODULES[module]).stem == "__init__" else parts[:-1]
        base = ".".join(pkg[: len(pkg) - node.level + 1] + ([base] if base else []))
    if not base.startswith(PREFIX):
        return
    yield base
    for alias in node.names:
        if f"{base}.{alias.name}" in MODULES:
            yield f"{base}.{alias.name}"


def _imports(module: str) -> list[Import]:
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"), filename=str(MODULES[module]))
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                found.extend(Import(module, t, child.lineno, in_function) for t in _targets(module, child))
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                visit(child, True)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.orelse:  # the TYPE_CHECKING branch never runs
                    visit(ast.Module(body=[stmt], type_ignores=[]), in_function)
            else:
                visit(child, in_function)

    visit(tree, False)
    return found


IMPORTS = {m: _imports(m) for m in MODULES}


def _ancestors(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:k]) for k in range(2, len(parts))]


def _edges(module: str) -> set[str]:
    """What importing `module` runs: its module-level imports, and the packages above them it is not inside."""
    out: set[str] = set()
    for imp in IMPORTS[module]:
        if imp.in_function:
            continue
        inside = set(_ancestors(module)) | {module}
        out.update(p for p in [*_ancestors(imp.target), imp.target] if p in MODULES and p not in inside)
    out.discard(module)
    return out


GRAPH = {m: _edges(m) for m in MODULES}


def _layer(module: str) -> str:
    return module.split(".")[1]  # agent, stores, tools, evals, prompts


def test_every_package_is_walked() -> None:
    assert {_layer(m) for m in MODULES} == {"agent", "stores", "tools", "evals", "prompts"}
    assert "interestlens.agent.llm.base" in MODULES and "interestlens.stores.chroma_store" in MODULES
    # The graph sees what really runs: a package's __init__ for an import from outside it, and not the
    # TYPE_CHECKING-only import of the service in the agent package.
    assert "interestlens.agent" in GRAPH["interestlens.stores.ids"]
    assert "interestlens.agent" not in GRAPH["interestlens.agent.models"]
    assert "interestlens.agent.service" not in GRAPH["interestlens.agent"]


def test_import_graph_has_no_cycle() -> None:
    try:
        order = list(graphlib.TopologicalSorter(GRAPH).static_order())
    except graphlib.CycleError as e:
        pytest.fail(f"import cycle (each module imports the next): {' -> '.join(reversed(e.args[1]))}")
    assert set(order) == set(MODULES)


def test_stores_import_only_agent_contracts() -> None:
    breaches = [
        f"{i.module}:{i.line} imports {i.target}"
        for m in MODULES if _layer(m) == "stores"
        for i in IMPORTS[m]
        if (_layer(i.target) == "agent" and i.target not in CONTRACTS) or _layer(i.target) in ("tools", "evals")
    ]
    assert not breaches, f"stores/ may import only these agent modules {sorted(CONTRACTS)}:\n" + "\n".join(breaches)


def test_contracts_are_leaves() -> None:
    """The contract modules import nothing of the project but each other, so allowing them drags nothing in."""
    for module in CONTRACTS:
        assert GRAPH[module] <= CONTRACTS, f"{module} imports {sorted(GRAPH[module] - CONTRACTS)}"


def test_agent_never_imports_surfaces() -> None:
    breaches = [
        f"{i.module}:{i.line} imports {i.target}"
        for m in MODULES if _layer(m) == "agent"
        for i in IMPORTS[m]
        if _layer(i.target) in ("tools", "evals")
    ]
    assert not breaches, "\n".join(breaches)


def test_no_function_level_project_imports() -> None:
    lazy = [
        f"{i.module}:{i.line} imports {i.target}"
        for m in MODULES
        for i in IMPORTS[m]
        if i.in_function and (i.module, i.target) not in LAZY_ALLOWED
    ]
    assert not lazy, "move these imports to module top:\n" + "\n".join(lazy)


def test_public_names_import() -> None:
    from interestlens.agent import InterestAgent, Item, Settings
    from interestlens.agent.service import InterestAgent as Service

    assert InterestAgent is Service and Item.__module__ == "interestlens.agent.models" and Settings


# ---------------------------------------------------------------------------------------------------- protocols


def _members(protocol: type) -> list[str]:
    return sorted(
        n for n in vars(protocol) if not n.startswith("_") and callable(getattr(protocol, n))
    )


@pytest.mark.parametrize(("protocol", "impl"), [(Store, ChromaStore), (Behaviour, BehaviourStore)])
def test_implementation_matches_protocol_signatures(protocol: type, impl: type) -> None:
    """Each protocol method exists on the implementation with the same parameters (names, kinds, defaults);
    the implementation may add optional ones. `isinstance` on a runtime protocol checks names only."""
    problems: list[str] = []
    for name in _members(protocol):
        if not hasattr(impl, name):
            problems.append(f"{impl.__name__} has no {name}")
            continue
        want = inspect.signature(getattr(protocol, name)).parameters
        have = inspect.signature(getattr(impl, name)).parameters
        for pname, p in want.items():
            q = have.get(pname)
            if q is None or q.kind != p.kind or q.default != p.default:
                problems.append(f"{impl.__name__}.{name}: parameter {p} is {q} there")
        extra = [q for n, q in have.items() if n not in want and q.default is inspect.Parameter.empty
                 and q.kind not in (q.VAR_POSITIONAL, q.VAR_KEYWORD)]
        problems += [f"{impl.__name__}.{name}: extra required parameter {q}" for q in extra]
    assert not problems, "\n".join(problems)



def test_store_fixture_is_a_store(store: ChromaStore, embedder: Embedder) -> None:
    assert isinstance(store, Store) and isinstance(store.behaviour, Behaviour) and isinstance(embedder, Embedder)
