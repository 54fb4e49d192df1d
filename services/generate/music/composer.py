"""The generation loop: preamble and primer in, notes out as they are decoded, then the piece.

Every token, sampled or forced, is one decode step through the model's batcher, so many
generations share backend calls. Forced tokens carry the controls the model is not asked
about: BAR where the time signature puts one, and in HARMONIZE the given melody as the top
pitch of each step.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cadenza.kit.errors import InvalidArgument
from services.generate import metrics
from services.generate.audio.model import AudioModel
from services.generate.audio.room import AudioRoom, ScoreRequest, check_timbres
from services.generate.inference.backend import ModelSpec
from services.generate.inference.batcher import Cache
from services.generate.inference.sampling import sample
from services.generate.music.audio import render
from services.generate.music.composition import (
    DEFAULT_TEMPO_BPM,
    Composition,
    Mode,
    check_bar,
    check_cost,
    length_field,
)
from services.generate.music.keys import estimate_key
from services.generate.music.midi_io import melody_of, read_primer, write_midi
from services.generate.music.originality import voices_of
from services.generate.music.tokens import Note, NoteTracker, Vocabulary, encode, steps_per_bar
from services.generate.registry import LoadedModel, ModelRegistry
from services.generate.slots import Slots

STYLE = "chorale"      # the corpus family with four-part writing
MAX_VOICES = 6         # pitches per step; more makes mud, and the corpus rarely has them
# Pitch classes a new note may take, relative to the tonic. The key token alone steers
# this model weakly (2 of 32 pieces came out in the asked key), so the sampler keeps
# struck notes in the scale; minor allows the natural, harmonic and melodic sixth/seventh.
SCALES = {False: (0, 2, 4, 5, 7, 9, 11), True: (0, 2, 3, 5, 7, 8, 9, 10, 11)}
PREAMBLE_TOKENS = 4    # BOS STYLE KEY TIME_SIGNATURE


@dataclass(frozen=True)
class Piece:
    """A finished generation: MIDI, audio and what the originality check found."""

    model: str
    version: str
    seed: int
    midi: bytes
    audio: bytes
    audio_format: str | None
    duration_s: float
    tokens_generated: int
    copied_run_notes: int
    closest_source: str
    notes: tuple[Note, ...]
    steps_per_quarter: int


@dataclass(frozen=True)
class NeuralRenderer:
    """The neural synthesiser a piece is played by (RENDERER_NEURAL), its timbres checked."""

    room: AudioRoom
    model: AudioModel

    async def render(self, request: Composition, midi: bytes, fmt: str, seed: int) -> bytes:
        """The piece's MIDI played by the synthesiser, as `fmt` file bytes."""
        rendering = await self.room.render_score(self.model, ScoreRequest(
            self.model.name, midi, request.timbre, request.voice_timbres, fmt, seed))
        return rendering.audio


class Composer:
    """Turns a composition request into notes and a finished piece, within the shared slots."""

    def __init__(self, registry: ModelRegistry, slots: Slots,
                 audio: AudioRoom | None = None) -> None:
        self.registry = registry
        self.slots = slots
        self.audio = audio

    async def compose(self, request: Composition) -> AsyncIterator[Note | Piece]:
        """Yields notes as they end, then exactly one Piece. Closing it frees the slot."""
        model = self.registry.get(request.model, "music")
        neural = self._neural(request)  # its model and timbres checked before any work
        with self.slots.take(model.spec.name, request.mode.value):
            async for item in _Run(model, request, neural).notes():
                yield item

    def _neural(self, request: Composition) -> NeuralRenderer | None:
        if request.renderer != "neural" or not request.audio_format:
            return None
        audio = self.registry.audio(request.audio_model)
        check_timbres(audio, request.timbre, request.voice_timbres)
        assert self.audio is not None, "a Composer for neural rendering needs an AudioRoom"
        return NeuralRenderer(self.audio, audio)


