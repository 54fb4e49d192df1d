"""Audio rendering of generated MIDI with FluidSynth."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile

from cadenza.kit.errors import CadenzaError, FailedPrecondition
from services.generate.music import audio
from services.generate.music.midi_io import write_midi
from services.generate.music.tokens import Note


@pytest.fixture(scope="module")
def two_bars():
    try:
        audio.renderer()
    except FailedPrecondition as e:
        pytest.skip(str(e))
    # Two bars of 4/4 at 120 bpm: 4 seconds of chords.
    notes = [Note(pitch, bar * 16, bar * 16 + 16, voice)
             for bar in range(2) for voice, pitch in enumerate((72, 67, 60))]
    return write_midi(notes, steps_per_quarter=4, tempo_bpm=120.0, time_signature="4/4",
                      programs=[0])


@pytest.mark.parametrize("fmt", ["wav", "flac", "FLAC"])
def test_render_gives_audible_audio_of_the_pieces_length(two_bars, fmt):
    samples, rate = soundfile.read(io.BytesIO(audio.render(two_bars, fmt)))

    assert rate == 22050
    assert 4.0 <= len(samples) / rate <= 5.5  # plus the release tail
    assert np.sqrt(np.mean(samples[: 4 * rate] ** 2)) > 0.01


def test_wav_and_flac_are_those_containers(two_bars):
    assert audio.render(two_bars, "wav")[:4] == b"RIFF"
    assert audio.render(two_bars, "flac")[:4] == b"fLaC"


def test_unknown_format_is_refused(two_bars):
    with pytest.raises(ValueError, match="wav, flac"):
        audio.render(two_bars, "mp3")


def test_bytes_that_are_not_midi_fail_as_a_domain_error(two_bars):
    with pytest.raises(CadenzaError, match="audio rendering failed"):
        audio.render(b"MThd broken", "wav")
