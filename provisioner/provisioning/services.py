"""The services a provisioned machine runs, and the files that keep them running.

- engine (runtime docker): the distribution's dockerd, with its data, exec root, socket
  and pidfile under install_dir, TLS on the engine port with the machine's server cert,
  the --engine-label/--engine-opt/--engine-env of `create`, and --live-restore so that
  restarting it (an upgrade, new certs) leaves the containers running;
- agent (--swarm or --swarm-master): `flock join`, advertising IP:4000 over mutual TLS,
  its call link (the manager's short calls without gRPC) on 4001;
- manager (--swarm-master): `flock manage` on 3376 with TLS, serving with the server
  cert (which has the role manager, so the same cert also calls the agents).

With systemd the agent and the manager run from flock.systemd's units (the ones a
hand-installed machine uses) with env files under install_dir/etc, and the engine from a
unit of its own. Without systemd each runs under a small shell supervisor (a restart
loop started with setsid) with its pidfile under install_dir/run and its log under
install_dir/log. Either way install_dir/bin/flock-services starts, stops, restarts,
kills and reports them, so everything else (re-provisioning, upgrade, the generic
driver's start/stop) says one thing to the machine.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from flock.provisioner.errors import MachineError
from flock.provisioner.host import EngineOptions, Host
from flock.provisioner.provisioning.layout import Layout

ENGINE, AGENT, MANAGER = "engine", "agent", "manager"
ORDER = (ENGINE, AGENT, MANAGER)   # start order; stop goes backwards
UNITS = {ENGINE: "flock-docker.service", AGENT: "flock-agent.service",
         MANAGER: "flock-manager.service"}
UNIT_DIR = "/etc/systemd/system"
STRATEGIES = ("spread", "binpack", "random")
RUNTIMES = ("docker", "exec")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STEP = "Checking options"
_FLAG = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9.\-]*$")
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SD_SAFE = re.compile(r"^[A-Za-z0-9_./:=,@+\-]+$")


@dataclass
class Service:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    unit_env: dict[str, str] = field(default_factory=dict)   # systemd: the unit's env file


@dataclass(frozen=True)
class Endpoints:
    ip: str
    advertise: str   # the agent's HOST:PORT in discovery


def names_for(host: Host) -> list[str]:
    """The services `host` runs, in start order."""
    opts = host.options
    out = [ENGINE] if opts.engine.runtime == "docker" else []
    if opts.swarm.agent or opts.swarm.master:
        out.append(AGENT)
    if opts.swarm.master:
        out.append(MANAGER)
    return out


def check_options(host: Host) -> None:
    """MachineError for options that cannot make a working machine, before any work."""
    opts = host.options
    if opts.engine.runtime not in RUNTIMES:
        raise MachineError(f"unknown engine runtime {opts.engine.runtime!r}: use one of "
                           f"{', '.join(RUNTIMES)}", step=STEP)
    if (opts.swarm.agent or opts.swarm.master) and not opts.swarm.discovery:
        raise MachineError("--swarm and --swarm-master need --swarm-discovery URL (etcd://"
                           "HOST:PORT/PREFIX, nodes://..., token://...) to find each other",
                           step=STEP)
    if opts.swarm.master and opts.swarm.strategy not in STRATEGIES:
        raise MachineError(f"unknown --swarm-strategy {opts.swarm.strategy!r}: use one of "
                           f"{', '.join(STRATEGIES)}", step=STEP)
    flags(opts.engine.opts, "--engine-opt")
    flags(opts.swarm.opts, "--swarm-opt")
    environment(opts.engine.env)
    for key in opts.engine.labels:
        if not key or any(c.isspace() or c in "=\"'\\$" for c in key):
            raise MachineError(f"--engine-label {key!r}: a label key cannot be empty or hold "
                               "spaces, quotes, '=', '\\' or '$'", step=STEP)


def flags(items: list[str], option: str) -> list[str]:
    """`k=v` and `k` items as `--k=v` and `--k` command-line flags."""
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        key = key.lstrip("-")
        if not _FLAG.match(key):
            raise MachineError(f"{option} {item!r}: expected NAME=VALUE or NAME, the NAME "
                               "of a flag without its dashes (e.g. dns=10.0.0.2)", step=STEP)
        out.append(f"--{key}={value}" if sep else f"--{key}")
    return out


def environment(items: list[str]) -> dict[str, str]:
    env = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not _ENV_KEY.match(key):
            raise MachineError(f"--engine-env {item!r}: expected NAME=VALUE with a variable "
                               "name of letters, digits and _", step=STEP)
        env[key] = value
    return env


def endpoints(host: Host, ip: str) -> Endpoints:
    """Where the agent is reached: --swarm-addr (with the agent port when it has none), or
    the machine's IP and the agent port."""
    addr = host.options.swarm.addr or ip
    head, sep, port = addr.rpartition(":")
    if not (sep and port.isdigit() and (":" not in head or head.startswith("["))):
        bare = addr.strip("[]")
        addr = f"[{bare}]" if ":" in bare else bare
        addr = f"{addr}:{host.options.swarm.agent_port}"
    return Endpoints(ip, addr)


