"""`flock nodes|ps|run|explain|drain|activate|node update|events`: looking at and
steering a cluster
through the manager's ClusterService (manager/api/grpc.py).

Listings print a plain table, or with `--format json` a JSON list for scripts.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from collections.abc import Callable

# Before gRPC loads: unset, its C core prints each failed TLS handshake to stderr as
# well, above the message that says what to do about it.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import grpc  # noqa: E402
from google.protobuf.json_format import MessageToDict  # noqa: E402

from flock import client, connection_help
from flock.certs.files import default_cert_path
from flock.common.table import print_table
from flock.docker_compat.humanize import human_duration
from flock.protos import cluster_pb2 as pb

GIB = 1 << 30


def register(commands: argparse._SubParsersAction) -> None:
    conn, fmt = client.command_parents()

    nodes = commands.add_parser("nodes", parents=[conn, fmt],
                                help="list the cluster's nodes and what is reserved on them")
    nodes.set_defaults(func=_command(show_nodes))

    ps = commands.add_parser("ps", parents=[conn, fmt], help="list the cluster's containers")
    ps.add_argument("-a", "--all", action="store_true", help="stopped containers too")
    ps.set_defaults(func=_command(show_containers))

    spec = argparse.ArgumentParser(add_help=False)
    add_run_options(spec)
    spec.add_argument("--name", default="")
    spec.add_argument("image")

    explain = commands.add_parser("explain", parents=[conn, fmt, spec],
                                  help="why each node would or would not get a container")
    explain.set_defaults(func=_command(show_explanation), cmd=[])

    run = commands.add_parser("run", parents=[conn, fmt, spec],
                              help="schedule, create and start a container in the background")
    run.add_argument("--global", dest="global_", action="store_true",
                     help="one copy on every eligible node, named NAME.NODE, and on each "
                          "eligible node that joins later (needs --name)")
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="command and arguments")
    run.set_defaults(func=_command(run_container))

    node = commands.add_parser("node", help="change a node (labels at run time)")
    node_commands = node.add_subparsers(dest="node_command", metavar="COMMAND")
    node_commands.required = True
    update = node_commands.add_parser(
        "update", parents=[conn, fmt],
        help="add or remove node labels; the next decision honours them and the node's "
             "agent keeps them across restarts")
    update.add_argument("--label-add", action="append", default=[], metavar="KEY=VALUE")
    update.add_argument("--label-rm", action="append", default=[], metavar="KEY")
    update.add_argument("node", help="node name, ID or address")
    update.set_defaults(func=_command(update_node))

    for verb, what in (("drain", "take no new containers"), ("activate", "take containers "
                                                                           "again")):
        parser = commands.add_parser(verb, parents=[conn], help=f"let a node {what}")
        parser.add_argument("node", help="node name, ID or address")
        if verb == "drain":
            parser.add_argument("--reschedule", action="store_true",
                                help="also move its containers that allow it "
                                     "(reschedule:on-node-failure) to other nodes")
        parser.set_defaults(func=_command(set_availability), verb=verb)

    events = commands.add_parser("events", parents=[conn, fmt],
                                 help="follow the cluster's events (Ctrl-C stops)")
    events.set_defaults(func=_command(follow_events))


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options of a container that `flock run`, `explain` and `cron create` share
    (spec_from_args reads them)."""
    parser.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE",
                        help="environment, incl. constraint:..., affinity:... rules")
    parser.add_argument("-m", "--memory", default="0", help="memory to reserve (512m, 1g)")
    parser.add_argument("-c", "--cpus", type=float, default=0.0, help="CPUs to reserve")
    parser.add_argument("-p", "--publish", action="append", default=[],
                        metavar="HOST:CONTAINER", help="host port to bind")
    parser.add_argument("-l", "--label", action="append", default=[], metavar="KEY=VALUE")


