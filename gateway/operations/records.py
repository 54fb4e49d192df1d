"""An operation as the store keeps it: its StartOperation request, and its
google.longrunning.Operation (metadata, then result or error), both serialized."""

from __future__ import annotations

import base64
import uuid
from dataclasses import replace
from datetime import datetime

from google.longrunning import operations_pb2
from google.protobuf import any_pb2
from google.rpc import status_pb2

from cadenza.gateway.v1 import gateway_pb2
from gateway.caller import Caller
from gateway.store import OperationRecord

PREFIX = "operations/"
_STATES_DONE = (gateway_pb2.OPERATION_STATE_SUCCEEDED, gateway_pb2.OPERATION_STATE_FAILED,
                gateway_pb2.OPERATION_STATE_CANCELLED)


def new_record(who: Caller, request: gateway_pb2.StartOperationRequest, now: datetime,
               owner: str = "", lease_until: datetime | None = None) -> OperationRecord:
    """A queued operation for the caller, not yet run."""
    op_id = uuid.uuid4().hex
    metadata = gateway_pb2.OperationMetadata(
        method=request.method, tenant=who.tenant, state=gateway_pb2.OPERATION_STATE_QUEUED,
        calls=len(request.calls), call_id_prefix=f"op-{op_id}")
    metadata.create_time.FromDatetime(now)
    metadata.update_time.FromDatetime(now)
    record = OperationRecord(
        name=PREFIX + op_id, tenant=who.tenant, method=request.method,
        request=request.SerializeToString(), operation=b"", done=False, create_time=now,
        update_time=now, extra={"key_id": who.key_id, "scopes": ",".join(sorted(who.scopes))},
        owner=owner, lease_until=lease_until)
    return with_metadata(record, metadata)


def caller_of(record: OperationRecord) -> Caller:
    """Who started the operation (its calls are metered to them)."""
    scopes = frozenset(s for s in record.extra.get("scopes", "").split(",") if s)
    return Caller(record.tenant, record.extra.get("key_id", ""), scopes)


def operation_of(record: OperationRecord) -> operations_pb2.Operation:
    """The record's google.longrunning.Operation."""
    return operations_pb2.Operation.FromString(record.operation)


def metadata_of(record: OperationRecord) -> gateway_pb2.OperationMetadata:
    """The record's OperationMetadata."""
    metadata = gateway_pb2.OperationMetadata()
    operation_of(record).metadata.Unpack(metadata)
    metadata.cancel_requested = record.cancel_requested
    return metadata


def results_of(record: OperationRecord) -> gateway_pb2.OperationResult:
    """The responses of the calls finished so far."""
    return gateway_pb2.OperationResult.FromString(
        base64.b64decode(record.extra.get("results", "")))


def with_metadata(record: OperationRecord, metadata: gateway_pb2.OperationMetadata,
                  results: gateway_pb2.OperationResult | None = None) -> OperationRecord:
    """The record, still running, with new metadata (and the finished calls' results)."""
    packed = any_pb2.Any()
    packed.Pack(metadata)
    operation = operations_pb2.Operation(name=record.name, metadata=packed)
    extra = dict(record.extra)
    if results is not None:
        extra["results"] = base64.b64encode(results.SerializeToString()).decode()
    return replace(record, operation=operation.SerializeToString(), extra=extra)


def finished(record: OperationRecord, metadata: gateway_pb2.OperationMetadata,
             now: datetime, expire_time: datetime,
             result: gateway_pb2.OperationResult | None = None,
             error: status_pb2.Status | None = None) -> OperationRecord:
    """The record, done: its result or error, kept until expire_time."""
    assert metadata.state in _STATES_DONE
    metadata.update_time.FromDatetime(now)
    metadata.expire_time.FromDatetime(expire_time)
    packed = any_pb2.Any()
    packed.Pack(metadata)
    operation = operations_pb2.Operation(name=record.name, metadata=packed, done=True)
    if error is not None:
        operation.error.CopyFrom(error)
    else:
        operation.response.Pack(result or gateway_pb2.OperationResult())
    extra = {k: v for k, v in record.extra.items() if k != "results"}
    return replace(record, operation=operation.SerializeToString(), done=True,
                   update_time=now, expire_time=expire_time, extra=extra, lease_until=None)


def public(record: OperationRecord) -> operations_pb2.Operation:
    """The operation as a caller sees it (the metadata shows a pending cancel)."""
    operation = operation_of(record)
    if record.cancel_requested and not record.done:
        metadata = metadata_of(record)
        operation.metadata.Pack(metadata)
    return operation
