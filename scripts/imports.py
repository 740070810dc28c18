"""Draw Flock's imports and check that they follow the layers (docs/architecture.md).

Each module of the package is read with `ast` (nothing is imported or run) and put on a
layer; an import may only point down. Bottom to top:

    ground      flock.common < flock.protos < flock.certs < flock.docker_compat
    discovery   flock.discovery
    programs    flock.agent | flock.provisioner | flock.manager   (none imports another)
    commands    flock (the modules in flock/ and flock/systemd)

and inside flock.manager:

    cluster < observability < scheduler < placement < cron < api < app (app.py, ha.py,
    classic_flags.py, the server composition, ui/) < cli

Observability (metrics, request IDs) is manager-wide ground that reads the cluster's
records; the cluster page (ui/) is served by the app's HTTP composition, so it sits with
the app. Imports under `if TYPE_CHECKING:` are dependencies too and are checked alike,
but reported apart. An import of a part by its old top-level name (`from manager...`
instead of `from flock.manager...`) is an error of its own.

    python scripts/imports.py            # the folder-level graph: edges with counts
    python scripts/imports.py --dot      # the same as Graphviz dot
    python scripts/imports.py --check    # exit 1 listing every import against the layers
"""

from __future__ import annotations

import argparse
import ast
import sys
import tomllib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Rank of each part, bottom first. Parts of equal rank are siblings: neither may import
# the other.
PART_RANKS = {
    "flock.common": 0, "flock.protos": 1, "flock.certs": 2, "flock.docker_compat": 3,
    "flock.discovery": 4,
    "flock.agent": 5, "flock.provisioner": 5, "flock.manager": 5,
    "flock": 6,
}
# Inside flock.manager: a subpackage's layer by its name, bottom first; a module directly
# in manager/ is the app's unless named here.
MANAGER_RANKS = {"cluster": 0, "observability": 1, "scheduler": 2, "placement": 3, "cron": 4,
                 "api": 5, "app": 6, "ui": 6, "cli": 7}
MANAGER_MODULES = {
    # The create path's modules until they move into placement/ (issue 20).
    "placing": "placement", "global_placement": "placement",
}
# Where code outside the package may still use an old top-level name.
OTHER_FOLDERS = ("tests", "bench", "scripts", "deploy")


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, e.g. flock.manager.api.docker.system
    target: str  # the module imported (a package's __init__ for `from pkg import name`)
    path: str  # the importing file, relative to the repository
    line: int
    type_only: bool  # under `if TYPE_CHECKING:`


@dataclass(frozen=True)
class Violation:
    imp: Import
    why: str

    def __str__(self) -> str:
        kind = " (TYPE_CHECKING)" if self.imp.type_only else ""
        return f"{self.imp.path}:{self.imp.line}: {self.imp.source} -> {self.imp.target}" \
               f"{kind}: {self.why}"


def package_dirs(root: Path = ROOT) -> dict[str, str]:
    """Import name -> folder, as pyproject.toml maps them for setuptools: the one list of
    the package's parts (a new one must also get a rank in PART_RANKS: see unranked)."""
    config = tomllib.loads((root / "pyproject.toml").read_text())
    return config["tool"]["setuptools"]["package-dir"]


# ---- reading (I/O) ------------------------------------------------------------------

def module_files(root: Path, dirs: dict[str, str]) -> Iterator[tuple[str, Path]]:
    """(module name, file) for every module of the package. The `flock` folder holds only
    its own modules: the others are mapped into it by name, not by folder."""
    for name, folder in dirs.items():
        base = root / folder
        for path in sorted(base.rglob("*.py")):
            parts = path.relative_to(base).with_suffix("").parts
            if "__pycache__" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join((name, *parts)), path


def other_files(root: Path) -> Iterator[Path]:
    for folder in OTHER_FOLDERS:
        yield from (p for p in sorted((root / folder).rglob("*.py"))
                    if "__pycache__" not in p.parts)


