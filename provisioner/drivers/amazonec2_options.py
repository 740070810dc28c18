"""The amazonec2 driver's flags and the checks that need no network: names and defaults as
Docker Machine 0.16 has them, so scripts written for `docker-machine create -d amazonec2`
keep working, plus `--amazonec2-allow-cidr` (Flock opens ports to a given range only).

Everything here is pure parsing: a bad value is refused with what to pass instead, before
anything is asked of (or made at) the provider.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import urllib.request

from flock.provisioner.errors import MachineError
from flock.provisioner.host import AGENT_PORT, CALLS_PORT, ENGINE_PORT, MANAGER_PORT

DEFAULT_REGION = "us-east-1"
DEFAULT_ZONE = "a"
DEFAULT_INSTANCE_TYPE = "t3.small"
DEFAULT_SECURITY_GROUP = "docker-machine"
DEFAULT_ROOT_SIZE = 16
DEFAULT_VOLUME_TYPE = "gp2"
SSH_PORT = 22
# Ports every machine needs reachable from the allowed ranges: SSH for provisioning, the
# engine (TLS), the agent (and its call link) and a --swarm-master's manager.
MACHINE_PORTS = (SSH_PORT, ENGINE_PORT, AGENT_PORT, CALLS_PORT, MANAGER_PORT)
CALLER_ADDRESS_URL = "https://checkip.amazonaws.com"
# Tags Flock puts on what it makes, so a leak can be found (and `rm` can find an instance
# whose RunInstances answer was lost).
MACHINE_TAG = "flock-machine"
CREATE_TAG = "flock-create"

# (flag, environment variable Docker Machine reads for it, help)
_FLAGS: list[tuple[str, str, str]] = [
    ("access-key", "AWS_ACCESS_KEY_ID", "AWS access key (kept in secrets.json, mode 0600)"),
    ("secret-key", "AWS_SECRET_ACCESS_KEY", "AWS secret key (kept in secrets.json, 0600)"),
    ("session-token", "AWS_SESSION_TOKEN", "AWS session token (kept in secrets.json)"),
    ("region", "AWS_DEFAULT_REGION", f"AWS region (default {DEFAULT_REGION})"),
    ("zone", "AWS_ZONE", f"availability zone letter (default {DEFAULT_ZONE})"),
    ("ami", "AWS_AMI", "AMI ID to launch (required: no default AMI is known offline)"),
    ("instance-type", "AWS_INSTANCE_TYPE", f"instance type (default {DEFAULT_INSTANCE_TYPE})"),
    ("vpc-id", "AWS_VPC_ID", "VPC ID (default: the region's default VPC)"),
    ("subnet-id", "AWS_SUBNET_ID", "subnet ID (default: the VPC's subnet in the zone)"),
    ("security-group", "AWS_SECURITY_GROUP",
     f"security group name, made or reused in the VPC (default {DEFAULT_SECURITY_GROUP})"),
    ("keypair-name", "AWS_KEYPAIR_NAME",
     "an existing key pair to use (needs --amazonec2-ssh-keypath); default: import the "
     "machine's own key"),
    ("ssh-keypath", "AWS_SSH_KEYPATH", "private key of --amazonec2-keypair-name"),
    ("root-size", "AWS_ROOT_SIZE", f"root disk size in GB (default {DEFAULT_ROOT_SIZE})"),
    ("volume-type", "AWS_VOLUME_TYPE",
     f"root disk volume type (default {DEFAULT_VOLUME_TYPE})"),
    ("tags", "AWS_TAGS", "extra tags as k1,v1,k2,v2"),
    ("ssh-user", "AWS_SSH_USER",
     "SSH user (default: from the AMI's name: admin for Debian, ubuntu for Ubuntu, "
     "ec2-user for Amazon Linux; admin otherwise)"),
    ("endpoint", "AWS_ENDPOINT_URL_EC2", "EC2 API URL (a local EC2 API, e.g. moto_server)"),
]


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Docker Machine's amazonec2 flags. Defaults stay None here; from_flags applies the
    environment and the documented defaults, so `--help` works without boto3."""
    for flag, env, text in _FLAGS:
        parser.add_argument(f"--amazonec2-{flag}", default=None, help=f"{text} [${env}]")
    parser.add_argument("--amazonec2-use-private-address", action="store_true", default=False,
                        help="reach the machine by its private IP (it still gets a public one)")
    parser.add_argument("--amazonec2-private-address-only", action="store_true",
                        default=False, help="no public IP at all; implies "
                        "--amazonec2-use-private-address")
    parser.add_argument("--amazonec2-allow-cidr", action="append", default=None,
                        metavar="CIDR", help="address range allowed to reach the machine's "
                        "ports (repeatable; default: the caller's public address when it can "
                        "be learnt; 0.0.0.0/0 only if given explicitly)")
    parser.add_argument("--amazonec2-open-port", action="append", default=None,
                        metavar="PORT[/PROTO]", help="extra port opened to the allowed ranges "
                        "(repeatable, e.g. 8080 or 53/udp)")


def flag(args: argparse.Namespace, name: str, env: str = "", default: str = "") -> str:
    """A flag's value, else its environment variable, else the default."""
    value = getattr(args, "amazonec2_" + name.replace("-", "_"), None)
    if value in (None, "") and env:
        value = os.environ.get(env)
    return str(value) if value not in (None, "") else default


def env_of(name: str) -> str:
    return next(env for flag_, env, _ in _FLAGS if flag_ == name)


