"""How a DockerCall ends without an answer, on a gRPC stream or on the call link alike."""

from __future__ import annotations

import grpc

# A status's number, as TaggedDockerCallReply.code carries it, to the status.
CODES = {code.value[0]: code for code in grpc.StatusCode}


class CallFailed(Exception):
    """A call ended with a gRPC status: the agent's for that call, or the stream's (or
    link's) when it broke while the call waited."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details
