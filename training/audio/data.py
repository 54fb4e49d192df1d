"""Training audio we render ourselves: chorale lines played through FluidSynth (FluidR3 GM).

Each line is one voice of a Bach chorale from the music21 corpus, moved by octaves into an
instrument's range, at a random tempo and dynamic, rendered at 16 kHz. Its controls are f0
from the notes (the MIDI is the truth) and A-weighted loudness from the rendered audio.
Pieces are split into train/validation/test by name before anything is rendered.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pretty_midi

from services.generate.audio.controls import (
    HOP,
    SAMPLE_RATE_HZ,
    f0_from_notes,
    frame_count,
    loudness_db,
)
from services.generate.music.synth import MidiRenderer
from services.generate.music.tokens import STEPS_PER_QUARTER
from training.audio.instruments import INSTRUMENTS, Instrument
from training.music.corpus import Piece, load_corpus

logger = logging.getLogger(__name__)

DATA_VERSION = 1
CACHE_DIR = Path(".cache/audio-data")
# FluidR3 GM (Debian fluid-soundfont-gm) is MIT-licensed: weights trained on its renders
# can ship. TimGM6mb (GPL-2) must never be used here.
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
SPLIT_SEED = 0
TRAIN_LINE_S = 40.0      # a training line is cut here; evaluation lines shorter still
EVAL_LINE_S = 12.0
TRAIN_INSTRUMENTS_PER_PIECE = 2


@dataclass
class Line:
    """One rendered monophonic line with its controls at frame rate."""

    piece: str
    instrument: int
    audio: npt.NDArray[np.float32]        # [T * HOP]
    f0_hz: npt.NDArray[np.float32]        # [T]
    loudness_db: npt.NDArray[np.float32]  # [T]
    notes: npt.NDArray[np.float32]        # [N, 4]: pitch, start_s, end_s, velocity


def split_pieces(pieces: list[Piece]) -> dict[str, list[Piece]]:
    """Pieces by split, 80/10/10 by name, the same for every run (seeded permutation)."""
    names = sorted({p.name for p in pieces})
    order = np.random.default_rng(SPLIT_SEED).permutation(len(names))
    cut_val, cut_test = int(0.8 * len(names)), int(0.9 * len(names))
    split_of = {names[i]: ("train" if r < cut_val else "validation" if r < cut_test else "test")
                for r, i in enumerate(order)}
    out: dict[str, list[Piece]] = {"train": [], "validation": [], "test": []}
    for piece in sorted(pieces, key=lambda p: p.name):
        out[split_of[piece.name]].append(piece)
    return out


def voice_for(piece: Piece, instrument: Instrument) -> tuple[np.ndarray, int] | None:
    """The part that fits the instrument best after an octave shift: (notes, shift) or None."""
    best: tuple[int, np.ndarray, int] | None = None
    for part in np.unique(piece.notes[:, 3]):
        notes = piece.notes[piece.notes[:, 3] == part]
        centre = (instrument.low + instrument.high) / 2
        shift = 12 * int(np.round((centre - np.median(notes[:, 0])) / 12))
        pitches = notes[:, 0] + shift
        if pitches.min() < instrument.low or pitches.max() > instrument.high:
            continue
        overlap = int(np.sum(notes[1:, 1] < notes[:-1, 2]))
        if best is None or overlap < best[0]:
            best = (overlap, notes, shift)
    return None if best is None else (best[1], best[2])


def line_midi(notes: np.ndarray, shift: int, instrument: Instrument, tempo_bpm: float,
              velocity: int, rng: np.random.Generator, max_s: float) -> tuple[bytes, np.ndarray]:
    """A one-instrument MIDI file of the notes, and the notes as (pitch, start_s, end_s, vel)."""
    step_s = 60.0 / tempo_bpm / STEPS_PER_QUARTER
    midi = pretty_midi.PrettyMIDI(initial_tempo=tempo_bpm)
    track = pretty_midi.Instrument(program=instrument.program)
    first = int(notes[:, 1].min())
    rows: list[list[float]] = []
    for pitch, start, end, _ in sorted(notes.tolist(), key=lambda n: n[1]):
        start_s, end_s = (start - first) * step_s + 0.1, (end - first) * step_s + 0.1
        if start_s >= max_s:
            break
        # A monophonic line: a note ends where the next begins.
        if rows and rows[-1][2] > start_s:
            rows[-1][2] = start_s
        vel = int(np.clip(velocity + rng.integers(-8, 9), 30, 127))
        rows.append([pitch + shift, start_s, min(end_s, max_s), vel])
    for pitch, start_s, end_s, loudness in rows:
        track.notes.append(pretty_midi.Note(velocity=int(loudness), pitch=int(pitch),
                                            start=start_s, end=end_s))
    midi.instruments.append(track)
    buffer = io.BytesIO()
    midi.write(buffer)
    return buffer.getvalue(), np.asarray(rows, np.float32)


def render_line(renderer: MidiRenderer, piece: Piece, index: int, rng: np.random.Generator,
                max_s: float) -> Line | None:
    """One piece's best-fitting voice played by INSTRUMENTS[index]; None when none fits."""
    instrument = INSTRUMENTS[index]
    found = voice_for(piece, instrument)
    if found is None:
        return None
    tempo = float(rng.uniform(60.0, 112.0))
    velocity = int(rng.integers(50, 116))
    midi, notes = line_midi(found[0], found[1], instrument, tempo, velocity, rng, max_s)
    audio = renderer.render(midi, max_duration_s=max_s + 1.0)
    n_frames = frame_count(audio.size)
    audio = audio[: n_frames * HOP].astype(np.float32)
    f0 = f0_from_notes(((p, s, e) for p, s, e, _ in notes.tolist()), n_frames)
    return Line(piece.name, index, audio, f0, loudness_db(audio), notes)


