"""Train the served model, cadenza-poly, on the music21 corpus and write its model folder.

    python -m training.music.poly           # only when model.onnx is absent
    python -m training.music.poly --force   # retrain from scratch (fixed seed)

The corpus (training/music/corpus.py) is parsed once and cached under
.data/generate-corpus/; chorales of the JSB valid/test split are left out by content.
Each training sequence is transposed by a random -5..+6 semitones every time it is drawn
(key token included). Selection is on held-out pieces (by piece, never by transposition).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np
import numpy.typing as npt

from services.generate.music.originality import write_index
from services.generate.music.tokens import (
    SERVED_VOCABULARY,
    STEPS_PER_QUARTER,
    Note,
    Vocabulary,
    encode,
)
from training.music.corpus import Piece, TrainingCorpus, training_corpus

if TYPE_CHECKING:  # torch is imported only when training starts
    from training.music.model import Transformer

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = REPO_ROOT / "models/generate/cadenza-poly"
CHECKPOINT_DIR = REPO_ROOT / ".data/generate-poly"
NAME, VERSION = "cadenza-poly", "1.0.0"
SEED = 0
TRANSPOSE_SEMITONES = tuple(range(-5, 7))
VALID_PERCENT = 4               # of pieces, per style, chosen by a hash of the name
PREAMBLE_TOKENS = 4             # BOS STYLE KEY TIME_SIGNATURE


@dataclass(frozen=True)
class Recipe:
    """Model shape and budget; chosen by measuring tokens/s on 1 thread (see MODEL_CARD.md)."""

    d_model: int = 192
    n_layers: int = 4
    n_heads: int = 4
    max_positions: int = 1024
    dropout: float = 0.0            # the data is larger than what the budget lets it see
    batch_tokens: int = 4100        # 4 rows of a full 1,025-token window
    learning_rate: float = 2e-3     # 1e-3 left valid loss still falling fast at the end
    warmup_steps: int = 100
    # The budget: drawn tokens. Measured 1,635-2,000 tokens/s on one thread beside another
    # training, so 40-49 min of training plus ~3 min of evaluations.
    train_tokens: int = 4_800_000
    evaluations: int = 8            # on the selection set, the last one after the last step
    select_tokens_per_style: int = 25_000   # validation tokens per style used for selection
    # Share of training sequences by style in the (fixed, seeded) training draw.
    # (chorales: ~4 passes over 0.28M tokens; classical ~1.5 over 1.05M; folk ~0.4 over 2.9M)
    mix: tuple[tuple[str, float], ...] = (("chorale", 0.30), ("classical", 0.40), ("folk", 0.30))


class _Conditions(TypedDict):
    """The preamble and bar length `encode` is given for every part of a piece."""

    style: str
    key: tuple[int, bool]
    time_signature: str
    steps_per_bar: int


def is_valid_piece(name: str) -> bool:
    """A fixed ~VALID_PERCENT % of pieces, chosen by name (stable across runs and machines)."""
    return int(hashlib.sha1(name.encode()).hexdigest(), 16) % 100 < VALID_PERCENT


def piece_sequences(piece: Piece, vocab: Vocabulary, max_tokens: int) -> list[list[int]]:
    """The piece as token sequences of at most `max_tokens`, cut at bar lines.

    Each part gets its own preamble, so the model always knows style, key and metre;
    a note sounding over a cut is struck again at the start of the next part. Only the
    last part ends with EOS.
    """
    notes = [Note(int(p), int(s), int(e)) for p, s, e, _ in piece.notes]
    conditions: _Conditions = {"style": piece.style, "key": (piece.tonic, piece.minor),
                               "time_signature": piece.token_time_signature,
                               "steps_per_bar": piece.steps_per_bar}
    whole = encode(notes, vocab, n_steps=piece.n_steps, **conditions)
    if len(whole) <= max_tokens:
        return [whole]
    bar_starts = [i for i, token in enumerate(whole) if token == vocab.BAR] + [len(whole) - 1]
    bar_tokens = np.diff(bar_starts)
    sequences, first = [], 0
    while first < len(bar_tokens):
        last, used = first, PREAMBLE_TOKENS + 1
        while last < len(bar_tokens) and used + bar_tokens[last] <= max_tokens:
            used += bar_tokens[last]
            last += 1
        if last == first:  # one bar longer than the context: leave it out
            first += 1
            continue
        start, end = first * piece.steps_per_bar, min(last * piece.steps_per_bar, piece.n_steps)
        part = [Note(n.pitch, n.start - start, n.end - start) for n in notes
                if n.start < end and n.end > start]
        sequences.append(encode(part, vocab, n_steps=end - start, eos=last == len(bar_tokens),
                                **conditions))
        first = last
    return sequences


class Transposer:
    """Moves every pitch token and the key token of a sequence by a random interval."""

    def __init__(self, vocab: Vocabulary, semitones: tuple[int, ...] = TRANSPOSE_SEMITONES):
        self.vocab, self.semitones = vocab, semitones
        ids = np.arange(vocab.size)
        pitch = vocab.pitch_table
        keys = {vocab.key(t, m): (t, m) for t in range(12) for m in (False, True)}
        self.tables: dict[int, npt.NDArray[np.int64]] = {}
        for shift in semitones:
            table = ids.copy()
            for token in np.flatnonzero(pitch >= 0):
                moved = int(pitch[token]) + shift
                if vocab.low_pitch <= moved <= vocab.high_pitch:
                    hold = bool(vocab.hold_table[token])
                    table[token] = vocab.hold(moved) if hold else vocab.on(moved)
                else:
                    table[token] = -1
            for key_token, (tonic, minor) in keys.items():
                table[key_token] = vocab.key(tonic + shift, minor)
            self.tables[shift] = table

    def __call__(self, tokens: list[int], rng: random.Random) -> list[int]:
        """The tokens moved by a random allowed interval."""
        array = np.asarray(tokens)
        pitches = self.vocab.pitch_table[array]
        pitches = pitches[pitches >= 0]
        low, high = (int(pitches.min()), int(pitches.max())) if len(pitches) else (60, 60)
        options = [s for s in self.semitones
                   if self.vocab.low_pitch <= low + s and high + s <= self.vocab.high_pitch]
        moved: list[int] = self.tables[rng.choice(options)][array].tolist()
        return moved


def draw_training_set(by_style: dict[str, list[list[int]]], recipe: Recipe,
                      seed: int) -> list[list[int]]:
    """A fixed, seeded draw of sequences filling the token budget in the recipe's style mix.

    Sequences repeat when a style has fewer tokens than its share (each repeat is drawn
    in a fresh random transposition); they are left out when it has more.
    """
    rng = random.Random(seed)
    budget = recipe.train_tokens
    drawn: list[list[int]] = []
    for style, share in recipe.mix:
        pool = list(by_style.get(style, []))
        if not pool:
            continue
        goal, taken = share * budget, 0
        while taken < goal:
            rng.shuffle(pool)
            for sequence in pool:
                drawn.append(sequence)
                taken += len(sequence)
                if taken >= goal:
                    break
    rng.shuffle(drawn)
    return drawn


def eval_interval(steps: int, evaluations: int) -> int:
    """The divisor of `steps` nearest steps / evaluations (at least half of it), so that
    the last evaluation falls on the last step; `steps` itself when none is near."""
    target = max(1, steps // evaluations)
    divisors = [i for i in range(max(1, target // 2), steps + 1) if steps % i == 0]
    return min(divisors, key=lambda i: abs(i - target))


def _first_tokens(sequences: list[list[int]], tokens: int) -> list[list[int]]:
    taken, total = [], 0
    for sequence in sequences:
        if total >= tokens:
            break
        taken.append(sequence)
        total += len(sequence)
    return taken


def voice_sequences(pieces: list[Piece]) -> list[tuple[str, list[tuple[int, int]]]]:
    """Each part of each piece as (pitch, duration) in start order; a chord gives its top."""
    sequences = []
    for piece in pieces:
        for part in sorted(set(piece.notes[:, 3].tolist())):
            rows = piece.notes[piece.notes[:, 3] == part]
            rows = rows[np.lexsort((-rows[:, 0], rows[:, 1]))]
            rows = rows[np.r_[True, np.diff(rows[:, 1]) != 0]]  # top note of each onset
            label = piece.part_names[part] if part < len(piece.part_names) else ""
            name = f"{piece.name} {label or f'part {part + 1}'}"
            sequences.append((name, [(int(p), int(e - s)) for p, s, e, _ in rows]))
    return sequences


def valid_metrics(model: Transformer, valid: dict[str, list[list[int]]], vocab: Vocabulary
                  ) -> dict[str, float]:
    """NLL per scored token and per time step, overall and by style."""
    from training.music.trainer import evaluate

    metrics: dict[str, float] = {}
    everything = [s for sequences in valid.values() for s in sequences]
    for label, sequences in [("all", everything), *valid.items()]:
        if not sequences:
            continue
        per_token = evaluate(model, sequences, vocab)
        targets = np.concatenate([np.asarray(s[1:]) for s in sequences])
        scored = int(vocab.scored(targets).sum())
        steps = int((targets == vocab.STEP).sum())
        suffix = "" if label == "all" else f"_{label}"
        metrics[f"valid_nll_per_token{suffix}"] = round(per_token, 4)
        metrics[f"valid_nll_per_step{suffix}"] = round(per_token * scored / steps, 4)
    return metrics


def build(out_dir: Path, recipe: Recipe, seed: int = SEED, threads: int = 1,
          only: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Corpus -> sequences -> training -> ONNX + model.json + card + originality.npz.

    `only` limits the corpus to the named sources (for quick trials; the served model
    uses all of them).
    """
    from training.music.export import export
    from training.music.model import ModelConfig
    from training.music.trainer import TrainSettings, make_batches, train

    began = time.perf_counter()
    vocab = SERVED_VOCABULARY
    corpus = training_corpus(only=only)
    train_pieces = [p for p in corpus.pieces if not is_valid_piece(p.name)]
    valid_pieces = [p for p in corpus.pieces if is_valid_piece(p.name)]
    span = recipe.max_positions + 1
    train_by_style: dict[str, list[list[int]]] = {}
    valid_by_style: dict[str, list[list[int]]] = {}
    for pieces, target in ((train_pieces, train_by_style), (valid_pieces, valid_by_style)):
        for piece in pieces:
            target.setdefault(piece.style, []).extend(piece_sequences(piece, vocab, span))
    drawn = draw_training_set(train_by_style, recipe, seed)
    # Selection sees a fixed part of the validation pieces (evaluations cost training
    # time); the card's metrics use all of them.
    select = [s for sequences in valid_by_style.values()
              for s in _first_tokens(sequences, recipe.select_tokens_per_style)]
    data = summarise(corpus, train_pieces, valid_pieces, train_by_style, valid_by_style, drawn)
    logger.info("data: %s", json.dumps(data))

    config = ModelConfig(vocab_size=vocab.size, d_model=recipe.d_model,
                         n_layers=recipe.n_layers, n_heads=recipe.n_heads,
                         max_positions=recipe.max_positions, dropout=recipe.dropout)
    # One pass over the drawn set is the whole budget; no early stop, keep the best.
    # The trainer evaluates every eval_every_steps only, so the interval must divide the
    # number of steps or the last stretch (lowest learning rate) is never evaluated. Its
    # first epoch's batches are make_batches(..., Random(seed)), so the count is known.
    steps = len(make_batches([min(len(s), recipe.max_positions + 1) for s in drawn],
                             recipe.batch_tokens, random.Random(seed)))
    settings = TrainSettings(batch_tokens=recipe.batch_tokens, max_epochs=1,
                             learning_rate=recipe.learning_rate,
                             warmup_steps=recipe.warmup_steps,
                             eval_every_steps=eval_interval(steps, recipe.evaluations),
                             patience_evals=10**6)
    result = train(drawn, select, vocab, config, CHECKPOINT_DIR, seed, settings=settings,
                   augment=Transposer(vocab), threads=threads,
                   extra={"recipe": asdict(recipe), "data": data})
    metrics = valid_metrics(result.model, valid_by_style, vocab)
    out_dir.mkdir(parents=True, exist_ok=True)
    export(result.model, out_dir / "model.onnx")
    write_index(out_dir / "originality.npz", voice_sequences(train_pieces))
    from training.music.poly_card import write_card

    return write_card(out_dir, name=NAME, version=VERSION, vocab=vocab, config=config,
                      recipe=asdict(recipe), data=data, metrics=metrics, result=result,
                      seed=seed, wall_s=time.perf_counter() - began)


