"""`flock machine env` and `config`: pointing a docker client at a machine.

The output is Docker Machine's, shell by shell (bash, fish, powershell, cmd, tcsh,
emacs), ending with the hint that shows how to evaluate it, so `eval $(flock machine env
NAME)` and scripts written for `docker-machine env` work unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex

from flock.provisioner.commands import (
    docker_url,
    load_driver,
    machine_ip,
    out,
    swarm_url,
    target_names,
)
from flock.provisioner.commands.connection import check_connection
from flock.provisioner.errors import HostNotRunning, MachineError
from flock.provisioner.host import Host
from flock.provisioner.machine_certs import machine_tls_files, server_cert_covers
from flock.provisioner.states import State
from flock.provisioner.store import Store

SHELLS = ("bash", "sh", "zsh", "fish", "powershell", "cmd", "tcsh", "csh", "emacs")
_ALIASES = {"sh": "bash", "zsh": "bash", "ksh": "bash", "dash": "bash", "csh": "tcsh",
            "pwsh": "powershell"}

# shell -> (prefix, delimiter, suffix), as Docker Machine writes each variable
SET_STYLES = {
    "bash": ("export ", '="', '"\n'),
    "fish": ("set -gx ", ' "', '";\n'),
    "powershell": ("$Env:", ' = "', '"\n'),
    "cmd": ("SET ", "=", "\n"),
    "tcsh": ("setenv ", ' "', '";\n'),
    "emacs": ('(setenv "', '" "', '")\n'),
}
UNSET_STYLES = {
    "bash": ("unset ", "", "\n"),
    "fish": ("set -e ", "", ";\n"),
    "powershell": ("Remove-Item Env:\\\\", "", "\n"),
    "cmd": ("SET ", "=", "\n"),      # cmd cannot unset: set to nothing
    "tcsh": ("unsetenv ", "", ";\n"),
    "emacs": ('(setenv "', '" nil', ")\n"),
}
DOCKER_VARS = ("DOCKER_TLS_VERIFY", "DOCKER_HOST", "DOCKER_CERT_PATH", "DOCKER_MACHINE_NAME")


def canonical_shell(name: str) -> str:
    shell = _ALIASES.get(name, name)
    if shell not in SET_STYLES:
        raise MachineError(f"unknown shell {name!r}: use --shell with one of "
                           f"{', '.join(SHELLS)}")
    return shell


def detect_shell() -> str:
    """The user's shell from $SHELL, as Docker Machine guesses it; bash-style when the
    shell is not one it knows."""
    login = os.path.basename(os.environ.get("SHELL", ""))
    if not login:
        raise MachineError("Error: Unknown shell: $SHELL is not set; pass --shell with one "
                           f"of {', '.join(SHELLS)}")
    return _ALIASES.get(login, login if login in SET_STYLES else "bash")


def usage_hint(shell: str, command_line: str) -> str:
    """The last two lines: how to evaluate this output in `shell`."""
    comment = {"cmd": "REM", "emacs": ";;", "tcsh": ":"}.get(shell, "#")
    cmd = {
        "fish": f"eval ({command_line})",
        "powershell": f"& {command_line} | Invoke-Expression",
        "cmd": f"\t@FOR /f \"tokens=*\" %i IN ('{command_line}') DO @%i",
        "emacs": f'(with-temp-buffer (shell-command "{command_line}" (current-buffer)) '
                 "(eval-buffer))",
        "tcsh": f"eval `{command_line}`",
    }.get(shell, f"eval $({command_line})")
    return f"{comment} Run this command to configure your shell:\n{comment} {cmd}\n"


def render(shell: str, variables: list[tuple[str, str]], unset: bool, hint: str) -> str:
    """The variables in `shell`'s syntax (unset forms with -u), then the hint."""
    prefix, delimiter, suffix = (UNSET_STYLES if unset else SET_STYLES)[shell]
    lines = [f"{prefix}{name}{delimiter}{'' if unset else value}{suffix}"
             for name, value in variables]
    return "".join(lines) + hint


