"""model.json and MODEL_CARD.md of the served model (README section 3)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.generate.music.tokens import STEPS_PER_QUARTER, Vocabulary

if TYPE_CHECKING:  # torch is imported only when a card is written
    from training.music.model import ModelConfig
    from training.music.trainer import TrainResult

DESCRIPTION = ("Decoder-only transformer over polyphonic music on a 16th-note grid (real "
               "rhythm: held notes are not re-struck), conditioned on style, key and time "
               "signature. Trained on the music21 corpus with transposition augmentation.")
REPRESENTATION = (
    "4 steps per quarter. BOS STYLE KEY TIME_SIGNATURE, then per bar BAR and its steps; "
    "a step lists its sounding pitches highest first as ON_p (struck) or HOLD_p "
    "(continuing), then STEP; EOS ends the piece. MIDI pitches 21-108, at most 6 per step; "
    "3 styles, 24 keys, 11 time signatures. See services/generate/README.md.")
LICENCE = (
    "Weights: non-commercial use only, because the Essen folk songs (a share of the "
    "training sequences) are distributed with music21 'for non-commercial distribution and "
    "use'. The compositions are public domain; the music21 software is BSD-3-Clause; the "
    "corpus encodings are distributed with music21 by permission of their encoders "
    "(Corelli: CC-BY 2014). Encodings whose notices reserve derived electronic formats "
    "(Humdrum Palestrina, three CCARH Bach files) or name a commercial edition (two Ut "
    "Orpheus madrigals) were left out. Retrain without the essen-folk source for a model "
    "free of the non-commercial term.")
MODES = ("FROM_SCRATCH", "CONTINUE", "HARMONIZE")


def training_data_text(data: dict[str, Any]) -> str:
    """The card's training-data paragraph."""
    pieces = data["train_pieces"]
    # Counts are pieces: a score whose metre changes gives one piece per metre.
    return (f"music21 corpus (music21 10.5), training pieces: {pieces.get('chorale', 0)} Bach "
            f"chorales, {pieces.get('folk', 0)} Essen folk songs, {pieces.get('classical', 0)} by "
            "other composers (Beethoven, Mozart, Haydn, Handel, Schubert, R. and C. Schumann, "
            "Corelli, C.P.E. Bach, Weber, Verdi, Joplin, Beach, Chopin, Monteverdi) for "
            f"training; {sum(data['valid_pieces'].values())} pieces held out for selection. "
            f"{data['held_out_jsb']} corpus pieces matching a JSB Chorales valid/test piece by "
            "content were left out. Licences: see licence.")


def write_card(out_dir: Path, *, name: str, version: str, vocab: Vocabulary,
               config: ModelConfig, recipe: dict[str, Any], data: dict[str, Any],
               metrics: dict[str, float], result: TrainResult, seed: int, wall_s: float
               ) -> dict[str, Any]:
    """Writes model.json and MODEL_CARD.md into `out_dir`; returns the card."""
    from training.music.model import parameter_count

    parameters = parameter_count(result.model)
    card = {
        "name": name, "version": version, "description": DESCRIPTION,
        "training_data": training_data_text(data), "representation": REPRESENTATION,
        "parameters": parameters, "training_time_s": round(result.seconds, 1),
        "metrics": metrics, "licence": LICENCE, "modes": list(MODES),
    }
    model_json = {
        "name": name, "version": version, "vocabulary": vocab.to_json(),
        "steps_per_quarter": STEPS_PER_QUARTER, "n_layers": config.n_layers,
        "n_heads": config.n_heads, "head_dim": config.head_dim, "d_model": config.d_model,
        "max_positions": config.max_positions, "card": card,
        "training": {"seed": seed, "threads": 1, "recipe": recipe,
                     "steps": result.steps, "best_step": result.best_step,
                     "tokens_per_s": round(result.tokens_per_s, 1),
                     "wall_s": round(wall_s, 1), "history": result.history,
                     "data": data},
    }
    (out_dir / "model.json").write_text(json.dumps(model_json, indent=2) + "\n")
    (out_dir / "MODEL_CARD.md").write_text(markdown(card, model_json, data))
    return card