def summarise(corpus: TrainingCorpus, train_pieces: list[Piece], valid_pieces: list[Piece],
              train_by_style: dict[str, list[list[int]]],
              valid_by_style: dict[str, list[list[int]]],
              drawn: list[list[int]]) -> dict[str, Any]:
    """Counts for the card: pieces and tokens by style, what was left out, parse time."""
    def tokens(by_style: dict[str, list[list[int]]]) -> dict[str, int]:
        return {style: sum(len(s) for s in seqs) for style, seqs in by_style.items()}
    drawn_tokens = sum(len(s) for s in drawn)
    return {
        "train_pieces": dict(Counter(p.style for p in train_pieces)),
        "valid_pieces": dict(Counter(p.style for p in valid_pieces)),
        "train_tokens": tokens(train_by_style),
        "valid_tokens": tokens(valid_by_style),
        "drawn_sequences": len(drawn),
        "drawn_tokens": drawn_tokens,
        "held_out_jsb": len(corpus.held_out),
        "held_out_jsb_names": sorted(h["name"] for h in corpus.held_out),
        "sources": {name: {k: v for k, v in stats.items() if k not in ("failed", "paths")}
                    | {"failed": len(stats["failed"])} for name, stats in corpus.stats.items()},
        "steps_per_quarter": STEPS_PER_QUARTER,
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: trains and exports the cadenza-poly model."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="retrain even if model.onnx exists")
    parser.add_argument("--out", type=Path, default=MODEL_DIR)
    parser.add_argument("--tokens", type=int, help="training tokens (default: the recipe's)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--only", nargs="+", help="corpus sources to use (default: all)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if (args.out / "model.onnx").exists() and not args.force:
        print(f"{args.out / 'model.onnx'} exists; --force retrains (~50 min on one core)")
        return 0
    recipe = Recipe()
    if args.tokens is not None:  # a trial
        recipe = replace(recipe, train_tokens=args.tokens, evaluations=4)
    card = build(args.out, recipe, seed=args.seed,
                 only=tuple(args.only) if args.only else None)
    print(json.dumps(card["metrics"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
