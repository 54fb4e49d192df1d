"""The token representation: round trips, real rhythm, the grammar mask."""

from __future__ import annotations

import numpy as np
import pytest

from services.generate.music.tokens import (
    JSB_VOCABULARY,
    SERVED_VOCABULARY,
    Note,
    NoteTracker,
    Vocabulary,
    decode,
    encode,
    encode_frames,
    steps_per_bar,
)

V = SERVED_VOCABULARY


def test_round_trip_keeps_every_note_and_voice() -> None:
    notes = [Note(72, 0, 4, 0), Note(67, 0, 2, 1), Note(67, 2, 4, 1), Note(48, 0, 8, 2),
             Note(74, 4, 6, 0), Note(71, 6, 8, 0)]
    tokens = encode(notes, V, n_steps=8, steps_per_bar=4, style="chorale", key=(7, False),
                    time_signature="2/4")
    decoded = decode(tokens, V)
    assert sorted((n.pitch, n.start, n.end) for n in decoded) == sorted(
        (n.pitch, n.start, n.end) for n in notes)
    assert {(n.pitch, n.start): n.voice for n in decoded}[(48, 0)] == 2


def test_held_note_differs_from_restruck_note() -> None:
    held = encode([Note(60, 0, 2)], V, n_steps=2)
    restruck = encode([Note(60, 0, 1), Note(60, 1, 2)], V, n_steps=2)
    assert held != restruck
    assert V.hold(60) in held and V.hold(60) not in restruck
    assert [(n.start, n.end) for n in decode(restruck, V)] == [(0, 1), (1, 2)]


def test_preamble_and_bars() -> None:
    tokens = encode([Note(60, 0, 12)], V, n_steps=12, steps_per_bar=6, style="folk",
                    key=(9, True), time_signature="6/8")
    assert tokens[:4] == [V.BOS, V.style("folk"), V.key(9, True), V.time_signature("6/8")]
    assert tokens.count(V.BAR) == 2 and tokens[-1] == V.EOS


def test_pitches_in_a_step_are_highest_first_and_obey_the_ceiling() -> None:
    tokens = np.array(encode([Note(p, 0, 1) for p in (60, 64, 67, 72)], V, n_steps=1))
    allowed = V.allowed(V.ceilings(tokens[:-1]))
    assert all(allowed[i, tokens[i + 1]] for i in range(len(tokens) - 1)
               if V.scored(tokens[i + 1:i + 2])[0])
    after_67 = V.allowed(np.array(67))
    assert not after_67[V.on(72)] and not after_67[V.on(67)] and after_67[V.on(64)]
    assert after_67[V.STEP] and not after_67[V.BAR] and not after_67[V.EOS]


def test_jsb_vocabulary_has_no_holds_bars_or_end_in_its_grammar() -> None:
    vocab = JSB_VOCABULARY
    assert vocab.BAR == -1 and not vocab.hold_table.any()
    start = vocab.allowed(np.array(vocab.top))
    assert start.sum() == 88 + 1 and not start[vocab.EOS]
    assert encode_frames([[60, 64, 67], []], vocab) == [
        vocab.BOS, vocab.on(67), vocab.on(64), vocab.on(60), vocab.STEP, vocab.STEP]


def test_tracker_reports_notes_when_they_end() -> None:
    tracker = NoteTracker(V)
    assert tracker.feed(V.on(60)) == []
    assert tracker.feed(V.STEP) == []
    assert tracker.feed(V.hold(60)) == [] and tracker.feed(V.STEP) == []
    assert tracker.sounding == {60}
    assert tracker.feed(V.STEP) == [Note(60, 0, 2, 0)]


def test_vocabulary_json_round_trip_and_size_check() -> None:
    assert Vocabulary.from_json(V.to_json()) == V
    with pytest.raises(ValueError):
        Vocabulary.from_json({**V.to_json(), "size": 5})


@pytest.mark.parametrize(("signature", "steps"), [("4/4", 16), ("3/4", 12), ("6/8", 12),
                                                   ("2/2", 16), ("5/4", 20)])
def test_steps_per_bar(signature: str, steps: int) -> None:
    assert steps_per_bar(signature) == steps


def test_steps_per_bar_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        steps_per_bar("four")
    with pytest.raises(ValueError):
        steps_per_bar("3/5")
