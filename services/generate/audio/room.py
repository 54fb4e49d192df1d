"""The audio room: scores rendered and recordings resynthesised by a loaded synthesiser.

Network calls go through the model's backend; every CPU step (MIDI parsing, pYIN, the
oscillators, encoding) runs on this room's bounded executor, never on the event loop, in
pieces of at most a few seconds, so a cancelled call stops at the next piece.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from cadenza.kit.errors import InvalidArgument
from services.generate.audio import dsp
from services.generate.audio.controls import SAMPLE_RATE_HZ, loudness_db
from services.generate.audio.model import AudioModel, Floats, Instrument
from services.generate.audio.score import (
    Score,
    ScoreNote,
    fit_range,
    frame_count,
    line_controls,
    read_score,
    split_lines,
)
from services.generate.audio.timbre import Mix, TimbreChoice, default_instrument, resolve, solo
from services.generate.audio.transfer import (
    decode_recording,
    octave_shift,
    track_pitch,
    transfer_controls,
)
from services.generate.music.synth import encode_audio, normalise_peak

T = TypeVar("T")
Played = tuple[int, Mix, list[list[ScoreNote]]]   # a voice's index, timbre and lines
PEAK_DBFS = -1.0
MAX_VOICE_TIMBRES = 16


@dataclass(frozen=True)
class ScoreRequest:
    """A checked RenderScore (or a generated piece to render): timbre names unchecked."""

    model: str
    midi: bytes
    timbre: TimbreChoice | None
    voice_timbres: tuple[TimbreChoice, ...]
    audio_format: str          # "wav" | "flac"
    seed: int


@dataclass(frozen=True)
class VoicePlayed:
    """How one voice was played: 0 = highest voice."""

    voice: int
    weights: dict[str, float]
    notes: int


@dataclass(frozen=True)
class Rendering:
    """A rendered score."""

    audio: bytes
    audio_format: str
    duration_s: float
    model: str
    version: str
    seed: int
    voices: tuple[VoicePlayed, ...]
    sample_rate_hz: int = SAMPLE_RATE_HZ


@dataclass(frozen=True)
class TransferRequest:
    """A checked TransferTimbre: the recording is not decoded yet."""

    model: str
    audio: bytes
    container: str | None      # "wav", "flac", "ogg", "mp3"; None: detected
    timbre: TimbreChoice
    shift_semitones: float | None
    output_format: str
    seed: int


@dataclass(frozen=True)
class Transfer:
    """A recording played by the synthesiser."""

    audio: bytes
    audio_format: str
    duration_s: float
    model: str
    version: str
    seed: int
    weights: dict[str, float]
    shift_semitones: float
    voiced_fraction: float
    median_f0_hz: float
    sample_rate_hz: int = SAMPLE_RATE_HZ


def check_timbres(model: AudioModel, timbre: TimbreChoice | None,
                  voice_timbres: tuple[TimbreChoice, ...]) -> tuple[Mix | None, tuple[Mix, ...]]:
    """The caller's timbres resolved against the model's instruments (InvalidArgument)."""
    if len(voice_timbres) > MAX_VOICE_TIMBRES:
        raise InvalidArgument("voice_timbres", f"has {len(voice_timbres)} timbres; at most "
                                               f"{MAX_VOICE_TIMBRES}")
    every = resolve("timbre", timbre, model.instruments) if timbre is not None else None
    return every, tuple(resolve(f"voice_timbres[{i}]", choice, model.instruments)
                        for i, choice in enumerate(voice_timbres))


def line_seed(seed: int, line: int) -> int:
    """The noise seed of one line of a rendering: independent per line, fixed per seed."""
    return int(np.random.SeedSequence([seed, line]).generate_state(1, np.uint64)[0])


class AudioRoom:
    """Renders scores and transfers timbres; owns the executor its CPU work runs on."""

    def __init__(self, workers: int = 2) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="audio")

    async def _cpu(self, function: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, functools.partial(function, *args))

    async def render_score(self, model: AudioModel, request: ScoreRequest) -> Rendering:
        """The score's voices played by their timbres, mixed, at a -1 dBFS peak."""
        every, per_voice = check_timbres(model, request.timbre, request.voice_timbres)
        score = await self._cpu(read_score, request.midi)
        plays = await self._cpu(_arrange, score, every, per_voice, model.instruments)
        samples = await self._play(model, score, plays, request.seed)
        audio = await self._cpu(_encode, samples, request.audio_format)
        return Rendering(audio, request.audio_format, samples.size / SAMPLE_RATE_HZ,
                         model.name, model.version, request.seed,
                         tuple(VoicePlayed(index, mix.weights, sum(len(x) for x in lines))
                               for index, mix, lines in plays))

    async def _play(self, model: AudioModel, score: Score, plays: list[Played], seed: int
                    ) -> Floats:
        release = max(mix.envelope.release_db.size for _, mix, _ in plays)
        n_frames = frame_count(score.end_s, release)
        total = np.zeros(0, np.float32)
        index = 0
        for _, mix, lines in plays:
            for line in lines:
                f0, loudness = await self._cpu(line_controls, line, mix.envelope, n_frames)
                amplitudes, noise = await model.frames(f0, loudness, mix.embedding)
                total = await self._cpu(_add_voice, total, f0, amplitudes, noise,
                                        model.impulse_response, line_seed(seed, index))
                index += 1
        return await self._cpu(normalise_peak, total, PEAK_DBFS)

    async def transfer(self, model: AudioModel, request: TransferRequest) -> Transfer:
        """The recording's pitch and loudness played by the timbre."""
        mix = resolve("timbre", request.timbre, model.instruments)
        samples = await self._cpu(decode_recording, request.audio, request.container)
        pitch = await self._cpu(track_pitch, samples)
        shift = (request.shift_semitones if request.shift_semitones is not None
                 else octave_shift(pitch.median_f0_hz, mix.low, mix.high))
        f0, loudness = await self._cpu(transfer_controls, samples, pitch, shift)
        amplitudes, noise = await model.frames(f0, loudness, mix.embedding)
        played = await self._cpu(_add_voice, np.zeros(0, np.float32), f0, amplitudes, noise,
                                 model.impulse_response, line_seed(request.seed, 0))
        played = await self._cpu(normalise_peak, played, PEAK_DBFS)
        audio = await self._cpu(_encode, played, request.output_format)
        return Transfer(audio, request.output_format, played.size / SAMPLE_RATE_HZ,
                        model.name, model.version, request.seed, mix.weights, shift,
                        pitch.voiced_fraction, pitch.median_f0_hz)

    async def warm_up(self) -> None:
        """Compiles librosa's numba kernels (pYIN, 4-25 s cold) before the service is ready."""
        await self._cpu(_warm_librosa)

    async def close(self) -> None:
        """Stops the executor; work already running finishes on its own."""
        self._executor.shutdown(wait=False, cancel_futures=True)


