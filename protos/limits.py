"""The agent protocol's size limits, which the manager's channel and the agent's server
must both set alike: a message one end may send and the other refuses fails the call."""

from __future__ import annotations

# Largest gRPC message either end sends or accepts (gRPC's own default is 4 MiB): a
# unary Docker call's whole answer (e.g. a large inspect or `docker ps -a` at scale)
# travels in one message.
MAX_MESSAGE = 64 << 20

# Body bytes per DockerFrame on the streamed Docker channel: large bodies (image
# uploads, build contexts, logs) are cut into frames of at most this size, well below
# MAX_MESSAGE, so that one stream never holds a large message in memory.
MAX_FRAME = 1 << 20

# The gRPC options that carry MAX_MESSAGE, for channels and servers alike.
MESSAGE_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.max_receive_message_length", MAX_MESSAGE),
]
