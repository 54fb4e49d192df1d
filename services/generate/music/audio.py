"""Audio for generated pieces: MIDI rendered by FluidSynth with a General MIDI soundfont."""

from __future__ import annotations

import threading

from cadenza.kit.errors import CadenzaError, FailedPrecondition
from services.generate.music.synth import MidiRenderer, MidiRenderError, SynthUnavailableError

FORMATS = ("wav", "flac")
# Longer renders are refused by the request checks long before this; a safety stop.
MAX_AUDIO_S = 1200.0

_renderer: MidiRenderer | None = None
_renderer_lock = threading.Lock()


def renderer() -> MidiRenderer:
    """The process's one synthesizer, loaded on first use (call at start-up to fail fast).

    Raises FailedPrecondition, naming the package to install, when libfluidsynth or a
    soundfont is missing.
    """
    global _renderer
    with _renderer_lock:
        if _renderer is None:
            try:
                _renderer = MidiRenderer()
            except SynthUnavailableError as e:
                raise FailedPrecondition(f"audio rendering is unavailable: {e}") from e
        return _renderer


def render(midi: bytes, fmt: str) -> bytes:
    """16-bit mono WAV or FLAC bytes (22050 Hz) of a Standard MIDI File.

    Blocking and CPU-bound (about 0.3 s per minute of music): call it from an executor.
    The renderer serialises calls; its output is normalised to a -1 dBFS peak.
    """
    if fmt.lower() not in FORMATS:
        raise ValueError(f"audio format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    synth = renderer()
    try:
        return synth.render_to_bytes(midi, audio_format=fmt.upper(), max_duration_s=MAX_AUDIO_S)
    except MidiRenderError as e:  # our own MIDI: a bug, not the caller's fault
        raise CadenzaError(f"audio rendering failed: {e}") from e
