from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ServingStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SERVING_STATUS_UNSPECIFIED: _ClassVar[ServingStatus]
    SERVING_STATUS_SERVING: _ClassVar[ServingStatus]
    SERVING_STATUS_NOT_SERVING: _ClassVar[ServingStatus]
    SERVING_STATUS_UNREACHABLE: _ClassVar[ServingStatus]
SERVING_STATUS_UNSPECIFIED: ServingStatus
SERVING_STATUS_SERVING: ServingStatus
SERVING_STATUS_NOT_SERVING: ServingStatus
SERVING_STATUS_UNREACHABLE: ServingStatus

class CheckMeshRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BackendStatus(_message.Message):
    __slots__ = ("name", "service", "address", "status", "check_latency_ms", "detail")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CHECK_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    name: str
    service: str
    address: str
    status: ServingStatus
    check_latency_ms: float
    detail: str
    def __init__(self, name: _Optional[str] = ..., service: _Optional[str] = ..., address: _Optional[str] = ..., status: _Optional[_Union[ServingStatus, str]] = ..., check_latency_ms: _Optional[float] = ..., detail: _Optional[str] = ...) -> None: ...

class CheckMeshResponse(_message.Message):
    __slots__ = ("gateway", "backends")
    GATEWAY_FIELD_NUMBER: _ClassVar[int]
    BACKENDS_FIELD_NUMBER: _ClassVar[int]
    gateway: ServingStatus
    backends: _containers.RepeatedCompositeFieldContainer[BackendStatus]
    def __init__(self, gateway: _Optional[_Union[ServingStatus, str]] = ..., backends: _Optional[_Iterable[_Union[BackendStatus, _Mapping]]] = ...) -> None: ...

class GetUsageRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MethodUsage(_message.Message):
    __slots__ = ("method", "code", "calls", "request_bytes", "response_bytes")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_BYTES_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_BYTES_FIELD_NUMBER: _ClassVar[int]
    method: str
    code: str
    calls: int
    request_bytes: int
    response_bytes: int
    def __init__(self, method: _Optional[str] = ..., code: _Optional[str] = ..., calls: _Optional[int] = ..., request_bytes: _Optional[int] = ..., response_bytes: _Optional[int] = ...) -> None: ...

class GetUsageResponse(_message.Message):
    __slots__ = ("principal", "methods")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    METHODS_FIELD_NUMBER: _ClassVar[int]
    principal: str
    methods: _containers.RepeatedCompositeFieldContainer[MethodUsage]
    def __init__(self, principal: _Optional[str] = ..., methods: _Optional[_Iterable[_Union[MethodUsage, _Mapping]]] = ...) -> None: ...
