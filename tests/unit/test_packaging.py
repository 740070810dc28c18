"""A plain `pip install .` must be enough to run every program: the test extras that
the suite itself runs with must not hide a missing runtime dependency."""

from __future__ import annotations

import ast
import pathlib
import re
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[2]
PRODUCT = ["flock", "common", "manager", "agent", "provisioner", "discovery", "protos", "certs",
           "docker_compat"]
# Import name -> distribution name, for the third-party packages the programs use.
DISTRIBUTION = {
    "aiohttp": "aiohttp",
    "grpc": "grpcio",
    "google": "protobuf",
    "etcd3": "python3-etcd3",
    "cryptography": "cryptography",
    "re2": "google-re2",
}
# Imported only inside a function by a developer tool, never by the programs.
DEV_ONLY = {"grpc_tools", "yaml"}


def imported_top_levels(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_every_third_party_import_is_a_runtime_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {re.split(r"[<>=!~\[ ]", dep, maxsplit=1)[0].lower()
                for dep in project["dependencies"]}
    missing: dict[str, set[str]] = {}
    for package in PRODUCT:
        for path in (ROOT / package).rglob("*.py"):
            for name in imported_top_levels(path) - set(PRODUCT) - DEV_ONLY:
                if name in sys.stdlib_module_names:
                    continue
                dist = DISTRIBUTION.get(name, name)
                if dist.lower() not in declared:
                    missing.setdefault(dist, set()).add(str(path.relative_to(ROOT)))
    assert not missing, f"imported but not in [project].dependencies: {missing}"


def test_machine_bundle_builds_from_every_folder_the_package_maps():
    """`flock machine` builds the wheel it installs from these files; a folder left out
    (as common/ was when the packages moved under one name) makes a wheel whose
    `flock join` fails on the machine with ModuleNotFoundError."""
    from flock.provisioner.bundle import source_files

    mapped = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"]
    tops = {p.relative_to(ROOT).parts[0] for p in source_files(ROOT)}
    assert set(mapped.values()) <= tops
    assert {"pyproject.toml", "setup.py"} <= tops
