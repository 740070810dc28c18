"""The pieces of provisioning that need no machine: the supervised services (their scripts
run here, for real, on a stand-in service), the systemd units and env files a machine
gets (expanded the way systemd does and parsed by flock's own command line), option
checks, which wheels fit which Python, and the OS check."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from flock.agent.cli import check_address
from flock.cli import build_parser
from flock.manager.cli import config_from_args
from flock.provisioner import bundle
from flock.provisioner.errors import MachineError
from flock.provisioner.host import Host
from flock.provisioner.provisioning import services
from flock.provisioner.provisioning.layout import Layout
from flock.provisioner.provisioning.target import parse_os_release, supported
from tests.support.procs import alive, cmdline, wait_for
from tests.unit.test_systemd_units import exec_start_argv, parse_unit


def _host(**swarm) -> Host:
    host = Host(name="web1", driver_name="generic")
    host.options.install_dir = "/srv/flk"
    host.options.engine.labels = {"zone": "eu", "disk": "ssd"}
    host.options.swarm.discovery = "etcd://10.0.0.5:2379/flock"
    for key, value in swarm.items():
        setattr(host.options.swarm, key, value)
    return host


def _write(files: dict[str, tuple[bytes, int]], root: Path | None = None) -> None:
    for path, (data, mode) in files.items():
        target = Path(str(root) + path) if root else Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(mode)


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _services(supervisor: int) -> list[int]:
    """The supervisor's children that are the stand-in service: it also forks short-lived
    helpers (the `sleep` of its restart delay), which may be gone by the time we look."""
    return [c for c in _children(supervisor) if cmdline(c) == [b"sleep", b"300"]]


# --- supervised services, run for real --------------------------------------------------------
@pytest.fixture
def supervised(tmp_path):
    """A machine layout in tmp_path whose 'agent' is a stand-in (sleep): the control script
    and the supervisor exactly as provisioning writes them."""
    layout = Layout(str(tmp_path / "install"))
    plan = [services.Service(services.AGENT, ["sleep", "300"], {"FLOCK_TEST": "it's set"})]
    _write(services.files(plan, layout, systemd=False))
    for folder in layout.folders():
        Path(folder).mkdir(parents=True, exist_ok=True)
    script = layout.services_script

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["sh", script, *args], capture_output=True, text=True,
                              timeout=90)

    yield layout, run
    pidfile = Path(layout.run) / "agent.pid"
    if pidfile.exists():
        try:
            os.killpg(int(pidfile.read_text()), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def test_supervised_start_status_restart_on_exit_and_stop(supervised):
    layout, run = supervised
    status = run("status")
    assert (status.returncode, status.stdout) == (3, "agent: stopped\n")
    assert run("start").stdout == "agent: started\n"
    assert run("start").stdout == "agent: already running\n"
    assert run("restarts").stdout == "agent: 0\n"
    supervisor = int((Path(layout.run) / "agent.pid").read_text())
    assert run("status").stdout == f"agent: running (pid {supervisor})\n"
    child = wait_for(lambda: _services(supervisor), 5, "the service under its supervisor")[0]
    environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
    assert b"FLOCK_TEST=it's set" in environ
    os.kill(child, signal.SIGKILL)   # the service dies: the supervisor runs it again
    again = wait_for(lambda: [c for c in _services(supervisor) if c != child], 10,
                     "the service started again")[0]
    assert again != child
    assert run("restarts").stdout == "agent: 1\n"
    log = Path(layout.log, "agent.log").read_text()
    assert "the agent exited (code 137); again in 2s" in log
    stopped = run("stop")
    assert stopped.stdout == "agent: stopped\n"
    assert not alive(supervisor) and not alive(again)
    assert not (Path(layout.run) / "agent.pid").exists()
    assert run("stop").stdout == "agent: not running\n"


def test_supervised_kill_takes_the_whole_group_at_once(supervised):
    layout, run = supervised
    run("start")
    supervisor = int((Path(layout.run) / "agent.pid").read_text())
    child = wait_for(lambda: _services(supervisor), 5, "the service")[0]
    assert run("kill").stdout == "agent: killed\n"
    wait_for(lambda: not alive(supervisor) and not alive(child), 5, "the group gone")
    assert run("status").returncode == 3


def test_the_control_script_refuses_services_the_machine_does_not_run(supervised):
    _, run = supervised
    done = run("start", "manager")
    assert done.returncode == 2 and "this machine runs: agent" in done.stderr
    done = run("explode")
    assert done.returncode == 2 and "usage:" in done.stderr


# --- systemd units and their env files --------------------------------------------------------
def test_systemd_agent_and_manager_units_make_the_command_lines_flock_accepts(tmp_path):
    host = _host(agent=True, master=True, strategy="binpack", opts=["replication"])
    layout = Layout(host.options.install_dir)
    plan = services.plan(host, layout, "10.0.0.9", "/usr/sbin/dockerd", systemd=True)
    assert [s.name for s in plan] == ["engine", "agent", "manager"]
    files = services.files(plan, layout, systemd=True)
    _write(files, tmp_path)
    unit_dir = tmp_path / "etc" / "systemd" / "system"
    assert sorted(p.name for p in unit_dir.iterdir()) == sorted(services.UNITS.values())
    etc = Path(str(tmp_path) + layout.etc)
    assert oct((etc / "agent.env").stat().st_mode & 0o777) == "0o600"

    agent = exec_start_argv(parse_unit((unit_dir / "flock-agent.service").read_text()),
                            etc / "agent.env")
    assert agent[0] == "/srv/flk/venv/bin/flock"
    args = build_parser().parse_args(agent[1:])
    assert check_address("--advertise", args.advertise) == "10.0.0.9:4000"
    assert (args.listen, args.name, args.runtime) == ("0.0.0.0:4000", "web1", "docker")
    assert args.docker_host == "unix:///srv/flk/run/docker.sock"
    assert args.state_dir == "/srv/flk/state" and args.discovery == host.options.swarm.discovery
    assert (args.tlsverify, args.tlscert) == (True, "/srv/flk/certs/server.pem")

    manager = exec_start_argv(parse_unit((unit_dir / "flock-manager.service").read_text()),
                              etc / "manager.env")
    config = config_from_args(build_parser().parse_args(manager[1:]))
    assert config.hosts == ["tcp://0.0.0.0:3376"] and config.strategy == "binpack"
    assert config.replication and config.advertise == "10.0.0.9:3376"
    assert config.tls_files.cert == "/srv/flk/certs/server.pem" and config.tlsverify


def test_docker_machines_join_opts_swarm_host_and_engine_settings(tmp_path):
    # create's --swarm-join-opt, --swarm-host (commands/create.go) in the command lines the
    # real `flock join`/`flock manage` parsers accept, with systemd and without; the
    # engine's --engine-storage-driver/-insecure-registry/-registry-mirror in daemon.json
    host = _host(agent=True, master=True, join_opts=["heartbeat=10s", "ttl=30s"],
                 host="tcp://0.0.0.0:4376", manager_port=4376)
    host.options.engine.storage_driver = "vfs"
    host.options.engine.insecure_registry = ["r.example:5000"]
    host.options.engine.registry_mirror = ["http://mirror.example:5000"]
    layout = Layout(host.options.install_dir)
    daemon = services.daemon_config(host.options.engine)
    for systemd in (False, True):
        plan = services.plan(host, layout, "10.0.0.9", "/usr/sbin/dockerd", systemd=systemd)
        by_name = {svc.name: svc for svc in plan}
        args = build_parser().parse_args(by_name["agent"].argv[1:])
        assert (args.heartbeat, args.ttl) == ("10s", "30s")
        config = config_from_args(build_parser().parse_args(by_name["manager"].argv[1:]))
        assert config.hosts == ["tcp://0.0.0.0:4376"]
        files = services.files(plan, layout, systemd, daemon)
        assert json.loads(files[f"{layout.etc}/daemon.json"][0]) == {
            "storage-driver": "vfs", "insecure-registries": ["r.example:5000"],
            "registry-mirrors": ["http://mirror.example:5000"]}
    assert services.daemon_config(_host().options.engine) == {}


@pytest.mark.skipif(shutil.which("systemd-analyze") is None or not Path("/usr/sbin/dockerd")
                    .exists(), reason="needs systemd-analyze and dockerd")
def test_the_engine_unit_passes_systemd_analyze_verify(tmp_path):
    host = _host()
    host.options.engine.opts = ["dns=10.0.0.2", "debug"]
    host.options.engine.env = ["HTTP_PROXY=http://proxy:3128", "NOTE=a b \"c\""]
    layout = Layout(str(tmp_path / "install"))
    engine = services.engine(host, layout, "/usr/sbin/dockerd", systemd=True)
    assert "--live-restore" in engine.argv and "--label" in engine.argv
    assert engine.argv[-2:] == ["--dns=10.0.0.2", "--debug"]
    assert "unix:///var/run/docker.sock" in engine.argv   # the machine's `docker` finds it
    files = services.files([engine], layout, systemd=True)
    unit = tmp_path / "flock-docker.service"
    unit.write_bytes(files[f"{services.UNIT_DIR}/flock-docker.service"][0])
    env = files[f"{layout.etc}/engine.env"][0].decode()
    assert env == 'HTTP_PROXY=http://proxy:3128\nNOTE="a b \\"c\\""\n'
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "SYSTEMD_LOG_LEVEL": "notice"})
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def test_supervised_engine_command_is_the_documented_one():
    host = _host()
    layout = Layout("/srv/flk")
    engine = services.engine(host, layout, "/usr/sbin/dockerd", systemd=False)
    argv = engine.argv
    pairs = {argv[i]: argv[i + 1] for i in range(1, len(argv) - 1) if argv[i].startswith("-")}
    assert pairs["--data-root"] == "/srv/flk/docker"
    assert pairs["--exec-root"] == "/srv/flk/run/docker"
    assert pairs["--pidfile"] == "/srv/flk/run/docker.pid"
    assert "tcp://0.0.0.0:2376" in argv and "unix:///srv/flk/run/docker.sock" in argv
    assert "unix:///var/run/docker.sock" not in argv   # not without systemd
    assert pairs["--tlscert"] == "/srv/flk/certs/server.pem"
    assert ["--label", "zone=eu"] == argv[argv.index("zone=eu") - 1:argv.index("zone=eu") + 1]


def test_an_exec_runtime_agent_carries_the_labels_itself():
    host = _host(agent=True)
    host.options.engine.runtime = "exec"
    plan = services.plan(host, Layout("/srv/flk"), "10.0.0.9", "", systemd=False)
    assert [s.name for s in plan] == ["agent"]
    argv = plan[0].argv
    assert "--runtime" in argv and argv[argv.index("--runtime") + 1] == "exec"
    assert {"zone=eu", "disk=ssd"} <= set(argv)


@pytest.mark.parametrize("addr, expected", [
    ("", "10.0.0.9:4000"), ("203.0.113.7", "203.0.113.7:4000"),
    ("203.0.113.7:14000", "203.0.113.7:14000"), ("2001:db8::7", "[2001:db8::7]:4000"),
    ("[2001:db8::7]:14000", "[2001:db8::7]:14000")])
def test_the_advertised_agent_address(addr, expected):
    assert services.endpoints(_host(addr=addr), "10.0.0.9").advertise == expected


# --- options that cannot work -----------------------------------------------------------------
@pytest.mark.parametrize("change, message", [
    (lambda h: setattr(h.options.swarm, "discovery", ""), "need --swarm-discovery"),
    (lambda h: setattr(h.options.engine, "runtime", "lxc"), "unknown engine runtime 'lxc'"),
    (lambda h: setattr(h.options.engine, "opts", ["-bad flag"]), "--engine-opt '-bad flag'"),
    (lambda h: setattr(h.options.swarm, "opts", ["x y=1"]), "--swarm-opt 'x y=1'"),
    (lambda h: setattr(h.options.engine, "env", ["1X=2"]), "--engine-env '1X=2'"),
    (lambda h: setattr(h.options.engine, "labels", {"a b": "c"}), "--engine-label 'a b'"),
])
def test_bad_options_are_refused_before_any_work(change, message):
    host = _host(agent=True)
    change(host)
    with pytest.raises(MachineError, match=message) as caught:
        services.check_options(host)
    assert caught.value.step == "Checking options"


def test_a_label_systemd_cannot_pass_on_is_refused_with_systemd_only():
    host = _host(agent=True)
    host.options.engine.runtime = "exec"
    host.options.engine.labels = {"note": "two words"}
    layout = Layout("/srv/flk")
    services.files(services.plan(host, layout, "10.0.0.9", "", False), layout, False)
    with pytest.raises(MachineError, match="holds a space"):
        services.plan(host, layout, "10.0.0.9", "", systemd=True)


@pytest.mark.parametrize("path", ["relative/dir", "/", "/opt/../etc", "/opt/my flock",
                                  "/opt/$HOME"])
def test_an_install_dir_that_cannot_work_is_refused(path):
    with pytest.raises(MachineError, match="--install-dir"):
        Layout(path)


# --- wheels and Pythons -----------------------------------------------------------------------
DEBIAN12 = bundle.PythonTarget((3, 11), "x86_64", (2, 36), "/usr/bin/python3")


@pytest.mark.parametrize("wheel, fits", [
    ("rich-14.3.4-py3-none-any.whl", True),
    ("grpcio-1.85.1-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl", True),
    ("cryptography-48.0.1-cp311-abi3-manylinux_2_34_x86_64.whl", True),
    ("pynacl-1.6.2-cp38-abi3-manylinux_2_34_x86_64.whl", True),
    ("grpcio-1.85.1-cp312-cp312-manylinux2014_x86_64.whl", False),
    ("bcrypt-5.0.0-cp39-abi3-manylinux_2_38_x86_64.whl", False),
    ("grpcio-1.85.1-cp311-cp311-manylinux2014_aarch64.whl", False),
    ("grpcio-1.85.1-cp311-cp311-musllinux_1_1_x86_64.whl", False),
    ("something-1.0-cp311-cp311-win_amd64.whl", False),
    ("not-a-wheel.tar.gz", False),
])
def test_which_wheels_fit_debian_12s_python(wheel, fits):
    assert bundle.wheel_fits(wheel, DEBIAN12) is fits


def test_a_prepared_wheelhouse_is_checked_against_the_machines_python(tmp_path, monkeypatch):
    monkeypatch.setenv(bundle.ENV_WHEELHOUSE, str(tmp_path))
    with pytest.raises(MachineError, match="holds no flock-"):
        bundle.wheelhouse(tmp_path / "cache", DEBIAN12)
    (tmp_path / "flock-0.1.0-py3-none-any.whl").write_bytes(b"")
    (tmp_path / "grpcio-1.85.1-cp312-cp312-manylinux2014_x86_64.whl").write_bytes(b"")
    with pytest.raises(MachineError) as caught:
        bundle.wheelhouse(tmp_path / "cache", DEBIAN12)
    text = str(caught.value)
    assert caught.value.step == "Preparing Flock's wheels"
    assert "Python 3.11 on x86_64 (glibc 2.36)" in text and "grpcio-1.85.1-cp312" in text
    assert "FLOCK_WHEELHOUSE" in text
    (tmp_path / "grpcio-1.85.1-cp312-cp312-manylinux2014_x86_64.whl").unlink()
    house = bundle.wheelhouse(tmp_path / "cache", DEBIAN12)
    assert house.flock_wheel.name == "flock-0.1.0-py3-none-any.whl"


def test_the_source_digest_follows_the_package_files_only(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "flock"\n[tool.setuptools.packages.find]\ninclude = ["flock*"]\n')
    (tmp_path / "flock").mkdir()
    (tmp_path / "flock" / "__init__.py").write_text("x = 1\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "__init__.py").write_text("")
    first = bundle.source_digest(tmp_path)
    (tmp_path / "tests" / "test_x.py").write_text("y = 2\n")
    (tmp_path / "flock" / "__pycache__").mkdir()
    (tmp_path / "flock" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    assert bundle.source_digest(tmp_path) == first
    (tmp_path / "flock" / "__init__.py").write_text("x = 2\n")
    assert bundle.source_digest(tmp_path) != first


def test_the_dependencies_are_those_pyproject_declares():
    reqs = bundle.requirements()
    assert any(r.startswith("paramiko") for r in reqs) and any(r.startswith("grpcio")
                                                               for r in reqs)
    assert not any(r.startswith(("pytest", "boto3", "libvirt")) for r in reqs)


# --- the OS -----------------------------------------------------------------------------------
@pytest.mark.parametrize("text, ok", [
    ('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n', True),
    ('NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\n', True),
    ('ID=linuxmint\nID_LIKE="ubuntu debian"\n', True),
    ('NAME="Fedora Linux"\nID=fedora\nVERSION_ID=40\n', False),
    ('ID="rocky"\nID_LIKE="rhel centos fedora"\n', False),
    ('ID=alpine\n', False),
])
def test_only_debian_like_systems_are_provisioned(text, ok):
    info = parse_os_release(text)
    assert info.id and supported(info) is ok


def test_os_release_values_are_unquoted():
    info = parse_os_release('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n'
                            "VERSION_ID='12'\n# a comment\nnot a line\n")
    assert (info.pretty, info.id, info.version) == ("Debian GNU/Linux 12 (bookworm)",
                                                    "debian", "12")


def test_local_python_target_describes_itself():
    local = bundle.PythonTarget.local()
    assert local.version == sys.version_info[:2]
    assert local.tag == f"cp{sys.version_info[0]}{sys.version_info[1]}-{local.machine}"
