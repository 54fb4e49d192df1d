"""The gRPC server every Cadenza process runs: health, reflection, metrics, graceful drain."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import grpc
import grpc.aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from cadenza.kit import logs, metrics
from cadenza.kit.interceptor import ServerInterceptor
from cadenza.kit.settings import ServerSettings

logger = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass(frozen=True)
class Binding:
    """A service to register: its full name and the generated add_*_to_server call."""

    name: str
    add: Callable[[grpc.aio.Server], None]


@dataclass
class App:
    """What a process serves, built inside the event loop by its factory."""

    bindings: Sequence[Binding]
    # Runs after the port is open and before health turns SERVING (load models, open
    # stores, compile numba kernels ...).
    warmup: Callable[[], Awaitable[None]] | None = None
    # Runs after the server has stopped (close stores and channels).
    close: Callable[[], Awaitable[None]] | None = None
    # Turns health SERVING once warm. The default marks '' and every binding SERVING; the
    # gateway instead derives them from its backends' health.
    become_ready: Callable[[RunningServer], Awaitable[None]] | None = None


@dataclass
class RunningServer:
    """A started server and its health servicer."""
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    port: int
    service_names: tuple[str, ...]

    async def set_serving(self, serving: bool) -> None:
        """Sets every service's health (and the server's overall one) to SERVING or NOT_SERVING."""
        status = SERVING if serving else NOT_SERVING
        for name in ("", *self.service_names):
            await self.health.set(name, status)


def server_options(settings: ServerSettings) -> list[tuple[str, int]]:
    """Server options: message limits and the keepalive policy clients may use."""
    return [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        # Let clients keep idle connections alive with pings every 20 s or more.
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 20_000),
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        # Recycle each connection after ~5 min (GOAWAY; calls in flight still finish) so
        # clients re-resolve headless Services and round-robin onto pods added since.
        ("grpc.max_connection_age_ms", 300_000),
    ]


async def start_server(
    settings: ServerSettings,
    app: App,
    *,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
) -> RunningServer:
    """Builds and starts the server, health NOT_SERVING until set_serving(True)."""
    server = grpc.aio.server(
        interceptors=[ServerInterceptor(), *interceptors],
        options=server_options(settings),
        maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
    )
    for binding in app.bindings:
        binding.add(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = tuple(b.name for b in app.bindings)
    reflection.enable_server_reflection(
        (*names, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    if port == 0:
        raise OSError(f"could not bind {settings.host}:{settings.port}")
    await server.start()
    running = RunningServer(server, health_servicer, port, names)
    await running.set_serving(False)
    return running


async def serve(
    settings: ServerSettings,
    build: Callable[[], Awaitable[App]],
    *,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
) -> None:
    """Serves until SIGTERM or SIGINT, then drains: NOT_SERVING, finish calls, close."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    metrics.serve_metrics(settings.host, settings.metrics_port)
    app = await build()
    running = await start_server(settings, app, interceptors=interceptors)
    logger.info("listening on %s:%d; warming up", settings.host, running.port)
    if app.warmup is not None:
        await app.warmup()
    # What start-up loaded (modules, settings, a model's id maps, a catalogue copy) lives
    # as long as the process: out of the collector's view, a full collection no longer
    # walks it. Each one walked 100-300k such objects and stalled every call in flight
    # for 50-350 ms (recommend, gateway and retrieval at Last.fm scale).
    gc.freeze()
    if app.become_ready is None:
        await running.set_serving(True)
    else:
        await app.become_ready(running)
    logger.info("serving %s", ", ".join(running.service_names))

    await stop.wait()
    logger.info("shutting down: draining for up to %.1f s", settings.grace_s)
    await running.health.enter_graceful_shutdown()
    if settings.drain_delay_s:
        await asyncio.sleep(settings.drain_delay_s)
    await running.server.stop(settings.grace_s)
    if app.close is not None:
        await app.close()
    logger.info("stopped")


def run(
    settings: ServerSettings,
    service: str,
    build: Callable[[], Awaitable[App]],
    *,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
) -> None:
    """The whole life of a server process; returns normally (exit 0) after a clean drain."""
    logs.configure(service, settings.log_level, settings.log_format)
    asyncio.run(serve(settings, build, interceptors=interceptors))


async def serve_in_process(
    app: App,
    *,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    settings: ServerSettings | None = None,
) -> RunningServer:
    """For tests: the production server on a free loopback port, SERVING, no metrics port."""
    settings = settings or ServerSettings(port=0, metrics_port=-1, grace_s=1.0)
    running = await start_server(settings, app, interceptors=interceptors)
    if app.become_ready is None:
        await running.set_serving(True)
    else:
        await app.become_ready(running)
    return running