# --- the commands ------------------------------------------------------------------------------
def _tls(layout: Layout) -> list[str]:
    return ["--tlsverify", "--tlscacert", layout.cert("ca.pem"),
            "--tlscert", layout.cert("server.pem"), "--tlskey", layout.cert("server-key.pem")]


def engine(host: Host, layout: Layout, dockerd: str, systemd: bool) -> Service:
    opts = host.options.engine
    argv = [dockerd, "--data-root", layout.docker_root, "--exec-root", layout.docker_exec_root,
            "--pidfile", f"{layout.run}/docker.pid", "--config-file",
            f"{layout.etc}/daemon.json", "-H", f"unix://{layout.docker_socket}",
            "-H", f"tcp://0.0.0.0:{opts.port}", *_tls(layout)]
    if systemd:   # Flock's engine is the machine's engine: `docker` on it finds it too
        argv += ["-H", "unix:///var/run/docker.sock"]
    extra = flags(opts.opts, "--engine-opt")
    if not any(f.startswith("--live-restore") for f in extra):
        argv.append("--live-restore")
    for key, value in opts.labels.items():
        argv += ["--label", f"{key}={value}"]
    return Service(ENGINE, argv + extra, environment(opts.env))


def agent(host: Host, layout: Layout, ends: Endpoints, systemd: bool = False) -> Service:
    runtime = host.options.engine.runtime
    tls = {"FLOCK_TLSCACERT": layout.cert("ca.pem"), "FLOCK_TLSCERT": layout.cert("server.pem"),
           "FLOCK_TLSKEY": layout.cert("server-key.pem")}
    # The call link on the port after the agent's, a port firewalls can be told of.
    extra = ["--listen", f"0.0.0.0:{host.options.swarm.agent_port}", "--name", host.name,
             "--calls-port", str(host.options.swarm.agent_port + 1)]
    if runtime == "exec":   # the docker runtime reports the engine's own labels
        for key, value in host.options.engine.labels.items():
            extra += ["--label", f"{key}={value}"]
    extra += flags(host.options.swarm.join_opts, "--swarm-join-opt")
    argv = [layout.flock, "join", "--advertise", ends.advertise, "--runtime", runtime,
            "--docker-host", f"unix://{layout.docker_socket}", "--state-dir", layout.state,
            *_tls(layout), *extra, host.options.swarm.discovery]
    unit_env = {}
    if systemd:
        unit_env = {"FLOCK_ADVERTISE": ends.advertise,
                    "FLOCK_DISCOVERY": host.options.swarm.discovery, "FLOCK_RUNTIME": runtime,
                    "FLOCK_DOCKER_HOST": f"unix://{layout.docker_socket}", **tls,
                    "FLOCK_AGENT_OPTS": _words(extra, "the agent's options")}
    return Service(AGENT, argv, {"PYTHONUNBUFFERED": "1"}, unit_env)


