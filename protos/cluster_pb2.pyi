from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListNodesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NodeStatus(_message.Message):
    __slots__ = ("id", "name", "address", "health", "error", "drained", "cpus", "memory", "reserved_cpus", "reserved_memory", "containers", "labels", "runtime")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DRAINED_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    RESERVED_CPUS_FIELD_NUMBER: _ClassVar[int]
    RESERVED_MEMORY_FIELD_NUMBER: _ClassVar[int]
    CONTAINERS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    address: str
    health: str
    error: str
    drained: bool
    cpus: int
    memory: int
    reserved_cpus: float
    reserved_memory: int
    containers: int
    labels: _containers.ScalarMap[str, str]
    runtime: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., address: _Optional[str] = ..., health: _Optional[str] = ..., error: _Optional[str] = ..., drained: _Optional[bool] = ..., cpus: _Optional[int] = ..., memory: _Optional[int] = ..., reserved_cpus: _Optional[float] = ..., reserved_memory: _Optional[int] = ..., containers: _Optional[int] = ..., labels: _Optional[_Mapping[str, str]] = ..., runtime: _Optional[str] = ...) -> None: ...

class ListNodesReply(_message.Message):
    __slots__ = ("nodes",)
    NODES_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[NodeStatus]
    def __init__(self, nodes: _Optional[_Iterable[_Union[NodeStatus, _Mapping]]] = ...) -> None: ...

class ListContainersRequest(_message.Message):
    __slots__ = ("all",)
    ALL_FIELD_NUMBER: _ClassVar[int]
    all: bool
    def __init__(self, all: _Optional[bool] = ...) -> None: ...

class ContainerInfo(_message.Message):
    __slots__ = ("id", "name", "node", "node_id", "image", "state", "status", "reserved_cpus", "reserved_memory", "labels", "created")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RESERVED_CPUS_FIELD_NUMBER: _ClassVar[int]
    RESERVED_MEMORY_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    node: str
    node_id: str
    image: str
    state: str
    status: str
    reserved_cpus: float
    reserved_memory: int
    labels: _containers.ScalarMap[str, str]
    created: float
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., node: _Optional[str] = ..., node_id: _Optional[str] = ..., image: _Optional[str] = ..., state: _Optional[str] = ..., status: _Optional[str] = ..., reserved_cpus: _Optional[float] = ..., reserved_memory: _Optional[int] = ..., labels: _Optional[_Mapping[str, str]] = ..., created: _Optional[float] = ...) -> None: ...

class ListContainersReply(_message.Message):
    __slots__ = ("containers",)
    CONTAINERS_FIELD_NUMBER: _ClassVar[int]
    containers: _containers.RepeatedCompositeFieldContainer[ContainerInfo]
    def __init__(self, containers: _Optional[_Iterable[_Union[ContainerInfo, _Mapping]]] = ...) -> None: ...

class ContainerRef(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class ContainerSpec(_message.Message):
    __slots__ = ("image", "cmd", "name", "env", "memory", "cpus", "labels", "ports")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    CMD_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    image: str
    cmd: _containers.RepeatedScalarFieldContainer[str]
    name: str
    env: _containers.RepeatedScalarFieldContainer[str]
    memory: int
    cpus: float
    labels: _containers.ScalarMap[str, str]
    ports: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, image: _Optional[str] = ..., cmd: _Optional[_Iterable[str]] = ..., name: _Optional[str] = ..., env: _Optional[_Iterable[str]] = ..., memory: _Optional[int] = ..., cpus: _Optional[float] = ..., labels: _Optional[_Mapping[str, str]] = ..., ports: _Optional[_Iterable[str]] = ...) -> None: ...

class RunRequest(_message.Message):
    __slots__ = ("spec",)
    SPEC_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_FIELD_NUMBER: _ClassVar[int]
    spec: ContainerSpec
    def __init__(self, spec: _Optional[_Union[ContainerSpec, _Mapping]] = ..., **kwargs) -> None: ...

class RunReply(_message.Message):
    __slots__ = ("container", "warnings", "placed", "skipped")
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    PLACED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    container: ContainerInfo
    warnings: _containers.RepeatedScalarFieldContainer[str]
    placed: _containers.RepeatedCompositeFieldContainer[ContainerInfo]
    skipped: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, container: _Optional[_Union[ContainerInfo, _Mapping]] = ..., warnings: _Optional[_Iterable[str]] = ..., placed: _Optional[_Iterable[_Union[ContainerInfo, _Mapping]]] = ..., skipped: _Optional[_Iterable[str]] = ...) -> None: ...

class UpdateNodeRequest(_message.Message):
    __slots__ = ("ref", "labels_add", "labels_remove")
    class LabelsAddEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REF_FIELD_NUMBER: _ClassVar[int]
    LABELS_ADD_FIELD_NUMBER: _ClassVar[int]
    LABELS_REMOVE_FIELD_NUMBER: _ClassVar[int]
    ref: str
    labels_add: _containers.ScalarMap[str, str]
    labels_remove: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ref: _Optional[str] = ..., labels_add: _Optional[_Mapping[str, str]] = ..., labels_remove: _Optional[_Iterable[str]] = ...) -> None: ...

class StopRequest(_message.Message):
    __slots__ = ("ref", "timeout")
    REF_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    ref: str
    timeout: int
    def __init__(self, ref: _Optional[str] = ..., timeout: _Optional[int] = ...) -> None: ...

