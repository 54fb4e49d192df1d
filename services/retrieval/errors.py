"""Errors raised when uploaded audio cannot be analysed; messages tell the caller what to fix."""

from __future__ import annotations


class AudioError(ValueError):
    """Base of every audio problem the caller can fix by sending different audio."""


class AudioDecodeError(AudioError):
    """The bytes are not audio in a format we read."""


class AudioEmptyError(AudioError):
    """The file decodes but holds no samples."""


class AudioTooShortError(AudioError):
    """The clip is shorter than the analysis needs."""


class AudioSilentError(AudioError):
    """The clip holds only silence (or near-silence), so every feature would be noise."""
