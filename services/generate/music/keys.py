"""Key estimation for symbolic music: the rule that labelled the training corpus's keys.

Training (corpus.py) and serving (primers without a key signature) must call the same
function, or a primer's KEY token means something other than what the model learned.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

# Aarden-Essen key profiles (tonic first): music21's default key analysis. Measured by how
# often the estimated tonic is the final bass note, they beat Krumhansl-Kessler on the
# chorales (84% vs 74%) and the other composers (61% vs 48%), and tie on Essen (63%).
MAJOR_PROFILE = np.array([17.7661, 0.145624, 14.9265, 0.160186, 19.8049, 11.3587, 0.291248,
                          22.062, 0.145624, 8.15494, 0.232998, 4.95122])
MINOR_PROFILE = np.array([18.2648, 0.737619, 14.0499, 16.8599, 0.702494, 14.4362, 0.702494,
                          18.6161, 4.56621, 1.93186, 7.37619, 1.75623])


def estimate_key(pitches: npt.ArrayLike, durations: npt.ArrayLike) -> tuple[int, bool]:
    """(tonic pitch class, minor): Krumhansl-Schmuckler correlation of the duration-weighted
    pitch classes with the Aarden-Essen profiles."""
    histogram = np.zeros(12)
    np.add.at(histogram, np.asarray(pitches) % 12, np.asarray(durations))
    best = (-2.0, 0, False)
    for tonic in range(12):
        rotated = np.roll(histogram, -tonic)
        for minor, profile in ((False, MAJOR_PROFILE), (True, MINOR_PROFILE)):
            score = float(np.corrcoef(rotated, profile)[0, 1]) if rotated.std() > 0 else -1.0
            if score > best[0]:
                best = (score, tonic, minor)
    return best[1], best[2]
