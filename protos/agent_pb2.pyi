from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class UpdateNodeRequest(_message.Message):
    __slots__ = ("labels_add", "labels_remove", "availability")
    class LabelsAddEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    LABELS_ADD_FIELD_NUMBER: _ClassVar[int]
    LABELS_REMOVE_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_FIELD_NUMBER: _ClassVar[int]
    labels_add: _containers.ScalarMap[str, str]
    labels_remove: _containers.RepeatedScalarFieldContainer[str]
    availability: str
    def __init__(self, labels_add: _Optional[_Mapping[str, str]] = ..., labels_remove: _Optional[_Iterable[str]] = ..., availability: _Optional[str] = ...) -> None: ...

class InfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NodeInfo(_message.Message):
    __slots__ = ("id", "name", "address", "cpus", "memory", "labels", "runtime", "server_version", "api_version", "min_api_version", "os", "ostype", "kernel_version", "storage_driver", "execution_driver", "containers", "images", "agent_version", "engine_info", "warnings", "availability", "calls_address", "head_first_calls", "link_control")
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
    CPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    API_VERSION_FIELD_NUMBER: _ClassVar[int]
    MIN_API_VERSION_FIELD_NUMBER: _ClassVar[int]
    OS_FIELD_NUMBER: _ClassVar[int]
    OSTYPE_FIELD_NUMBER: _ClassVar[int]
    KERNEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    STORAGE_DRIVER_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_DRIVER_FIELD_NUMBER: _ClassVar[int]
    CONTAINERS_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    ENGINE_INFO_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_FIELD_NUMBER: _ClassVar[int]
    CALLS_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HEAD_FIRST_CALLS_FIELD_NUMBER: _ClassVar[int]
    LINK_CONTROL_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    address: str
    cpus: int
    memory: int
    labels: _containers.ScalarMap[str, str]
    runtime: str
    server_version: str
    api_version: str
    min_api_version: str
    os: str
    ostype: str
    kernel_version: str
    storage_driver: str
    execution_driver: str
    containers: int
    images: int
    agent_version: str
    engine_info: bytes
    warnings: _containers.RepeatedScalarFieldContainer[str]
    availability: str
    calls_address: str
    head_first_calls: bool
    link_control: bool
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., address: _Optional[str] = ..., cpus: _Optional[int] = ..., memory: _Optional[int] = ..., labels: _Optional[_Mapping[str, str]] = ..., runtime: _Optional[str] = ..., server_version: _Optional[str] = ..., api_version: _Optional[str] = ..., min_api_version: _Optional[str] = ..., os: _Optional[str] = ..., ostype: _Optional[str] = ..., kernel_version: _Optional[str] = ..., storage_driver: _Optional[str] = ..., execution_driver: _Optional[str] = ..., containers: _Optional[int] = ..., images: _Optional[int] = ..., agent_version: _Optional[str] = ..., engine_info: _Optional[bytes] = ..., warnings: _Optional[_Iterable[str]] = ..., availability: _Optional[str] = ..., calls_address: _Optional[str] = ..., head_first_calls: _Optional[bool] = ..., link_control: _Optional[bool] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("refused",)
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    refused: str
    def __init__(self, refused: _Optional[str] = ...) -> None: ...

class HeartbeatReply(_message.Message):
    __slots__ = ("id", "containers", "images", "time")
    ID_FIELD_NUMBER: _ClassVar[int]
    CONTAINERS_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    containers: int
    images: int
    time: float
    def __init__(self, id: _Optional[str] = ..., containers: _Optional[int] = ..., images: _Optional[int] = ..., time: _Optional[float] = ...) -> None: ...

class EventsRequest(_message.Message):
    __slots__ = ("since", "read_backs", "token")
    SINCE_FIELD_NUMBER: _ClassVar[int]
    READ_BACKS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    since: float
    read_backs: bool
    token: str
    def __init__(self, since: _Optional[float] = ..., read_backs: _Optional[bool] = ..., token: _Optional[str] = ...) -> None: ...

