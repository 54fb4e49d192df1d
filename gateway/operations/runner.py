"""Runs operations: each replica claims queued operations in the store (a lease it renews
while it works), makes their calls to the backends, writes progress, and finishes them.

A replica that dies stops renewing; once its lease runs out another replica (or the same
one restarted) claims the operation and runs it again from the first call that had not
finished. Calls are metered as "<prefix>-<index>", so a call run twice is recorded once.
A cancel, asked on any replica, is seen by the owner at its next renewal: it cancels the
backend call, which stops the work in that service.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import grpc.aio
from google.protobuf.descriptor import MethodDescriptor
from google.rpc import status_pb2
from prometheus_client import Counter, Gauge

from cadenza.gateway.v1 import gateway_pb2
from cadenza.kit import context
from cadenza.kit.errors import CadenzaError
from cadenza.kit.usage import read_usage
from gateway.catalog import meter_of
from gateway.metering import Metering, Settlement
from gateway.operations import records
from gateway.operations.methods import Progress, check_calls, find_method, full_name, pack
from gateway.quota.policy import QuotaPolicy, refusal_status
from gateway.routes import Backend
from gateway.store import OperationRecord, Store

logger = logging.getLogger(__name__)

FINISHED = Counter("cadenza_gateway_operations_finished_total",
                   "Operations finished, by method and state (succeeded, failed, cancelled).",
                   ("method", "state"))
RUNNING = Gauge("cadenza_gateway_operations_running", "Operations this replica is running.")
_CANCELLED = status_pb2.Status(code=grpc.StatusCode.CANCELLED.value[0],
                               message="cancelled by the caller (CancelOperation)")
_STATE_NAMES = {gateway_pb2.OPERATION_STATE_SUCCEEDED: "succeeded",
                gateway_pb2.OPERATION_STATE_FAILED: "failed",
                gateway_pb2.OPERATION_STATE_CANCELLED: "cancelled"}


class _Failed(Exception):
    """A call of the operation failed; the operation ends with this status."""

    def __init__(self, status: status_pb2.Status) -> None:
        super().__init__(status.message)
        self.status = status


@dataclass
class _Job:
    record: OperationRecord
    metadata: gateway_pb2.OperationMetadata
    results: gateway_pb2.OperationResult
    task: asyncio.Task[None] | None = None
    progress: Progress | None = None
    by_caller: bool = False  # cancelled by CancelOperation (else: shutdown, lost claim)
    finished: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class RunnerSettings:
    """How the runner leases, polls and limits its work."""
    retention_s: float = 7 * 86400.0
    call_deadline_s: float = 3600.0
    lease_s: float = 15.0
    poll_s: float = 1.0
    max_running: int = 16


class Runner:
    """Claims, runs, renews and finishes operations on this replica."""

    def __init__(self, store: Store, metering: Metering, policy: QuotaPolicy | None,
                 channels: Mapping[str, grpc.aio.Channel], backends: tuple[Backend, ...],
                 settings: RunnerSettings,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._store = store
        self._metering = metering
        self._policy = policy
        self._channels = channels
        self._backends = backends
        self._settings = settings
        self._clock = clock
        self.owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._jobs: dict[str, _Job] = {}
        self._loop: asyncio.Task[None] | None = None
        self._last_sweep = 0.0

    @property
    def backends(self) -> tuple[Backend, ...]:
        """The backends whose methods operations may run."""
        return self._backends

    def start(self) -> None:
        """Starts claiming queued operations (those left by a restart too)."""
        self._loop = asyncio.get_running_loop().create_task(self._poll())

    async def stop(self) -> None:
        """Stops the work here without finishing it, and frees the claims at once, so the
        next replica (or this one restarted) resumes it."""
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)
        jobs = list(self._jobs.values())
        for job in jobs:
            if job.task is not None:
                job.task.cancel()
        await asyncio.gather(*(j.task for j in jobs if j.task), return_exceptions=True)
        for job in jobs:
            job.metadata.state = gateway_pb2.OPERATION_STATE_QUEUED
            freed = replace(records.with_metadata(job.record, job.metadata, job.results),
                            lease_until=self._clock())
            try:
                await self._store.update_operation(freed)
            except CadenzaError as error:
                logger.warning("could not free %s (its lease runs out instead): %s",
                               job.record.name, error)

    async def submit(self, record: OperationRecord) -> OperationRecord:
        """Stores a new operation, running it here at once when there is room."""
        if len(self._jobs) < self._settings.max_running:
            record = replace(record, owner=self.owner, lease_until=self._lease_end())
            await self._store.put_operation(record)
            self._launch(record, admitted=True)
        else:
            await self._store.put_operation(record)  # queued: any replica with room takes it
        return record

    def runs(self, name: str) -> bool:
        """Whether this replica is running the operation."""
        return name in self._jobs

    def cancel_here(self, name: str) -> bool:
        """Cancels the operation now if this replica runs it; whether it does."""
        job = self._jobs.get(name)
        if job is None or job.task is None:
            return False
        job.by_caller = True
        job.task.cancel()
        return True

    async def wait_here(self, name: str, timeout_s: float) -> None:
        """Returns when the operation, if this replica runs it, ends (or after timeout_s)."""
        job = self._jobs.get(name)
        if job is not None:
            await asyncio.wait_for(job.finished.wait(), timeout_s)

    async def finish_unowned_cancel(self, record: OperationRecord) -> OperationRecord | None:
        """Ends a cancelled operation nobody is running (queued, or its runner died)."""
        claimed = await self._store.claim_operation(record.name, self.owner, self._clock(),
                                                    self._lease_end())
        if claimed is None or claimed.name in self._jobs:
            return None
        metadata = records.metadata_of(claimed)
        metadata.state = gateway_pb2.OPERATION_STATE_CANCELLED
        return await self._finish(claimed, metadata, error=_CANCELLED)

    # -- the poll loop ------------------------------------------------------------------

    async def _poll(self) -> None:
        while True:
            try:
                await self._renew_all()
                await self._claim_free()
                if time.monotonic() - self._last_sweep > 60:
                    self._last_sweep = time.monotonic()
                    await self._store.delete_expired_operations(self._clock())
            except CadenzaError as error:
                logger.warning("operations poll failed (retrying): %s", error)
            await asyncio.sleep(self._settings.poll_s)

    async def _renew_all(self) -> None:
        for job in list(self._jobs.values()):
            if job.finished.is_set() or job.task is None:
                continue
            stored = await self._save(job)
            if stored is None and not job.finished.is_set():
                current = await self._store.get_operation(job.record.name)
                if current is None or current.done:
                    continue  # it just finished (or was deleted): nothing to stop
                logger.warning("lost the claim on %s; another replica runs it now",
                               job.record.name)
                job.task.cancel()
            elif stored is not None and stored.cancel_requested and not job.by_caller:
                self.cancel_here(job.record.name)

    async def _claim_free(self) -> None:
        room = self._settings.max_running - len(self._jobs)
        if room <= 0:
            return
        now = self._clock()
        for record in await self._store.unfinished_operations():
            if room <= 0:
                break
            if record.name in self._jobs:
                continue
            if record.owner not in ("", self.owner) and record.lease_until is not None \
                    and record.lease_until >= now:
                continue  # another replica holds it
            claimed = await self._store.claim_operation(record.name, self.owner, now,
                                                        self._lease_end())
            if claimed is None:
                continue
            if claimed.cancel_requested:
                await self.finish_unowned_cancel(claimed)
                continue
            self._launch(claimed, admitted=False)
            room -= 1

    # -- one operation ------------------------------------------------------------------

    def _launch(self, record: OperationRecord, admitted: bool) -> None:
        job = _Job(record, records.metadata_of(record), records.results_of(record))
        self._jobs[record.name] = job
        RUNNING.set(len(self._jobs))
        job.task = asyncio.get_running_loop().create_task(self._run(job, admitted))

    async def _run(self, job: _Job, admitted: bool) -> None:
        try:
            await self._work(job, admitted)
        except asyncio.CancelledError:
            if not job.by_caller:
                raise  # shutdown or a lost claim: leave it for the next runner
            job.metadata.state = gateway_pb2.OPERATION_STATE_CANCELLED
            await self._finish(job.record, job.metadata, error=_CANCELLED)
        except _Failed as failed:
            job.metadata.state = gateway_pb2.OPERATION_STATE_FAILED
            await self._finish(job.record, job.metadata, error=failed.status)
        except Exception:
            logger.exception("operation %s failed", job.record.name)
            job.metadata.state = gateway_pb2.OPERATION_STATE_FAILED
            await self._finish(job.record, job.metadata, error=status_pb2.Status(
                code=grpc.StatusCode.INTERNAL.value[0],
                message="the gateway failed running this operation; start it again"))
        finally:
            job.finished.set()
            self._jobs.pop(job.record.name, None)
            RUNNING.set(len(self._jobs))

    async def _work(self, job: _Job, admitted: bool) -> None:
        request = gateway_pb2.StartOperationRequest.FromString(job.record.request)
        backend, method = find_method(request.method, self._backends)
        calls = check_calls(method, request)
        job.metadata.state = gateway_pb2.OPERATION_STATE_RUNNING
        job.metadata.attempts += 1
        job.metadata.calls = len(calls)
        for index in range(len(job.results.responses), len(calls)):
            job.metadata.calls_done = index
            await self._save(job, raise_on_cancel=True)
            first = admitted and index == 0  # StartOperation admitted it already
            response = await self._call(job, backend, method, index, calls[index], first)
            job.results.responses.append(pack(method, response))
            if job.progress is not None:
                job.metadata.messages = job.progress.messages
            job.progress = None
        job.metadata.calls_done = len(calls)
        job.metadata.progress = 1.0
        job.metadata.state = gateway_pb2.OPERATION_STATE_SUCCEEDED
        await self._finish(job.record, job.metadata, result=job.results)

    async def _call(self, job: _Job, backend: Backend, method: MethodDescriptor, index: int,
                    messages: list[bytes], admitted: bool) -> bytes:
        full = full_name(method)
        meter = meter_of(full)
        who = records.caller_of(job.record)
        if not admitted and self._policy is not None:
            tenant = await self._store.get_tenant(job.record.tenant)
            refusal = None if tenant is None else await self._policy.admit(
                tenant, meter.model, meter.unit)
            if refusal is not None:
                raise _Failed(refusal_status(refusal))
        call_id = f"{job.metadata.call_id_prefix}-{index}"
        usage = self._metering.record(who, call_id, full, meter.model, meter.unit)
        try:
            await self._metering.reserve(usage)
        except CadenzaError as error:
            raise _Failed(status_pb2.Status(code=error.code.value[0],
                                            message=error.message)) from error
        job.progress = Progress(full, messages[0])
        channel: Any = self._channels[backend.service.full_name]  # raw bytes both ways
        options: dict[str, Any] = dict(timeout=self._settings.call_deadline_s,
                                       metadata=((context.REQUEST_ID_KEY, call_id),))
        started = time.perf_counter()
        code, trailers, last, received = grpc.StatusCode.CANCELLED, None, b"", 0
        call: Any = None
        interrupted = False
        try:
            if method.server_streaming:
                call = (channel.stream_stream(full)(iter(messages), **options)
                        if method.client_streaming
                        else channel.unary_stream(full)(messages[0], **options))
                async for message in call:
                    received += len(message)
                    job.progress.saw(message)
                    last = message
            else:
                call = (channel.stream_unary(full)(iter(messages), **options)
                        if method.client_streaming
                        else channel.unary_unary(full)(messages[0], **options))
                last = await call
                received = len(last)
            trailers = await call.trailing_metadata()
            code = grpc.StatusCode.OK
            return last
        except grpc.aio.AioRpcError as error:
            code, trailers = error.code(), error.trailing_metadata()
            raise _Failed(_status(backend, error)) from error
        except asyncio.CancelledError:
            # Stopped by a shutdown or a lost claim, not by the caller: the call runs again
            # and its record stays reserved, so that run's settlement is the one kept.
            interrupted = not job.by_caller
            raise
        finally:
            if code != grpc.StatusCode.OK and call is not None:
                call.cancel()  # a cancelled operation stops the backend's work
            if not interrupted:
                reported = read_usage(trailers or ())
                model, units = reported if reported is not None else ("", 0.0)
                self._metering.settle(usage, Settlement(
                    code=code, model=model, units=units, unit=meter.unit,
                    request_bytes=sum(map(len, messages)), response_bytes=received,
                    latency_ms=(time.perf_counter() - started) * 1000))

    # -- store writes -------------------------------------------------------------------

    async def _save(self, job: _Job, raise_on_cancel: bool = False) -> OperationRecord | None:
        """Writes progress and renews the lease; the stored record, or None if lost."""
        now = self._clock()
        metadata = job.metadata
        if job.progress is not None:
            metadata.messages = job.progress.messages
            metadata.progress = (metadata.calls_done + job.progress.fraction) / max(
                metadata.calls, 1)
        else:
            metadata.progress = metadata.calls_done / max(metadata.calls, 1)
        metadata.update_time.FromDatetime(now)
        record = replace(records.with_metadata(job.record, metadata, job.results),
                         owner=self.owner, update_time=now, lease_until=self._lease_end())
        stored = await self._store.update_operation(record)
        if stored is not None:
            job.record = stored
            if raise_on_cancel and stored.cancel_requested:
                job.by_caller = True
                raise asyncio.CancelledError
        return stored

    async def _finish(self, record: OperationRecord, metadata: gateway_pb2.OperationMetadata,
                      result: gateway_pb2.OperationResult | None = None,
                      error: status_pb2.Status | None = None) -> OperationRecord | None:
        now = self._clock()
        done = replace(records.finished(
            record, metadata, now, now + timedelta(seconds=self._settings.retention_s),
            result=result, error=error), owner=self.owner)
        for attempt in range(5):
            try:
                stored = await self._store.update_operation(done)
            except CadenzaError as failure:
                logger.warning("could not finish %s (try %d): %s", record.name, attempt + 1,
                               failure)
                await asyncio.sleep(1.0)
                continue
            FINISHED.labels(record.method, _STATE_NAMES[metadata.state]).inc()
            return stored
        return None  # the lease runs out and the work is run again

    def _lease_end(self) -> datetime:
        return self._clock() + timedelta(seconds=self._settings.lease_s)


def _status(backend: Backend, error: grpc.aio.AioRpcError) -> status_pb2.Status:
    """The backend's status, with its details (QuotaFailure, BadRequest...) kept."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            return status_pb2.Status.FromString(value)
    details = error.details() or ""
    if error.code() == grpc.StatusCode.UNAVAILABLE:
        details = f"{backend.name} backend ({backend.address}) is unavailable: {details}"
    return status_pb2.Status(code=error.code().value[0], message=details)