def manager(host: Host, layout: Layout, ends: Endpoints, systemd: bool = False) -> Service:
    swarm = host.options.swarm
    extra = ["--strategy", swarm.strategy, *flags(swarm.opts, "--swarm-opt")]
    if any(f.startswith("--replication") for f in extra) and \
            not any(f.startswith(("--advertise", "--addr")) for f in extra):
        extra.append(f"--advertise={ends.ip}:{swarm.manager_port}")
    front = swarm.host or f"tcp://0.0.0.0:{swarm.manager_port}"   # --swarm-host
    argv = [layout.flock, "manage", "-H", front, *_tls(layout), *extra, swarm.discovery]
    unit_env = {}
    if systemd:
        unit_env = {"FLOCK_HOST": front, "FLOCK_DISCOVERY": swarm.discovery,
                    "FLOCK_TLSCACERT": layout.cert("ca.pem"),
                    "FLOCK_TLSCERT": layout.cert("server.pem"),
                    "FLOCK_TLSKEY": layout.cert("server-key.pem"),
                    "FLOCK_MANAGER_OPTS": _words(extra, "--swarm-opt")}
    return Service(MANAGER, argv, {"PYTHONUNBUFFERED": "1"}, unit_env)


def plan(host: Host, layout: Layout, ip: str, dockerd: str, systemd: bool) -> list[Service]:
    ends = endpoints(host, ip)
    made = {ENGINE: lambda: engine(host, layout, dockerd, systemd),
            AGENT: lambda: agent(host, layout, ends, systemd),
            MANAGER: lambda: manager(host, layout, ends, systemd)}
    return [made[name]() for name in names_for(host)]


def _words(args: list[str], what: str) -> str:
    """Arguments a systemd unit splits on spaces ($VAR): none may hold one."""
    for arg in args:
        if not arg or any(c.isspace() or c in "\"'\\$%" for c in arg):
            raise MachineError(f"{what}: {arg!r} holds a space or one of \" ' \\ $ %, which "
                               "the machine's systemd unit cannot pass on", step=STEP)
    return " ".join(args)


# --- the files -----------------------------------------------------------------------------------
def daemon_config(opts: EngineOptions) -> dict[str, Any]:
    """The engine's daemon.json: --engine-storage-driver, --engine-insecure-registry and
    --engine-registry-mirror, under the keys dockerd reads (Docker Machine passes the same
    as dockerd flags; a file keeps them out of the command line and the unit)."""
    config: dict[str, Any] = {}
    if opts.storage_driver:
        config["storage-driver"] = opts.storage_driver
    if opts.insecure_registry:
        config["insecure-registries"] = list(opts.insecure_registry)
    if opts.registry_mirror:
        config["registry-mirrors"] = list(opts.registry_mirror)
    return config


def files(services: list[Service], layout: Layout, systemd: bool,
          daemon: dict[str, Any] | None = None) -> dict[str, tuple[bytes, int]]:
    """Every file the services need on the machine: path -> (content, mode)."""
    out: dict[str, tuple[bytes, int]] = {
        f"{layout.etc}/daemon.json": (json.dumps(daemon or {}, indent=2).encode() + b"\n",
                                      0o644),
        layout.services_script: (control_script(layout, [s.name for s in services],
                                                systemd).encode(), 0o755),
    }
    for svc in services:
        if systemd:
            out.update(_unit_files(svc, layout))
        else:
            out[f"{layout.bin}/flock-{svc.name}"] = (runner_script(svc, layout).encode(), 0o755)
    return out