class ContainerRead(_message.Message):
    __slots__ = ("inspect", "listing", "read_at_ns", "id")
    INSPECT_FIELD_NUMBER: _ClassVar[int]
    LISTING_FIELD_NUMBER: _ClassVar[int]
    READ_AT_NS_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    inspect: bytes
    listing: bytes
    read_at_ns: int
    id: str
    def __init__(self, inspect: _Optional[bytes] = ..., listing: _Optional[bytes] = ..., read_at_ns: _Optional[int] = ..., id: _Optional[str] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("json", "read_back")
    JSON_FIELD_NUMBER: _ClassVar[int]
    READ_BACK_FIELD_NUMBER: _ClassVar[int]
    json: bytes
    read_back: ContainerRead
    def __init__(self, json: _Optional[bytes] = ..., read_back: _Optional[_Union[ContainerRead, _Mapping]] = ...) -> None: ...

class Header(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class DockerRequest(_message.Message):
    __slots__ = ("method", "path", "query", "headers", "api_version", "hijack", "request_id")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    API_VERSION_FIELD_NUMBER: _ClassVar[int]
    HIJACK_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    method: str
    path: str
    query: str
    headers: _containers.RepeatedCompositeFieldContainer[Header]
    api_version: str
    hijack: bool
    request_id: str
    def __init__(self, method: _Optional[str] = ..., path: _Optional[str] = ..., query: _Optional[str] = ..., headers: _Optional[_Iterable[_Union[Header, _Mapping]]] = ..., api_version: _Optional[str] = ..., hijack: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class DockerResponse(_message.Message):
    __slots__ = ("status", "headers")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    status: int
    headers: _containers.RepeatedCompositeFieldContainer[Header]
    def __init__(self, status: _Optional[int] = ..., headers: _Optional[_Iterable[_Union[Header, _Mapping]]] = ...) -> None: ...

class DockerCallRequest(_message.Message):
    __slots__ = ("request", "body", "read_back", "read_back_later", "events_token", "head_first")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    READ_BACK_FIELD_NUMBER: _ClassVar[int]
    READ_BACK_LATER_FIELD_NUMBER: _ClassVar[int]
    EVENTS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    HEAD_FIRST_FIELD_NUMBER: _ClassVar[int]
    request: DockerRequest
    body: bytes
    read_back: bool
    read_back_later: bool
    events_token: str
    head_first: bool
    def __init__(self, request: _Optional[_Union[DockerRequest, _Mapping]] = ..., body: _Optional[bytes] = ..., read_back: _Optional[bool] = ..., read_back_later: _Optional[bool] = ..., events_token: _Optional[str] = ..., head_first: _Optional[bool] = ...) -> None: ...

class DockerCallReply(_message.Message):
    __slots__ = ("response", "body", "inspect", "listing", "read_at_ns", "read_back_follows", "head_only")
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    INSPECT_FIELD_NUMBER: _ClassVar[int]
    LISTING_FIELD_NUMBER: _ClassVar[int]
    READ_AT_NS_FIELD_NUMBER: _ClassVar[int]
    READ_BACK_FOLLOWS_FIELD_NUMBER: _ClassVar[int]
    HEAD_ONLY_FIELD_NUMBER: _ClassVar[int]
    response: DockerResponse
    body: bytes
    inspect: bytes
    listing: bytes
    read_at_ns: int
    read_back_follows: bool
    head_only: bool
    def __init__(self, response: _Optional[_Union[DockerResponse, _Mapping]] = ..., body: _Optional[bytes] = ..., inspect: _Optional[bytes] = ..., listing: _Optional[bytes] = ..., read_at_ns: _Optional[int] = ..., read_back_follows: _Optional[bool] = ..., head_only: _Optional[bool] = ...) -> None: ...

class TaggedDockerCall(_message.Message):
    __slots__ = ("id", "call", "events", "heartbeat", "info", "cancel")
    ID_FIELD_NUMBER: _ClassVar[int]
    CALL_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    id: int
    call: DockerCallRequest
    events: EventsRequest
    heartbeat: HeartbeatRequest
    info: InfoRequest
    cancel: bool
    def __init__(self, id: _Optional[int] = ..., call: _Optional[_Union[DockerCallRequest, _Mapping]] = ..., events: _Optional[_Union[EventsRequest, _Mapping]] = ..., heartbeat: _Optional[_Union[HeartbeatRequest, _Mapping]] = ..., info: _Optional[_Union[InfoRequest, _Mapping]] = ..., cancel: _Optional[bool] = ...) -> None: ...

class TaggedDockerCallReply(_message.Message):
    __slots__ = ("id", "reply", "event", "heartbeat", "info", "code", "details")
    ID_FIELD_NUMBER: _ClassVar[int]
    REPLY_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    id: int
    reply: DockerCallReply
    event: Event
    heartbeat: HeartbeatReply
    info: NodeInfo
    code: int
    details: str
    def __init__(self, id: _Optional[int] = ..., reply: _Optional[_Union[DockerCallReply, _Mapping]] = ..., event: _Optional[_Union[Event, _Mapping]] = ..., heartbeat: _Optional[_Union[HeartbeatReply, _Mapping]] = ..., info: _Optional[_Union[NodeInfo, _Mapping]] = ..., code: _Optional[int] = ..., details: _Optional[str] = ...) -> None: ...

class DockerFrame(_message.Message):
    __slots__ = ("request", "response", "data", "close_write")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CLOSE_WRITE_FIELD_NUMBER: _ClassVar[int]
    request: DockerRequest
    response: DockerResponse
    data: bytes
    close_write: bool
    def __init__(self, request: _Optional[_Union[DockerRequest, _Mapping]] = ..., response: _Optional[_Union[DockerResponse, _Mapping]] = ..., data: _Optional[bytes] = ..., close_write: _Optional[bool] = ...) -> None: ...
