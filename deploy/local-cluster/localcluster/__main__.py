"""`python -m localcluster up|down|status` (what up.sh and down.sh run).

Exit status: 0 done, 1 something failed (the message says what to do), 2 bad options.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from localcluster import ClusterError, UsageError
from localcluster.layout import DEFAULT_NAME, STATE_ROOT, Layout, check_name, default_state_dir


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="local-cluster",
        description="A three-host Flock cluster on this machine: three network namespaces "
                    "with a dockerd and an agent each, etcd and two replicated managers.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--name", default=DEFAULT_NAME,
                        help=f"the cluster's name: namespaces, interfaces and the state "
                             f"folder are named after it (default {DEFAULT_NAME})")
    common.add_argument("--state-dir", type=Path, default=None, metavar="DIR",
                        help=f"pids, logs and data (default {STATE_ROOT}/NAME)")
    up = commands.add_parser("up", parents=[common], help="bring the cluster up",
                             description="Bring the cluster up and print its DOCKER_HOST.")
    up.add_argument("--subnet", default=None, metavar="CIDR",
                    help="the bridge's IPv4 network (default: a free /24 of 10.128.0.0/9)")
    up.add_argument("--etcd-port", type=int, default=2379, metavar="PORT",
                    help="etcd's client port on the bridge address; peers use the next one "
                         "(default 2379)")
    up.add_argument("--manager-port", type=int, default=2375, metavar="PORT",
                    help="manager A's port (the primary); manager B uses the next one "
                         "(default 2375)")
    up.add_argument("--tls", action="store_true",
                    help="mutual TLS everywhere, with certs from `flock certs init`")
    up.add_argument("--keep-on-failure", action="store_true",
                    help="when a step fails, leave what was made for a look (then run down)")
    up.add_argument("--timeout", type=float, default=120, metavar="SECONDS",
                    help="how long each wait may take (default 120)")
    down = commands.add_parser("down", parents=[common], help="remove everything up made",
                               description="Stop and remove the cluster; fine on a half-made "
                                           "one and when run twice.")
    down.add_argument("--keep-logs", action="store_true",
                      help="keep the logs folder of the state folder")
    commands.add_parser("status", parents=[common], help="what runs now")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        name = check_name(args.name)
        state_dir = (args.state_dir or default_state_dir(name)).absolute()
        if args.command == "up":
            from localcluster.up import Options, up

            if args.timeout <= 0:
                raise UsageError(f"invalid --timeout {args.timeout:g}: must be positive")
            up(Options(name=name, state_dir=state_dir, subnet=args.subnet,
                       etcd_port=args.etcd_port, manager_port=args.manager_port,
                       tls=args.tls, keep_on_failure=args.keep_on_failure,
                       timeout=args.timeout))
        elif args.command == "down":
            from localcluster.checks import require_root
            from localcluster.down import down

            require_root("down.sh")
            down(Layout.load(name, state_dir), keep_logs=args.keep_logs)
        else:
            from localcluster.summary import tables

            layout = Layout.load(name, state_dir)
            if not layout.recorded:
                print(f"no cluster {name!r} recorded in {state_dir}")
                return 1
            from localcluster.probe import client_tls

            tls = client_tls(layout.pki) if layout.tls and layout.pki.exists() else None
            print(tables(layout, tls))
    except UsageError as exc:
        print(f"local-cluster {args.command}: error: {exc}", file=sys.stderr, flush=True)
        return 2
    except ClusterError as exc:
        print(f"local-cluster {args.command}: error: {exc}", file=sys.stderr, flush=True)
        return 1
    except OSError as exc:  # a folder or program we could not use, named by the message
        print(f"local-cluster {args.command}: error: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print(f"local-cluster {args.command}: interrupted", file=sys.stderr, flush=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
