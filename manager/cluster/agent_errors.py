"""What goes wrong when the manager calls an agent, in words for the person reading
`docker info` or a failed request: the agent's own errors, and an agent that cannot be
reached (and why: TLS, refused, reset)."""

from __future__ import annotations

import grpc

from flock.manager.cluster.call_failed import CallFailed

_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)

class AgentError(Exception):
    """The agent answered with an error of its own (not a Docker API error); `code` is
    the gRPC status it gave, when it gave one, for callers that pass it on."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.code = code


class AgentUnavailable(AgentError):  # noqa: N818 - the name is part of the contract
    """The agent cannot be reached; the message names it and says why."""


# What gRPC's TLS failures mean for the person reading `docker info`.
_TLS_REASONS = (
    ("hostname verification", "TLS: the agent's certificate does not name the address "
                              "discovery announced"),
    ("certificate_verify_failed", "TLS: the agent's certificate is not signed by this "
                                  "manager's CA (--agent-tlscacert)"),
    ("wrong_version_number", "TLS: the agent does not speak TLS (start it with --tlsverify, "
                             "or run the manager without agent TLS)"),
)


def _reason(code: grpc.StatusCode, details: str, timeout: float | None = None,
            tls: bool = False) -> str:
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"no answer in {timeout}s" if timeout else "no answer in time"
    details = details or code.name
    lowered = details.lower()
    for known, reason in _TLS_REASONS:
        if known in lowered:
            return reason
    if tls and "socket closed" in lowered:
        return ("socket closed (with TLS this usually means the agent does not accept "
                "this manager's certificate: another CA, or no manager role)")
    for known in ("connection refused", "no route to host", "connection reset",
                  "name resolution", "dns resolution failed", "socket closed"):
        if known in lowered:
            return known
    return details


def status_of(err: grpc.aio.AioRpcError | CallFailed) -> tuple[grpc.StatusCode, str]:
    """(code, details) of a unary call's error or of a call on the call stream."""
    if isinstance(err, CallFailed):
        return err.code, err.details
    return err.code(), err.details()


def map_error(addr: str, err: grpc.aio.AioRpcError | CallFailed,
              timeout: float | None = None, tls: bool = False) -> AgentError:
    """AgentUnavailable for UNAVAILABLE/DEADLINE_EXCEEDED, AgentError otherwise."""
    code, details = status_of(err)
    if code in _UNREACHABLE:
        return AgentUnavailable(
            f"Cannot reach agent {addr}: {_reason(code, details, timeout, tls)}", code)
    return AgentError(f"Agent {addr} failed: {code.name}: {details}", code)