class _Run:
    """One generation's state."""

    def __init__(self, model: LoadedModel, request: Composition,
                 neural: NeuralRenderer | None = None) -> None:
        self.model = model
        self.neural = neural
        self.spec = model.spec
        self.vocab = model.spec.music
        self.request = request
        self.seed = request.seed if request.seed is not None else secrets.randbits(63)
        self.rng = np.random.default_rng(self.seed)
        spq = self.spec.steps_per_quarter
        primer = (read_primer(request.primer_midi, steps_per_quarter=spq,
                              max_steps=_max_primer_steps(self.spec))
                  if request.mode is not Mode.SCRATCH else None)
        self.primer = primer
        self.time_signature = (request.time_signature
                               or (primer.time_signature if primer else None) or "4/4")
        check_bar("time_signature" if request.time_signature else "primer_midi",
                  self.time_signature)
        self.bar_steps = steps_per_bar(self.time_signature, spq)
        self.tempo_bpm = (request.tempo_bpm or (primer.tempo_bpm if primer else None)
                          or DEFAULT_TEMPO_BPM)
        self.key = (request.key or (primer.key if primer else None)
                    or (primer_key(primer.notes) if primer else None)
                    or (int(self.rng.integers(12)), bool(self.rng.integers(2))))
        self.in_key = _scale_mask(self.vocab, *self.key)
        self.melody: dict[int, Note] = {}
        if request.mode is Mode.HARMONIZE and primer is not None:
            for note in melody_of(primer.notes):
                for step in range(note.start, note.end):
                    self.melody[step] = note
            self.n_new = primer.n_steps
        else:
            self.n_new = request.steps(self.tempo_bpm, spq, self.bar_steps)
        check_cost("primer_midi" if request.mode is Mode.HARMONIZE else length_field(request),
                   self.n_new / spq, self.tempo_bpm)
        # Each step takes at most MAX_VOICES pitch tokens, a STEP and a BAR: a run that
        # somehow stops advancing ends here rather than running on.
        self.token_budget = self.n_new * (MAX_VOICES + 2) + self.spec.max_positions

    def _prefix(self) -> list[int]:
        context = self.primer if self.request.mode is Mode.CONTINUE else None
        notes = context.notes if context else []
        n_steps = context.n_steps if context else 0
        tokens = encode(notes, self.vocab, n_steps=n_steps, steps_per_bar=self.bar_steps,
                        style=STYLE, key=self.key, time_signature=self.time_signature,
                        eos=False)
        if len(tokens) >= self.spec.max_positions // 2:
            raise InvalidArgument("primer_midi", f"the primer is {len(tokens)} tokens; model "
                                  f"{self.spec.name} reads at most "
                                  f"{self.spec.max_positions // 2} as context: shorten the primer")
        return tokens

    async def notes(self) -> AsyncIterator[Note | Piece]:
        started = time.perf_counter()
        batcher = self.model.batcher
        tokens = self._prefix()
        tracker = NoteTracker(self.vocab)
        for token in tokens:
            tracker.feed(token)
        context_notes = [] if self.primer is None or self.request.mode is Mode.HARMONIZE \
            else list(self.primer.notes)
        first_new_step = tracker.step
        written: list[Note] = []
        produced = 0
        first_event = True
        with batcher.session():
            logits, cache = await batcher.step(tokens, 0, batcher.empty_cache())
            position = len(tokens)
            while True:
                token = self._next(logits, tracker, first_new_step)
                tokens.append(token)
                produced += 1
                for note in tracker.feed(token):
                    if note.start >= first_new_step or note.end > first_new_step:
                        written.append(note)
                        if first_event:
                            metrics.FIRST_EVENT_SECONDS.labels(self.spec.name).observe(
                                time.perf_counter() - started)
                            first_event = False
                        yield note
                if tracker.step - first_new_step >= self.n_new or produced >= self.token_budget:
                    break
                if position + 1 >= self.spec.max_positions:
                    logits, cache, position = await self._slide(tokens)
                else:
                    logits, cache = await batcher.step([token], position, cache)
                    position += 1
        for note in tracker.finish():
            written.append(note)
            yield note
        metrics.TOKENS.labels(self.model.batcher.backend.name, self.spec.name).inc(produced)
        yield await self._piece(context_notes, written, produced)

    def _next(self, logits: npt.NDArray[np.float32], tracker: NoteTracker, first_new_step: int
              ) -> int:
        vocab = self.vocab
        step = tracker.step
        in_step = tracker.pending
        if not in_step:
            if vocab.conditioning and step % self.bar_steps == 0 and not tracker.bar_opened:
                return vocab.BAR
            melody = self.melody.get(step - first_new_step)
            if melody is not None:
                held = melody.start < step - first_new_step and melody.pitch in tracker.sounding
                return vocab.hold(melody.pitch) if held else vocab.on(melody.pitch)
        ceiling = in_step[-1] if in_step else vocab.top
        allowed = vocab.allowed(np.array(ceiling))
        allowed &= ~vocab.hold_table | np.isin(vocab.pitch_table, list(tracker.sounding))
        allowed &= self.in_key
        if vocab.conditioning:
            allowed[[vocab.BAR, vocab.EOS]] = False
        if len(in_step) >= MAX_VOICES:
            allowed[:] = False
            allowed[vocab.STEP] = True
        return sample(logits, allowed, self.request.sampling, self.rng)

    async def _slide(self, tokens: list[int]) -> tuple[npt.NDArray[np.float32], Cache, int]:
        """Past the context: keep the preamble and the latest half, from a bar line."""
        keep = self.spec.max_positions // 2
        tail = tokens[-keep:]
        if self.vocab.conditioning and self.vocab.BAR in tail:
            tail = tail[tail.index(self.vocab.BAR):]
        window = tokens[:PREAMBLE_TOKENS] + tail
        batcher = self.model.batcher
        logits, cache = await batcher.step(window, 0, batcher.empty_cache())
        return logits, cache, len(window)

    async def _piece(self, context: list[Note], written: list[Note], produced: int) -> Piece:
        spq = self.spec.steps_per_quarter
        given = sorted(self.melody.values()) if self.melody else []
        notes = sorted({*context, *written, *given}, key=lambda n: (n.start, -n.pitch))
        midi = write_midi(notes, steps_per_quarter=spq, tempo_bpm=self.tempo_bpm,
                          time_signature=self.time_signature, key=self.key,
                          programs=list(self.request.programs))
        fmt = self.request.audio_format
        if fmt and self.neural is not None:
            audio = await self.neural.render(self.request, midi, fmt, self.seed)
        else:
            audio = await asyncio.to_thread(render, midi, fmt) if fmt else b""
        run, source = 0, ""
        if self.model.originality is not None:
            own = [n for n in written if not (self.melody and n.voice == 0)]
            copied = await asyncio.to_thread(
                self.model.originality.longest_copied_run, voices_of(own))
            run, source = copied.length_notes, copied.source
        end_step = max((n.end for n in notes), default=0)
        duration_s = end_step / spq * 60.0 / self.tempo_bpm
        metrics.MUSIC_SECONDS.labels(self.spec.name).inc(duration_s)
        return Piece(self.spec.name, self.spec.version, self.seed, midi, audio, fmt,
                     duration_s, produced, run, source, tuple(notes), spq)


def _scale_mask(vocab: Vocabulary, tonic: int, minor: bool) -> npt.NDArray[np.bool_]:
    """Tokens allowed by the key: everything but ON tokens outside the scale."""
    pitch = vocab.pitch_table
    struck = (pitch >= 0) & ~vocab.hold_table
    degree = (pitch - tonic) % 12
    in_scale: npt.NDArray[np.bool_] = np.isin(degree, SCALES[minor])
    return ~struck | in_scale


def _max_primer_steps(spec: ModelSpec) -> int:
    # Every step costs at least one token, so a longer primer can never fit; the exact
    # check counts the primer's tokens (_Run._prefix).
    return spec.max_positions


def primer_key(notes: list[Note]) -> tuple[int, bool] | None:
    """The key the training corpus's rule gives the primer (None without notes)."""
    if not notes:
        return None
    return estimate_key(np.array([n.pitch for n in notes]),
                        np.array([n.end - n.start for n in notes]))
