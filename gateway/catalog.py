"""One model catalogue for the whole platform, and what each public method is metered in.

The meters are static (they follow the protos: a method's unit does not change at run
time); the models are asked of each service, so the list shows what really runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cadenza.gateway.v1 import gateway_pb2
from cadenza.generate.v1 import generate_pb2, generate_pb2_grpc
from cadenza.kit import metrics
from cadenza.recommend.v1 import recommend_pb2, recommend_pb2_grpc

logger = logging.getLogger(__name__)
T = TypeVar("T")

GENERATE = "cadenza.generate.v1.GenerateService"
RECOMMEND = "cadenza.recommend.v1.RecommendService"
RETRIEVAL = "cadenza.retrieval.v1.RetrievalService"
# The models quotas are checked against before a call (the service's defaults; the model
# a call really used comes back in its trailers and is what its usage is charged to).
MUSIC, TEXT, AUDIO, IMAGE = ("cadenza-poly", "smollm2-135m-instruct", "cadenza-ddsp",
                             "cadenza-motif")
RECOMMENDER = "cadenza-recommender"
ENCODER = "all-minilm-l6-v2"
_DEADLINE_S = 3.0


@dataclass(frozen=True)
class Meter:
    """What a method's calls are metered in, and the model its quota is checked on."""
    modality: str = ""
    unit: str = "requests"
    model: str = ""


def _methods(service: str, names: str) -> list[str]:
    return [f"/{service}/{name}" for name in names.split()]


METERS: dict[str, Meter] = {
    f"/{GENERATE}/Generate": Meter("music", "seconds", MUSIC),
    f"/{GENERATE}/GenerateText": Meter("text", "tokens", TEXT),
    # Lyrics and descriptions report no token count yet: metered per request.
    f"/{GENERATE}/WriteLyrics": Meter("text", "requests", TEXT),
    f"/{GENERATE}/DescribeMusic": Meter("text", "requests", TEXT),
    f"/{GENERATE}/RenderScore": Meter("audio", "seconds", AUDIO),
    f"/{GENERATE}/TransferTimbre": Meter("audio", "seconds", AUDIO),
    f"/{GENERATE}/GenerateCover": Meter("image", "images", IMAGE),
    f"/{GENERATE}/GenerateImage": Meter("image", "images", IMAGE),
    f"/{RECOMMEND}/Recommend": Meter("recommender", "recommendations", RECOMMENDER),
    f"/{RECOMMEND}/SimilarTracks": Meter("recommender", "recommendations", RECOMMENDER),
    f"/{RECOMMEND}/SimilarUsers": Meter("recommender", "recommendations", RECOMMENDER),
    f"/{RETRIEVAL}/SearchTracks": Meter("embedding", "requests", ENCODER),
}
_DEFAULT = Meter()


def meter_of(method: str) -> Meter:
    """The meter of a full method name (requests, no model, for unlisted methods)."""
    return METERS.get(method, _DEFAULT)


@dataclass(frozen=True)
class CatalogEntry:
    """One model the platform serves."""
    name: str
    modality: str
    service: str
    version: str = ""
    status: str = "READY"
    licence: str = ""
    card: str = ""
    methods: tuple[str, ...] = field(default_factory=tuple)

    @property
    def unit(self) -> str:
        """The unit its main method is metered in."""
        units = [METERS[m].unit for m in self.methods if m in METERS]
        return next((u for u in units if u != "requests"), units[0] if units else "requests")


def _uses(model: str) -> tuple[str, ...]:
    return tuple(m for m, meter in METERS.items() if meter.model == model)


_MODALITY = {generate_pb2.MODALITY_MUSIC: "music", generate_pb2.MODALITY_TEXT: "text",
             generate_pb2.MODALITY_AUDIO: "audio", generate_pb2.MODALITY_IMAGE: "image"}


async def _counted(service: str, method: str, call: Awaitable[T]) -> T:
    """Awaits a unary call, counted in the standard client metrics like every other call
    one process makes to another."""
    labels = ("unary", service, method)
    metrics.CLIENT_STARTED.labels(*labels).inc()
    started = time.perf_counter()
    code = grpc.StatusCode.OK
    try:
        return await call
    except grpc.aio.AioRpcError as error:
        code = error.code()
        raise
    finally:
        metrics.CLIENT_HANDLED.labels(*labels, code.name).inc()
        metrics.CLIENT_HANDLING.labels(*labels).observe(time.perf_counter() - started)