def read_imports(root: Path = ROOT) -> list[Import]:
    dirs = package_dirs(root)
    known = {module for module, _ in module_files(root, dirs)}
    found = []
    for module, path in module_files(root, dirs):
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(), str(path))
        for node, type_only in walk_imports(tree):
            for target in targets(node, module, is_package, known):
                found.append(Import(module, target, str(path.relative_to(root)),
                                    node.lineno, type_only))
    return found


def read_old_names(root: Path = ROOT) -> list[Violation]:
    """Imports of a part by its old top-level name, in the package and in the tests,
    benchmarks, scripts and deployment tools around it."""
    dirs = package_dirs(root)
    old = {name.removeprefix("flock.") for name in dirs if name != "flock"}
    files = [path for _, path in module_files(root, dirs)] + list(other_files(root))
    out = []
    for path in files:
        tree = ast.parse(path.read_text(), str(path))
        for node, type_only in walk_imports(tree):
            for name in imported_names(node):
                if name.split(".")[0] in old:
                    imp = Import(str(path.relative_to(root)), name,
                                 str(path.relative_to(root)), node.lineno, type_only)
                    out.append(Violation(imp, f"old top-level name: use flock.{name}"))
    return out


# ---- the parse tree (pure) ------------------------------------------------------------

def walk_imports(tree: ast.AST) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement, at any depth (a function's lazy import is a dependency
    too), with whether it stands under `if TYPE_CHECKING:`."""
    def visit(node: ast.AST, type_only: bool) -> Iterator[tuple[ast.AST, bool]]:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, type_only
            return
        if isinstance(node, ast.If) and is_type_checking(node.test):
            for child in node.body:
                yield from visit(child, True)
            for child in node.orelse:
                yield from visit(child, type_only)
            return
        for child in ast.iter_child_nodes(node):
            yield from visit(child, type_only)
    yield from visit(tree, False)


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported_names(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The absolute module names a statement names (relative ones are left out: they
    cannot carry an old top-level name)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    return [node.module] if node.level == 0 and node.module else []


def targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool,
            known: set[str]) -> list[str]:
    """The package modules a statement imports: `from flock import certs` imports
    flock.certs, `from flock.certs import Identity` imports flock.certs."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = module if is_package else module.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{base}" if base else package
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                 for alias in node.names]
    return sorted({name for name in names if name == "flock" or name.startswith("flock.")})


# ---- layers (pure) --------------------------------------------------------------------

def part_of(module: str) -> str:
    """The part a module belongs to: its longest mapped prefix (flock.manager.api ->
    flock.manager; flock.cli -> flock)."""
    best = "flock"
    for part in PART_RANKS:
        if (module == part or module.startswith(part + ".")) and len(part) > len(best):
            best = part
    return best


def manager_layer(module: str) -> str:
    """flock.manager.scheduler.filters.health -> scheduler; flock.manager.ha -> app."""
    head = module.removeprefix("flock.manager").lstrip(".").partition(".")[0]
    if head in MANAGER_MODULES:
        return MANAGER_MODULES[head]
    return head if head in MANAGER_RANKS else "app"  # manager/__init__.py too


def unit_of(module: str) -> str:
    """The node of the folder-level graph: the part, or for the manager its layer."""
    part = part_of(module)
    return f"{part}.{manager_layer(module)}" if part == "flock.manager" else part


def judge(imp: Import) -> str | None:
    """Why `imp` goes against the layers; None when it points down or stays in its
    own part (or manager layer)."""
    source, target = part_of(imp.source), part_of(imp.target)
    if source != target:
        if PART_RANKS[target] > PART_RANKS[source]:
            return f"upward: {source} is below {target}"
        if PART_RANKS[target] == PART_RANKS[source]:
            return f"sideways: {source} and {target} are siblings"
        return None
    if source != "flock.manager":
        return None
    low, high = manager_layer(imp.source), manager_layer(imp.target)
    if MANAGER_RANKS[high] > MANAGER_RANKS[low]:
        return f"upward inside the manager: {low} is below {high}"
    return None


def unranked(parts: Iterable[str]) -> list[str]:
    """The package's parts that have no place in the layers yet."""
    return sorted(set(parts) - set(PART_RANKS))


def violations(imports: Iterable[Import]) -> list[Violation]:
    return [Violation(imp, why) for imp in imports if (why := judge(imp)) is not None]


