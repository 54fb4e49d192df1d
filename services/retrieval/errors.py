"""Errors raised when uploaded audio cannot be analysed; messages tell the caller what to fix."""

from __future__ import annotations

# Reading uploads is shared with the generate service (cadenza.kit.audio): so are the
# errors for bytes that are not audio. The ones below are retrieval's own limits.
from cadenza.kit.audio import AudioDecodeError, AudioEmptyError, AudioError

__all__ = ["AudioDecodeError", "AudioEmptyError", "AudioError", "AudioSilentError",
           "AudioTooShortError"]


class AudioTooShortError(AudioError):
    """The clip is shorter than the analysis needs."""


class AudioSilentError(AudioError):
    """The clip holds only silence (or near-silence), so every feature would be noise."""
