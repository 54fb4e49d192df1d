"""A real server process: SIGTERM drains it (NOT_SERVING first, in-flight calls finish,
exit 0); start-up's objects are frozen out of the collector's view."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tools.devmesh import free_port, wait_serving

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_sigterm_lets_slow_call_finish_after_turning_not_serving() -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.slow_server", str(port)],
                            cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        health = health_pb2_grpc.HealthStub(channel)
        wait_serving(f"127.0.0.1:{port}", 30)

        statuses: list[int] = []
        watch = health.Watch(health_pb2.HealthCheckRequest(), timeout=20)

        def follow() -> None:
            try:
                for reply in watch:
                    statuses.append(reply.status)
            except grpc.RpcError:
                pass

        watcher = threading.Thread(target=follow)
        watcher.start()

        sleep = channel.unary_unary("/test.Slow/Sleep")
        slow = sleep.future(b"2.0", timeout=20)
        time.sleep(0.5)  # the call is in flight
        proc.send_signal(signal.SIGTERM)

        assert slow.result() == b"done"
        assert proc.wait(timeout=20) == 0
        watcher.join(timeout=5)
        assert statuses[0] == health_pb2.HealthCheckResponse.SERVING
        assert health_pb2.HealthCheckResponse.NOT_SERVING in statuses, statuses

        # New calls are refused once the server is gone.
        try:
            sleep(b"0", timeout=2)
            raise AssertionError("a call succeeded after shutdown")
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.UNAVAILABLE
        channel.close()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_new_calls_are_refused_while_draining() -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.slow_server", str(port)],
                            cwd=ROOT)
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        wait_serving(f"127.0.0.1:{port}", 30)
        sleep = channel.unary_unary("/test.Slow/Sleep")
        slow = sleep.future(b"2.0", timeout=20)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)  # draining now, the slow call still running
        fresh = grpc.insecure_channel(f"127.0.0.1:{port}")
        try:
            fresh.unary_unary("/test.Slow/Sleep")(b"0", timeout=2)
            raise AssertionError("a new call was accepted while draining")
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert slow.result() == b"done"
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_what_start_up_loaded_is_frozen_out_of_the_collectors_view() -> None:
    # A full collection walks every tracked object; start-up's 100-300k stalled calls.
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.slow_server", str(port)],
                            cwd=ROOT)
    try:
        wait_serving(f"127.0.0.1:{port}", 30)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            frozen = int(channel.unary_unary("/test.Slow/Frozen")(b"", timeout=10))
        assert frozen > 10_000  # the interpreter, grpc and the kit's modules at least
    finally:
        proc.terminate()
        proc.wait(timeout=20)