def graph(imports: Iterable[Import]) -> Counter[tuple[str, str, bool]]:
    """(from, to, type_only) -> how many imports, between different units only."""
    edges: Counter[tuple[str, str, bool]] = Counter()
    for imp in imports:
        source, target = unit_of(imp.source), unit_of(imp.target)
        if source != target:
            edges[(source, target, imp.type_only)] += 1
    return edges


def unit_rank(unit: str) -> tuple[int, int]:
    if unit.startswith("flock.manager."):
        return PART_RANKS["flock.manager"], MANAGER_RANKS[unit.removeprefix("flock.manager.")]
    return PART_RANKS[unit], 0


def as_text(edges: Counter[tuple[str, str, bool]]) -> str:
    lines = []
    for type_only, title in ((False, "imports"), (True, "imports under TYPE_CHECKING")):
        chosen = sorted(((s, t, n) for (s, t, kind), n in edges.items() if kind == type_only),
                        key=lambda e: (unit_rank(e[0]), e[0], unit_rank(e[1]), e[1]))
        lines.append(f"# {title} ({len(chosen)} edges)")
        lines += [f"{s:32} -> {t:32} {n:4}" for s, t, n in chosen]
    return "\n".join(lines)


def as_dot(edges: Counter[tuple[str, str, bool]], bad: set[tuple[str, str]]) -> str:
    """The commands on top and the ground at the bottom (the ground's strict order held
    by invisible edges, as its parts do not import each other), the manager's layers in
    a box of their own, siblings side by side; TYPE_CHECKING imports dashed; the edges
    in `bad` (against the layers) red."""
    units = sorted({u for s, t, _ in edges for u in (s, t)}, key=unit_rank)
    lines = ["digraph flock {", "  node [shape=box, fontname=Helvetica];"]
    inside = [u for u in units if u.startswith("flock.manager.")]
    lines.append('  subgraph cluster_manager { label="flock.manager"; '
                 + " ".join(f'"{u}";' for u in inside) + " }")
    by_rank: dict[tuple[int, int], list[str]] = {}
    for unit in units:
        by_rank.setdefault(unit_rank(unit), []).append(unit)
    for same in by_rank.values():
        outside = [u for u in same if u not in inside]
        for group in (outside, [u for u in same if u in inside]):
            if len(group) > 1:
                lines.append("  { rank=same; " + " ".join(f'"{u}";' for u in group) + " }")
    floors = [same[0] for same in by_rank.values() if same[0] not in inside]
    for upper, lower in zip(floors[1:], floors, strict=False):
        lines.append(f'  "{upper}" -> "{lower}" [style=invis];')
    for (source, target, type_only), count in sorted(edges.items()):
        style = ["style=dashed"] if type_only else []
        if (source, target) in bad:
            style.append("color=red")
        attrs = ", ".join([f'label="{count}"', *style])
        lines.append(f'  "{source}" -> "{target}" [{attrs}];')
    lines.append("}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dot", action="store_true", help="print Graphviz dot")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 listing every import against the layers")
    args = parser.parse_args(argv)
    imports = read_imports()
    if args.check:
        found = violations(imports)
        old = read_old_names()
        missing = unranked(package_dirs())
        if missing:
            print(f"# parts without a layer (give them a rank in {Path(__file__).name}): "
                  + ", ".join(missing))
        for title, rows in (("against the layers", [v for v in found if not v.imp.type_only]),
                            ("against the layers, under TYPE_CHECKING",
                             [v for v in found if v.imp.type_only]),
                            ("by an old top-level name", old)):
            if rows:
                print(f"# {len(rows)} imports {title}")
                print("\n".join(str(v) for v in rows))
        if not found and not old and not missing:
            print(f"{len(imports)} imports, all down the layers")
        return 1 if found or old or missing else 0
    edges = graph(imports)
    bad = {(unit_of(v.imp.source), unit_of(v.imp.target)) for v in violations(imports)}
    print(as_dot(edges, bad) if args.dot else as_text(edges))
    return 0


if __name__ == "__main__":
    sys.exit(main())