def _arrange(score: Score, every: Mix | None, per_voice: tuple[Mix, ...],
             instruments: Mapping[str, Instrument]) -> list[Played]:
    """Each voice's timbre (its own, else the shared one, else its program's default) and
    its lines, moved into that timbre's range."""
    plays: list[Played] = []
    for voice in score.voices:
        if voice.index < len(per_voice):
            mix = per_voice[voice.index]
        else:
            mix = every or solo(default_instrument(voice.program, voice.median_pitch,
                                                   instruments))
        plays.append((voice.index, mix,
                      split_lines(fit_range(voice.notes, mix.low, mix.high))))
    return plays


def _add_voice(total: Floats, f0: Floats, amplitudes: Floats, noise: Floats,
               impulse_response: Floats, seed: int) -> Floats:
    """`total` plus one voice's samples (all voices share a length: same frames, same room)."""
    samples = dsp.synthesise(f0, amplitudes, noise, impulse_response, seed)
    if total.size == 0:
        return samples
    total += samples
    return total


def _encode(samples: Floats, audio_format: str) -> bytes:
    return encode_audio(samples, SAMPLE_RATE_HZ, audio_format=audio_format.upper())


def _warm_librosa() -> None:
    tone = (0.3 * np.sin(2 * np.pi * 220.0 * np.arange(SAMPLE_RATE_HZ // 2) / SAMPLE_RATE_HZ)
            ).astype(np.float32)
    track_pitch(tone)
    loudness_db(tone)
