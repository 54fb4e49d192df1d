"""What drives a cover for a generated piece: its MIDI notes standing in for audio features.

A piece from Generate has no audio analysis, so each audio feature the cover reads is
estimated from the notes, on the same scale as retrieval's measurement of a rendering:
key and mode from the duration-weighted pitch profile (the same estimate the composer
uses), chroma from the pitch-class durations, tempo from the file, onset rate from the
distinct note starts, brightness from the register (the duration-weighted mean pitch's
fourth harmonic, about where a sampled instrument's spectral centroid sits), loudness
and dynamic range from the velocities. Timbre (MFCCs) is unknown and left neutral.
"""

from __future__ import annotations

import numpy as np

from cadenza.kit.errors import InvalidArgument
from services.generate.image.factors import MusicFeatures
from services.generate.music.keys import estimate_key
from services.generate.music.midi_io import parse_midi
from services.generate.music.tokens import PITCH_NAMES

MAX_MIDI_BYTES = 2 * 1024 * 1024
# Velocity 127 plays about -8 dBFS RMS through the sampler, velocity 40 about -35.
_DB_AT_SILENCE = -43.0
_DB_PER_VELOCITY = 35.0 / 127.0
_HARMONIC = 4.0


def piece_features(data: bytes) -> MusicFeatures:
    """The features of a Standard MIDI file's pitched notes; InvalidArgument naming `midi`."""
    if not data:
        raise InvalidArgument("midi", "is empty; send a Standard MIDI file")
    if len(data) > MAX_MIDI_BYTES:
        raise InvalidArgument("midi", f"is over {MAX_MIDI_BYTES} bytes")
    midi, _ = parse_midi(data, "midi", "the piece")
    notes = [n for inst in midi.instruments if not inst.is_drum for n in inst.notes]
    if not notes:
        raise InvalidArgument("midi", "has no pitched notes to draw a cover from")
    pitches = np.asarray([n.pitch for n in notes], np.int64)
    durations = np.asarray([max(n.end - n.start, 1e-3) for n in notes], np.float64)
    velocities = np.asarray([n.velocity for n in notes], np.float64)
    tonic, minor = estimate_key(pitches, durations)
    chroma = np.bincount(pitches % 12, weights=durations, minlength=12)
    _, tempi = midi.get_tempo_changes()
    span = max(float(midi.get_end_time()) - min(n.start for n in notes), 1e-3)
    mean_pitch = float(np.average(pitches, weights=durations))
    low, high = np.percentile(velocities, [5, 95])
    return MusicFeatures(
        key=PITCH_NAMES[tonic], mode="minor" if minor else "major",
        chroma=tuple(float(c) for c in chroma / chroma.max()),
        spectral_centroid_hz=_HARMONIC * 440.0 * 2.0 ** ((mean_pitch - 69.0) / 12.0),
        mfcc_mean=(),
        tempo_bpm=float(np.median(tempi)) if len(tempi) else 120.0,
        onset_rate_hz=len({round(n.start, 3) for n in notes}) / span,
        rms_db_mean=_DB_AT_SILENCE + _DB_PER_VELOCITY * float(velocities.mean()),
        dynamic_range_db=_DB_PER_VELOCITY * float(high - low))
