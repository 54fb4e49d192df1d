"""A real server process built with the shared kit, with one slow method (for drain tests).

`python -m tests.support.slow_server PORT` serves /test.Slow/Sleep: it sleeps for the
number of seconds in the request body (ASCII) and answers b"done". /test.Slow/Frozen
answers how many objects the garbage collector has frozen (ASCII).
"""

from __future__ import annotations

import asyncio
import gc
import sys

import grpc
import grpc.aio

from cadenza.kit.server import App, Binding, run
from cadenza.kit.settings import ServerSettings


async def sleep(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await asyncio.sleep(float(request.decode()))
    return b"done"


async def frozen(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return str(gc.get_freeze_count()).encode()


async def build() -> App:
    handler = grpc.method_handlers_generic_handler(
        "test.Slow", {"Sleep": grpc.unary_unary_rpc_method_handler(sleep),
                      "Frozen": grpc.unary_unary_rpc_method_handler(frozen)})
    return App(bindings=[Binding("test.Slow",
                                 lambda server: server.add_generic_rpc_handlers((handler,)))])


if __name__ == "__main__":
    run(ServerSettings(port=int(sys.argv[1]), metrics_port=-1, grace_s=10.0), "slow", build)
