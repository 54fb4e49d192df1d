"""The methods to fuzz, read from the target's gRPC server reflection.

Nothing here names a method: whatever the server lists under the prefix is fuzzed, so an
RPC added later joins the suite by being served.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import grpc
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

PUBLIC_PREFIX = "cadenza."


@dataclass(frozen=True)
class Method:
    """One RPC: where it lives, its call shape and its request message class."""

    service: str  # e.g. "cadenza.retrieval.v1.RetrievalService"
    name: str  # e.g. "IngestTrack"
    client_streaming: bool
    server_streaming: bool
    request_class: type[Message]

    @property
    def path(self) -> str:
        """The gRPC path, e.g. "/cadenza.retrieval.v1.RetrievalService/IngestTrack"."""
        return f"/{self.service}/{self.name}"

    @property
    def short(self) -> str:
        """Service and method without the package, e.g. "RetrievalService/IngestTrack"."""
        return f"{self.service.rsplit('.', 1)[-1]}/{self.name}"

    @property
    def shape(self) -> str:
        """The call shape, named as the grpc_type metric label names it."""
        if self.client_streaming:
            return "bidi_stream" if self.server_streaming else "client_stream"
        return "server_stream" if self.server_streaming else "unary"

    @property
    def request_descriptor(self) -> Descriptor:
        """The request message's descriptor."""
        return cast(Descriptor, self.request_class.DESCRIPTOR)  # upb's class, typed apart


def _ready(channel: grpc.Channel, address: str, timeout_s: float) -> None:
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout_s)
    except grpc.FutureTimeoutError:
        raise ConnectionError(f"{address} did not accept a connection in {timeout_s:g} s") \
            from None


def list_services(address: str, timeout_s: float = 10.0) -> list[str]:
    """Full names of every service the server at address lists by reflection."""
    with grpc.insecure_channel(address) as channel:
        _ready(channel, address, timeout_s)
        return sorted(ProtoReflectionDescriptorDatabase(channel).get_services())


def discover(address: str, prefix: str = PUBLIC_PREFIX, timeout_s: float = 10.0) -> list[Method]:
    """Every method of every service whose name starts with prefix, sorted by path.

    The descriptors (and their imports, e.g. google/protobuf/timestamp.proto) come from
    the server, so the request classes are the server's view of the contract.
    """
    with grpc.insecure_channel(address) as channel:
        _ready(channel, address, timeout_s)
        database = ProtoReflectionDescriptorDatabase(channel)
        pool = descriptor_pool.DescriptorPool(database)
        methods = []
        for service_name in sorted(database.get_services()):
            if not service_name.startswith(prefix):
                continue
            service = pool.FindServiceByName(service_name)
            for method in service.methods:
                methods.append(Method(
                    service=service_name, name=method.name,
                    client_streaming=method.client_streaming,
                    server_streaming=method.server_streaming,
                    request_class=message_factory.GetMessageClass(method.input_type)))
    return sorted(methods, key=lambda m: m.path)
