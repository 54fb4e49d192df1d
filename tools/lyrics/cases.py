"""The eval's fixed cases: melodies from the music21 corpus, themes, rhyme schemes.

40 cases alternate Bach chorale soprano lines (every 18th chorale in Riemenschneider
order) and Ryan's Mammoth Collection fiddle tunes (every 53rd file in sorted order;
see `build_cases` for pieces that are skipped). Each
melody keeps its first 4-8 phrases (4 + case % 5, fewer if the tune has fewer), cut by
the service's own phrase splitter; the theme is THEMES[case % 20] and the scheme cycles
AABB, ABAB, ABCB, AAAA. The first 16 cases are the validation split, the other 24 the
test split.

Melodies are written as MIDI with mido at 480 ticks per quarter and 100 bpm. A pickup
bar is shifted so its notes end where the first full bar starts (music21's own MIDI
writer starts the pickup on a bar line, which would put every downbeat on a weak beat).
Ties are merged; grace notes are dropped; a tune stops at its first bar that is not a
full bar (after the pickup), usually a repeat's partial bar.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import mido
from music21 import corpus, meter, note, stream
from music21.corpus import chorales

from cadenza.kit.errors import InvalidArgument
from services.generate.text.lyrics.domain import SCHEMES
from services.generate.text.lyrics.phrases import PhraseLimits, read_melody

TICKS = 480
TEMPO_US = 600_000  # 100 bpm
N_CASES = 40
N_VALIDATION = 16
THEMES = (
    "a lighthouse keeper in winter", "first love at a summer fair", "leaving home for the city",
    "a storm coming over the hills", "an old dog waiting by the door", "the last train at night",
    "planting a garden in spring", "a sailor missing the shore", "friends around a fire",
    "a mother singing to her child", "the morning after a long fight", "walking alone in the rain",
    "a dance on a Saturday night", "the river that runs past our town", "growing old together",
    "a soldier coming home", "stars over the desert", "the smell of bread in the kitchen",
    "a broken radio and old songs", "the first snow of the year")


@dataclass(frozen=True)
class Case:
    """One eval case: a melody and what to write on it."""

    index: int
    source: str
    midi: bytes
    phrases: int
    theme: str
    scheme: str

    @property
    def split(self) -> str:
        """"validation" or "test"."""
        return "validation" if self.index < N_VALIDATION else "test"


def _pools() -> tuple[list[str], list[str]]:
    bach = [str(f) for f in chorales.Iterator(numberingSystem="riemenschneider",
                                              returnType="filename")]
    folk = sorted(str(p) for p in corpus.getPaths() if "ryansMammoth" in str(p))
    return bach, folk


def _melody_midi(source: str) -> bytes:
    """The top part of a corpus piece as MIDI, pickup aligned to the bar."""
    score = corpus.parse(source)
    part = score.parts[0] if isinstance(score, stream.Score) and score.parts else score
    part = part.stripTies()
    signature = part.recurse().getElementsByClass(meter.TimeSignature).first()
    numerator, denominator = ((signature.numerator, signature.denominator)
                              if signature is not None else (4, 4))
    bar = numerator * 4.0 / denominator
    measures = list(part.getElementsByClass(stream.Measure))
    shift = 0.0
    if measures and measures[0].paddingLeft > 0:
        shift = float(measures[0].paddingLeft)
    # Stop at the first bar that is not a full bar (a repeat's partial bar would move
    # every later bar line off the grid); the first 4-8 phrases come before it.
    end = float("inf")
    for measure in measures[1:]:
        if abs(float(measure.duration.quarterLength) - bar) > 1e-6:
            end = float(measure.offset)
            break
    events: list[tuple[int, int, mido.Message]] = []
    for element in part.flatten().notes:
        if element.duration.isGrace or element.quarterLength <= 0:
            continue
        if float(element.offset) >= end:
            break
        pitch = max(p.midi for p in element.pitches) if not isinstance(
            element, note.Note) else element.pitch.midi
        start = round((float(element.offset) + shift) * TICKS)
        end = start + round(float(element.quarterLength) * TICKS)
        events.append((start, 1, mido.Message("note_on", note=pitch, velocity=80)))
        events.append((end, 0, mido.Message("note_off", note=pitch, velocity=0)))
    return _write(events, numerator, denominator)


def _write(events: list[tuple[int, int, mido.Message]], numerator: int,
           denominator: int) -> bytes:
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=TEMPO_US),
                            mido.MetaMessage("time_signature", numerator=numerator,
                                             denominator=denominator)])
    now = 0
    for tick, _, message in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(message.copy(time=tick - now))
        now = tick
    midi = mido.MidiFile(type=0, ticks_per_beat=TICKS)
    midi.tracks.append(track)
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def _first_phrases(data: bytes, n: int) -> tuple[bytes, int]:
    """The melody cut after its n-th phrase (the splitter is causal, so it cuts the same)."""
    melody = read_melody(data, _generous())
    kept = melody.phrases[:n]
    signature = melody.time_signatures[0] if melody.time_signatures else None
    events: list[tuple[int, int, mido.Message]] = []
    for phrase in kept:
        for item in phrase:
            events.append((item.start_tick, 1, mido.Message("note_on", note=item.pitch,
                                                            velocity=item.velocity)))
            events.append((item.end_tick, 0, mido.Message("note_off", note=item.pitch,
                                                          velocity=0)))
    numerator, denominator = ((signature.numerator, signature.denominator)
                              if signature is not None else (4, 4))
    return _write(events, numerator, denominator), len(kept)


def _generous() -> PhraseLimits:
    return PhraseLimits(max_notes=100_000, max_phrases=100_000, max_phrase_notes=100_000)


def build_cases() -> list[Case]:
    """The 40 cases, always the same.

    Case 2k is the chorale at 18k, case 2k+1 the tune at 53k; a piece whose first phrases
    break the service's limits (a phrase of more than 24 notes) gives way to the next
    piece of its pool.
    """
    pools = _pools()
    cases: list[Case] = []
    for i in range(N_CASES):
        pool = pools[i % 2]
        at = (i // 2) * (18 if i % 2 == 0 else 53)
        while True:
            source = pool[at % len(pool)]
            midi, phrases = _first_phrases(_melody_midi(source), 4 + i % 5)
            try:
                read_melody(midi)
                break
            except InvalidArgument:
                at += 1
        cases.append(Case(i, source.split("corpus/")[-1], midi, phrases,
                          THEMES[i % len(THEMES)], SCHEMES[i % len(SCHEMES)]))
    return cases
