"""Domain errors, each carrying the gRPC status code it maps to."""

from __future__ import annotations

from typing import ClassVar

import grpc


class CadenzaError(Exception):
    """Base of all errors a caller should see; the message says what to fix."""

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(CadenzaError):
    """The caller sent a bad field; the message names it and the fix."""
    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}" if field else problem)
        self.field = field


class NotFound(CadenzaError):
    """The named resource does not exist."""
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(CadenzaError):
    """The resource to create exists already."""
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(CadenzaError):
    """The system is not in a state that allows the call (e.g. no model trained yet)."""
    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(CadenzaError):
    """A quota or capacity limit is reached; retry later."""
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unauthenticated(CadenzaError):
    """The call carries no valid credentials."""
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(CadenzaError):
    """The credentials do not allow this call."""
    code = grpc.StatusCode.PERMISSION_DENIED


class Unavailable(CadenzaError):
    """A dependency is unreachable; the call may be retried."""
    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(CadenzaError):
    """The call ran out of its deadline."""
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unimplemented(CadenzaError):
    """The call asks for something this server does not offer."""
    code = grpc.StatusCode.UNIMPLEMENTED


def remote_error(service: str, error: grpc.aio.AioRpcError) -> CadenzaError:
    """Turns a failed outbound call into the domain error for the same status code.

    Adapters call this at their edge (`raise remote_error(...) from e`), so deadline and
    availability are told apart by status code, never by matching message text.
    """
    cls = _BY_CODE.get(error.code(), CadenzaError)
    message = f"{service}: {error.details() or error.code().name}"
    if cls is InvalidArgument:
        # The remote message already names its field; keep it whole.
        return InvalidArgument("", message)
    return cls(message)


_BY_CODE: dict[grpc.StatusCode, type[CadenzaError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        ResourceExhausted,
        Unauthenticated,
        PermissionDenied,
        Unavailable,
        DeadlineExceeded,
        Unimplemented,
    )
}
