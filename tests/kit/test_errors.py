"""Failed outbound calls become the domain error for the same status code."""

from __future__ import annotations

import grpc
import grpc.aio
import pytest

from cadenza.kit.errors import (
    CadenzaError,
    DeadlineExceeded,
    InvalidArgument,
    NotFound,
    Unavailable,
    remote_error,
)


def _rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


@pytest.mark.parametrize(("code", "cls", "mapped"), [
    (grpc.StatusCode.NOT_FOUND, NotFound, grpc.StatusCode.NOT_FOUND),
    (grpc.StatusCode.UNAVAILABLE, Unavailable, grpc.StatusCode.UNAVAILABLE),
    (grpc.StatusCode.DEADLINE_EXCEEDED, DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
    # No domain class for it: the caller sees INTERNAL, not a code we cannot stand behind.
    (grpc.StatusCode.DATA_LOSS, CadenzaError, grpc.StatusCode.INTERNAL),
])
def test_remote_errors_map_to_the_domain_error_of_their_code(
        code: grpc.StatusCode, cls: type[CadenzaError], mapped: grpc.StatusCode) -> None:
    error = remote_error("retrieval", _rpc_error(code, "it went wrong"))
    assert type(error) is cls
    assert error.code == mapped
    assert error.message == "retrieval: it went wrong"


def test_remote_invalid_argument_keeps_the_remote_field_message() -> None:
    error = remote_error("retrieval", _rpc_error(grpc.StatusCode.INVALID_ARGUMENT,
                                                 "track_id: is required"))
    assert isinstance(error, InvalidArgument)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.message == "retrieval: track_id: is required"