async def _generate(channel: grpc.aio.Channel) -> list[CatalogEntry]:
    reply = await _counted(GENERATE, "ListModels", generate_pb2_grpc.GenerateServiceStub(
        channel).ListModels(generate_pb2.ListModelsRequest(), timeout=_DEADLINE_S))
    entries = []
    for info in reply.models:
        modality = _MODALITY.get(info.modality, "")
        card = info.card
        methods = tuple(m for m, meter in METERS.items() if meter.modality == modality)
        entries.append(CatalogEntry(
            name=card.name, modality=modality, service="generate", version=card.version,
            status=info.status or "READY", licence=card.licence, methods=methods,
            card=json.dumps({"description": card.description,
                             "training_data": card.training_data,
                             "parameters": card.parameters,
                             "metrics": dict(card.metrics)}, sort_keys=True)))
    return entries


async def _recommend(channel: grpc.aio.Channel) -> list[CatalogEntry]:
    reply = await _counted(RECOMMEND, "GetModelStatus", recommend_pb2_grpc.
                           RecommendServiceStub(channel).GetModelStatus(
                               recommend_pb2.GetModelStatusRequest(), timeout=_DEADLINE_S))
    return [CatalogEntry(
        name=RECOMMENDER, modality="recommender", service="recommend",
        version=str(getattr(reply, "model_version", "")), methods=_uses(RECOMMENDER),
        licence="ours; trained on the tenant's own events",
        card="blended recommender: " + str(reply).replace("\n", "; ")[:2000])]


def _encoder(status: str) -> CatalogEntry:
    # Retrieval has no RPC that lists its encoder: what it runs is fixed by its build
    # (models/text, `make text-model`), so the entry is static and its status is the
    # retrieval service's.
    return CatalogEntry(name=ENCODER, modality="embedding", service="retrieval",
                        version="sentence-transformers/all-MiniLM-L6-v2 (ONNX)",
                        status=status, licence="Apache-2.0", methods=_uses(ENCODER),
                        card="sentence encoder for text search (384 dimensions)")


_STATIC = {GENERATE: [CatalogEntry(n, m, "generate", methods=tuple(
               x for x, meter in METERS.items() if meter.modality == m))
               for n, m in ((MUSIC, "music"), (TEXT, "text"), (AUDIO, "audio"),
                            (IMAGE, "image"))],
           RECOMMEND: [CatalogEntry(RECOMMENDER, "recommender", "recommend",
                                    methods=_uses(RECOMMENDER))]}


async def build_catalog(channels: Mapping[str, grpc.aio.Channel]) -> list[CatalogEntry]:
    """Every model of every service. A service that does not answer has its known models
    listed as UNAVAILABLE; the list never fails as a whole."""
    askers = {GENERATE: _generate, RECOMMEND: _recommend}
    names = [s for s in askers if s in channels]
    replies = await asyncio.gather(*(askers[s](channels[s]) for s in names),
                                   return_exceptions=True)
    entries: list[CatalogEntry] = []
    for service, reply in zip(names, replies, strict=True):
        if isinstance(reply, BaseException):
            logger.info("model catalogue: %s did not answer: %s", service, reply)
            entries += [_unavailable(e) for e in _STATIC[service]]
        else:
            entries += reply
    if RETRIEVAL in channels:
        entries.append(_encoder(await _status(channels[RETRIEVAL], RETRIEVAL)))
    return sorted(entries, key=lambda e: (e.modality, e.name))


def _unavailable(entry: CatalogEntry) -> CatalogEntry:
    return CatalogEntry(entry.name, entry.modality, entry.service, status="UNAVAILABLE",
                        methods=entry.methods)


async def _status(channel: grpc.aio.Channel, service: str) -> str:
    try:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=_DEADLINE_S)
    except grpc.aio.AioRpcError:
        return "UNAVAILABLE"
    return "READY" if reply.status == health_pb2.HealthCheckResponse.SERVING else "LOADING"


def to_proto(entry: CatalogEntry, quota: gateway_pb2.Quota,
             units_today: float) -> gateway_pb2.CatalogModel:
    """The entry as the API shows it, with the tenant's quota and use today."""
    return gateway_pb2.CatalogModel(
        name=entry.name, modality=entry.modality, version=entry.version,
        service=entry.service, methods=list(entry.methods), unit=entry.unit,
        status=entry.status, licence=entry.licence, card=entry.card, quota=quota,
        units_today=units_today)
