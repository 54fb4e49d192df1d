"""Loudness for a score (notes, no audio), as the generate service computes it.

The rule lives in services/generate/audio/score.py (`loudness_from_envelope`: the
instrument's fitted attack curve shifted by velocity, then its release, each cut where
the next note starts); this adapts the eval's note rows and model.json's envelope to it,
so the score variant of the eval scores exactly what serving renders.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from services.generate.audio.model import Envelope
from services.generate.audio.score import ScoreNote, loudness_from_envelope

Floats = npt.NDArray[np.float32]
SOURCE = "services.generate.audio.score.loudness_from_envelope"


def score_loudness(notes: Floats, envelope: dict[str, Any], n_frames: int) -> Floats:
    """Loudness per frame for (pitch, start_s, end_s, velocity) rows of one monophonic line."""
    line = [ScoreNote(int(p), float(s), float(e), int(v))
            for p, s, e, v in sorted(notes.tolist(), key=lambda n: n[1])]
    fitted = Envelope(attack_db=np.asarray(envelope["attack_db"], np.float32),
                      release_db=np.asarray(envelope["release_db"], np.float32),
                      db_per_velocity=float(envelope["db_per_velocity"]),
                      reference_velocity=float(envelope["reference_velocity"]))
    return loudness_from_envelope(line, fitted, n_frames)