def no_proxy(ip: str, environ: dict[str, str] | None = None) -> tuple[str, str]:
    """(variable, value): the existing no_proxy (lower case first, as Docker Machine) with
    the machine's IP added once."""
    env = os.environ if environ is None else environ
    var, value = "no_proxy", env.get("no_proxy", "")
    if not value:
        var, value = "NO_PROXY", env.get("NO_PROXY", "")
    entries = [e.strip() for e in value.split(",") if e.strip()]
    if ip not in entries:
        entries.append(ip)
    return var, ",".join(entries)


def _command_line(args: argparse.Namespace) -> str:
    """`flock machine [-s PATH] env [flags] [NAME]`: what the user runs again."""
    parts = ["flock", "machine"]
    if args.storage_path:
        parts += ["-s", args.storage_path]
    parts.append("env")
    if args.shell:
        parts += ["--shell", args.shell]
    if args.swarm:
        parts.append("--swarm")
    if args.no_proxy:
        parts.append("--no-proxy")
    if args.unset:
        parts.append("-u")
    elif args.name:
        parts.append(args.name)
    return " ".join(shlex.quote(p) for p in parts)


def endpoint(store: Store, host: Host, swarm: bool) -> tuple[str, str]:
    """(DOCKER_HOST, IP) for env and config: the machine must run, its server cert must
    name its IP (else regenerate-certs is the fix, as Docker Machine says), and the
    endpoint must answer TLS with the machine's certs (connection.py)."""
    driver = load_driver(store, host)
    if driver.state() is not State.RUNNING:
        raise MachineError(f"Error checking TLS connection: {HostNotRunning(host.name)}")
    url = swarm_url(host, driver) if swarm else docker_url(host, driver)
    if driver.has_ssh:
        ip = machine_ip(host, driver)
        if not server_cert_covers(store, host, ip):
            raise MachineError(
                f"Error checking TLS connection: the server certificate of \"{host.name}\" "
                f"does not name its current IP {ip}: run \"flock machine regenerate-certs "
                f'{host.name}" (start and restart do this by themselves)')
    check_connection(url, *machine_tls_files(store, host))
    return url, machine_ip(host, driver)


def cmd_env(args: argparse.Namespace, store: Store) -> int:
    """Checks the arguments and the machine before guessing the shell, so a wrong
    machine name is reported as such even where $SHELL is unset (cron, CI, su -c)."""
    variables = _unset_variables(args) if args.unset else _machine_variables(args, store)
    shell = canonical_shell(args.shell) if args.shell else detect_shell()
    sys_out(render(shell, variables, args.unset, usage_hint(shell, _command_line(args))))
    return 0


def _unset_variables(args: argparse.Namespace) -> list[tuple[str, str]]:
    if args.name:
        raise MachineError("Error: Expected no machine name when the -u flag is present")
    variables = [(v, "") for v in DOCKER_VARS]
    if args.no_proxy:
        variables.append((no_proxy("")[0], ""))
    return variables


def _machine_variables(args: argparse.Namespace, store: Store) -> list[tuple[str, str]]:
    [name] = target_names(store, [args.name] if args.name else [])
    url, ip = endpoint(store, store.load(name), args.swarm)
    variables = [("DOCKER_TLS_VERIFY", "1"), ("DOCKER_HOST", url),
                 ("DOCKER_CERT_PATH", str(store.machine_dir(name).resolve())),
                 ("DOCKER_MACHINE_NAME", name)]
    if args.no_proxy:
        variables.append(no_proxy(ip))
    return variables


def config_lines(ca: str, cert: str, key: str, url: str) -> str:
    """The docker flags, one per line, paths quoted as Go's %q does."""
    def q(path: str) -> str:
        return json.dumps(path, ensure_ascii=False)

    return (f"--tlsverify\n--tlscacert={q(ca)}\n--tlscert={q(cert)}\n--tlskey={q(key)}\n"
            f"-H={url}\n")


def cmd_config(args: argparse.Namespace, store: Store) -> int:
    [name] = target_names(store, [args.name] if args.name else [])
    host = store.load(name)
    url, _ = endpoint(store, host, args.swarm)
    ca, cert, key = (str(p.resolve()) for p in machine_tls_files(store, host))
    sys_out(config_lines(ca, cert, key, url))
    return 0


def sys_out(text: str) -> None:
    out(text.rstrip("\n"))
