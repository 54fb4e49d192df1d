"""The originality index: longest run of a piece's notes copied from the corpus."""

from __future__ import annotations

import numpy as np
import pytest

from services.generate.music.originality import OriginalityIndex, voices_of, write_index
from services.generate.music.tokens import Note

DURATIONS = (1, 2, 2, 4, 4, 4, 8, 6, 12, 16)


def random_sequence(rng, n_notes):
    pitches = 60 + np.cumsum(rng.integers(-5, 6, size=n_notes)) % 24
    durations = rng.choice(DURATIONS, size=n_notes)
    return [(int(p), int(d)) for p, d in zip(pitches, durations, strict=True)]


def as_voice(pairs, *, voice=0, transpose=0, start=0):
    notes = []
    for pitch, duration in pairs:
        notes.append(Note(pitch + transpose, start, start + duration, voice))
        start += duration
    return notes


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rng = np.random.default_rng(5)
    sequences = [(f"piece {i}", random_sequence(rng, int(rng.integers(40, 200))))
                 for i in range(300)]
    path = tmp_path_factory.mktemp("originality") / "originality.npz"
    write_index(path, sequences)
    return dict(sequences), OriginalityIndex.load(path)


def random_piece(seed, n_voices=3, n_notes=120):
    rng = np.random.default_rng(seed)
    # Pitches far apart and rare durations: unlike the corpus's melodic steps.
    return [as_voice([(int(rng.integers(30, 90)), int(rng.choice([3, 5, 7, 1])))
                      for _ in range(n_notes)], voice=v) for v in range(n_voices)]


def test_copied_run_inside_a_random_piece_is_found_with_its_length_and_source(corpus):
    sequences, index = corpus
    piece = random_piece(1)
    copied = sequences["piece 17"][30:55]
    piece[1] = piece[1][:40] + as_voice(copied, voice=1) + piece[1][40:]

    run = index.longest_copied_run(piece)

    assert run == (25, "piece 17")


def test_transposed_copy_counts_as_copied(corpus):
    sequences, index = corpus

    run = index.longest_copied_run([as_voice(sequences["piece 3"][:20], transpose=-7)])

    assert run.length_notes == 20
    assert run.source == "piece 3"


def test_a_changed_duration_breaks_the_run(corpus):
    sequences, index = corpus
    copied = sequences["piece 8"][:30]
    pitch, duration = copied[15]
    copied[15] = (pitch, duration + 100)

    run = index.longest_copied_run([as_voice(copied)])

    assert run.length_notes == 15
    assert run.source == "piece 8"


def test_random_notes_give_a_short_run_and_no_source(corpus):
    _, index = corpus

    run = index.longest_copied_run(random_piece(2))

    assert 1 <= run.length_notes < 5
    assert run.source == ""


def test_run_across_two_corpus_sequences_is_not_counted(tmp_path):
    rng = np.random.default_rng(9)
    first, second = random_sequence(rng, 30), random_sequence(rng, 30)
    write_index(tmp_path / "o.npz", [("first", first), ("second", second)])
    index = OriginalityIndex.load(tmp_path / "o.npz")

    # The last 6 notes of one sequence followed by the first 6 of the next.
    run = index.longest_copied_run([as_voice(first[-6:] + second[:6])])

    assert run.length_notes == 6


def test_run_across_two_voices_of_the_piece_is_not_counted(tmp_path):
    rng = np.random.default_rng(11)
    sequence = random_sequence(rng, 40)
    write_index(tmp_path / "o.npz", [("only", sequence)])
    index = OriginalityIndex.load(tmp_path / "o.npz")

    run = index.longest_copied_run([as_voice(sequence[:7], voice=0),
                                    as_voice(sequence[7:12], voice=1)])

    assert run == (7, "")


def test_long_copy_beyond_the_sorted_prefix_is_measured_in_full(corpus):
    sequences, index = corpus
    whole = sequences["piece 40"]

    run = index.longest_copied_run([as_voice(whole)])

    assert run == (len(whole), "piece 40")


def test_empty_piece_has_no_run(corpus):
    assert corpus[1].longest_copied_run([]) == (0, "")


def test_voices_of_groups_by_voice_in_start_order():
    notes = [Note(60, 4, 8, 1), Note(72, 0, 4, 0), Note(59, 0, 4, 1), Note(74, 4, 8, 0)]

    assert voices_of(notes) == [[Note(72, 0, 4, 0), Note(74, 4, 8, 0)],
                                [Note(59, 0, 4, 1), Note(60, 4, 8, 1)]]


def test_write_index_rejects_a_zero_duration(tmp_path):
    with pytest.raises(ValueError, match="durations"):
        write_index(tmp_path / "o.npz", [("bad", [(60, 0)])])
