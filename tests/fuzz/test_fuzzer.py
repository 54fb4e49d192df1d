"""The fuzzer itself, without a mesh: reproducible bodies, and a policy that protects the
shared mesh from state changes and long generations."""

from __future__ import annotations

import io
import random

import numpy as np
import pretty_midi
import pytest
import soundfile
from google.protobuf import message_factory

from cadenza.generate.v1 import generate_pb2 as gpb
from cadenza.recommend.v1 import recommend_pb2 as rpb
from cadenza.retrieval.v1 import retrieval_pb2 as tpb
from tools.fuzz import mutate
from tools.fuzz.bodies import BodyMaker
from tools.fuzz.discovery import Method
from tools.fuzz.policy import allows, primer_quarters
from tools.fuzz.runner import NEUTRAL, plan
from tools.fuzz.values import small_midi


def _wav(seconds: float) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(int(seconds * 8000), np.float32), 8000, format="WAV")
    return buffer.getvalue()


def _score(seconds: float) -> bytes:
    midi = pretty_midi.PrettyMIDI()
    instrument = pretty_midi.Instrument(program=40)
    instrument.notes = [pretty_midi.Note(velocity=80, pitch=60, start=0.0, end=seconds)]
    midi.instruments.append(instrument)
    buffer = io.BytesIO()
    midi.write(buffer)
    return buffer.getvalue()


_VIOLIN = gpb.Timbre(instrument="violin")


def _methods() -> list[Method]:
    methods = []
    for module in (tpb, rpb, gpb):
        for service in module.DESCRIPTOR.services_by_name.values():
            for m in service.methods:
                methods.append(Method(service.full_name, m.name, m.client_streaming,
                                      m.server_streaming,
                                      message_factory.GetMessageClass(m.input_type)))
    return methods


def _bodies(seed: int) -> list[tuple[str, int, bytes]]:
    return [(c.method.path, c.index, b.data)
            for c in plan(_methods(), seed, 40).calls for b in c.bodies]


def test_the_same_seed_gives_the_same_bodies_and_another_seed_others() -> None:
    assert _bodies(7) == _bodies(7)
    assert _bodies(7) != _bodies(8)


def test_a_methods_bodies_do_not_depend_on_the_other_methods() -> None:
    everything = plan(_methods(), 3, 20).calls
    alone = plan([m for m in _methods() if m.name == "SearchTracks"], 3, 20).calls
    assert [c.bodies for c in everything if c.method.name == "SearchTracks"] == \
        [c.bodies for c in alone]


def test_every_generator_is_used_and_valid_bodies_decode() -> None:
    for method in _methods():
        maker = BodyMaker(random.Random(method.path), method.request_descriptor)
        kinds = {maker.draw().kind for _ in range(60)}
        assert kinds == {"random", "valid", "mutated"}, method.path
        for _ in range(20):
            method.request_class.FromString(maker.valid().data)


def test_mutations_take_any_input_including_empty() -> None:
    rng = random.Random(0)
    for operator in mutate.OPERATORS:
        for data in (b"", b"\x08", b"\x0a\x03abc"):
            assert isinstance(operator(rng, data, b"\x10\x01"), bytes)


def _allowed(method: str, message: object) -> bool:
    request_class = type(message)
    return allows(method, request_class, message.SerializeToString())  # type: ignore[attr-defined]


