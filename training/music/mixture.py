"""A token-level mixture of models, each reading the piece transposed by its own shift.

Member k reads the piece shifted by s_k semitones and predicts the next token in its own
key; its prediction is shifted back, the members are averaged with fixed weights w_k and
the result renormalised over the vocabulary:

    p(v | prefix) ∝ sum_k w_k p_k(shift(v, s_k) | shift(prefix, s_k)) / sum_k w_k

Each conditional is a normalised distribution that depends only on the prefix, so their
product is a normalised distribution over token sequences: the frame likelihood stays
exact. Pitches a member would shift out of its range get probability 0 from it; the
renormalisation gives their mass back to the other tokens. A member abstains once the
prefix itself leaves its range.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from services.generate.music.tokens import Vocabulary
from training.music.model import Transformer
from training.music.trainer import GrammarLoss


@dataclass(frozen=True)
class Member:
    """One model of a mixture, the transposition it reads and its weight."""

    model: Transformer
    shift: int = 0  # semitones the piece is transposed by before this model reads it
    weight: float = 1.0  # relative; chosen before scoring (on valid), never on test


def shifted_ids(vocab: Vocabulary, shift: int) -> npt.NDArray[np.int64]:
    """For each token id, the id of the same token `shift` semitones up (-1: out of range)."""
    pitch = vocab.pitch_table
    ids = np.arange(vocab.size)
    target = pitch + shift
    in_range = (target >= vocab.low_pitch) & (target <= vocab.high_pitch)
    # ON ids are contiguous in pitch, so a pitch token moves by exactly `shift` ids.
    moved: npt.NDArray[np.int64] = np.where(pitch < 0, ids, np.where(in_range, ids + shift, -1))
    return moved


class Mixture:
    """Scores token sequences as the renormalised average of its members' predictions."""

    def __init__(self, members: Sequence[Member], vocab: Vocabulary):
        if not members:
            raise ValueError("a mixture needs at least one member")
        if any(not m.weight > 0 for m in members):
            raise ValueError("member weights must be positive")
        self.members = list(members)
        self.vocab = vocab
        self.loss = GrammarLoss(vocab)
        self._ids = {m.shift: torch.from_numpy(shifted_ids(vocab, m.shift)) for m in members}

    @torch.no_grad()
    def log_probs(self, inputs: Tensor) -> Tensor:
        """(batch, T, vocab) log p(next token | inputs[:, :t+1]) in the original key."""
        per_member, active_weight = [], []
        for member in self.members:
            member.model.eval()
            ids = self._ids[member.shift]
            moved = ids[inputs]
            # A member whose shift takes a prefix token out of range abstains from there
            # on. The choice depends only on the prefix, so the mixture stays normalised.
            abstains = (moved < 0).cumsum(dim=1) > 0
            moved = moved.clamp(min=0)  # what it reads where it abstains is never used
            own = self.loss.log_probs(member.model.forward_train(moved), moved)
            # Read each original token's probability at its shifted id; -inf if it has none.
            back = own[..., ids.clamp(min=0)].masked_fill(ids < 0, float("-inf"))
            weighted = back + math.log(member.weight)
            per_member.append(weighted.masked_fill(abstains.unsqueeze(-1), float("-inf")))
            active_weight.append((~abstains).double() * member.weight)
        total_weight = torch.stack(active_weight).sum(dim=0)
        if bool((total_weight == 0).any()):
            raise ValueError("the piece leaves the pitch range of every member")
        norm = total_weight.log().to(per_member[0].dtype).unsqueeze(-1)
        mixed = torch.logsumexp(torch.stack(per_member), dim=0) - norm
        return mixed - torch.logsumexp(mixed, dim=-1, keepdim=True)
