"""The package's import structure: no import cycle among lsr_hf's modules (counting deferred imports inside
functions, not those under ``if TYPE_CHECKING:``), and the sweep modules read the job's file names from lsr_hf.job.outputs, never importing the
whole job (lsr_hf.job.train) when they are imported."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import lsr_hf

PACKAGE = Path(lsr_hf.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module, modules: set[str], package: str) -> set[str]:
    """lsr_hf modules the module imports anywhere: at module level and inside functions (a deferred import is
    still a dependency), except under ``if TYPE_CHECKING:``."""
    found: set[str] = set()
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _is_type_checking(node)
               for n in ast.walk(node)}  # fmt: skip
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.add(target if target in modules else base)
    return {m for m in found if m in modules}


def _import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(files)
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        graph[name] = _imports(ast.parse(path.read_text(encoding="utf-8")), modules, package) - {name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each strongly connected component of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def strongconnect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph[node]:
            if succ not in index:
                strongconnect(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            strongconnect(node)
    return components


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def _without_package_inits(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """A package's __init__ re-exports its submodules; an edge from a submodule to its own package (or from
    the package to its submodules) is that re-export, not a dependency between modules."""
    out = {}
    for name, targets in graph.items():
        out[name] = {t for t in targets if not name.startswith(t + ".") and not t.startswith(name + ".")}
    return out


def test_no_import_cycle_among_the_modules() -> None:
    graph = _without_package_inits(_import_graph())
    assert "lsr_hf.sweep.run" in graph and "lsr_hf.sweep.ray_backend" in graph
    assert _cycles(graph) == []


def test_the_sweep_modules_do_not_import_the_job() -> None:
    graph = _import_graph()
    sweep = {name: targets for name, targets in graph.items() if name.startswith("lsr_hf.sweep")}
    assert len(sweep) >= 10
    # one place runs a job (train_planned, a deferred import); the others read only its files, through outputs
    assert {name for name, targets in sweep.items() if "lsr_hf.job.train" in targets} == {"lsr_hf.sweep.execute"}
    code = "import sys, lsr_hf.sweep, lsr_hf.sweep.report; print('lsr_hf.job.train' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# ------------------------------------------------------------------------- docs/ARCHITECTURE.md is kept true

ARCHITECTURE = PACKAGE.parent / "docs" / "ARCHITECTURE.md"
FLOOR_ROW = re.compile(r"^\| (\d) \| .*\| (`lsr_hf/[^|]*) \|$")


def _floors() -> dict[str, int]:
    """{module or package prefix: floor} from the floors table of docs/ARCHITECTURE.md."""
    floors = {}
    for line in ARCHITECTURE.read_text(encoding="utf-8").splitlines():
        match = FLOOR_ROW.match(line)
        if match:
            for path in re.findall(r"`(lsr_hf/[^`]+)`", match.group(2)):
                floors[path.removesuffix(".py").rstrip("/").replace("/", ".")] = int(match.group(1))
    return floors


def _floor_of(module: str, floors: dict[str, int]) -> int | None:
    for prefix, floor in floors.items():
        if module == prefix or module.startswith(prefix + "."):
            return floor
    return None


def test_every_path_the_architecture_page_names_exists() -> None:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    paths = set(re.findall(r"`((?:lsr_hf|scripts|tests|recipes|sweeps)/[^`*]*)`", text))
    assert len(paths) > 50
    assert [p for p in sorted(paths) if not (PACKAGE.parent / p).exists()] == []


def test_every_module_is_on_the_architecture_page_and_on_a_floor() -> None:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    floors = _floors()
    assert set(floors.values()) == {0, 1, 2, 3}
    modules = [p for p in PACKAGE.rglob("*.py") if "modules" not in p.relative_to(PACKAGE).parts]  # evaluate modules
    missing = [str(p.relative_to(PACKAGE.parent)) for p in modules if f"`{p.relative_to(PACKAGE.parent)}`" not in text]
    assert missing == []
    unplaced = [m for m in _import_graph() if m != "lsr_hf" and _floor_of(m, floors) is None]
    assert unplaced == []


def test_no_module_imports_from_a_higher_floor() -> None:
    floors = _floors()
    graph = _without_package_inits(_import_graph())
    upward = [
        f"{module} (floor {_floor_of(module, floors)}) imports {target} (floor {_floor_of(target, floors)})"
        for module, targets in sorted(graph.items()) if module != "lsr_hf"
        for target in sorted(targets)
        if _floor_of(target, floors) > _floor_of(module, floors)
    ]  # fmt: skip
    assert upward == []
    assert _floor_of("lsr_hf.losses", floors) == 0 and _floor_of("lsr_hf.sweep.run", floors) == 3
