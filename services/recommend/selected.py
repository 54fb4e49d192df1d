"""The defaults `make eval-recs` chose on its validation split, shipped with the service.

selected.json (written by tools/lastfm/eval_recs.py) holds the fitting hyperparameters,
the ensemble's member weights and R(x)'s default weights that scored best on a
validation split carved out of the Last.fm training data, never on the test split.
Without the file the code's own defaults stand.
"""

from __future__ import annotations

import functools
import json
import pathlib
from typing import Any

PATH = pathlib.Path(__file__).with_name("selected.json")


@functools.cache
def load() -> dict[str, Any]:
    """The selection, or {} when none was written (read once per process)."""
    if not PATH.exists():
        return {}
    selection: dict[str, Any] = json.loads(PATH.read_text())
    return selection
