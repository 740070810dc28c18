"""`flock certs`: make the CA and the certs a manual TLS setup needs.

Every identity is a docker-style folder (ca.pem, cert.pem, key.pem) that the
--tlscacert/--tlscert/--tlskey flags and DOCKER_CERT_PATH take as they are.
"""

from __future__ import annotations

import sys
from pathlib import Path

from flock.certs.check import describe_sans, load_ca, read_cert
from flock.certs.files import CA_CERT, CA_KEY, CertError, write_ca, write_identity
from flock.certs.issue import CA_DAYS, LEAF_DAYS, ROLES, issue, make_ca, roles_of, usages_of

LOOPBACK_IPS = ("127.0.0.1", "::1")


def register(subparsers) -> None:
    """Add the `certs` sub-command to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "certs", help="make TLS certificates: a CA, server and client certs",
        description="Make the CA and certificates for mutual TLS between docker clients, "
                    "managers and agents.")
    commands = parser.add_subparsers(dest="certs_command", metavar="COMMAND")
    commands.required = True
    parser.set_defaults(func=main)

    ca = commands.add_parser("ca", help="make a new CA (ca.pem, ca-key.pem)")
    ca.add_argument("--out", required=True, metavar="DIR", help="folder to write to")
    ca.add_argument("--name", default="Flock CA", help="the CA's common name")
    _common(ca, CA_DAYS)
    ca.set_defaults(run=_cmd_ca)

    server = commands.add_parser("server", help="a server cert for a manager or an agent")
    server.add_argument("--name", required=True, help="common name, e.g. the host's name")
    server.add_argument("--role", choices=["manager"], default="",
                        help="also a client cert with this role: a manager's one cert "
                             "serves its Docker API and calls its agents")
    _signed(server)
    _sans(server)
    server.set_defaults(run=_cmd_server)

    client = commands.add_parser("client", help="a client cert (DOCKER_CERT_PATH style)")
    client.add_argument("--role", required=True, choices=ROLES,
                        help="manager: may call agents; admin: a docker client")
    client.add_argument("--name", default="", help="common name (default: the role)")
    _signed(client)
    client.set_defaults(run=_cmd_client)

    init = commands.add_parser(
        "init", help="everything a manual setup needs: CA, manager, agent and client certs")
    init.add_argument("dir", help="folder to make ca/, manager/, agent/ and client/ in")
    _sans(init, extra=" (loopback is always included)")
    _common(init, LEAF_DAYS)
    init.set_defaults(run=_cmd_init)

    show = commands.add_parser("show", help="print what a certificate is for and its expiry")
    show.add_argument("files", nargs="+", metavar="FILE")
    show.set_defaults(run=_cmd_show)


def _common(parser, days: int) -> None:
    parser.add_argument("--days", type=int, default=days,
                        help=f"validity in days (default {days})")
    parser.add_argument("--force", action="store_true", help="replace existing files")


def _signed(parser) -> None:
    parser.add_argument("--ca", required=True, metavar="DIR",
                        help=f"the CA's folder ({CA_CERT} and {CA_KEY})")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write to")
    _common(parser, LEAF_DAYS)


def _sans(parser, extra: str = "") -> None:
    parser.add_argument("--ip", action="append", default=[], metavar="IP",
                        help="an IP address clients dial, repeatable" + extra)
    parser.add_argument("--dns", action="append", default=[], metavar="NAME",
                        help="a host name clients dial, repeatable")


def _open_ca(folder: str):
    base = Path(folder).expanduser()
    return load_ca(str(base / CA_CERT), str(base / CA_KEY))


def _cmd_ca(args) -> None:
    cert, key = write_ca(args.out, make_ca(args.name, args.days), args.force)
    print(f"CA certificate: {cert}\nCA key:         {key} (mode 0600: keep it secret, it "
          "signs every cert of the cluster)")


def _cmd_server(args) -> None:
    ca = _open_ca(args.ca)
    made = issue(ca, args.name, ips=args.ip, dns=args.dns, server=True, role=args.role,
                 days=args.days)
    _report(write_identity(args.out, made, ca.cert, args.force).cert, made.cert)


def _cmd_client(args) -> None:
    ca = _open_ca(args.ca)
    made = issue(ca, args.name or args.role, role=args.role, days=args.days)
    _report(write_identity(args.out, made, ca.cert, args.force).cert, made.cert)


def _cmd_init(args) -> None:
    base = Path(args.dir).expanduser()
    ips = list(dict.fromkeys([*LOOPBACK_IPS, *args.ip]))
    dns = list(dict.fromkeys(["localhost", *args.dns]))
    ca = make_ca(days=max(args.days, CA_DAYS))
    write_ca(base / "ca", ca, args.force)
    parts = {
        "manager": issue(ca, "manager", ips=ips, dns=dns, server=True, role="manager",
                         days=args.days),
        "agent": issue(ca, "agent", ips=ips, dns=dns, server=True, days=args.days),
        "client": issue(ca, "admin", role="admin", days=args.days),
    }
    files = {name: write_identity(base / name, made, ca.cert, args.force)
             for name, made in parts.items()}
    host = args.ip[0] if args.ip else (args.dns[0] if args.dns else "127.0.0.1")
    flags = {name: f"--tlsverify --tlscacert={f.ca} --tlscert={f.cert} --tlskey={f.key}"
             for name, f in files.items()}
    print(f"CA:      {base / 'ca'} (ca-key.pem signs new certs: keep it offline)\n"
          f"manager: {base / 'manager'}\nagent:   {base / 'agent'}\nclient:  {base / 'client'}"
          f"\nServer certs are for: {describe_sans(parts['agent'].cert)}\n\n"
          f"flock join {flags['agent']} --advertise {host}:4000 <discovery>\n"
          f"flock manage {flags['manager']} -H tcp://{host}:2376 <discovery>\n"
          f"export DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH={base / 'client'} "
          f"DOCKER_HOST=tcp://{host}:2376")


def _report(path: str, cert) -> None:
    print(f"{path}: {_describe(cert)}")


def _describe(cert) -> str:
    kinds = sorted(usages_of(cert))
    parts = [cert.subject.rfc4514_string(), "/".join(kinds) or "no TLS use"]
    if "server" in kinds:
        parts.append(f"for {describe_sans(cert)}")
    roles = roles_of(cert)
    if roles:
        parts.append("role " + ", ".join(roles))
    parts.append(f"expires {cert.not_valid_after_utc:%Y-%m-%d}")
    return "; ".join(parts)


def _cmd_show(args) -> None:
    for path in args.files:
        _, cert = read_cert(path)
        _report(path, cert)


def main(args) -> int:
    """Entry point for the assembled `flock` command: exit status."""
    try:
        args.run(args)
    except (CertError, ValueError) as exc:
        print(f"flock certs: error: {exc}", file=sys.stderr, flush=True)
        return 1
    except OSError as exc:
        print(f"flock certs: error: {exc.filename}: {exc.strerror}", file=sys.stderr,
              flush=True)
        return 1
    return 0
