"""`flock machine ls` and `active`: every machine's state, URL and engine version, asked
of the drivers in parallel, with a deadline so that one slow provider shows `Timeout`
instead of holding up the whole list (as in Docker Machine).

Filters work as Docker Machine's: several values of one key match any of them, several
keys must all match; `name=` is a regular expression, `label=k=v` an engine label.
"""

from __future__ import annotations

import argparse
import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from flock.docker_compat.regexp import Pattern, RegexpError, compile_pattern
from flock.provisioner import template
from flock.provisioner.commands import describe, listed_url, load_driver, out, swarm_url
from flock.provisioner.commands.engine import engine_version
from flock.provisioner.errors import MachineError
from flock.provisioner.host import Host
from flock.provisioner.machine_certs import machine_tls_files
from flock.provisioner.states import State
from flock.provisioner.store import Store

DEFAULT_TIMEOUT = 10.0
DEFAULT_FORMAT = ("table {{ .Name }}\\t{{ .Active }}\\t{{ .DriverName}}\\t{{ .State }}\\t"
                  "{{ .URL }}\\t{{ .Swarm }}\\t{{ .DockerVersion }}\\t{{ .Error}}")
HEADERS = {
    "Name": "NAME", "Active": "ACTIVE", "ActiveHost": "ACTIVE_HOST",
    "ActiveSwarm": "ACTIVE_SWARM", "DriverName": "DRIVER", "State": "STATE", "URL": "URL",
    "SwarmOptions": "SWARM_OPTIONS", "Swarm": "SWARM", "EngineOptions": "ENGINE_OPTIONS",
    "Error": "ERRORS", "DockerVersion": "DOCKER", "ResponseTime": "RESPONSE",
}
FILTER_KEYS = ("driver", "state", "name", "swarm", "label")


@dataclass
class Filters:
    driver: list[str] = field(default_factory=list)
    state: list[str] = field(default_factory=list)
    name: list[Pattern] = field(default_factory=list)
    swarm: list[str] = field(default_factory=list)
    label: list[tuple[str, str | None]] = field(default_factory=list)


def parse_filters(values: list[str]) -> Filters:
    filters = Filters()
    for text in values or []:
        key, sep, value = text.partition("=")
        key = key.strip().lower()
        if not sep or not key:
            raise MachineError(f'Unsupported filter syntax "{text}": use KEY=VALUE with KEY one '
                               f"of {', '.join(FILTER_KEYS)} (e.g. --filter driver=none)")
        if key not in FILTER_KEYS:
            raise MachineError(f"Unsupported filter key '{key}': use one of "
                               f"{', '.join(FILTER_KEYS)}")
        if key == "name":
            try:
                filters.name.append(compile_pattern(value))  # Go's regexp, as ls.go
            except RegexpError as exc:
                raise MachineError(f"--filter name={value}: not a valid regular expression "
                                   f"({exc})") from None
        elif key == "state":   # any word: one that is no state matches nothing (ls.go)
            filters.state.append(value)
        elif key == "label":
            k, has_value, v = value.partition("=")
            filters.label.append((k, v if has_value else None))
        else:
            getattr(filters, key).append(value)
    return filters


def swarm_masters(hosts: list[Host]) -> dict[str, str]:
    """discovery URL -> the name of the machine that is its --swarm-master."""
    return {h.options.swarm.discovery: h.name for h in hosts if h.options.swarm.master}


def swarm_column(host: Host, masters: dict[str, str]) -> str:
    swarm = host.options.swarm
    if not swarm.discovery:
        return ""
    master = masters.get(swarm.discovery, "")
    return f"{master} (master)" if swarm.master else master   # commands/ls.go


def matches(host: Host, filters: Filters, masters: dict[str, str]) -> bool:
    """The filters that need no question to the driver (all but state)."""
    if filters.driver and not any(d.lower() == host.driver_name.lower()
                                  for d in filters.driver):
        return False
    if filters.name and not any(p.search(host.name) for p in filters.name):
        return False
    if filters.swarm and not any(
            s.lower() == masters.get(host.options.swarm.discovery, "").lower()
            for s in filters.swarm if host.options.swarm.discovery):
        return False
    labels = host.options.engine.labels
    if filters.label and not any(
            k in labels and (v is None or labels[k].lower() == v.lower())
            for k, v in filters.label):
        return False
    return True


def state_matches(state: str, filters: Filters) -> bool:
    return not filters.state or any(s.lower() == state.lower() for s in filters.state)