class RemoveRequest(_message.Message):
    __slots__ = ("ref", "force")
    REF_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    ref: str
    force: bool
    def __init__(self, ref: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class RemoveReply(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class Removal(_message.Message):
    __slots__ = ("condition", "nodes", "detail")
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    condition: str
    nodes: _containers.RepeatedScalarFieldContainer[str]
    detail: str
    def __init__(self, condition: _Optional[str] = ..., nodes: _Optional[_Iterable[str]] = ..., detail: _Optional[str] = ...) -> None: ...

class RankedNode(_message.Message):
    __slots__ = ("node", "weight", "containers")
    NODE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    CONTAINERS_FIELD_NUMBER: _ClassVar[int]
    node: str
    weight: float
    containers: int
    def __init__(self, node: _Optional[str] = ..., weight: _Optional[float] = ..., containers: _Optional[int] = ...) -> None: ...

class Explanation(_message.Message):
    __slots__ = ("removals", "dropped_soft", "ranking", "error", "strategy", "filters")
    REMOVALS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_SOFT_FIELD_NUMBER: _ClassVar[int]
    RANKING_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    removals: _containers.RepeatedCompositeFieldContainer[Removal]
    dropped_soft: _containers.RepeatedScalarFieldContainer[str]
    ranking: _containers.RepeatedCompositeFieldContainer[RankedNode]
    error: str
    strategy: str
    filters: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, removals: _Optional[_Iterable[_Union[Removal, _Mapping]]] = ..., dropped_soft: _Optional[_Iterable[str]] = ..., ranking: _Optional[_Iterable[_Union[RankedNode, _Mapping]]] = ..., error: _Optional[str] = ..., strategy: _Optional[str] = ..., filters: _Optional[_Iterable[str]] = ...) -> None: ...

class NodeRef(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class DrainRequest(_message.Message):
    __slots__ = ("ref", "reschedule")
    REF_FIELD_NUMBER: _ClassVar[int]
    RESCHEDULE_FIELD_NUMBER: _ClassVar[int]
    ref: str
    reschedule: bool
    def __init__(self, ref: _Optional[str] = ..., reschedule: _Optional[bool] = ...) -> None: ...

class DrainReply(_message.Message):
    __slots__ = ("node", "moved", "stayed")
    NODE_FIELD_NUMBER: _ClassVar[int]
    MOVED_FIELD_NUMBER: _ClassVar[int]
    STAYED_FIELD_NUMBER: _ClassVar[int]
    node: NodeStatus
    moved: _containers.RepeatedScalarFieldContainer[str]
    stayed: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, node: _Optional[_Union[NodeStatus, _Mapping]] = ..., moved: _Optional[_Iterable[str]] = ..., stayed: _Optional[_Iterable[str]] = ...) -> None: ...

class EventsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Event(_message.Message):
    __slots__ = ("kind", "action", "node", "id", "time", "raw")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    kind: str
    action: str
    node: str
    id: str
    time: float
    raw: bytes
    def __init__(self, kind: _Optional[str] = ..., action: _Optional[str] = ..., node: _Optional[str] = ..., id: _Optional[str] = ..., time: _Optional[float] = ..., raw: _Optional[bytes] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("name", "schedule", "time_zone", "concurrency", "deadline", "history", "suspended", "created", "spec", "volumes", "body")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    SUSPENDED_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    VOLUMES_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    name: str
    schedule: str
    time_zone: str
    concurrency: str
    deadline: float
    history: int
    suspended: bool
    created: float
    spec: ContainerSpec
    volumes: _containers.RepeatedScalarFieldContainer[str]
    body: str
    def __init__(self, name: _Optional[str] = ..., schedule: _Optional[str] = ..., time_zone: _Optional[str] = ..., concurrency: _Optional[str] = ..., deadline: _Optional[float] = ..., history: _Optional[int] = ..., suspended: _Optional[bool] = ..., created: _Optional[float] = ..., spec: _Optional[_Union[ContainerSpec, _Mapping]] = ..., volumes: _Optional[_Iterable[str]] = ..., body: _Optional[str] = ...) -> None: ...

class CreateJobRequest(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class JobRef(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class JobRun(_message.Message):
    __slots__ = ("job", "scheduled", "started", "node", "container", "name", "exit_code", "finished", "result", "reason")
    JOB_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    job: str
    scheduled: float
    started: float
    node: str
    container: str
    name: str
    exit_code: int
    finished: float
    result: str
    reason: str
    def __init__(self, job: _Optional[str] = ..., scheduled: _Optional[float] = ..., started: _Optional[float] = ..., node: _Optional[str] = ..., container: _Optional[str] = ..., name: _Optional[str] = ..., exit_code: _Optional[int] = ..., finished: _Optional[float] = ..., result: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class JobStatus(_message.Message):
    __slots__ = ("job", "next_run", "last")
    JOB_FIELD_NUMBER: _ClassVar[int]
    NEXT_RUN_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    job: Job
    next_run: float
    last: JobRun
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ..., next_run: _Optional[float] = ..., last: _Optional[_Union[JobRun, _Mapping]] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListJobsReply(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[JobStatus]
    def __init__(self, jobs: _Optional[_Iterable[_Union[JobStatus, _Mapping]]] = ...) -> None: ...

class RemoveJobReply(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class JobHistoryReply(_message.Message):
    __slots__ = ("runs",)
    RUNS_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[JobRun]
    def __init__(self, runs: _Optional[_Iterable[_Union[JobRun, _Mapping]]] = ...) -> None: ...
