"""classic Swarm's `--discovery-opt KEY=VALUE` and `SWARM_DISCOVERY`, shared by `flock
manage`, `flock join` and `flock list` (classic: cli/flags.go flDiscoveryOpt, cli/manage.go
getDiscoveryOpt and getDiscovery).

Classic hands the options to libkv, which reads `kv.path` (where the nodes live under the
URL's prefix) and `kv.cacertfile`/`kv.certfile`/`kv.keyfile` (TLS to the store); the other
backends ignore them. Flock honours `kv.path` for etcd:// by joining it to the URL's path,
as libkv does, and refuses the rest with the reason, rather than start with a setting it
would not apply.
"""

from __future__ import annotations

import os

ENV_DISCOVERY = "SWARM_DISCOVERY"
KV_PATH = "kv.path"
_KV_TLS = ("kv.cacertfile", "kv.certfile", "kv.keyfile")


class DiscoveryOptionError(ValueError):
    """A --discovery-opt that cannot work; the message names it."""


def discovery_url(given: str | None) -> str:
    """The discovery argument, or $SWARM_DISCOVERY when none was given (classic's
    getDiscovery); "" when neither is set."""
    return (given or "").strip() or os.environ.get(ENV_DISCOVERY, "").strip()


def parse_options(items: list[str] | None) -> dict[str, str]:
    """KEY=VALUE items as a dict, the last of a key winning (as classic's map does)."""
    options: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise DiscoveryOptionError(
                f"--discovery-opt must contain key=value strings, got {item!r}")
        options[key.strip()] = value
    return options


def apply_options(url: str, options: dict[str, str]) -> str:
    """`url` with the options applied: `kv.path` joins an etcd:// URL's path."""
    for key in options:
        if key in _KV_TLS:
            raise DiscoveryOptionError(
                f"--discovery-opt {key}: Flock's etcd discovery does not speak TLS to etcd; "
                "reach etcd over loopback or a private network instead")
        if key != KV_PATH:
            raise DiscoveryOptionError(
                f"unsupported --discovery-opt {key!r}: the one Flock applies is "
                f"{KV_PATH}=PATH (etcd:// only)")
    path = options.get(KV_PATH)
    if path is None:
        return url
    scheme, sep, rest = url.partition("://")
    if scheme != "etcd" or not sep:
        raise DiscoveryOptionError(
            f"--discovery-opt {KV_PATH} applies to etcd:// discovery only, not {url!r}")
    hosts, _, prefix = rest.partition("/")
    joined = "/".join(p for p in (prefix.strip("/"), path.strip("/")) if p)
    return f"etcd://{hosts}/{joined}"


def resolve(given: str | None, items: list[str] | None) -> str:
    """The discovery URL a command line asks for, options applied; "" when none."""
    url = discovery_url(given)
    options = parse_options(items)
    return apply_options(url, options) if url else url
