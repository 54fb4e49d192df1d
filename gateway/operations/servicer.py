"""google.longrunning.Operations over the gateway's store, and StartOperation: every
operation belongs to the tenant that started it; another tenant's is NOT_FOUND (an admin
key may reach any)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

import grpc
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import empty_pb2

from cadenza.gateway.v1 import gateway_pb2
from cadenza.kit.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from cadenza.kit.interceptor import Context
from gateway import keys
from gateway.caller import caller
from gateway.catalog import meter_of
from gateway.operations import records
from gateway.operations.methods import check_calls, find_method, follow_to_the_end, full_name
from gateway.operations.runner import Runner
from gateway.quota.policy import QuotaPolicy, refusal_status
from gateway.store import OperationRecord, Store

# The longest one WaitOperation holds the call open; a caller waits again for longer.
MAX_WAIT_S = 60.0
_POLL_S = 0.25
_FILTERS = {"": None, "done=true": True, "done=false": False}


class Operations:
    """Starting operations (GatewayService.StartOperation) and following them."""

    def __init__(self, store: Store, runner: Runner, policy: QuotaPolicy | None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._store = store
        self._runner = runner
        self._policy = policy
        self._clock = clock

    async def start(self, request: gateway_pb2.StartOperationRequest,
                    context: Context) -> operations_pb2.Operation:
        """Checks the request, the scope and the first call's quota, stores the operation
        and starts it."""
        who = caller.get()
        _, method = find_method(request.method, self._runner.backends)
        name = full_name(method)
        scope = keys.scope_for(name)
        if scope not in who.scopes:
            raise PermissionDenied(f"API key {who.key_id} lacks the '{scope}' scope that "
                                   f"{name} needs; its scopes: {sorted(who.scopes)}")
        check_calls(method, request)
        request.method = name
        follow_to_the_end(request)
        tenant = await self._store.get_tenant(who.tenant)
        if tenant is not None and self._policy is not None:
            meter = meter_of(name)
            refusal = await self._policy.admit(tenant, meter.model, meter.unit)
            if refusal is not None:
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal.message, (
                    ("grpc-status-details-bin", refusal_status(refusal).SerializeToString()),))
        record = await self._runner.submit(records.new_record(who, request, self._clock()))
        return records.public(record)

    async def find(self, name: str) -> OperationRecord:
        """The caller's operation of that name, or NotFound (also for another tenant's
        and for one whose result has expired)."""
        if not name.startswith(records.PREFIX):
            raise InvalidArgument("name", f"{name!r}: operation names look like "
                                  f"'{records.PREFIX}<id>' (as StartOperation returned)")
        record = await self._store.get_operation(name)
        who = caller.get()
        if record is None or (record.tenant != who.tenant and not who.admin) or (
                record.expire_time is not None and record.expire_time <= self._clock()):
            raise NotFound(f"no operation {name!r} (it may have expired; finished "
                           "operations are kept for a limited time)")
        return record

    async def wait(self, name: str, timeout_s: float) -> OperationRecord:
        """The operation once done, or as it is when timeout_s has passed."""
        deadline = time.monotonic() + min(timeout_s, MAX_WAIT_S)
        while True:
            record = await self.find(name)
            left = deadline - time.monotonic()
            if record.done or left <= 0:
                return record
            if self._runner.runs(name):
                try:
                    await self._runner.wait_here(name, min(left, 1.0))
                except TimeoutError:
                    pass
            else:  # another replica runs it: look again shortly
                await asyncio.sleep(min(left, _POLL_S))

    async def cancel(self, name: str) -> None:
        """Asks the operation to stop; the work stops in its service. Done ones stay as
        they are (AIP-151)."""
        record = await self.find(name)
        if record.done:
            return
        record = await self._store.request_cancel(name) or record
        if self._runner.cancel_here(name):
            return
        now = self._clock()
        if record.owner == "" or record.lease_until is None or record.lease_until < now:
            await self._runner.finish_unowned_cancel(record)
        # Otherwise the replica running it sees the request at its next renewal.

    async def delete(self, name: str) -> None:
        """Forgets a finished operation."""
        record = await self.find(name)
        if not record.done:
            raise FailedPrecondition(f"{name} is still running: cancel it first "
                                     "(CancelOperation), then delete it")
        await self._store.delete_operation(name)

    async def list(self, request: operations_pb2.ListOperationsRequest
                   ) -> operations_pb2.ListOperationsResponse:
        """A page of the caller's operations, newest first."""
        if request.name not in ("", "operations"):
            raise InvalidArgument("name", f"{request.name!r}: list the collection "
                                  "'operations' (or leave name empty)")
        wanted = request.filter.replace(" ", "").lower()
        if wanted not in _FILTERS:
            raise InvalidArgument("filter", f"{request.filter!r}: use 'done=true', "
                                  "'done=false' or no filter")
        if request.page_size < 0 or request.page_size > 1000:
            raise InvalidArgument("page_size", f"{request.page_size}: use 0 to 1000")
        page, token = await self._store.list_operations(caller.get().tenant,
                                                        request.page_size,
                                                        request.page_token)
        now = self._clock()
        done = _FILTERS[wanted]
        shown = [records.public(r) for r in page
                 if (done is None or r.done == done)
                 and (r.expire_time is None or r.expire_time > now)]
        return operations_pb2.ListOperationsResponse(operations=shown, next_page_token=token)


class OperationsServicer(operations_pb2_grpc.OperationsServicer):  # type: ignore[misc]
    """google.longrunning.Operations: proto in, proto out."""

    def __init__(self, operations: Operations) -> None:
        self._operations = operations

    async def GetOperation(self, request: operations_pb2.GetOperationRequest,
                           context: Context) -> operations_pb2.Operation:
        """The operation's latest state."""
        return records.public(await self._operations.find(request.name))

    async def ListOperations(self, request: operations_pb2.ListOperationsRequest,
                             context: Context) -> operations_pb2.ListOperationsResponse:
        """The caller's operations, newest first."""
        return await self._operations.list(request)

    async def CancelOperation(self, request: operations_pb2.CancelOperationRequest,
                              context: Context) -> empty_pb2.Empty:
        """Asks the operation to stop."""
        await self._operations.cancel(request.name)
        return empty_pb2.Empty()

    async def DeleteOperation(self, request: operations_pb2.DeleteOperationRequest,
                              context: Context) -> empty_pb2.Empty:
        """Forgets a finished operation."""
        await self._operations.delete(request.name)
        return empty_pb2.Empty()

    async def WaitOperation(self, request: operations_pb2.WaitOperationRequest,
                            context: Context) -> operations_pb2.Operation:
        """Waits until the operation is done, at most its timeout (60 s when unset, and
        at most 60 s)."""
        timeout_s = MAX_WAIT_S
        if request.HasField("timeout"):
            timeout_s = request.timeout.ToTimedelta().total_seconds()
            if timeout_s < 0:
                raise InvalidArgument("timeout", "must not be negative")
        left = context.time_remaining()
        if left is not None:
            timeout_s = min(timeout_s, max(float(left) - 0.5, 0.0))
        return records.public(await self._operations.wait(request.name, timeout_s))
