"""What a call used, reported by the service that did the work: the model and its units
(seconds of music or audio, generated tokens, images, recommendations) travel back in
trailing metadata, where the gateway (or Envoy's access log) meters them."""

from __future__ import annotations

from collections.abc import Iterable

import grpc.aio

MODEL_KEY = "cadenza-model"
UNITS_KEY = "cadenza-units"


def report_usage(context: grpc.aio.ServicerContext, model: str, units: float) -> None:  # type: ignore[type-arg]
    """Sets the call's model and units in its trailing metadata."""
    context.set_trailing_metadata(((MODEL_KEY, model), (UNITS_KEY, repr(float(units)))))


def read_usage(trailing: Iterable[tuple[str, str | bytes]]) -> tuple[str, float] | None:
    """The (model, units) a backend reported, or None if it reported none."""
    found = {key: value for key, value in trailing if key in (MODEL_KEY, UNITS_KEY)}
    if UNITS_KEY not in found:
        return None
    raw = found[UNITS_KEY]
    try:
        units = max(0.0, float(raw.decode() if isinstance(raw, bytes) else raw))
    except ValueError:
        return None
    model = found.get(MODEL_KEY, "")
    return (model.decode() if isinstance(model, bytes) else model), units