def _unit_files(svc: Service, layout: Layout) -> dict[str, tuple[bytes, int]]:
    from flock.common.systemd import render

    if svc.name == ENGINE:
        env = "".join(f"{k}={_env_value(v)}\n" for k, v in svc.env.items())
        return {f"{layout.etc}/engine.env": (env.encode(), 0o644),
                f"{UNIT_DIR}/{UNITS[ENGINE]}": (engine_unit(svc, layout).encode(), 0o644)}
    env = "".join(f"{k}={_env_value(v)}\n" for k, v in svc.unit_env.items())
    try:
        unit = render(UNITS[svc.name], install_dir=layout.install_dir, etc_dir=layout.etc)
    except ValueError as exc:
        raise MachineError(f"cannot write the {svc.name}'s systemd unit: {exc}",
                           step=STEP) from None
    return {f"{layout.etc}/{svc.name}.env": (env.encode(), 0o600),
            f"{UNIT_DIR}/{UNITS[svc.name]}": (unit.encode(), 0o644)}


def _env_value(value: str) -> str:
    """A value of a systemd EnvironmentFile: as it is when plain, else double-quoted."""
    if "\n" in value or "$" in value:
        raise MachineError(f"value {value!r} cannot go into a systemd environment file "
                           "(it holds a newline or '$')", step=STEP)
    if not any(c in value for c in "\"'\\") and value == value.strip():
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _sd_quote(arg: str) -> str:
    if _SD_SAFE.match(arg):
        return arg
    text = arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{text}"'


def engine_unit(svc: Service, layout: Layout) -> str:
    return f"""# Docker Engine run by Flock, written by `flock machine provision`.
[Unit]
Description=Docker Engine run by Flock (TLS, data under {layout.install_dir})
After=network-online.target containerd.service
Wants=network-online.target

[Service]
Type=notify
EnvironmentFile=-{layout.etc}/engine.env
ExecStart={" ".join(_sd_quote(a) for a in svc.argv)}
ExecReload=/bin/kill -s HUP $MAINPID
Restart=always
RestartSec=2s
TimeoutStopSec=60s
LimitNOFILE=infinity
LimitNPROC=infinity
TasksMax=infinity
Delegate=yes
KillMode=process
OOMScoreAdjust=-500

[Install]
WantedBy=multi-user.target
"""


def runner_script(svc: Service, layout: Layout) -> str:
    """The supervisor of one service where there is no systemd: runs it again when it
    exits, and stops it (then itself) on SIGTERM."""
    pidfile = shlex.quote(f"{layout.run}/{svc.name}.pid")
    counter = shlex.quote(f"{layout.run}/{svc.name}.restarts")
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in svc.env.items())
    command = " ".join(shlex.quote(a) for a in svc.argv)
    return f"""#!/bin/sh
# Flock's supervisor of the {svc.name}, written by `flock machine provision`: it runs the
# {svc.name} again when it exits (counting how often in {svc.name}.restarts) and stops it
# on SIGTERM. Use {layout.services_script}.
export PATH={PATH}
{exports}echo $$ > {pidfile}
restarts=0
echo 0 > {counter}
child=
finish() {{
    trap '' TERM INT
    if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null; wait "$child"; fi
    rm -f {pidfile}
    exit 0
}}
trap finish TERM INT
while :; do
    echo "$(date -u +%FT%TZ) flock-services: starting the {svc.name}"
    {command} &
    child=$!
    wait "$child"
    code=$?
    child=
    restarts=$((restarts + 1))
    echo "$restarts" > {counter}
    echo "$(date -u +%FT%TZ) flock-services: the {svc.name} exited (code $code); again in 2s"
    sleep 2 &
    child=$!
    wait "$child"
    child=
done
"""