@pytest.mark.parametrize(("method", "message"), [
    ("RetrievalService/IngestTrack", tpb.IngestTrackRequest(header=tpb.IngestHeader(
        metadata=tpb.TrackMetadata(track_id="cli-rec-folk-1", title="Reel")))),
    ("RetrievalService/DeleteTrack", tpb.DeleteTrackRequest(track_id="cli-rec-folk-1")),
    ("RecommendService/RecordEvent", rpb.RecordEventRequest(event=rpb.Event(
        event_id="e1", user_id="u1", track_id="cli-rec-folk-1", kind=rpb.EVENT_KIND_LIKE))),
    ("RecommendService/RecordEvents", rpb.RecordEventsRequest(event=rpb.Event(
        event_id="e1", user_id="u1", track_id="t1", kind=rpb.EVENT_KIND_PLAY))),
    ("RecommendService/TrainModel", rpb.TrainModelRequest()),  # the default algorithm
    ("RecommendService/TrainModel", rpb.TrainModelRequest(algorithm="als")),
    ("RecommendService/TrainModel", rpb.TrainModelRequest(algorithm="some_future-algo2")),
    ("GenerateService/Generate", gpb.GenerateRequest()),  # the default 8 bars
    ("GenerateService/Generate", gpb.GenerateRequest(bars=128)),
    ("GenerateService/Generate", gpb.GenerateRequest(bars=2, time_signature="16/4")),
    ("GenerateService/Generate", gpb.GenerateRequest(seconds=600, tempo_bpm=300)),
    ("GenerateService/Generate", gpb.GenerateRequest(
        mode=gpb.GENERATION_MODE_CONTINUE, primer_midi=small_midi(random.Random(1)), bars=4)),
    ("GenerateService/RenderScore", gpb.RenderScoreRequest(midi=_score(30.0))),
    ("GenerateService/TransferTimbre", gpb.TransferTimbreRequest(audio=_wav(20.0),
                                                                 timbre=_VIOLIN)),
])
def test_the_policy_keeps_state_changes_and_long_generations_off_the_mesh(
        method: str, message: object) -> None:
    assert not _allowed(method, message)


@pytest.mark.parametrize(("method", "message"), [
    ("RetrievalService/IngestTrack", tpb.IngestTrackRequest(header=tpb.IngestHeader(
        metadata=tpb.TrackMetadata(track_id="not an id!", title="Reel")))),
    ("RetrievalService/IngestTrack", tpb.IngestTrackRequest(audio_chunk=b"RIFF")),
    ("RetrievalService/DeleteTrack", tpb.DeleteTrackRequest(track_id="fuzz-absent-x1")),
    ("RecommendService/TrainModel", rpb.TrainModelRequest(algorithm="als ")),
    ("GenerateService/Generate", gpb.GenerateRequest(bars=2)),
    ("GenerateService/Generate", gpb.GenerateRequest(seconds=4, tempo_bpm=120)),
    # Outside the contract: a correct server refuses these at once, so they are fuzzed.
    ("GenerateService/Generate", gpb.GenerateRequest(bars=129)),
    ("GenerateService/Generate", gpb.GenerateRequest(seconds=float("nan"))),
    ("GenerateService/Generate", gpb.GenerateRequest(bars=1, tempo_bpm=0)),
    ("GenerateService/Generate", gpb.GenerateRequest(mode=gpb.GENERATION_MODE_HARMONIZE)),
    ("RetrievalService/SearchTracks", tpb.SearchTracksRequest(text="anything")),
    ("GenerateService/RenderScore", gpb.RenderScoreRequest(midi=_score(2.0))),
    ("GenerateService/RenderScore", gpb.RenderScoreRequest(midi=b"MThd junk")),
    ("GenerateService/TransferTimbre", gpb.TransferTimbreRequest(audio=_wav(1.0),
                                                                 timbre=_VIOLIN)),
    # Refused at once: no timbre, or over the 60 s limit.
    ("GenerateService/TransferTimbre", gpb.TransferTimbreRequest(audio=_wav(20.0))),
    ("GenerateService/TransferTimbre", gpb.TransferTimbreRequest(audio=_wav(61.0),
                                                                 timbre=_VIOLIN)),
])
def test_the_policy_lets_harmless_and_out_of_contract_bodies_through(
        method: str, message: object) -> None:
    assert _allowed(method, message)


def test_undecodable_bodies_always_pass_the_policy() -> None:
    assert allows("RecommendService/TrainModel", rpb.TrainModelRequest, NEUTRAL.data)


def test_the_small_midi_primers_are_short() -> None:
    lengths = [primer_quarters(small_midi(random.Random(seed))) for seed in range(50)]
    assert all(q is not None and q <= 8 for q in lengths)
    assert primer_quarters(b"MThd junk") is None