def _command(work: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn the client's errors into a message on stderr and exit code 1."""

    def run(args: argparse.Namespace) -> int:
        try:
            return work(args)
        except client.ClientError as exc:
            print(f"flock {args.command}: {exc}", file=sys.stderr)
        except grpc.RpcError as err:
            code = err.code()
            detail = err.details() or ""
            if code == grpc.StatusCode.UNAVAILABLE and not detail.startswith("node "):
                detail = connection_help.unreachable(
                    client.target(args.host), client.wants_tls(args), detail,
                    args.tlscert or str(default_cert_path() / "cert.pem"),
                    connection_help.speaks_tls)
            print(f"flock {args.command}: {detail}", file=sys.stderr)
        return 1

    return run


def _json(items: list) -> None:
    print(json.dumps([MessageToDict(m, preserving_proto_field_name=True,
                                    always_print_fields_with_no_presence=True)
                      for m in items], indent=2))


def percent(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def node_row(node: pb.NodeStatus) -> list[str]:
    health = node.health + (" (drained)" if node.drained else "")
    cpus = f"{node.reserved_cpus:g}/{node.cpus} {percent(node.reserved_cpus, node.cpus)}"
    memory = (f"{node.reserved_memory / GIB:.1f}/{node.memory / GIB:.1f} GiB "
              f"{percent(node.reserved_memory, node.memory)}")
    labels = ",".join(f"{k}={v}" for k, v in sorted(node.labels.items())
                      if k not in ("executiondriver", "kernelversion", "operatingsystem",
                                   "storagedriver", "ostype"))
    return [node.name, node.address, health, str(node.containers), cpus, memory, labels]


def show_nodes(args: argparse.Namespace) -> int:
    nodes = list(client.stub(args).ListNodes(pb.ListNodesRequest(), timeout=30).nodes)
    if args.format == "json":
        _json(nodes)
    else:
        print_table(["NAME", "ADDRESS", "HEALTH", "CONTAINERS", "CPUS", "MEMORY", "LABELS"],
                    [node_row(n) for n in nodes])
        for line in node_errors(nodes):
            print(line)
    return 0


def node_errors(nodes: list[pb.NodeStatus]) -> list[str]:
    """Why each node that is not healthy is not (unreachable, or refused: its name is
    taken), below the table: the reason is what tells the operator what to do."""
    return [f"{n.name}: {n.error}" for n in nodes if n.error and n.health != "healthy"]


def show_containers(args: argparse.Namespace) -> int:
    reply = client.stub(args).ListContainers(pb.ListContainersRequest(all=args.all), timeout=30)
    found = list(reply.containers)
    if args.format == "json":
        _json(found)
        return 0
    now = datetime.datetime.now(datetime.UTC).timestamp()
    rows = [[c.id[:12], c.name, c.node, c.image, c.status,
             human_duration(now - c.created) + " ago" if c.created else ""] for c in found]
    print_table(["CONTAINER ID", "NAME", "NODE", "IMAGE", "STATUS", "CREATED"], rows)
    return 0


def spec_from_args(args: argparse.Namespace) -> pb.ContainerSpec:
    labels = dict(item.partition("=")[::2] for item in args.label)
    return pb.ContainerSpec(image=args.image, name=args.name, env=args.env,
                            memory=client.parse_size(args.memory), cpus=args.cpus,
                            labels=labels, ports=args.publish, cmd=args.cmd)


def run_container(args: argparse.Namespace) -> int:
    request = pb.RunRequest(spec=spec_from_args(args), **{"global": args.global_})
    reply = client.stub(args).Run(request, timeout=300)
    placed = list(reply.placed) or [reply.container]
    if args.format == "json":
        _json(placed)
        return 0
    for warning in reply.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print_table(["CONTAINER ID", "NAME", "NODE", "STATUS"],
                [[c.id[:12], c.name, c.node, c.status] for c in placed])
    for skipped in reply.skipped:
        print(f"no copy on {skipped}", file=sys.stderr)
    return 0


def parse_label_args(items: list[str]) -> dict[str, str]:
    """KEY=VALUE pairs; a bad one is a usage error before anything is sent."""
    labels = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key or not sep:
            raise client.ClientError(f"invalid label {item!r}: expected KEY=VALUE")
        labels[key] = value
    return labels


def update_node(args: argparse.Namespace) -> int:
    request = pb.UpdateNodeRequest(ref=args.node, labels_add=parse_label_args(args.label_add),
                                   labels_remove=args.label_rm)
    node = client.stub(args).UpdateNode(request, timeout=30)
    if args.format == "json":
        _json([node])
    else:
        print_table(["NAME", "ADDRESS", "HEALTH", "CONTAINERS", "CPUS", "MEMORY", "LABELS"],
                    [node_row(node)])
    return 0


def verdicts(nodes: list[pb.NodeStatus], found: pb.Explanation) -> list[list[str]]:
    """One row per node: chosen, ranked N, or the condition that removed it."""
    why: dict[str, str] = {}
    for removal in found.removals:
        for name in removal.nodes:
            text = f"removed by [{removal.condition}]" + (
                f" ({removal.detail})" if removal.detail else "")
            why.setdefault(name, text)
    ranks = {r.node: (i, r) for i, r in enumerate(found.ranking)}
    rows = []
    for node in nodes:
        if node.name in ranks:
            i, ranked = ranks[node.name]
            verdict = "chosen" if i == 0 else f"ranked {i + 1}"
            rows.append([node.name, verdict, f"{ranked.weight:.4g}", str(ranked.containers)])
        else:
            rows.append([node.name, why.get(node.name, "not ranked"), "", str(node.containers)])
    order = {name: i for i, name in enumerate(ranks)}
    rows.sort(key=lambda row: (order.get(row[0], len(order)), row[0]))
    return rows


def show_explanation(args: argparse.Namespace) -> int:
    service = client.stub(args)
    found = service.Explain(spec_from_args(args), timeout=30)
    if args.format == "json":
        _json([found])
        return 0
    nodes = list(service.ListNodes(pb.ListNodesRequest(), timeout=30).nodes)
    print(f"strategy: {found.strategy}; filters: {', '.join(found.filters)}")
    print_table(["NODE", "VERDICT", "WEIGHT", "CONTAINERS"], verdicts(nodes, found))
    for rule in found.dropped_soft:
        print(f"soft rule dropped: {rule}")
    if found.error:
        print(found.error)
        return 1
    return 0


def set_availability(args: argparse.Namespace) -> int:
    service = client.stub(args)
    if args.verb == "activate":
        node = service.Activate(pb.NodeRef(ref=args.node), timeout=30)
        print(f"{node.name}: active")
        return 0
    reply = service.Drain(pb.DrainRequest(ref=args.node, reschedule=args.reschedule),
                          timeout=300)
    print(f"{reply.node.name}: drained")
    for name in reply.moved:
        print(f"moved {name}")
    for name in reply.stayed:
        print(f"could not move {name} now (see the manager's log)", file=sys.stderr)
    return 1 if reply.stayed else 0


def follow_events(args: argparse.Namespace) -> int:
    try:
        for event in client.stub(args).Events(pb.EventsRequest()):
            if args.format == "json":
                print(json.dumps(MessageToDict(event, preserving_proto_field_name=True)),
                      flush=True)
                continue
            when = datetime.datetime.fromtimestamp(event.time, datetime.UTC)
            ident = event.id if event.kind == "cron" else event.id[:12]  # a job's name
            print(f"{when:%Y-%m-%dT%H:%M:%S}Z {event.kind} {event.action} {ident} "
                  f"(node={event.node})", flush=True)
    except KeyboardInterrupt:
        return 0
    return 0
