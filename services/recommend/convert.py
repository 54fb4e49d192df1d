"""Recommend requests and replies: protobuf <-> domain, with the checks that name fields."""

from __future__ import annotations

from cadenza.kit.errors import InvalidArgument
from cadenza.kit.validate import check_id, check_weights
from cadenza.recommend.v1 import recommend_pb2 as pb
from services.recommend.blend import Item
from services.recommend.catalog import Bounds, CandidateFilter
from services.recommend.recommender import (
    DEFAULT_WEIGHTS,
    MAX_LIMIT,
    RecommendQuery,
    RecommendResult,
)
from services.recommend.seeds import Seeds
from services.recommend.training import ModelStatus, TrainingRun

DEFAULT_LIMIT = 20
DEFAULT_MAX_PER_ARTIST = 2
MAX_SEEDS = 20
# (proto suffix, domain name, lowest and highest sensible value): a target far outside
# what audio can measure only pushes scores towards overflow.
_RANGED = (("tempo_bpm", "tempo_bpm", 1.0, 1000.0),
           ("loudness_db", "loudness_db", -120.0, 0.0),
           ("brightness_hz", "brightness_hz", 1.0, 50_000.0),
           ("duration_s", "duration_s", 0.0, 86_400.0))


def limit_from_pb(request: pb.RecommendRequest | pb.SimilarTracksRequest
                  | pb.SimilarUsersRequest) -> int:
    """The request's limit: the default when unset, else checked against MAX_LIMIT."""
    if not request.HasField("limit"):
        return DEFAULT_LIMIT
    if not 1 <= request.limit <= MAX_LIMIT:
        raise InvalidArgument("limit", f"must be between 1 and {MAX_LIMIT}, got "
                                       f"{request.limit} (leave it unset for {DEFAULT_LIMIT})")
    return request.limit


def recommend_query_from_pb(request: pb.RecommendRequest) -> RecommendQuery:
    """A RecommendRequest as a checked domain query (InvalidArgument names the field)."""
    check_id("user_id", request.user_id)
    limit = limit_from_pb(request)
    weights = check_weights("weights", request.weights, DEFAULT_WEIGHTS)
    cap = DEFAULT_MAX_PER_ARTIST
    if request.HasField("max_per_artist"):
        if request.max_per_artist < 0:
            raise InvalidArgument("max_per_artist", "must be >= 0 (0 = no cap)")
        cap = request.max_per_artist
    where, targets = _targets_from_pb(request.targets)
    return RecommendQuery(request.user_id, limit, weights, _seeds_from_pb(request.seeds), where,
                          targets, cap, request.include_heard)


def _seeds_from_pb(seeds: pb.Seeds) -> Seeds:
    for field, values in (("track_ids", seeds.track_ids), ("artists", seeds.artists),
                          ("tags", seeds.tags)):
        if len(values) > MAX_SEEDS:
            raise InvalidArgument(f"seeds.{field}", f"at most {MAX_SEEDS}, got {len(values)}")
        for i, value in enumerate(values):
            if not value.strip():
                raise InvalidArgument(f"seeds.{field}[{i}]", "is empty")
    for i, track_id in enumerate(seeds.track_ids):
        check_id(f"seeds.track_ids[{i}]", track_id)
    if len(seeds.text) > 500:
        raise InvalidArgument("seeds.text", "is over 500 characters")
    return Seeds(tuple(seeds.track_ids), tuple(seeds.artists), tuple(seeds.tags), seeds.text)


def _targets_from_pb(t: pb.AudioTargets) -> tuple[CandidateFilter, dict[str, float]]:
    bounds: dict[str, Bounds] = {}
    targets: dict[str, float] = {}
    # The optional fields that were sent (HasField wants each name as a literal).
    present = {descriptor.name for descriptor, _ in t.ListFields()}
    for prefix, name, lowest, highest in _RANGED:
        values = {}
        for kind in ("min", "max", "target"):
            field = f"{kind}_{prefix}"
            if field in present:
                value = getattr(t, field)
                if not lowest <= value <= highest:  # False for NaN too
                    raise InvalidArgument(f"targets.{field}", f"must be {lowest:g} to "
                                                              f"{highest:g}, got {value}")
                values[kind] = value
        if "min" in values and "max" in values and values["min"] > values["max"]:
            raise InvalidArgument(f"targets.min_{prefix}", f"is above max_{prefix} "
                                  f"({values['min']:g} > {values['max']:g})")
        bounds[name] = Bounds(values.get("min"), values.get("max"))
        if "target" in values:
            targets[name] = values["target"]
    if t.HasField("target_key"):
        if not 0 <= t.target_key <= 11:
            raise InvalidArgument("targets.target_key", "must be a pitch class 0 (C) to 11 (B)")
        targets["key"] = float(t.target_key)
    if t.HasField("target_mode"):
        if t.target_mode not in (0, 1):
            raise InvalidArgument("targets.target_mode", "must be 1 (major) or 0 (minor)")
        targets["mode"] = float(t.target_mode)
    return CandidateFilter(tempo_bpm=bounds["tempo_bpm"], loudness_db=bounds["loudness_db"],
                           brightness_hz=bounds["brightness_hz"],
                           duration_s=bounds["duration_s"]), targets


def item_to_pb(item: Item) -> pb.Recommendation:
    """One recommended item as a Recommendation message."""
    return pb.Recommendation(track_id=item.track.track_id, title=item.track.title,
                             artist=item.track.artist, score=item.score,
                             contributions=item.contributions, reason=item.reason)


def recommend_response_to_pb(result: RecommendResult) -> pb.RecommendResponse:
    """A recommendation result as a RecommendResponse."""
    return pb.RecommendResponse(items=[item_to_pb(i) for i in result.items],
                                weights=result.weights, model_version=result.model_version,
                                cold_start=result.cold_start)


def run_to_pb(run: TrainingRun | None) -> pb.TrainingRun:
    """A training run as a TrainingRun message (empty for None)."""
    if run is None:
        return pb.TrainingRun()
    return pb.TrainingRun(run_id=run.run_id, algorithm=run.algorithm, state=run.state,
                          started_at_unix_s=run.started_at_unix_s, duration_s=run.duration_s,
                          events_used=run.events_used, users=run.users, items=run.items,
                          model_version=run.model_version, error=run.error)


def status_to_pb(status: ModelStatus, default_weights: dict[str, float],
                 events_stored: int) -> pb.GetModelStatusResponse:
    """The model status, default weights and event count as a GetModelStatusResponse."""
    return pb.GetModelStatusResponse(model_version=status.model_version,
                                     latest_run=run_to_pb(status.latest_run),
                                     default_weights=default_weights,
                                     events_stored=events_stored)
