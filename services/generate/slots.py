"""The generation slots every modality shares: at most `capacity` generations at once.

Music and text run on the same cores (or GPU), so one budget covers both; a request
beyond it is refused at once with RESOURCE_EXHAUSTED rather than queued behind minutes
of work.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from cadenza.kit.errors import ResourceExhausted
from services.generate import metrics


class Slots:
    """A counter of running generations with a hard cap."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.running = 0
        metrics.CAPACITY.set(capacity)

    @contextlib.contextmanager
    def take(self, model: str, mode: str) -> Iterator[None]:
        """Holds one slot for the body; counts the outcome (ok, error, cancelled)."""
        if self.running >= self.capacity:
            raise ResourceExhausted(f"all {self.capacity} generation slots are busy; retry "
                                    "with backoff")
        self.running += 1
        metrics.IN_FLIGHT.labels(model).inc()
        outcome = "cancelled"
        try:
            yield
            outcome = "ok"
        except Exception:
            outcome = "error"
            raise
        finally:
            self.running -= 1
            metrics.IN_FLIGHT.labels(model).dec()
            metrics.GENERATIONS.labels(model, mode, outcome).inc()