def render_split(split: str, pieces: list[Piece], seed: int) -> list[Line]:
    """Lines of a split: training pieces with a few instruments each, held-out ones with all."""
    rng = np.random.default_rng(seed)
    renderer = MidiRenderer(SOUNDFONT, sample_rate_hz=SAMPLE_RATE_HZ)
    lines: list[Line] = []
    try:
        for number, piece in enumerate(pieces):
            if split == "train":
                chosen = [(number * TRAIN_INSTRUMENTS_PER_PIECE + k) % len(INSTRUMENTS)
                          for k in range(TRAIN_INSTRUMENTS_PER_PIECE)]
                max_s = TRAIN_LINE_S
            else:
                chosen, max_s = list(range(len(INSTRUMENTS))), EVAL_LINE_S
            for index in chosen:
                line = render_line(renderer, piece, index, rng, max_s)
                if line is not None:
                    lines.append(line)
    finally:
        renderer.close()
    return lines


def save(lines: list[Line], path: Path) -> None:
    """Lines as one .npz of concatenated arrays with offsets."""
    frames = np.cumsum([0] + [len(x.f0_hz) for x in lines])
    notes = np.cumsum([0] + [len(x.notes) for x in lines])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, audio=np.concatenate([x.audio for x in lines]),
             f0_hz=np.concatenate([x.f0_hz for x in lines]),
             loudness_db=np.concatenate([x.loudness_db for x in lines]),
             notes=np.concatenate([x.notes for x in lines]), frames=frames, note_offsets=notes,
             instrument=np.asarray([x.instrument for x in lines]),
             piece=np.asarray([x.piece for x in lines]))
    tmp.replace(path)


def load(path: Path) -> list[Line]:
    """Lines written by `save`."""
    with np.load(path) as stored:  # each item access would read the whole array again
        data = {key: stored[key] for key in stored.files}
    frames, notes = data["frames"], data["note_offsets"]
    return [Line(str(data["piece"][i]), int(data["instrument"][i]),
                 data["audio"][frames[i] * HOP: frames[i + 1] * HOP],
                 data["f0_hz"][frames[i]: frames[i + 1]],
                 data["loudness_db"][frames[i]: frames[i + 1]],
                 data["notes"][notes[i]: notes[i + 1]]) for i in range(len(frames) - 1)]


def dataset(cache_dir: Path = CACHE_DIR) -> dict[str, list[Line]]:
    """Every split's lines, rendered once and cached under `cache_dir`."""
    if not SOUNDFONT.is_file():
        raise FileNotFoundError(f"{SOUNDFONT} is missing: apt-get install fluid-soundfont-gm")
    splits: dict[str, list[Line]] = {}
    pieces = None
    for seed, split in enumerate(("train", "validation", "test")):
        path = cache_dir / f"v{DATA_VERSION}" / f"{split}.npz"
        if not path.is_file():
            if pieces is None:
                pieces = split_pieces(load_corpus(only=("bach-chorales",))[0])
            lines = render_split(split, pieces[split], seed)
            save(lines, path)
            logger.info("%s: %d lines, %.0f s of audio", split, len(lines),
                        sum(x.audio.size for x in lines) / SAMPLE_RATE_HZ)
        splits[split] = load(path)
    return splits
