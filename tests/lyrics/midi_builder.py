"""Small MIDI files for the lyrics tests, written with mido."""

from __future__ import annotations

import io
from collections.abc import Sequence

import mido

TICKS = 480


def midi_bytes(notes: list[tuple[float, float, int]], *, signature: tuple[int, int] | None = (4, 4),
               extra_signatures: Sequence[tuple[float, int, int]] = (), channel: int = 0,
               ticks: int = TICKS) -> bytes:
    """A type 0 file: notes as (start in quarters, length in quarters, pitch)."""
    events: list[tuple[int, int, mido.Message]] = []
    if signature is not None:
        events.append((0, 0, mido.MetaMessage("time_signature", numerator=signature[0],
                                              denominator=signature[1])))
    for at, numerator, denominator in extra_signatures:
        events.append((round(at * ticks), 0, mido.MetaMessage(
            "time_signature", numerator=numerator, denominator=denominator)))
    events.append((0, 0, mido.MetaMessage("set_tempo", tempo=500_000)))
    for start, length, pitch in notes:
        on, off = round(start * ticks), round((start + length) * ticks)
        events.append((on, 2, mido.Message("note_on", channel=channel, note=pitch, velocity=90)))
        events.append((off, 1, mido.Message("note_off", channel=channel, note=pitch)))
    track = mido.MidiTrack()
    now = 0
    for tick, _, message in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(message.copy(time=tick - now))
        now = tick
    midi = mido.MidiFile(type=0, ticks_per_beat=ticks)
    midi.tracks.append(track)
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def scale_phrase(start: float, n: int, length: float = 1.0, pitch: int = 60) -> list[
        tuple[float, float, int]]:
    """n notes of `length` quarters from `start`, stepping up the C major scale."""
    steps = [0, 2, 4, 5, 7, 9, 11, 12]
    return [(start + i * length, length, pitch + steps[i % 8]) for i in range(n)]
