"""A primer's key is estimated by the rule that labelled the training corpus."""

from __future__ import annotations

import numpy as np

from services.generate.music.composer import primer_key
from services.generate.music.tokens import Note
from training.music.corpus import estimate_key as corpus_key


def test_primer_and_corpus_keys_use_one_rule() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        starts = rng.integers(0, 64, size=12)
        notes = [Note(int(p), int(s), int(s + d)) for p, s, d in
                 zip(rng.integers(48, 80, size=12), starts, rng.integers(1, 8, size=12),
                     strict=True)]
        rows = np.array([(n.pitch, n.start, n.end, 0) for n in notes])
        assert primer_key(notes) == corpus_key(rows)


def test_a_primer_in_g_major_reads_as_g_major() -> None:
    scale = (67, 69, 71, 72, 74, 76, 78, 79, 74, 71, 67)
    notes = [Note(p, i * 4, i * 4 + 4) for i, p in enumerate(scale)]
    assert primer_key(notes) == (7, False)
    assert primer_key([]) is None
