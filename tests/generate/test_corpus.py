"""The music21 corpus on the 16th-note grid: ties, pickups, chords, voices, keys, the cache."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from music21 import chord, corpus, meter, note, stream, tie

from services.generate.music.tokens import SERVED_VOCABULARY, Note, decode, encode
from training.music.corpus import (
    CORPUS_VERSION,
    Piece,
    Source,
    cap_voices,
    estimate_key,
    extract,
    load_source,
    quantise,
    transpose,
)
from training.music.poly import Transposer, piece_sequences, voice_sequences


def small_score() -> stream.Score:
    """3/4 with a one-quarter pickup, a tie over the bar line, a chord, a grace note, a drum."""
    soprano = stream.Part()
    soprano.partName = "Soprano"
    pickup = stream.Measure(number=0)
    pickup.append(meter.TimeSignature("3/4"))
    pickup.append(note.Note("G4", quarterLength=1))
    bar1 = stream.Measure(number=1)
    tied = note.Note("D5", quarterLength=2)
    tied.tie = tie.Tie("start")
    bar1.append([note.Note("C5", quarterLength=1), tied])
    bar2 = stream.Measure(number=2)
    end = note.Note("D5", quarterLength=1)
    end.tie = tie.Tie("stop")
    grace = note.Note("F5").getGrace()
    bar2.append([end, grace, note.Note("E5", quarterLength=2)])
    soprano.append([pickup, bar1, bar2])

    bass = stream.Part()
    bass.partName = "Bass"
    for number, length in ((0, 1), (1, 3), (2, 3)):
        measure = stream.Measure(number=number)
        if number == 0:
            measure.append(meter.TimeSignature("3/4"))
        measure.append(chord.Chord(["C3", "G3"], quarterLength=length))
        bass.append(measure)

    drums = stream.Part()
    drums.partName = "Drums"
    measure = stream.Measure(number=0)
    measure.append(meter.TimeSignature("3/4"))
    measure.append(note.Unpitched(quarterLength=1))
    drums.append(measure)
    return stream.Score([soprano, bass, drums])


def test_tied_notes_become_one_held_note_and_the_pickup_is_padded_to_the_bar() -> None:
    [piece] = extract(small_score(), "test/small", "classical")
    assert piece.time_signature == "3/4" and piece.steps_per_bar == 12
    assert piece.pad_steps == 8  # 3/4 bar (12 steps) minus a one-quarter pickup (4)
    soprano = [tuple(row[:3]) for row in piece.notes if row[3] == 0]
    # G4 pickup, C5, D5 tied over the bar line = one note of 3 quarters, E5; no grace F5.
    assert soprano == [(67, 8, 12), (72, 12, 16), (74, 16, 28), (76, 28, 36)]


def test_chords_give_one_note_per_pitch_and_percussion_is_dropped() -> None:
    [piece] = extract(small_score(), "test/small", "classical")
    bass = sorted(tuple(row[:3]) for row in piece.notes if row[3] == 1)
    assert bass == [(48, 8, 12), (48, 12, 24), (48, 24, 36), (55, 8, 12), (55, 12, 24),
                    (55, 24, 36)]
    assert set(piece.notes[:, 3]) == {0, 1}


def metre_change_score() -> stream.Score:
    """Two bars of 3/4, one bar of 2/4, then two bars of 6/8."""
    part = stream.Part()
    for number, signature in enumerate(["3/4", None, "2/4", "6/8", None], start=1):
        measure = stream.Measure(number=number)
        if signature:
            measure.append(meter.TimeSignature(signature))
        length = {"3/4": 3, "2/4": 2, "6/8": 3}[signature or ("3/4" if number == 2 else "6/8")]
        measure.append([note.Note(60 + number, quarterLength=0.5) for _ in range(2 * length)])
        part.append(measure)
    return stream.Score([part])


def test_a_metre_change_starts_a_new_piece_and_a_one_bar_stretch_is_dropped() -> None:
    pieces = extract(metre_change_score(), "test/metres", "folk")
    assert [(p.name, p.time_signature, p.steps_per_bar) for p in pieces] == [
        ("test/metres", "3/4", 12), ("test/metres#2", "6/8", 12)]
    assert pieces[1].pad_steps == 0 and pieces[1].notes[0, 1] == 0
    assert {int(p) for p in pieces[1].notes[:, 0]} == {64, 65}  # bars 4 and 5 only


def test_quantise_rounds_to_sixteenths_and_never_shrinks_below_one_step() -> None:
    assert quantise(1.0, 0.5) == (4, 6)
    assert quantise(1 / 3, 1 / 3) == (1, 3)  # triplet eighths land on the nearest 16ths
    assert quantise(2.0, 0.1) == (8, 9)      # a very short note keeps one step


def test_cap_voices_drops_the_lowest_doublings_and_keeps_bass_and_top() -> None:
    pitches = [36, 48, 55, 60, 64, 67, 72, 76]
    notes = np.array([[p, 0, 4, i] for i, p in enumerate(pitches)], dtype=np.int32)
    kept = cap_voices(notes, max_voices=6)
    assert sorted(kept[:, 0]) == [36, 60, 64, 67, 72, 76]


def test_cap_voices_leaves_four_voices_alone() -> None:
    notes = np.array([[p, 0, 4, i] for i, p in enumerate([48, 60, 64, 67])], dtype=np.int32)
    assert len(cap_voices(notes, max_voices=6)) == 4


def test_estimate_key_finds_major_and_minor() -> None:
    c_major = [60, 62, 64, 65, 67, 69, 71, 72, 67, 64, 60]
    a_minor = [57, 59, 60, 62, 64, 65, 68, 69, 64, 60, 57]
    def as_notes(pitches: list[int]) -> np.ndarray:
        return np.array([[p, 4 * i, 4 * i + 4, 0] for i, p in enumerate(pitches)])

    assert estimate_key(as_notes(c_major)) == (0, False)
    assert estimate_key(as_notes(a_minor)) == (9, True)


def test_a_real_chorale_has_its_key_metre_pickup_and_at_most_six_voices() -> None:
    [piece] = extract(corpus.parse("bach/bwv269"), "bach/bwv269", "chorale")
    assert (piece.tonic, piece.minor) == (7, False)  # G major
    assert piece.time_signature == "3/4" and piece.pad_steps == 8
    assert piece.part_names == ["Soprano", "Alto", "Tenor", "Bass"]
    tokens = encode([Note(*map(int, row[:3])) for row in piece.notes], SERVED_VOCABULARY,
                    n_steps=piece.n_steps, steps_per_bar=piece.steps_per_bar, style="chorale",
                    key=(piece.tonic, piece.minor), time_signature=piece.token_time_signature)
    decoded = decode(tokens, SERVED_VOCABULARY)
    # Every note survives the tokens (unisons between voices merge into one).
    expected = {tuple(map(int, row[:3])) for row in piece.notes}
    assert {(n.pitch, n.start, n.end) for n in decoded} == expected
    assert tokens.count(SERVED_VOCABULARY.BAR) == -(-piece.n_steps // piece.steps_per_bar)


def test_transpose_moves_notes_and_key_and_refuses_to_leave_the_piano() -> None:
    piece = Piece("t", "folk", "4/4", 16, 10, False, 0, 8,
                  np.array([[100, 0, 4, 0], [60, 4, 8, 0]], dtype=np.int32))
    up = transpose(piece, 5)
    assert up is not None and up.tonic == 3 and list(up.notes[:, 0]) == [105, 65]
    assert transpose(piece, 9) is None  # 109 is above the piano
    assert list(piece.notes[:, 0]) == [100, 60]  # the original is untouched


def test_a_source_is_parsed_once_then_read_from_the_cache(tmp_path) -> None:
    source = Source("one-chorale", "chorale", [str(corpus.getWork("bach/bwv269"))])
    pieces, stats = load_source(source, tmp_path)
    assert [p.name for p in pieces] == ["bach/bwv269"] and stats["pieces"] == 1
    cache = tmp_path / f"v{CORPUS_VERSION}" / "one-chorale.json"
    data = json.loads(cache.read_text())
    data["pieces"][0]["name"] = "from the cache"
    cache.write_text(json.dumps(data))
    again, _ = load_source(source, tmp_path)
    assert again[0].name == "from the cache"
    np.testing.assert_array_equal(again[0].notes, pieces[0].notes)


def test_a_file_music21_cannot_read_is_counted_and_skipped(tmp_path) -> None:
    broken = tmp_path / "broken.mxl"
    broken.write_bytes(b"not a zip file")
    source = Source("mixed", "chorale", [str(broken), str(corpus.getWork("bach/bwv269"))])
    pieces, stats = load_source(source, tmp_path)
    assert len(pieces) == 1 and len(stats["failed"]) == 1


@pytest.mark.parametrize("semitones", [-5, 6])
def test_transposing_a_chorale_keeps_its_rhythm(semitones) -> None:
    [piece] = extract(corpus.parse("bach/bwv269"), "bach/bwv269", "chorale")
    moved = transpose(piece, semitones)
    np.testing.assert_array_equal(moved.notes[:, 1:], piece.notes[:, 1:])
    assert moved.tonic == (7 + semitones) % 12


def test_long_pieces_are_cut_at_bar_lines_and_every_part_has_its_preamble() -> None:
    [piece] = extract(corpus.parse("bach/bwv1.6"), "bach/bwv1.6", "chorale")
    vocab = SERVED_VOCABULARY
    parts = piece_sequences(piece, vocab, max_tokens=400)
    assert len(parts) > 2 and all(len(p) <= 400 for p in parts)
    preamble = parts[0][:4]
    for index, part in enumerate(parts):
        assert part[:4] == preamble and part[4] == vocab.BAR
        assert (part[-1] == vocab.EOS) == (index == len(parts) - 1)
    # The parts hold every onset of the piece, bar after bar.
    onsets, offset = set(), 0
    for part in parts:
        decoded = decode(part, vocab)
        onsets |= {(n.pitch, n.start + offset) for n in decoded}
        offset += part.count(vocab.STEP)
    assert {(int(p), int(s)) for p, s, _, _ in piece.notes} <= onsets


def test_the_transposer_moves_pitches_and_key_and_stays_on_the_piano() -> None:
    vocab = SERVED_VOCABULARY
    high = Piece("t", "folk", "2/4", 8, 0, False, 0, 8,
                 np.array([[104, 0, 4, 0], [60, 4, 8, 0]], dtype=np.int32))
    tokens = piece_sequences(high, vocab, max_tokens=1025)[0]
    transposer = Transposer(vocab)
    rng = random.Random(0)
    shifts = set()
    for _ in range(200):
        moved = decode(transposer(tokens, rng), vocab)
        shift = moved[0].pitch - 104
        assert [n.pitch for n in moved] == [104 + shift, 60 + shift]
        shifts.add(shift)
    assert shifts == {-5, -4, -3, -2, -1, 0, 1, 2, 3, 4}  # 104 + 5 would leave the piano
    moved = transposer(tokens, random.Random(1))
    tonic = (moved[2] - vocab.key(0, False)) % 12
    assert tonic == (decode(moved, vocab)[0].pitch - 104) % 12


def test_voice_sequences_follow_each_part_and_keep_the_top_of_a_chord() -> None:
    piece = Piece("p", "classical", "4/4", 16, 0, False, 0, 12,
                  np.array([[72, 0, 4, 0], [67, 0, 4, 0], [74, 4, 12, 0], [48, 0, 12, 1]],
                           dtype=np.int32), part_names=["Piano RH", ""])
    assert voice_sequences([piece]) == [("p Piano RH", [(72, 4), (74, 8)]),
                                        ("p part 2", [(48, 12)])]
