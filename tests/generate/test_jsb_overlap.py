"""The content match that keeps JSB valid/test chorales out of the served model's corpus."""

from __future__ import annotations

import json

import numpy as np
import pytest
from music21 import corpus

from training.music.corpus import extract, training_corpus
from training.music.jsb_overlap import (
    HELD_OUT,
    MATCH_THRESHOLD,
    JsbIndex,
    downsample,
    jsb_data_path,
    piece_frames,
)


@pytest.fixture(scope="module")
def index() -> JsbIndex:
    return JsbIndex()


@pytest.fixture(scope="module")
def sixteenth() -> dict:
    return json.loads((jsb_data_path().parent / "jsb-chorales-16th.json").read_text())


def notes_from_frames(frames16: list[list[float]], pad_steps: int, semitones: int) -> np.ndarray:
    """A JSB 16th-note piece as (pitch, start, end, part) notes: a pitch held over frames
    is one note, as music21 would give it."""
    rows: list[list[int]] = []
    open_notes: dict[int, int] = {}
    for step, frame in enumerate([*frames16, []]):
        here = {int(p) + semitones for p in frame}
        for pitch in [p for p in open_notes if p not in here]:
            rows.append([pitch, open_notes.pop(pitch) + pad_steps, step + pad_steps, 0])
        for pitch in here - open_notes.keys():
            open_notes[pitch] = step
    return np.array(sorted(rows, key=lambda r: r[1]), dtype=np.int32)


def test_every_valid_and_test_piece_rebuilt_from_the_16th_note_file_is_held_out(
        index, sixteenth) -> None:
    for split in HELD_OUT:
        for piece in sixteenth[split]:
            match = index.best(downsample(piece), HELD_OUT)
            assert match.split == split and match.score >= MATCH_THRESHOLD


@pytest.mark.parametrize(("semitones", "pad_steps"), [(5, 0), (-7, 4), (3, 12)])
def test_a_transposed_copy_with_a_padded_pickup_is_held_out(index, sixteenth, semitones,
                                                             pad_steps) -> None:
    for piece in sixteenth["test"][:10]:
        frames = piece_frames(notes_from_frames(piece, pad_steps, semitones), pad_steps)
        assert index.is_held_out(frames)


def test_jsb_train_pieces_are_not_held_out_except_the_known_duplicates(index) -> None:
    quarter = json.loads(jsb_data_path().read_text())
    held = [i for i, piece in enumerate(quarter["train"])
            if index.is_held_out([frozenset(f) for f in piece])]
    # The benchmark itself holds a few chorales twice, across splits.
    assert len(held) <= 5


def test_an_unrelated_folk_tune_does_not_match(index) -> None:
    [tune] = extract(corpus.parse("essenFolksong/han1", number=5), "essen/han1/5", "folk")
    frames = piece_frames(tune.notes, tune.pad_steps)
    assert not index.is_held_out(frames)
    assert index.best(frames) is None  # not one shared chord n-gram


def test_the_training_corpus_holds_no_valid_or_test_chorale(index) -> None:
    built = training_corpus(only=("bach-chorales",))
    assert len(built.held_out) >= 100  # music21 has most of the 153 valid/test chorales
    assert all(h["score"] >= MATCH_THRESHOLD and h["split"] in HELD_OUT for h in built.held_out)
    for piece in built.pieces:
        # Neither before nor after the voice cap does a kept piece match valid/test.
        assert not index.is_held_out([frozenset(f) for f in piece.match_frames]), piece.name
        frames = piece_frames(piece.notes, piece.pad_steps, part_names=piece.part_names)
        assert not index.is_held_out(frames), piece.name


def test_a_chorale_with_trumpets_and_timpani_is_matched_on_its_choir_before_the_voice_cap(
        index) -> None:
    # bwv137.5 is JSB test piece 3 with three trumpets and timpani added; capping it at six
    # pitches drops doubled choir notes, so the match uses the frames taken before the cap.
    [piece] = extract(corpus.parse("bach/bwv137.5"), "bach/bwv137.5", "chorale")
    assert len(piece.part_names) == 8
    match = index.best([frozenset(f) for f in piece.match_frames], HELD_OUT)
    assert (match.split, match.index) == ("test", 3) and match.score >= MATCH_THRESHOLD