@dataclass
class Item:
    """One row of `ls`: the fields its --format templates can name."""

    Name: str
    DriverName: str
    State: str = ""
    URL: str = ""
    Active: str = "-"
    ActiveHost: bool = False
    ActiveSwarm: bool = False
    Swarm: str = ""
    DockerVersion: str = "Unknown"
    Error: str = ""
    ResponseTime: str = ""
    SwarmOptions: dict[str, Any] = field(default_factory=dict)
    EngineOptions: dict[str, Any] = field(default_factory=dict)

    def fields(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _base_item(host: Host) -> Item:
    return Item(Name=host.name, DriverName=host.driver_name,
                SwarmOptions=dict(host.options.swarm.__dict__),
                EngineOptions=dict(host.options.engine.__dict__))


def query_host(store: Store, host: Host, timeout: float) -> Item:
    """Ask the driver (and the engine) about one machine."""
    began = time.monotonic()
    item = _base_item(host)
    problem = ""
    try:
        driver = load_driver(store, host)
        state = driver.state()
    except Exception as exc:  # noqa: BLE001 - shown in ERRORS, the rest still list
        item.State, item.Error = str(State.ERROR), host.error or describe(exc)
        return item
    item.State = str(state)
    if state is State.RUNNING:
        docker_host = os.environ.get("DOCKER_HOST", "")
        try:
            item.URL = listed_url(host, driver)
            item.ActiveHost = bool(item.URL) and item.URL == docker_host
            if host.options.swarm.master:
                item.ActiveSwarm = swarm_url(host, driver) == docker_host
        except Exception as exc:  # noqa: BLE001
            problem = describe(exc)
        if item.URL:
            try:
                # a little longer than ls waits: a silent engine shows as Timeout
                version = engine_version(item.URL, *machine_tls_files(store, host),
                                         timeout=timeout + 1)
                item.DockerVersion = f"v{version}"
            except MachineError as exc:
                problem = problem or f"Unable to query docker version: {exc}"
    item.Active = "* (swarm)" if item.ActiveSwarm else "*" if item.ActiveHost else "-"
    item.Error = host.error or problem
    item.ResponseTime = f"{int((time.monotonic() - began) * 1000)}ms"
    return item


def query_all(store: Store, hosts: list[Host], timeout: float) -> list[Item]:
    """query_host for every machine at once; a machine not done by the deadline is
    listed with state Timeout (its thread is left to finish on its own)."""
    results: dict[str, Item] = {}
    lock = threading.Lock()

    def run(host: Host) -> None:
        item = query_host(store, host, timeout)
        with lock:
            results[host.name] = item

    threads = {h.name: threading.Thread(target=run, args=(h,), daemon=True) for h in hosts}
    for thread in threads.values():
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads.values():
        thread.join(max(0.0, deadline - time.monotonic()))
    items = []
    with lock:
        for host in hosts:
            item = results.get(host.name)
            if item is None:
                item = _base_item(host)
                item.State = str(State.TIMEOUT)
                item.Active, item.DockerVersion = "", ""   # nothing known, as Docker Machine
                item.ResponseTime = f"{int(timeout * 1000)}ms"
                item.Error = host.error
            items.append(item)
    return items


def natural_key(name: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name.lower())]


def load_hosts(store: Store) -> tuple[list[Host], list[Item]]:
    """The machines whose config loads, and rows for those whose config is broken."""
    hosts, broken = [], []
    for name in store.names():
        try:
            hosts.append(store.load(name))
        except MachineError as exc:
            broken.append(Item(Name=name, DriverName="not found", State=str(State.ERROR),
                               Error=str(exc).replace("\n", " ")))
    return hosts, broken


def check_timeout(value: float) -> float:
    if value <= 0:
        raise MachineError(f"--timeout {value:g}: give a number of seconds above 0")
    return value


def cmd_ls(args: argparse.Namespace, store: Store) -> int:
    filters = parse_filters(args.filter)
    timeout = check_timeout(args.timeout)
    fmt, table = template.split_table(args.format or DEFAULT_FORMAT)
    tmpl = _parse_format(fmt)
    hosts, broken = load_hosts(store)
    masters = swarm_masters(hosts)
    hosts = [h for h in hosts if matches(h, filters, masters)]
    if filters.driver or filters.name or filters.swarm or filters.label or filters.state:
        broken = []   # a broken record matches no filter
    if args.quiet and not filters.state:
        for host in sorted(hosts, key=lambda h: natural_key(h.name)):
            out(host.name)
        return 0
    items = [i for i in query_all(store, hosts, timeout) if state_matches(i.State, filters)]
    by_name = {h.name: h for h in hosts}
    for item in items:
        item.Swarm = swarm_column(by_name[item.Name], masters)
    items = sorted(items + broken, key=lambda i: natural_key(i.Name))
    if args.quiet:
        for item in items:
            out(item.Name)
        return 0
    lines = ([tmpl.render(HEADERS)] if table else []) + [tmpl.render(i.fields()) for i in items]
    text = "\n".join(lines)
    if table:
        text = template.tabulate(text.split("\n"))
    if lines:
        out(text)
    return 0


def _parse_format(fmt: str) -> template.Template:
    """Parse and try the template on a sample row, so a bad field is refused before any
    machine is asked."""
    try:
        tmpl = template.parse(fmt)
        tmpl.render(Item(Name="", DriverName="").fields())
        return tmpl
    except template.TemplateError as exc:
        raise MachineError(f"--format: {exc}") from None


def cmd_active(args: argparse.Namespace, store: Store) -> int:
    timeout = check_timeout(args.timeout)
    if not os.environ.get("DOCKER_HOST"):
        raise MachineError("No active host found")
    hosts, _ = load_hosts(store)
    for item in query_all(store, hosts, timeout):
        if item.ActiveHost or item.ActiveSwarm:
            out(item.Name)
            return 0
    raise MachineError("No active host found")
