"""The shipped systemd units: they parse, render() moves them to another layout, and the
command line they build from the example env files is one `flock` accepts."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flock.agent.cli import check_address, parse_labels
from flock.cli import build_parser
from flock.common.systemd import UNITS, render, unit_name, unit_text
from flock.manager.cli import config_from_args

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "deploy" / "systemd"


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections -> (key, value) in order, the way systemd reads a unit: comments, blank
    lines, backslash continuations, repeated keys. AssertionError for anything else."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    lines = iter(text.splitlines())
    for line in lines:
        if not line.strip() or line.lstrip().startswith(("#", ";")):
            continue
        while line.endswith("\\"):
            line = line[:-1] + " " + next(lines).strip()
        header = re.fullmatch(r"\[(\w+)\]", line)
        if header:
            current = sections.setdefault(header.group(1), [])
            continue
        assert current is not None, f"setting before any section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Za-z]+", key), f"not KEY=VALUE: {line!r}"
        current.append((key, value.strip()))
    return sections


def values(sections, section: str, key: str) -> list[str]:
    return [v for k, v in sections.get(section, []) if k == key]


def one(sections, section: str, key: str) -> str:
    found = values(sections, section, key)
    assert len(found) == 1, f"{section}/{key}: {found}"
    return found[0]


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep and re.fullmatch(r"[A-Z_]+", key), f"{path.name}: bad line {line!r}"
            env[key] = value
    return env


def exec_start_argv(sections, env_file: Path) -> list[str]:
    """ExecStart as systemd runs it: Environment= defaults, then the EnvironmentFile on
    top; `${VAR}` is one word, `$VAR` splits on whitespace."""
    env = dict(v.split("=", 1) for v in values(sections, "Service", "Environment"))
    env.update(read_env_file(env_file))
    argv = []
    for word in shlex.split(one(sections, "Service", "ExecStart")):
        whole = re.fullmatch(r"\$\{(\w+)\}", word)
        split = re.fullmatch(r"\$(\w+)", word)
        if whole:
            argv.append(env.get(whole.group(1), ""))
        elif split:
            argv.extend(env.get(split.group(1), "").split())
        else:
            assert "$" not in word, f"variable inside a word: {word!r}"
            argv.append(word)
    return argv


@pytest.mark.parametrize("unit", UNITS)
def test_default_units_parse_and_run_flock_from_the_venv(unit):
    sections = parse_unit(unit_text(unit))
    assert set(sections) == {"Unit", "Service", "Install"}
    command = "manage" if "manager" in unit else "join"
    short = command.replace("manage", "manager").replace("join", "agent")
    assert one(sections, "Service", "ExecStart").startswith(
        f"/opt/flock/venv/bin/flock $FLOCK_GLOBAL_OPTS {command} ")
    assert one(sections, "Service", "EnvironmentFile") == f"/etc/flock/{short}.env"
    assert one(sections, "Service", "Restart") == "on-failure"
    assert one(sections, "Install", "WantedBy") == "multi-user.target"
    for key, value in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                       ("ProtectHome", "yes")):
        assert one(sections, "Service", key) == value
    assert "--tlsverify" in one(sections, "Service", "ExecStart")


def test_agent_unit_keeps_what_the_exec_runtime_and_the_engine_socket_need():
    sections = parse_unit(unit_text("agent"))
    service = dict(sections["Service"])
    for key in ("ProtectControlGroups", "PrivateDevices", "RestrictNamespaces",
                "SystemCallFilter", "CapabilityBoundingSet", "DeviceAllow", "ProtectClock",
                "MemoryDenyWriteExecute", "PrivateTmp", "InaccessiblePaths"):
        assert key not in service, f"{key} would break the exec runtime's containers"
    assert service["KillMode"] == "process"
    assert set(service["ReadWritePaths"].split()) == {"/opt/flock/state", "/opt/flock/run"}
    assert "--state-dir /opt/flock/state" in service["ExecStart"]
    assert service["ExecStartPre"] == "+/bin/mkdir -p /opt/flock/state /opt/flock/run"


def test_manager_unit_is_tight():
    service = dict(parse_unit(unit_text("manager"))["Service"])
    for key in ("PrivateTmp", "PrivateDevices", "ProtectControlGroups", "RestrictNamespaces",
                "ProtectKernelTunables"):
        assert service[key] == "yes"
    assert service["CapabilityBoundingSet"] == "CAP_NET_BIND_SERVICE"


def test_render_moves_every_path_and_nothing_else(tmp_path):
    install, etc = "/etc/flock/inside", "/srv/flock-etc"  # install below the default etc
    for unit in UNITS:
        text = render(unit, install, etc)
        assert "/opt/flock" not in text
        assert re.findall(r"/etc/flock(?!/inside)", text) == []
        sections = parse_unit(text)
        assert one(sections, "Service", "ExecStart").startswith(f"{install}/venv/bin/flock $")
        assert one(sections, "Service", "EnvironmentFile").startswith(f"{etc}/")
        assert render(unit) == unit_text(unit)
        # The same number of lines and settings: only paths moved.
        assert len(text.splitlines()) == len(unit_text(unit).splitlines())
    agent = parse_unit(render("agent", install + "/", etc))
    assert one(agent, "Service", "ReadWritePaths") == f"{install}/state {install}/run"
    assert f"FLOCK_TLSCERT={etc}/certs/cert.pem" in values(agent, "Service", "Environment")


@pytest.mark.parametrize("install, message", [
    ("opt/flock", "must be an absolute path"),
    ("", "must be an absolute path"),
    ("/opt/my flock", "contains a space"),
    ("/opt/100%", "contains a space or one of %"),
    ("/opt/$HOME", "contains a space or one of"),
    ("/", "folder of its own"),
    ("/opt/../etc", "without '..'"),
])
def test_render_refuses_paths_systemd_would_misread(install, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        render("manager", install, "/etc/flock")
    with pytest.raises(ValueError, match="etc_dir"):
        render("manager", "/opt/flock", install or "relative")


def test_unknown_unit_names_the_known_ones():
    assert unit_name("agent") == unit_name("flock-agent") == "flock-agent.service"
    with pytest.raises(ValueError, match="flock-manager.service, flock-agent.service"):
        render("flock-docker.service", "/opt/flock", "/etc/flock")


def test_example_env_files_make_a_command_line_flock_accepts():
    manager = exec_start_argv(parse_unit(unit_text("manager")), EXAMPLES / "manager.env")
    assert manager[0] == "/opt/flock/venv/bin/flock"
    args = build_parser().parse_args(manager[1:])
    config = config_from_args(args)
    assert config.replication and config.tlsverify
    assert config.discovery.startswith("etcd://") and config.hosts == ["tcp://0.0.0.0:3376"]
    assert config.tls_files.cert == "/etc/flock/certs/cert.pem"

    agent = exec_start_argv(parse_unit(unit_text("agent")), EXAMPLES / "agent.env")
    args = build_parser().parse_args(agent[1:])
    check_address("--advertise", args.advertise)
    assert args.tlsverify and args.runtime == "auto" and args.state_dir == "/opt/flock/state"
    assert parse_labels(args.label) == {"region": "eu", "disk": "ssd"}
    assert args.discovery.startswith("etcd://")


def test_global_options_go_before_the_command(tmp_path):
    env = tmp_path / "manager.env"
    env.write_text((EXAMPLES / "manager.env").read_text().replace(
        "#FLOCK_GLOBAL_OPTS=", "FLOCK_GLOBAL_OPTS="))
    argv = exec_start_argv(parse_unit(unit_text("manager")), env)
    assert argv[1:6] == ["--log-level", "info", "--log-format", "json", "manage"]
    args = build_parser().parse_args(argv[1:])
    assert args.log_level == "info" and args.command == "manage"


def test_deploy_folder_links_the_shipped_units():
    for unit in UNITS:
        assert (EXAMPLES / unit).read_text() == unit_text(unit)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed; the parse checks above ran")
def test_systemd_analyze_verify_accepts_rendered_units(tmp_path):
    install = tmp_path / "install"
    (install / "venv" / "bin").mkdir(parents=True)
    flock = shutil.which("flock", path=str(Path(sys.executable).parent))
    assert flock, "the flock command of this venv"
    (install / "venv" / "bin" / "flock").symlink_to(flock)
    units = tmp_path / "units"
    units.mkdir()
    for unit in UNITS:
        (units / unit).write_text(render(unit, str(install), str(tmp_path / "etc")))
    done = subprocess.run(["systemd-analyze", "verify", "--man=no",
                           *[str(units / u) for u in UNITS]],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "SYSTEMD_LOG_LEVEL": "notice"})
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def test_install_command_writes_both_units(tmp_path):
    done = subprocess.run([sys.executable, "-m", "flock.systemd", "install", "--unit-dir",
                           str(tmp_path), "--install-dir", "/srv/f", "--etc-dir", "/srv/e"],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr
    for unit in UNITS:
        assert (tmp_path / unit).read_text() == render(unit, "/srv/f", "/srv/e")
    assert "systemctl daemon-reload" in done.stdout


@pytest.mark.parametrize("argv, code, message", [
    (["install", "--unit-dir", "/nonexistent/units"], 1, "is not a folder"),
    (["install", "--install-dir", "relative"], 2, "must be an absolute path"),
    (["render", "docker"], 2, "unknown unit 'docker'"),
])
def test_install_command_errors(argv, code, message):
    done = subprocess.run([sys.executable, "-m", "flock.systemd", *argv],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == code and message in done.stderr, done.stderr
