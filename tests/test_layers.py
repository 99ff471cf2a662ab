"""
The package's map holds: which layer may import which, no import cycle, no module past 600 lines.

The map is drawn in ``docs/development.md`` ("The map of the package"); these checks read the
source, so a new import that breaks the map fails here with the line that broke it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import airflow_provider_octanist

PACKAGE = "airflow_provider_octanist"
ROOT = Path(airflow_provider_octanist.__file__).parent
MAX_MODULE_LINES = 600


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def _imports(name: str) -> list[tuple[str, int]]:
    """Every provider module ``name`` imports, at any depth of its code, with the line that does."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from package import submodule`` imports the submodule; ``from module import name`` the module.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        found.extend((target, node.lineno) for target in targets if target in MODULES)
    return found


def test_only_the_hooks_speak_the_api_package() -> None:
    """``_api`` (requests and answers with no I/O) is the hooks' own: other layers go through a hook."""
    api = f"{PACKAGE}._api"
    allowed = (f"{PACKAGE}.hooks", api)
    offenders = [
        f"{MODULES[name].relative_to(ROOT.parent)}:{line} imports {target}"
        for name in MODULES
        if not name.startswith(allowed)
        for target, line in _imports(name)
        if target == api or target.startswith(f"{api}.")
    ]
    assert not offenders, "outside the hooks, import what you need from a layer below _api:\n" + "\n".join(
        offenders
    )


def test_no_provider_module_imports_one_that_imports_it_back() -> None:
    """No cycle, lazy and type-only imports included: each module can be read knowing only those below it."""
    graph = {name: {target for target, _ in _imports(name) if target != name} for name in MODULES}
    cycles = _cycles(graph)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(cycle) for cycle in cycles)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each in a stable order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


@pytest.mark.parametrize("name", sorted(MODULES))
def test_a_module_holds_one_idea_in_at_most_600_lines(name: str) -> None:
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{name} has {lines} lines: split it by idea (docs/development.md)"


def test_the_fake_server_imports_nothing_of_the_provider() -> None:
    """The fake is an independent oracle: a mistake in the client cannot hide itself in the fake too."""
    offenders = [
        f"{MODULES[name].relative_to(ROOT.parent)}:{line} imports {target}"
        for name in MODULES
        if name.startswith(f"{PACKAGE}.testing")
        for target, line in _imports(name)
        if not target.startswith(f"{PACKAGE}.testing")
    ]
    assert not offenders, "\n".join(offenders)


LAYERS = (
    (
        "the words and the pure pieces every layer uses",
        (
            "",
            ".statuses",
            ".exceptions",
            ".types",
            ".lineage",
            ".events",
            "._timestamps",
            "._checks",
            "._backoff",
            "._redact",
            "._deadline",
            "._lead_vocabulary",
            "._lead_bodies",
            "._keyset",
        ),
    ),
    ("the API with no I/O", ("._api",)),
    ("the hooks", (".hooks",)),
    ("the change feed", (".triggers._feed",)),
    ("the status wait and the watchers", (".triggers._status", ".triggers._watch")),
    (
        "what DAG files and Airflow name",
        (".triggers", ".operators", ".sensors", ".transfers", ".queues", ".sweep"),
    ),
)
"""The layers of docs/development.md's map, lowest first: a module imports from its own layer or lower."""


def _layer(name: str) -> int:
    """The index in ``LAYERS`` of the layer ``name`` belongs to (the longest prefix that names it)."""
    best, found = -1, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            full = PACKAGE + prefix
            if (name == full or name.startswith(full + ".")) and len(full) > best:
                best, found = len(full), index
    return found


def test_every_module_has_its_layer() -> None:
    lost = [name for name in MODULES if _layer(name) < 0 and not name.startswith(f"{PACKAGE}.testing")]
    assert not lost, f"add these modules to a layer of LAYERS and of docs/development.md's map: {lost}"


def test_a_module_imports_only_from_its_own_layer_or_below() -> None:
    offenders = [
        f"{MODULES[name].relative_to(ROOT.parent)}:{line} ({LAYERS[_layer(name)][0]}) imports {target} "
        f"({LAYERS[_layer(target)][0]})"
        for name in MODULES
        if _layer(name) >= 0
        for target, line in _imports(name)
        if _layer(target) > _layer(name)
    ]
    assert not offenders, "imports against the layers:\n" + "\n".join(offenders)
