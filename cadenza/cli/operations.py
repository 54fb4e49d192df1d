"""`cadenza operations ...`: start a public method as a long-running operation, then get,
list, wait for, cancel or delete it (GatewayService.StartOperation,
google.longrunning.Operations)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import grpc
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import descriptor_pool, duration_pb2, json_format, message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message

from cadenza.cli.connection import Connection
from cadenza.gateway.v1 import gateway_pb2, gateway_pb2_grpc

# Imported for their descriptors too: the public services an operation may run.
from cadenza.generate.v1 import generate_pb2
from cadenza.recommend.v1 import recommend_pb2
from cadenza.retrieval.v1 import retrieval_pb2

_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}
PUBLIC_SERVICES = tuple(
    service.full_name
    for module in (retrieval_pb2, recommend_pb2, generate_pb2)
    for service in module.DESCRIPTOR.services_by_name.values())


def register(subparsers: argparse._SubParsersAction,  # type: ignore[type-arg]
             common: argparse.ArgumentParser) -> None:
    """Adds the `operations` command."""
    operations = subparsers.add_parser(
        "operations", help="long-running operations: start, get, list, cancel, wait")
    actions = operations.add_subparsers(dest="action", required=True)
    start = actions.add_parser("start", parents=[common],
                               help="run a public method as an operation; prints its name")
    start.add_argument("method", help="e.g. /cadenza.generate.v1.GenerateService/Generate, "
                                      "GenerateService/Generate or Generate")
    start.add_argument("--request-json", default="{}",
                       help="the method's request as proto JSON; a list for several calls "
                            "(a batch); for a client-streaming method (IngestTrack, "
                            "RecordEvents) a list of one call's messages, or a list of "
                            "such lists for several calls")
    start.set_defaults(func=run_start)
    get = actions.add_parser("get", parents=[common], help="an operation's state")
    get.add_argument("name")
    get.set_defaults(func=run_get)
    listing = actions.add_parser("list", parents=[common], help="your tenant's operations")
    listing.add_argument("--filter", default="")
    listing.add_argument("--page-size", type=int, default=50)
    listing.add_argument("--page-token", default="")
    listing.set_defaults(func=run_list)
    cancel = actions.add_parser("cancel", parents=[common], help="ask an operation to stop")
    cancel.add_argument("name")
    cancel.set_defaults(func=run_cancel)
    wait = actions.add_parser("wait", parents=[common],
                              help="wait until an operation is done, at most --timeout "
                                   "seconds")
    wait.add_argument("name")
    wait.set_defaults(func=run_wait)
    delete = actions.add_parser("delete", parents=[common],
                                help="forget a finished operation and its result")
    delete.add_argument("name")
    delete.set_defaults(func=run_delete)


def find_method(name: str) -> MethodDescriptor:
    """The public method a full, Service/Method or bare method name means; ValueError
    naming the candidates when it is unknown or ambiguous."""
    wanted = name.strip().lstrip("/")
    service_part, _, method_part = wanted.rpartition("/")
    pool = descriptor_pool.Default()
    found = []
    for service_name in PUBLIC_SERVICES:
        service = pool.FindServiceByName(service_name)
        if service_part and service_part not in (service.full_name, service.name):
            continue
        method = service.methods_by_name.get(method_part)
        if method is not None:
            found.append(method)
    if len(found) == 1:
        return found[0]
    if found:
        names = ", ".join(f"/{m.containing_service.full_name}/{m.name}" for m in found)
        raise ValueError(f"{name!r} is ambiguous: name one of {names}")
    known = ", ".join(f"{s.rsplit('.', 1)[-1]}/{m}" for s in PUBLIC_SERVICES
                      for m in pool.FindServiceByName(s).methods_by_name)
    raise ValueError(f"no public method {name!r}: use one of {known}")


def start_request(method: MethodDescriptor,
                  request_json: str) -> gateway_pb2.StartOperationRequest:
    """The StartOperation request running the method on the JSON request(s); ValueError
    saying what is wrong with the JSON.

    An object is one call. A list is several calls (a batch), one request each; for a
    client-streaming method a list of objects is one call's messages, and a list of lists
    is several calls (a catalogue import: one IngestTrack stream per track)."""
    try:
        parsed = json.loads(request_json)
    except json.JSONDecodeError as error:
        raise ValueError(f"--request-json is not JSON: {error}") from None
    if isinstance(parsed, dict):
        calls = [[parsed]]
    elif method.client_streaming and parsed and all(isinstance(i, dict) for i in parsed):
        calls = [parsed]
    elif isinstance(parsed, list):
        calls = [item if isinstance(item, list) else [item] for item in parsed]
    else:
        raise ValueError("--request-json must be a JSON object or a list")
    request_class: type[Message] = message_factory.GetMessageClass(method.input_type)
    request = gateway_pb2.StartOperationRequest(
        method=f"/{method.containing_service.full_name}/{method.name}")
    for items in calls:
        call = request.calls.add()
        for item in items:
            message = request_class()
            try:
                json_format.ParseDict(item, message)
            except (json_format.ParseError, AttributeError, TypeError) as error:
                raise ValueError(f"--request-json is not a {method.input_type.full_name}: "
                                 f"{error}") from None
            call.messages.add().Pack(message)
    return request


def run_start(args: argparse.Namespace, conn: Connection) -> int:
    """Starts the operation and prints it (its name is what get, wait and cancel take)."""
    try:
        request = start_request(find_method(args.method), args.request_json)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    try:
        operation = gateway_pb2_grpc.GatewayServiceStub(conn.channel).StartOperation(
            request, metadata=conn.metadata, timeout=conn.timeout_s)
    except grpc.RpcError as error:
        return _fail(error)
    return _print_operation(operation, args.json)


def run_get(args: argparse.Namespace, conn: Connection) -> int:
    """Prints the operation."""
    try:
        operation = _stub(conn).GetOperation(
            operations_pb2.GetOperationRequest(name=args.name), metadata=conn.metadata,
            timeout=conn.timeout_s)
    except grpc.RpcError as error:
        return _fail(error)
    return _print_operation(operation, args.json)


def run_list(args: argparse.Namespace, conn: Connection) -> int:
    """Prints a page of the tenant's operations, newest first."""
    try:
        reply = _stub(conn).ListOperations(
            operations_pb2.ListOperationsRequest(filter=args.filter, page_size=args.page_size,
                                                 page_token=args.page_token),
            metadata=conn.metadata, timeout=conn.timeout_s)
    except grpc.RpcError as error:
        return _fail(error)
    if args.json:
        print(json.dumps(_dict(reply), indent=2))
        return 0
    if not reply.operations:
        print("no operations")
        return 0
    rows = [_summary(op) for op in reply.operations]
    header = ("NAME", "METHOD", "STATE", "PROGRESS", "CREATED")
    widths = [max(len(c) for c in column) for column in zip(header, *rows, strict=False)]
    for row in (header, *rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    if reply.next_page_token:
        print(f"more: --page-token {reply.next_page_token}")
    return 0


def run_cancel(args: argparse.Namespace, conn: Connection) -> int:
    """Asks the operation to stop; `get` shows when it has."""
    try:
        _stub(conn).CancelOperation(operations_pb2.CancelOperationRequest(name=args.name),
                                    metadata=conn.metadata, timeout=conn.timeout_s)
    except grpc.RpcError as error:
        return _fail(error)
    print(json.dumps({"name": args.name, "cancel_requested": True}) if args.json
          else f"asked {args.name} to cancel")
    return 0


def run_wait(args: argparse.Namespace, conn: Connection) -> int:
    """Waits for the operation (up to --timeout seconds, 60 s per server wait) and prints
    it; 0 when it succeeded, 1 when it failed or was still running when the wait ended."""
    deadline = time.monotonic() + conn.timeout_s
    while True:
        wait_s = max(min(deadline - time.monotonic(), 60.0), 0.0)
        request = operations_pb2.WaitOperationRequest(name=args.name)
        request.timeout.CopyFrom(duration_pb2.Duration(seconds=int(wait_s),
                                                       nanos=int(wait_s % 1 * 1e9)))
        try:
            # The call's own deadline leaves the server a moment to answer after its wait.
            operation = _stub(conn).WaitOperation(request, metadata=conn.metadata,
                                                  timeout=wait_s + 10)
        except grpc.RpcError as error:
            return _fail(error)
        if operation.done or time.monotonic() >= deadline:
            break
    _print_operation(operation, args.json)
    return 0 if operation.done and not operation.HasField("error") else 1


def run_delete(args: argparse.Namespace, conn: Connection) -> int:
    """Forgets a finished operation."""
    try:
        _stub(conn).DeleteOperation(operations_pb2.DeleteOperationRequest(name=args.name),
                                    metadata=conn.metadata, timeout=conn.timeout_s)
    except grpc.RpcError as error:
        return _fail(error)
    print(json.dumps({"name": args.name, "deleted": True}) if args.json
          else f"deleted {args.name}")
    return 0


def _stub(conn: Connection) -> operations_pb2_grpc.OperationsStub:
    return operations_pb2_grpc.OperationsStub(conn.channel)


def _fail(error: grpc.RpcError) -> int:
    print(f"{error.code().name}: {error.details()}", file=sys.stderr)
    return 1


def _dict(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _metadata(operation: operations_pb2.Operation) -> gateway_pb2.OperationMetadata:
    metadata = gateway_pb2.OperationMetadata()
    if operation.HasField("metadata"):
        operation.metadata.Unpack(metadata)
    return metadata


def _state(operation: operations_pb2.Operation) -> str:
    metadata = _metadata(operation)
    if not operation.done:
        if metadata.cancel_requested:
            return "cancelling"
        return "queued" if metadata.state == gateway_pb2.OPERATION_STATE_QUEUED else "running"
    if operation.HasField("error"):
        code = _CODE_NAMES.get(operation.error.code, str(operation.error.code))
        return "cancelled" if code == "CANCELLED" else f"failed ({code})"
    return "done"


def _summary(operation: operations_pb2.Operation) -> tuple[str, str, str, str, str]:
    metadata = _metadata(operation)
    created = (metadata.create_time.ToDatetime().strftime("%Y-%m-%d %H:%M:%SZ")
               if metadata.HasField("create_time") else "")
    progress = f"{metadata.progress:.0%}" if metadata.progress else ""
    if metadata.calls > 1:
        progress = f"{progress} ({metadata.calls_done}/{metadata.calls} calls)".strip()
    return operation.name, metadata.method, _state(operation), progress, created


def _print_operation(operation: operations_pb2.Operation, as_json: bool) -> int:
    if as_json:
        print(json.dumps(_dict(operation), indent=2))
        return 0
    name, method, state, progress, created = _summary(operation)
    print(f"{name}  {method}  {state}{'  ' + progress if progress else ''}"
          f"{'  created ' + created if created else ''}")
    if operation.HasField("error"):
        print(f"error: {operation.error.message}")
    elif operation.HasField("response"):
        print(json.dumps(_dict(operation.response), indent=2))
    return 0