def markdown(card: dict[str, Any], model_json: dict[str, Any], data: dict[str, Any]) -> str:
    """The MODEL_CARD.md text."""
    training = model_json["training"]
    recipe = training["recipe"]
    metric_rows = "\n".join(f"| {k} | {v} |" for k, v in card["metrics"].items())
    style_rows = "\n".join(
        f"| {style} | {data['train_pieces'].get(style, 0)} | "
        f"{data['train_tokens'].get(style, 0):,} | {data['valid_pieces'].get(style, 0)} | "
        f"{data['valid_tokens'].get(style, 0):,} |"
        for style in ("chorale", "folk", "classical"))
    source_rows = "\n".join(
        f"| {name} | {s['files']} | {s['scores']} | {s['split_at_metre_changes']} | "
        f"{s['pieces']} | {s['unusable']} | {s['failed']} | {s['parse_s']} |"
        for name, s in data["sources"].items())
    held_out = ", ".join(data["held_out_jsb_names"])
    return f"""# {card['name']} {card['version']}

{card['description']}

## Intended use
Sketching: chorale-style four-part writing, folk melodies and classical textures from
scratch, continuing a MIDI primer, harmonising a melody (the melody is kept as the top
voice; the model writes the voices below). Every result carries an originality figure
(the longest run of notes copied from `originality.npz`, the training pieces' voices).

## Limits
- Small model ({card['parameters']:,} parameters) trained for {training['steps']} steps
  on one CPU core: phrases are locally plausible, long-range form is weak.
- Context {model_json['max_positions']} tokens: about 12 bars of a four-part chorale in
  4/4, 30 of a folk melody. The service goes on past it with a window (preamble + the
  latest half); training pieces longer than the context were cut at bar lines into
  parts that each start with the preamble.
- At most 6 simultaneous pitches; no dynamics, articulation, tempo or instruments
  (the service assigns programs); one time signature per piece (training pieces were
  split where their metre changes).
- The corpus is Western art and folk music, mostly German; other traditions are absent.

## Data
{card['training_data']}

| style | train pieces | train tokens | valid pieces | valid tokens |
|---|---:|---:|---:|---:|
{style_rows}

Training draws a fixed, seeded set of {data['drawn_sequences']:,} sequences
({data['drawn_tokens']:,} tokens) in the mix {recipe['mix']} (by tokens), each transposed
by a random -5..+6 semitones (key token included, range kept in 21-108) every time it
is used. Validation pieces are chosen by a hash of the piece name, never transposed.

Parsing (music21, one process; cached under `.data/generate-corpus/`):

| source | files | scores | scores split at metre changes | pieces | unusable | failed | parse s |
|---|---:|---:|---:|---:|---:|---:|---:|
{source_rows}

Per piece: notes on a 16th grid (rounded; shorter notes keep one step), ties merged into
one held note, grace notes and unpitched percussion dropped, a pickup padded with silent
steps so bars align, a new piece (`name#k`) at each metre change, at most 6 pitches per step
(the lowest doublings dropped first). Key: Krumhansl-Schmuckler correlation of the
duration-weighted pitch classes with the Aarden-Essen profiles (music21's default key
analysis), not the key signature; its tonic is the final bass note in 84% of the
chorales, 63% of the folk songs (many Chinese tunes end on a modal final) and 61% of the
other pieces (long, modulating; segments cut at metre changes).
Time signature: the first one, mapped to `other` outside the token list.

JSB exclusion (`training/music/jsb_overlap.py`): every corpus piece is matched
by content against the JSB Chorales benchmark (transposition-invariant chord n-grams to
find candidates, then the longest common subsequence of per-quarter voicings); the
{data['held_out_jsb']} pieces scoring >= the threshold against a valid/test piece were
left out: {held_out}.

## Representation
{card['representation']}

## Size and training
d_model {model_json['d_model']}, {model_json['n_layers']} layers, {model_json['n_heads']} heads
(head dim {model_json['head_dim']}), learned positions up to {model_json['max_positions']},
tied input/output embedding, dropout {recipe['dropout']}; {card['parameters']:,} parameters.
AdamW (lr {recipe['learning_rate']}, warmup {recipe['warmup_steps']}, cosine), batches of
<= {recipe['batch_tokens']} padded tokens, {training['steps']} steps, seed {training['seed']},
1 torch thread: {card['training_time_s']:.0f} s of training ({training['tokens_per_s']:.0f}
tokens/s), {training['wall_s']:.0f} s wall including data and export. Selected on the
validation pieces ({recipe['select_tokens_per_style']:,} tokens per style), evaluated
{len(training['history'])} times, the last after the last step (best at step
{training['best_step']}).

## Metrics (validation pieces, untransposed)
NLL in nats under the grammar mask; per step = all tokens of the piece (pitches, STEP, BAR,
EOS) divided by the number of 16th-note steps.

| metric | value |
|---|---:|
{metric_rows}

## Licence
{card['licence']}

## Reproduce
`make poly-model-retrain` (or `python -m training.music.poly --force`).
"""
