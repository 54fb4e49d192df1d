"""The public services the gateway serves, read from the generated descriptors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from google.protobuf.descriptor import ServiceDescriptor

from cadenza.generate.v1 import generate_pb2
from cadenza.recommend.v1 import recommend_pb2
from cadenza.retrieval.v1 import retrieval_pb2


@dataclass(frozen=True)
class Backend:
    """A backend process and the one public service it serves."""

    name: str
    address: str
    service: ServiceDescriptor


class BackendAddresses(Protocol):
    """Settings that say where the backends are (the gateway's, the edge's)."""

    retrieval_address: str
    recommend_address: str
    generate_address: str


def backends(settings: BackendAddresses) -> tuple[Backend, ...]:
    """The public backends and where they are, from the settings."""
    return (
        Backend("retrieval", settings.retrieval_address,
                retrieval_pb2.DESCRIPTOR.services_by_name["RetrievalService"]),
        Backend("recommend", settings.recommend_address,
                recommend_pb2.DESCRIPTOR.services_by_name["RecommendService"]),
        Backend("generate", settings.generate_address,
                generate_pb2.DESCRIPTOR.services_by_name["GenerateService"]),
    )
