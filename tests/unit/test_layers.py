"""The layers of docs/architecture.md, checked from the imports (scripts/imports.py): no
part imports one above it or a sibling, no manager layer one above it, and every part is
imported by its flock.* name."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_script():
    spec = importlib.util.spec_from_file_location("flock_imports_script",
                                                  ROOT / "scripts" / "imports.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


layers = _load_script()


def test_every_part_has_a_layer():
    assert layers.unranked(layers.package_dirs(ROOT)) == []


def test_no_import_goes_against_the_layers():
    found = layers.violations(layers.read_imports(ROOT))
    assert not found, "imports against the layers:\n" + "\n".join(map(str, found))


def test_every_part_is_imported_by_its_flock_name():
    found = layers.read_old_names(ROOT)
    assert not found, "\n".join(map(str, found))


def _imp(source: str, target: str, type_only: bool = False):
    return layers.Import(source, target, "x.py", 1, type_only)


@pytest.mark.parametrize("source,target", [
    ("flock.common.logs", "flock.protos.agent_pb2"),  # ground: strictly ordered
    ("flock.protos.limits", "flock.certs"),
    ("flock.certs.files", "flock.docker_compat.paths"),
    ("flock.docker_compat.hijack", "flock.discovery.etcd"),
    ("flock.discovery.token_cli", "flock.cli"),  # the commands are the top
    ("flock.agent.server", "flock.manager.cluster.agent_client"),  # siblings
    ("flock.provisioner.provision", "flock.agent.cli"),
    ("flock.manager.cluster.sync", "flock.manager.scheduler.scheduler"),
    ("flock.manager.cluster.state", "flock.manager.observability.metrics"),
    ("flock.manager.observability.metrics", "flock.manager.scheduler.filters"),
    ("flock.manager.scheduler.scheduler", "flock.manager.placement.create"),
    ("flock.manager.placing", "flock.manager.api.docker.errors"),  # placement, until moved
    ("flock.manager.api.docker.app", "flock.manager.ui.routes"),
    ("flock.manager.api.grpc", "flock.manager.app"),
    ("flock.manager.ha", "flock.manager.cli"),
])
def test_an_import_upward_or_sideways_is_refused(source, target):
    assert layers.judge(_imp(source, target)) is not None
    # A TYPE_CHECKING import is a dependency all the same.
    assert layers.violations([_imp(source, target, type_only=True)])


@pytest.mark.parametrize("source,target", [
    ("flock.protos.limits", "flock.common"),
    ("flock.docker_compat.stdcopy", "flock.protos"),
    ("flock.discovery.etcd", "flock.certs"),
    ("flock.agent.server", "flock.agent.http_bridge"),  # inside a part: free
    ("flock.cli", "flock.manager.cli"),
    ("flock.hollow", "flock.agent.runtimes.hollow"),
    ("flock.manager.observability.metrics", "flock.manager.cluster.model"),
    ("flock.manager.scheduler.scheduler", "flock.manager.observability"),
    ("flock.manager.placement.create", "flock.manager.scheduler.scheduler"),
    ("flock.manager.api.docker.containers", "flock.manager.placement.create"),
    ("flock.manager.app", "flock.manager.ha"),  # app.py, ha.py, ui: one layer
    ("flock.manager.ui.routes", "flock.manager.app"),
    ("flock.manager.http_front", "flock.manager.api.docker.app"),  # composes the servers
    ("flock.manager.cli", "flock.manager.classic_flags"),
])
def test_an_import_downward_is_allowed(source, target):
    assert layers.judge(_imp(source, target)) is None


def _statements(code: str, module: str = "flock.manager.api.docker.system",
                is_package: bool = False) -> list[tuple[list[str], bool]]:
    known = {"flock.certs", "flock.discovery", "flock.manager.api.docker.errors"}
    return [(layers.targets(node, module, is_package, known), type_only)
            for node, type_only in layers.walk_imports(ast.parse(code))]


def test_imports_are_read_wherever_they_stand():
    code = """
from typing import TYPE_CHECKING
from flock import certs, discovery
from . import errors
from ..grpc import serve
if TYPE_CHECKING:
    from flock.manager.app import Manager
else:
    import flock.common.logs
def later():
    from flock.manager.placement.create import place_and_create
"""
    assert _statements(code) == [
        ([], False),
        (["flock.certs", "flock.discovery"], False),
        (["flock.manager.api.docker.errors"], False),
        (["flock.manager.api.grpc"], False),
        (["flock.manager.app"], True),
        (["flock.common.logs"], False),
        (["flock.manager.placement.create"], False),
    ]


def test_an_old_top_level_name_is_found(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.setuptools.package-dir]\n"flock" = "flock"\n"flock.manager" = "manager"\n')
    for folder in ("flock", "manager", "tests"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "manager" / "app.py").write_text("from flock.manager import cli\n")
    (tmp_path / "tests" / "test_x.py").write_text(
        "import os\n\ndef test():\n    from manager.app import Manager\n")
    found = layers.read_old_names(tmp_path)
    assert [(v.imp.path, v.imp.line, v.imp.target) for v in found] == [
        ("tests/test_x.py", 4, "manager.app")]
