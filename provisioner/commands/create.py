"""`flock machine create`: one machine or a fleet, built in parallel.

Per machine, in order: the driver from its flags, the provider's pre-create checks, the
record in the store, the SSH key pair, the machine at the provider, the store's CA and
client cert, then provisioning over SSH (or, for `none`, a local server cert). A failure
after the record exists is written into it (`ls` shows it under ERRORS) and `rm` finishes
the clean-up; the driver has already undone what it could at the provider.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import importlib
import os
from concurrent.futures import ThreadPoolExecutor

from flock.provisioner import machine_certs, settings
from flock.provisioner.cli_parser import MachineParser, driver_in, extra_arguments
from flock.provisioner.commands import describe, err, out
from flock.provisioner.drivers import DRIVERS, Driver, driver_class
from flock.provisioner.errors import (
    InvalidHostname,
    InvalidName,
    MachineError,
    MachineExists,
    PreCreateFailed,
)
from flock.provisioner.host import (
    DEFAULT_INSTALL_DIR,
    DEFAULT_INSTALL_URL,
    DEFAULT_SWARM_IMAGE,
    ENGINE_PORT,
    MANAGER_PORT,
    EngineOptions,
    Host,
    HostOptions,
    SwarmOptions,
    check_name,
)
from flock.provisioner.progress import FleetProgress
from flock.provisioner.store import Store

DEFAULT_DRIVER = "libvirt"   # a local VM, as Docker Machine defaults to virtualbox
ENV_DRIVER = settings.DRIVER.machine   # and its alias FLOCK_MACHINE_DRIVER
MAX_PARALLEL = 16
STRATEGIES = ("spread", "binpack", "random")
DISCOVERY_SCHEMES = ("nodes", "file", "etcd", "token")


class CreateParser(MachineParser):
    """`create`: with -d DRIVER (wherever it stands, as Docker Machine's flagHackLookup
    finds it), `-h` shows the common flags and that driver's only, as `docker-machine create
    -d DRIVER -h` does; without -d, every driver's (Docker Machine shows its default
    driver's: Flock's list is short, and a user without -d is still choosing one)."""

    help_driver: str | None = None   # -d anywhere on the command line
    only_driver: str | None = None   # set by -h: whose flags the help shows

    def parse_known_args(self, args=None, namespace=None):
        self.help_driver = driver_in(list(args or []))
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        driver = self.only_driver
        if driver is None:   # the reference page, `help create`: every driver's flags
            return super().format_help()
        groups, actions = self._action_groups, self._actions
        others = [g for g in groups
                  if (g.title or "").endswith(" driver") and g.title != f"{driver} driver"]
        hidden = {id(a) for g in others for a in g._group_actions}  # noqa: SLF001
        self._action_groups = [g for g in groups if g not in others]
        self._actions = [a for a in actions if id(a) not in hidden]
        try:
            return super().format_help()
        finally:
            self._action_groups, self._actions = groups, actions


class _CreateHelp(argparse.Action):
    """-h/--help of create: the help of the driver asked for."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help="show this help (with -d DRIVER: that driver's flags) and exit"):
        super().__init__(option_strings=option_strings, dest=dest, default=default,
                         nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        parser.only_driver = parser.help_driver
        parser.print_help()
        parser.exit()


def add_create_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """The `create` sub-command with the common flags and every installed driver's."""
    saved = commands._parser_class  # noqa: SLF001 - argparse has no per-parser class
    commands._parser_class = CreateParser  # noqa: SLF001
    try:
        p = commands.add_parser(
            "create", help="create one or more machines", add_help=False,
            description="Create a machine at a provider, install Flock (and the Docker "
                        "Engine) on it over SSH and join it to a cluster. A fleet (--name "
                        "repeated, or --count N --prefix P) is built in parallel.")
    finally:
        commands._parser_class = saved  # noqa: SLF001
    p.add_argument("-h", "--help", action=_CreateHelp)
    p.extra_error = extra_arguments
    p.add_argument("name", nargs="?", metavar="NAME", help="machine name")
    p.add_argument("--name", dest="more_names", action="append", default=[],
                   metavar="NAME", help="(repeatable) a machine to create, for a fleet "
                   "built in parallel: --name web1 --name web2")
    p.add_argument("-d", "--driver", default=settings.DRIVER.value() or DEFAULT_DRIVER,
                   help=f"driver: {', '.join(DRIVERS)} (default {DEFAULT_DRIVER}) "
                        f"[${ENV_DRIVER}, ${settings.DRIVER.flock}]")
    p.add_argument("--count", type=int, default=None, metavar="N",
                   help="create N machines named PREFIX1..PREFIXN (with --prefix)")
    p.add_argument("--prefix", default="", help="name prefix for --count, e.g. web-")
    e = p.add_argument_group("engine")
    e.add_argument("--engine-runtime", choices=["docker", "exec"], default="docker",
                   help="docker: the distribution's Docker Engine (installed when missing); "
                        "exec: Flock's embedded runtime, no engine (default docker)")
    e.add_argument("--engine-port", type=int, default=ENGINE_PORT,
                   help=f"the engine's TLS port (default {ENGINE_PORT})")
    e.add_argument("--engine-label", action="append", default=[], metavar="K=V",
                   help="engine label (repeatable)")
    e.add_argument("--engine-opt", action="append", default=[], metavar="K=V",
                   help="extra dockerd flag --K=V (repeatable)")
    e.add_argument("--engine-env", action="append", default=[], metavar="K=V",
                   help="environment variable of the engine (repeatable)")
    e.add_argument("--engine-storage-driver", default="", metavar="DRIVER",
                   help="the engine's storage driver (daemon.json storage-driver)")
    e.add_argument("--engine-insecure-registry", action="append", default=[],
                   metavar="HOST[:PORT]", help="a registry the engine may reach without "
                   "TLS verification (daemon.json insecure-registries; repeatable)")
    e.add_argument("--engine-registry-mirror", action="append", default=[], metavar="URL",
                   help="a registry mirror (daemon.json registry-mirrors; repeatable)")
    e.add_argument("--engine-install-url", default=DEFAULT_INSTALL_URL, metavar="URL",
                   help="recorded only: Flock installs the distribution's docker.io when "
                        f"the engine is missing (default {DEFAULT_INSTALL_URL})")
    s = p.add_argument_group("swarm")
    s.add_argument("--swarm", action="store_true", help="join a cluster as an agent")
    s.add_argument("--swarm-master", action="store_true",
                   help="also run the cluster's manager on this machine")
    s.add_argument("--swarm-discovery", default="", metavar="URL",
                   help="discovery: token://T, etcd://H:P/prefix, nodes://..., file://...")
    s.add_argument("--swarm-strategy", choices=STRATEGIES, default="spread",
                   help="the manager's scheduling strategy (default spread)")
    s.add_argument("--swarm-opt", action="append", default=[], metavar="K=V",
                   help="extra `flock manage` flag --K=V (repeatable)")
    s.add_argument("--swarm-addr", default="", metavar="IP[:PORT]",
                   help="address the agent advertises (default: the machine's IP)")
    s.add_argument("--swarm-host", default=f"tcp://0.0.0.0:{MANAGER_PORT}",
                   metavar="tcp://IP:PORT", help="where a --swarm-master's manager listens "
                   f"(default tcp://0.0.0.0:{MANAGER_PORT})")
    s.add_argument("--swarm-join-opt", action="append", default=[], metavar="K=V",
                   help="extra `flock join` flag --K=V of the agent, e.g. heartbeat=10s "
                        "(repeatable)")
    s.add_argument("--swarm-image", default=DEFAULT_SWARM_IMAGE, metavar="IMAGE",
                   help="recorded only: Flock's manager and agent are installed, not run "
                        f"from an image (default {DEFAULT_SWARM_IMAGE})")
    s.add_argument("--swarm-experimental", action="store_true",
                   help="recorded only: Flock's manager and agent have no experimental "
                        "features to enable")
    m = p.add_argument_group("machine")
    m.add_argument("--tls-san", action="append", default=[], metavar="NAME_OR_IP",
                   help="extra name or IP in the server certificate (repeatable)")
    m.add_argument("--install-dir", default=DEFAULT_INSTALL_DIR,
                   help=f"where Flock lives on the machine (default {DEFAULT_INSTALL_DIR})")
    m.add_argument("--ssh-timeout", type=float, default=HostOptions.ssh_timeout,
                   metavar="SECONDS", help="how long to wait for SSH while the machine "
                   f"boots (default {HostOptions.ssh_timeout:g})")
    m.add_argument("--provision-timeout", type=float, default=HostOptions.provision_timeout,
                   metavar="SECONDS", help="how long provisioning may take (default "
                   f"{HostOptions.provision_timeout:g})")
    owned: dict[str, list[argparse.Action]] = {}
    for name, (module, _cls, _extra) in DRIVERS.items():
        try:
            cls = driver_class(name)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                continue   # a driver not in this installation yet: no flags to offer
            raise
        group = p.add_argument_group(f"{name} driver")
        before = len(p._actions)
        cls.add_flags(group)
        owned[name] = p._actions[before:]
    p.set_defaults(driver_flags=owned)
    return p


def _pairs(values: list[str], flag: str) -> list[str]:
    for value in values:
        key, sep, _ = value.partition("=")
        if not sep or not key.strip():
            raise MachineError(f"{flag} {value!r}: give KEY=VALUE, e.g. {flag} zone=eu")
    return list(values)


def _check_discovery(url: str) -> None:
    scheme, sep, rest = url.partition("://")
    if sep and scheme not in DISCOVERY_SCHEMES:
        raise MachineError(f"--swarm-discovery {url!r}: unknown scheme {scheme!r}; use "
                           "token://TOKEN (from `flock create`), etcd://HOST:PORT/PREFIX, "
                           "nodes://HOST:PORT,... or file:///PATH")
    try:
        if scheme == "etcd":
            from flock.discovery.etcd import parse_etcd_url

            parse_etcd_url(rest)
        else:
            from flock.discovery import open_backend

            # only the URL's form is checked here: the token service is the machine's
            # business (a placeholder keeps token:// from asking for its address)
            open_backend(url, "http://token-service.invalid")
    except ValueError as exc:
        raise MachineError(f"--swarm-discovery {url!r}: {exc}") from None


def _word(value: str, flag: str) -> str:
    if any(c.isspace() or c in "\"'" for c in value):
        raise MachineError(f"{flag} {value!r}: a value without spaces or quotes")
    return value


def _swarm_host_port(url: str) -> int:
    """The port of --swarm-host tcp://IP:PORT: where the manager listens."""
    scheme, _, rest = url.partition("://")
    _, sep, port = rest.rpartition(":")
    if scheme != "tcp" or not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise MachineError(f"--swarm-host {url!r}: give tcp://IP:PORT, e.g. "
                           f"tcp://0.0.0.0:{MANAGER_PORT}")
    return int(port)


def engine_port(args: argparse.Namespace) -> int:
    """--engine-port, or generic's --generic-engine-port (Docker Machine's name for it)."""
    port = args.engine_port
    generic = getattr(args, "generic_engine_port", None)
    text = os.environ.get("GENERIC_ENGINE_PORT", "")
    if generic is None and args.driver == "generic" and text:
        if not text.isdigit():
            raise MachineError(f"$GENERIC_ENGINE_PORT={text!r} is not a port number")
        generic = int(text)
    if generic is not None:
        if port not in (ENGINE_PORT, generic):
            raise MachineError(f"--generic-engine-port {generic} and --engine-port {port} "
                               "disagree: give one of them")
        port = generic
    if not 0 < port < 65536:
        raise MachineError(f"--engine-port {port}: give a port from 1 to 65535")
    return port


def host_options(args: argparse.Namespace) -> HostOptions:
    """The machine options from the common flags; MachineError for a bad value."""
    labels = dict(v.split("=", 1) for v in _pairs(args.engine_label, "--engine-label"))
    swarm = args.swarm or args.swarm_master
    if swarm and not args.swarm_discovery:
        raise MachineError("--swarm and --swarm-master need --swarm-discovery: e.g. "
                           "token://TOKEN from `flock create`, or etcd://HOST:2379/PREFIX")
    if args.swarm_discovery:
        if not swarm:
            raise MachineError("--swarm-discovery is given without --swarm or --swarm-master:"
                               " add --swarm to join the cluster")
        _check_discovery(args.swarm_discovery)
    manager_port = _swarm_host_port(args.swarm_host)
    if not args.install_dir.startswith("/"):
        raise MachineError(f"--install-dir {args.install_dir!r}: give an absolute path on "
                           "the machine, e.g. /opt/flock")
    for flag, value in (("--ssh-timeout", args.ssh_timeout),
                        ("--provision-timeout", args.provision_timeout)):
        if value <= 0:
            raise MachineError(f"{flag} {value:g}: give a number of seconds above 0")
    machine_certs.split_sans(args.tls_san)   # refuses what is neither an IP nor a name
    options = HostOptions(
        engine=EngineOptions(runtime=args.engine_runtime, port=engine_port(args),
                             labels=labels, opts=_pairs(args.engine_opt, "--engine-opt"),
                             env=_pairs(args.engine_env, "--engine-env"),
                             storage_driver=_word(args.engine_storage_driver,
                                                  "--engine-storage-driver"),
                             insecure_registry=[_word(v, "--engine-insecure-registry")
                                                for v in args.engine_insecure_registry],
                             registry_mirror=[_word(v, "--engine-registry-mirror")
                                              for v in args.engine_registry_mirror],
                             install_url=args.engine_install_url),
        swarm=SwarmOptions(agent=swarm, master=args.swarm_master,
                           discovery=args.swarm_discovery, strategy=args.swarm_strategy,
                           opts=_pairs(args.swarm_opt, "--swarm-opt"), addr=args.swarm_addr,
                           host=args.swarm_host, manager_port=manager_port,
                           join_opts=_pairs(args.swarm_join_opt, "--swarm-join-opt"),
                           image=args.swarm_image, experimental=args.swarm_experimental),
        install_dir=args.install_dir.rstrip("/") or "/",
        ssh_timeout=args.ssh_timeout, provision_timeout=args.provision_timeout)
    options.auth.extra_sans = list(args.tls_san)
    return options


def machine_names(args: argparse.Namespace) -> list[str]:
    """NAME, or a fleet: --name repeated, or --count N --prefix P. A new name that is not
    a hostname is Docker Machine's create error (commands/create.go)."""
    given = ([args.name] if args.name else []) + list(args.more_names)
    if args.count is not None:
        if given:
            raise MachineError("give either machine names or --count with --prefix, not both")
        if args.count < 1:
            raise MachineError(f"--count {args.count}: give a number of machines above 0")
        if not args.prefix:
            raise MachineError("--count needs --prefix: e.g. --count 3 --prefix web- makes "
                               "web-1, web-2 and web-3")
        names = [f"{args.prefix}{i}" for i in range(1, args.count + 1)]
    elif args.prefix:
        raise MachineError("--prefix goes with --count: e.g. --count 3 --prefix web-")
    else:
        names = given
    if not names:
        raise MachineError("Error: No machine name specified: flock machine create -d DRIVER "
                           "NAME (a fleet: --name NAME repeated, or --count N --prefix P)")
    seen = set()
    for name in names:
        try:
            check_name(name)
        except InvalidName:
            raise InvalidHostname() from None
        if name in seen:
            raise MachineError(f'machine name "{name}" is given twice')
        seen.add(name)
    return names


def _check_driver_flags(args: argparse.Namespace, driver: str) -> None:
    """Refuse another driver's flags: they would be silently ignored."""
    for name, actions in args.driver_flags.items():
        if name == driver:
            continue
        for action in actions:
            if getattr(args, action.dest, action.default) != action.default:
                raise MachineError(f"{action.option_strings[0]} is a flag of the {name} driver,"
                                   f" not of {driver}: use -d {name}, or drop the flag")


def _load_module(name: str, attr: str):
    try:
        return importlib.import_module(f"provisioner.{name}")
    except ImportError as exc:
        raise MachineError(f"{attr} is not available in this installation ({exc})") from None


def create_one(store: Store, name: str, driver: Driver, options: HostOptions,
               progress: FleetProgress) -> None:
    """Everything for one machine; raises after recording the failure in the store."""
    say = progress.reporter(name)
    say("Running pre-create checks...")
    try:
        driver.pre_create_check()
    except MachineError as exc:
        raise PreCreateFailed(str(exc)) from None
    host = Host(name=name, driver_name=driver.name, driver=driver.to_dict(),
                options=copy.deepcopy(options),
                created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))
    store.create(host)
    try:
        store.save_secrets(name, driver.secrets())
        if driver.has_ssh:
            say("Creating SSH key...")
            _load_module("ssh", "SSH").ensure_key_pair(store.machine_dir(name))
        say("Creating machine...")
        driver.create(say)
        host.driver = driver.to_dict()
        store.save(host)
        store.save_secrets(name, driver.secrets())
        machine_certs.ensure_ca_and_client(store)
        if driver.has_ssh:
            _load_module("provision", "provisioning over SSH").provision_host(
                store, host, driver, say)
        else:
            say("Copying certs to the local machine directory...")
            machine_certs.write_server_cert(store, host, _cert_ips(driver))
        host.error = ""
        host.driver = driver.to_dict()
        store.save(host)
    except BaseException as exc:
        host.error = describe(exc) if isinstance(exc, Exception) else "interrupted"
        host.driver = driver.to_dict()
        store.save(host)
        store.save_secrets(name, driver.secrets())
        raise


def _cert_ips(driver: Driver) -> list[str]:
    """The IP a `none` machine's server cert names: its --url's host, when the URL has one
    (Docker Machine stores any --url as given and dials nothing at create)."""
    try:
        return [driver.ip()]
    except MachineError:
        return []


def _success_text(name: str, options: HostOptions) -> str:
    if options.engine.runtime == "exec":
        return ("Flock is up and running (exec runtime: no Docker endpoint of its own). "
                "To use it, point docker at the cluster's manager: flock machine env --swarm "
                "MASTER")
    return ("Docker is up and running!\nTo see how to connect your Docker Client to the "
            f"Docker Engine running on this machine, run: flock machine env {name}")


def cmd_create(args: argparse.Namespace, store: Store) -> int:
    names = machine_names(args)
    cls = driver_class(args.driver)
    _check_driver_flags(args, args.driver)
    options = host_options(args)
    for name in names:
        if store.exists(name):
            raise MachineExists(name)
    # Pure flag parsing: a bad flag stops everything before anything is made.
    drivers = {n: cls.from_flags(n, store.machine_dir(n), args) for n in names}
    machine_certs.ensure_ca_and_client(store)
    failures: dict[str, str] = {}
    pre_create: set[str] = set()   # refused by the driver's pre-create check: exit 3

    def one(name: str) -> None:
        try:
            create_one(store, name, drivers[name], options, progress)
            progress.done(name, _success_text(name, options))
        except Exception as exc:  # noqa: BLE001 - one machine's failure must not stop the rest
            failures[name] = describe(exc)
            if isinstance(exc, PreCreateFailed):
                pre_create.add(name)
            progress.failed(name, f"Error creating machine: {failures[name]}")

    with FleetProgress(names) as progress:
        if len(names) == 1:
            one(names[0])
        else:
            with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(names))) as pool:
                list(pool.map(one, names))
    if failures:
        if progress.live:
            for name in names:
                if name in failures:
                    err(f'Error creating machine "{name}": {failures[name]}')
        kept = [n for n in names if n in failures and store.exists(n)]
        if kept:
            err(f"The failed record{'s stay' if len(kept) > 1 else ' stays'} in the store "
                "with the error (see `flock machine ls`); remove what is left with: "
                f"flock machine rm -y {' '.join(kept)}")
        return PreCreateFailed.exit_code if pre_create == set(failures) else 1
    if len(names) > 1:
        out(f"Created {len(names)} machines: {', '.join(names)}")
        if progress.live and options.engine.runtime == "docker":
            out("To see how to connect your Docker Client to the Docker Engine running on "
                "one of them, run: flock machine env NAME")
    return 0
