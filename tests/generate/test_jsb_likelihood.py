"""The JSB frame likelihood is exact: a normalised distribution over frames, summed correctly."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from services.generate.tokens import Vocabulary, encode_frames
from services.generate.training.jsb import frame_nll, piece_frame_nll, transposer
from services.generate.training.model import ModelConfig, Transformer
from services.generate.training.trainer import GrammarLoss

FEW_PITCHES = Vocabulary(holds=False, conditioning=False, low_pitch=60, high_pitch=63)
PIECE = [[63, 60], [62], [], [63, 62, 61, 60], [61]]


@pytest.fixture(scope="module")
def model() -> Transformer:
    torch.manual_seed(1)
    config = ModelConfig(vocab_size=FEW_PITCHES.size, d_model=32, n_layers=2, n_heads=2,
                         max_positions=64, dropout=0.0)
    model = Transformer(config).eval()
    with torch.no_grad():  # sharper than the 0.02 init, so the frames' probabilities differ
        for parameter in model.parameters():
            parameter.mul_(3.0)
    return model


def next_token_log_probs(model: Transformer, tokens: list[int]) -> torch.Tensor:
    """log p(next | tokens) from the cached (ONNX) forward with P = 0, grammar-masked."""
    batch = torch.tensor([tokens])
    with torch.no_grad():
        logits, _, _ = model(batch, torch.arange(len(tokens)).unsqueeze(0),
                             torch.ones_like(batch), *model.empty_cache(1))
    return GrammarLoss(FEW_PITCHES).log_probs(logits, batch[:, -1])[0].double()


def frame_log_prob(model: Transformer, history: list[int], frame: list[int]) -> float:
    """log p(frame | history), token by token."""
    tokens, total = list(history), 0.0
    for token in encode_frames([frame], FEW_PITCHES)[1:]:
        total += float(next_token_log_probs(model, tokens)[token])
        tokens.append(token)
    return total


def all_frames() -> list[list[int]]:
    pitches = range(FEW_PITCHES.low_pitch, FEW_PITCHES.high_pitch + 1)
    return [list(s) for n in range(len(pitches) + 1) for s in itertools.combinations(pitches, n)]


@pytest.mark.parametrize("history_frames", [[], [[63, 60]], [[63, 60], [62], [61, 60]]])
def test_probabilities_of_all_possible_next_frames_sum_to_one(model, history_frames):
    history = encode_frames(history_frames, FEW_PITCHES)
    probabilities = [math.exp(frame_log_prob(model, history, f)) for f in all_frames()]
    assert len(probabilities) == 16
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
    assert max(probabilities) < 0.9  # a real distribution, not one frame taking everything


def test_piece_nll_equals_brute_force_over_frames_two_to_the_end(model):
    brute = 0.0
    for t in range(1, len(PIECE)):
        brute -= frame_log_prob(model, encode_frames(PIECE[:t], FEW_PITCHES), PIECE[t])
    nats, frames = piece_frame_nll(model, PIECE, FEW_PITCHES)
    assert frames == len(PIECE) - 1
    assert nats == pytest.approx(brute, abs=1e-4)


def test_nll_per_frame_pools_frames_over_pieces(model):
    other = [[60], [61, 60], [63]]
    nats_a, frames_a = piece_frame_nll(model, PIECE, FEW_PITCHES)
    nats_b, frames_b = piece_frame_nll(model, other, FEW_PITCHES)
    pooled = frame_nll(model, [PIECE, other], FEW_PITCHES)
    assert pooled == pytest.approx((nats_a + nats_b) / (frames_a + frames_b), rel=1e-9)


def test_transposition_keeps_the_piece_inside_the_keyboard():
    import random

    tokens = encode_frames(PIECE, FEW_PITCHES)
    augment = transposer(FEW_PITCHES, max_semitones=5)
    rng = random.Random(0)
    shifted = {tuple(augment(tokens, rng)) for _ in range(50)}
    assert shifted == {tuple(tokens)}  # the piece already spans all four pitches
    narrow = encode_frames([[60], [61]], FEW_PITCHES)
    seen = {tuple(augment(narrow, rng)) for _ in range(200)}
    assert len(seen) == 3  # shifts 0, +1, +2: never past pitch 63