def control_script(layout: Layout, names: list[str], systemd: bool) -> str:
    units = " ".join(f"{n}={UNITS[n]}" for n in names)
    return f"""#!/bin/sh
# Flock's services on this machine, written by `flock machine provision`.
# Usage: flock-services start|stop|restart|kill|status|disable|restarts [{"|".join(ORDER)} ...]
# Without names: every service of this machine ({" ".join(names) or "none"}).
set -u
DIR={shlex.quote(layout.install_dir)}
MODE={"systemd" if systemd else "supervised"}
ALL="{" ".join(names)}"
UNITS="{units}"
action=${{1:-status}}
[ $# -gt 0 ] && shift
names=${{*:-$ALL}}
for n in $names; do
    case " $ALL " in
        *" $n "*) ;;
        *) echo "flock-services: $n is not a service here (this machine runs: $ALL)" >&2
           exit 2 ;;
    esac
done
backwards() {{ out=; for n in $names; do out="$n $out"; done; echo $out; }}
unit() {{ for u in $UNITS; do [ "${{u%%=*}}" = "$1" ] && echo "${{u#*=}}"; done; }}

pid_of() {{
    p=$(cat "$DIR/run/$1.pid" 2>/dev/null) || return 1
    [ -n "$p" ] && kill -0 "$p" 2>/dev/null || return 1
    tr '\\000' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -q "bin/flock-$1" || return 1
    echo "$p"
}}

start_one() {{
    if [ "$MODE" = systemd ]; then systemctl start "$(unit "$1")"; return; fi
    if pid_of "$1" >/dev/null; then echo "$1: already running"; return 0; fi
    mkdir -p "$DIR/log" "$DIR/run"
    setsid sh "$DIR/bin/flock-$1" >>"$DIR/log/$1.log" 2>&1 </dev/null &
    i=0
    while [ $i -lt 50 ] && ! pid_of "$1" >/dev/null; do sleep 0.1; i=$((i + 1)); done
    pid_of "$1" >/dev/null && echo "$1: started" || {{ echo "$1: did not start" >&2; return 1; }}
}}

stop_one() {{
    if [ "$MODE" = systemd ]; then systemctl stop "$(unit "$1")"; return; fi
    p=$(pid_of "$1") || {{ echo "$1: not running"; return 0; }}
    kill -TERM "$p" 2>/dev/null
    i=0
    while [ $i -lt 600 ] && kill -0 "$p" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
    if kill -0 "$p" 2>/dev/null; then
        echo "$1: still running after 60s, killing it" >&2
        kill -9 "-$p" 2>/dev/null
    fi
    rm -f "$DIR/run/$1.pid"
    echo "$1: stopped"
}}

kill_one() {{
    if [ "$MODE" = systemd ]; then systemctl kill -s KILL "$(unit "$1")"; return; fi
    p=$(pid_of "$1") || {{ echo "$1: not running"; return 0; }}
    kill -9 "-$p" 2>/dev/null
    rm -f "$DIR/run/$1.pid"
    echo "$1: killed"
}}

disable_one() {{
    if [ "$MODE" = systemd ]; then systemctl disable --now "$(unit "$1")"; return; fi
    stop_one "$1"
}}

restarts_one() {{
    if [ "$MODE" = systemd ]; then
        echo "$1: $(systemctl show -p NRestarts --value "$(unit "$1")" 2>/dev/null || echo 0)"
        return
    fi
    echo "$1: $(cat "$DIR/run/$1.restarts" 2>/dev/null || echo 0)"
}}

status_one() {{
    if [ "$MODE" = systemd ]; then
        state=$(systemctl is-active "$(unit "$1")")
        echo "$1: $state"
        [ "$state" = active ]
        return
    fi
    if p=$(pid_of "$1"); then echo "$1: running (pid $p)"; else echo "$1: stopped"; return 3; fi
}}

code=0
case "$action" in
    start) for n in $names; do start_one "$n" || code=1; done ;;
    stop) for n in $(backwards); do stop_one "$n" || code=1; done ;;
    restart)
        for n in $(backwards); do stop_one "$n" || code=1; done
        for n in $names; do start_one "$n" || code=1; done ;;
    kill) for n in $(backwards); do kill_one "$n" || code=1; done ;;
    disable) for n in $(backwards); do disable_one "$n" || code=1; done ;;
    status) for n in $names; do status_one "$n" || code=3; done ;;
    restarts) for n in $names; do restarts_one "$n"; done ;;
    *) echo "usage: flock-services start|stop|restart|kill|status|disable|restarts" \
            "[service ...]" >&2
       exit 2 ;;
esac
exit $code
"""