def parse_credentials(access: str, secret: str, token: str) -> dict[str, str]:
    """Explicit credentials, or {} to use boto3's own chain (profile, shared credentials
    file, instance role)."""
    if bool(access) != bool(secret):
        given, missing = (("--amazonec2-access-key", "--amazonec2-secret-key") if access
                          else ("--amazonec2-secret-key", "--amazonec2-access-key"))
        raise MachineError(f"{given} was given without {missing}: pass both (or set "
                           "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
    if not access:
        return {}
    out = {"access_key": access, "secret_key": secret}
    if token:
        out["session_token"] = token
    return out


def no_credentials_error() -> MachineError:
    return MachineError("no AWS credentials found: pass --amazonec2-access-key and "
                        "--amazonec2-secret-key, set AWS_ACCESS_KEY_ID and "
                        "AWS_SECRET_ACCESS_KEY, or configure an AWS profile")


def parse_tags(text: str) -> dict[str, str]:
    """Docker Machine's `k1,v1,k2,v2`."""
    if not text:
        return {}
    parts = text.split(",")
    if len(parts) % 2:
        raise MachineError(f"--amazonec2-tags {text!r} has an odd number of items: give "
                           "key,value pairs like k1,v1,k2,v2")
    tags: dict[str, str] = {}
    for key, value in zip(parts[::2], parts[1::2], strict=True):
        key = key.strip()
        if not key:
            raise MachineError(f"--amazonec2-tags {text!r} has an empty key: give key,value "
                               "pairs like k1,v1,k2,v2")
        if key in (MACHINE_TAG, CREATE_TAG):
            raise MachineError(f"--amazonec2-tags: the tag {key!r} is Flock's own; choose "
                               "another key")
        tags[key] = value
    return tags


def parse_cidr(text: str) -> str:
    """A CIDR (or a bare address, taken as /32 or /128), normalised to its network."""
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        raise MachineError(f"--amazonec2-allow-cidr {text!r} is not an address range: give "
                           "one like 203.0.113.0/24 or 198.51.100.7") from None


def parse_ports(values: list[str] | None) -> list[str]:
    """`--amazonec2-open-port` values as 'PORT/PROTO' (tcp unless said)."""
    out: list[str] = []
    for value in values or []:
        match = re.fullmatch(r"(\d+)(?:/(tcp|udp))?", value.strip().lower())
        port = int(match.group(1)) if match else 0
        if not match or not 0 < port < 65536:
            raise MachineError(f"--amazonec2-open-port {value!r}: give a port from 1 to 65535, "
                               "optionally with /tcp or /udp (e.g. 8080 or 53/udp)")
        entry = f"{port}/{match.group(2) or 'tcp'}"
        if entry not in out:
            out.append(entry)
    return out


def parse_root_size(text: str) -> int:
    try:
        size = int(text)
    except ValueError:
        size = 0
    if size <= 0:
        raise MachineError(f"--amazonec2-root-size {text!r}: give the root disk size in GB, "
                           f"a whole number like {DEFAULT_ROOT_SIZE}")
    return size


def parse_zone(text: str) -> str:
    if not re.fullmatch(r"[a-z]", text):
        raise MachineError(f"--amazonec2-zone {text!r}: give the zone's letter, like a or b "
                           "(the availability zone is the region plus this letter)")
    return text


def parse_endpoint(text: str) -> str:
    if text and not re.match(r"https?://[^/\s]+", text):
        raise MachineError(f"--amazonec2-endpoint {text!r}: give an http:// or https:// URL, "
                           "e.g. http://127.0.0.1:5000")
    return text.rstrip("/")


def caller_cidr(timeout: float = 3.0) -> tuple[str, str]:
    """The caller's public address as a /32 (or /128), and '' — or '' and why it is not
    known. Asked of AWS's own checkip service, which is what the machine will see."""
    try:
        with urllib.request.urlopen(CALLER_ADDRESS_URL, timeout=timeout) as answer:
            text = answer.read(100).decode(errors="replace").strip()
        return str(ipaddress.ip_network(text)), ""
    except (OSError, ValueError) as exc:
        return "", f"asking {CALLER_ADDRESS_URL} failed: {exc}"


def default_allow_cidrs(endpoint: str) -> list[str]:
    """The caller's own address, when it can be learnt; never the whole internet."""
    if endpoint:
        why = f"it cannot be learnt for a custom --amazonec2-endpoint ({endpoint})"
    else:
        cidr, why = caller_cidr()
        if cidr:
            return [cidr]
    raise MachineError(
        f"no --amazonec2-allow-cidr given and the caller's address is unknown ({why}): pass "
        "--amazonec2-allow-cidr with the range that may reach the machine's SSH, engine, "
        "agent and manager ports (e.g. --amazonec2-allow-cidr 203.0.113.7/32). Flock opens "
        "them to the whole internet only if you pass --amazonec2-allow-cidr 0.0.0.0/0")


# (pattern in the AMI's name or description, user, distribution) — the users the
# distributions' own cloud images create.
_IMAGE_USERS = [
    (r"debian", "admin", "Debian"),
    (r"ubuntu", "ubuntu", "Ubuntu"),
    (r"amzn|al20\d\d|amazon linux", "ec2-user", "Amazon Linux"),
    (r"rhel|red hat", "ec2-user", "RHEL"),
    (r"centos", "centos", "CentOS"),
    (r"rocky", "rocky", "Rocky Linux"),
    (r"fedora", "fedora", "Fedora"),
    (r"suse|sles", "ec2-user", "SUSE"),
]
FALLBACK_SSH_USER = "admin"


def ssh_user_for_image(name: str, description: str = "") -> tuple[str, str]:
    """The SSH user an AMI's distribution creates, and why it was chosen."""
    text = f"{name} {description}".lower()
    for pattern, user, distro in _IMAGE_USERS:
        if re.search(pattern, text):
            return user, f"{distro} AMI"
    return FALLBACK_SSH_USER, ("distribution not recognised from the AMI's name; pass "
                               "--amazonec2-ssh-user if it is not Debian's")
