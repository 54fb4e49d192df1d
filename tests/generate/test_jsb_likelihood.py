"""The JSB frame likelihood is exact: a normalised distribution over frames, summed correctly."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from services.generate.music.tokens import Vocabulary, encode_frames
from training.music.jsb import frame_nll, piece_frame_nll, transposer
from training.music.mixture import Member, Mixture
from training.music.model import ModelConfig, Transformer
from training.music.trainer import GrammarLoss

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


def mixture_frame_log_prob(mixture: Mixture, history: list[int], frame: list[int]) -> float:
    """log p(frame | history) under the mixture, token by token."""
    tokens, total = list(history), 0.0
    for token in encode_frames([frame], FEW_PITCHES)[1:]:
        total += float(mixture.log_probs(torch.tensor([tokens]))[0, -1, token])
        tokens.append(token)
    return total


@pytest.fixture(scope="module")
def mixture(model: Transformer) -> Mixture:
    torch.manual_seed(2)
    other = Transformer(model.config).eval()
    with torch.no_grad():
        for parameter in other.parameters():
            parameter.mul_(3.0)
    # Shifts push some pitches out of the 60..63 range: their mass must be renormalised.
    return Mixture([Member(model, 0, 0.5), Member(other, 0), Member(model, -1, 2.0),
                    Member(other, 1, 0.25)], FEW_PITCHES)


@pytest.mark.parametrize("history_frames", [[[62, 61]], [[63, 60], [62], [61, 60]]])
def test_a_transposing_mixture_is_still_a_normalised_distribution_over_frames(
        mixture, history_frames):
    history = encode_frames(history_frames, FEW_PITCHES)
    probabilities = [math.exp(mixture_frame_log_prob(mixture, history, f))
                     for f in all_frames()]
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
    single = [math.exp(frame_log_prob(mixture.members[0].model, history, f))
              for f in all_frames()]
    # It really mixes: some frame's probability moved away from the first member's.
    assert max(abs(a - b) for a, b in zip(probabilities, single, strict=True)) > 1e-3


def test_mixture_piece_nll_equals_brute_force(mixture):
    piece = [[62, 61], [62], [], [62, 61, 60], [63]]  # 60 and 63 make members abstain
    brute = -sum(mixture_frame_log_prob(mixture, encode_frames(piece[:t], FEW_PITCHES), piece[t])
                 for t in range(1, len(piece)))
    nats, frames = piece_frame_nll(mixture, piece, FEW_PITCHES)
    assert frames == len(piece) - 1
    assert nats == pytest.approx(brute, abs=1e-4)


def test_a_one_member_mixture_scores_like_its_model(model):
    alone = piece_frame_nll(model, PIECE, FEW_PITCHES)[0]
    mixed = piece_frame_nll(Mixture([Member(model)], FEW_PITCHES), PIECE, FEW_PITCHES)[0]
    assert mixed == pytest.approx(alone, abs=1e-4)


def test_a_member_abstains_once_the_piece_leaves_its_range(model):
    shifted_up = Member(model, 1)  # 63 + 1 is outside 60..63: PIECE starts with 63
    alone = piece_frame_nll(model, PIECE, FEW_PITCHES)[0]
    mixed = piece_frame_nll(Mixture([Member(model), shifted_up], FEW_PITCHES), PIECE,
                            FEW_PITCHES)[0]
    assert mixed == pytest.approx(alone, abs=1e-4)
    with pytest.raises(ValueError, match="every member"):
        piece_frame_nll(Mixture([shifted_up], FEW_PITCHES), PIECE, FEW_PITCHES)


def test_weights_mix_the_members_probabilities_in_proportion(mixture):
    a, b = mixture.members[0].model, mixture.members[1].model
    tokens = torch.tensor([encode_frames([[62, 61], [60], [63]], FEW_PITCHES)])
    p_a = Mixture([Member(a)], FEW_PITCHES).log_probs(tokens).exp()
    p_b = Mixture([Member(b)], FEW_PITCHES).log_probs(tokens).exp()
    mixed = Mixture([Member(a, 0, 1.0), Member(b, 0, 3.0)], FEW_PITCHES).log_probs(tokens).exp()
    assert torch.allclose(mixed, (p_a + 3 * p_b) / 4, atol=1e-6)
    assert not torch.allclose(mixed, (p_a + p_b) / 2, atol=1e-3)
