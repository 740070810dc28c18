"""The agent service for hollow nodes: `Info` and `Heartbeat` answered from memory.

The manager calls these for every node every few seconds; answering them through the
runtime's socket (a new HTTP connection each time) is most of what a thousand idle
hollow agents would cost. Docker requests and events still go through the socket and
the agent's one bridge, so what the manager sees is the same as with any runtime."""

from __future__ import annotations

import json
import time

from agent.node_info import build_node_info
from agent.runtimes.hollow.api import info_body, version_body
from agent.runtimes.hollow.runtime import HollowRuntime
from agent.server import AgentService
from protos import agent_pb2


class HollowAgentService(AgentService):
    runtime: HollowRuntime

    async def node_info(self) -> agent_pb2.NodeInfo:
        info = info_body(self.runtime.core)
        return build_node_info(info, version_body(), json.dumps(info).encode(),
                               runtime=self.runtime.name, address=self.address,
                               name=self.name, extra_labels=self.labels)

    async def Heartbeat(self, request, context):  # noqa: N802
        counts = self.runtime.node.counts()
        return agent_pb2.HeartbeatReply(id=self.runtime.core.engine_id,
                                        containers=counts["total"],
                                        images=len(self.runtime.node.images), time=time.time())
