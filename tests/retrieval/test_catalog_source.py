"""The demo catalog: selection from the music21 corpus, arrangement to MIDI, rendering."""

from __future__ import annotations

import io

import mido
import numpy as np
import pytest

from services.generate.music.synth import MidiRenderer, MidiRenderError, SynthUnavailableError
from services.retrieval.audio_decoding import SAMPLE_RATE_HZ, decode_audio
from tools.catalog.source import (
    MAX_DURATION_S,
    PieceSource,
    iter_rendered_pieces,
    list_demo_sources,
    make_demo_piece,
)

CHORALE = PieceSource(
    "bach-chorales", "bach/bwv269", None, title="Aus meines Herzens Grunde, BWV 269"
)
LONG_MASS_MOVEMENT = PieceSource("palestrina", "palestrina/Kyrie_71.krn", None)
ESSEN_TUNE = PieceSource("essen", "essenFolksong/ballad10.abc", 2)


@pytest.fixture(scope="module")
def renderer():
    try:
        with MidiRenderer() as loaded:
            yield loaded
    except SynthUnavailableError as e:
        pytest.skip(f"FluidSynth not installed: {e}")


@pytest.fixture(scope="module")
def chorale():
    return make_demo_piece(CHORALE)


@pytest.fixture(scope="module")
def sources():
    return list_demo_sources()


def test_selection_has_over_a_thousand_pieces_with_unique_stable_ids(sources):
    assert len(sources) >= 1000
    track_ids = [source.track_id for source in sources]
    assert len(set(track_ids)) == len(track_ids)
    assert {source.collection for source in sources} >= {"bach-chorales", "essen", "palestrina"}
    # Ids depend on the corpus location only, never on run order.
    assert PieceSource("bach-chorales", "bach/bwv269", None).track_id == CHORALE.track_id


def test_selection_takes_essen_tunes_one_by_one(sources):
    essen = [source for source in sources if source.collection == "essen"]
    assert 100 <= len(essen) <= 300  # a bounded subset of 8,500 tunes
    assert all(source.number is not None for source in essen)


def test_a_chorale_has_its_metadata_filled(chorale):
    assert chorale.track_id == CHORALE.track_id
    assert chorale.title == "Aus meines Herzens Grunde, BWV 269"
    assert chorale.artist == "Johann Sebastian Bach"
    assert chorale.album == "371 Four-Part Chorales"
    assert chorale.genre == "Baroque chorale"
    assert "chorale" in chorale.tags
    assert chorale.attributes["key"] == "G major"
    assert chorale.attributes["meter"] == "3/4"
    assert chorale.attributes["instrument"]
    assert chorale.attributes["parts"] == "4"
    assert "Aus meines Herzens Grunde" in chorale.description
    assert chorale.year is None  # the corpus does not date the chorales


def test_a_piece_is_arranged_the_same_way_every_time(chorale):
    again = make_demo_piece(CHORALE)
    assert again.midi == chorale.midi
    assert again.attributes == chorale.attributes


def test_the_midi_plays_for_the_stated_duration(chorale):
    midi_file = mido.MidiFile(file=io.BytesIO(chorale.midi))
    assert midi_file.length == pytest.approx(chorale.duration_s, abs=1.5)
    programs = {
        m.program for track in midi_file.tracks for m in track if m.type == "program_change"
    }
    assert programs  # every part names its General MIDI instrument


def test_long_pieces_are_clipped_to_the_maximum_duration():
    piece = make_demo_piece(LONG_MASS_MOVEMENT)
    assert piece.duration_s == pytest.approx(MAX_DURATION_S, abs=0.5)
    assert mido.MidiFile(file=io.BytesIO(piece.midi)).length <= MAX_DURATION_S + 1.5


def test_a_single_tune_is_taken_from_a_large_essen_file():
    piece = make_demo_piece(ESSEN_TUNE)
    assert piece.genre == "European folk song"
    assert piece.artist == "Traditional"
    assert piece.title


def test_a_rendered_chorale_decodes_at_the_right_length_and_level(chorale, renderer):
    audio = renderer.render_to_bytes(chorale.midi, audio_format="WAV")
    samples = decode_audio(audio)

    duration_s = samples.size / SAMPLE_RATE_HZ
    assert chorale.duration_s - 0.5 < duration_s < chorale.duration_s + 2.0
    assert float(np.max(np.abs(samples))) == pytest.approx(10 ** (-1 / 20), abs=0.01)
    rms_db = 20 * np.log10(np.sqrt(np.mean(samples**2)))
    assert rms_db > -30.0


def test_rendering_refuses_bytes_that_are_not_midi(renderer):
    with pytest.raises(MidiRenderError, match="not a Standard MIDI File"):
        renderer.render(b"RIFF....WAVEfmt " + bytes(64))


def test_rendered_pieces_come_back_in_order_from_a_worker_pool(renderer):
    chosen = [CHORALE, ESSEN_TUNE]
    rendered = list(iter_rendered_pieces(chosen, workers=2, audio_format="FLAC"))
    assert [piece.track_id for piece, _ in rendered] == [s.track_id for s in chosen]
    for piece, audio in rendered:
        assert decode_audio(audio).size / SAMPLE_RATE_HZ == pytest.approx(piece.duration_s, abs=2.0)
