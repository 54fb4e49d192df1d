"""Generic training loop: grammar-masked cross entropy, AdamW, warmup + cosine, best on valid."""

from __future__ import annotations

import copy
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from services.generate.music.tokens import Vocabulary
from training.music.model import (
    ModelConfig,
    Transformer,
    parameter_count,
    save_checkpoint,
)

logger = logging.getLogger(__name__)

# augment(tokens, rng) -> tokens: applied to each training sequence each time it is drawn.
Augment = Callable[[list[int], random.Random], list[int]]


@dataclass(frozen=True)
class TrainSettings:
    """How to train; everything that changes the result is here (and saved with it)."""

    batch_tokens: int = 4096  # padded tokens per batch (rows of similar length share one)
    max_epochs: int = 60
    learning_rate: float = 1e-3
    min_learning_rate_ratio: float = 0.1  # cosine decays to this fraction of the peak
    warmup_steps: int = 200
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    patience_evals: int = 8  # stop after this many evaluations without a better valid loss
    eval_every_steps: int = 0  # 0 = once per epoch
    # With this probability a batch starts at a random position instead of 0, so position
    # embeddings past the longest training sequence still get trained.
    position_shift_probability: float = 0.0


@dataclass
class TrainResult:
    """What training returns: the selected model and its history."""

    model: Transformer  # the selected (best valid) weights, in eval mode
    best_valid_loss: float  # nats per scored token
    best_step: int
    steps: int
    seconds: float
    tokens_per_s: float  # training tokens (incl. padding) per second
    history: list[dict[str, float]] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    """Seeds Python's, NumPy's and torch's generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class GrammarLoss:
    """Cross entropy under the grammar mask, counting only scored targets."""

    def __init__(self, vocab: Vocabulary):
        every_token = np.arange(vocab.size)
        # The mask after a position depends only on the token there, so one table serves.
        self.allowed_after = torch.from_numpy(vocab.allowed(vocab.ceilings(every_token)))
        self.scored = torch.from_numpy(vocab.scored(every_token))

    def log_probs(self, logits: Tensor, inputs: Tensor) -> Tensor:
        """Masked log-softmax: -inf where the grammar forbids the next token."""
        masked = logits.masked_fill(~self.allowed_after[inputs], float("-inf"))
        return torch.log_softmax(masked, dim=-1)

    def sum_and_count(self, logits: Tensor, inputs: Tensor, targets: Tensor) -> tuple[Tensor, int]:
        """(sum of -log p over scored targets, how many)."""
        log_probs = self.log_probs(logits, inputs)
        picked = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        scored = self.scored[targets]
        total = -torch.where(scored, picked, torch.zeros_like(picked)).sum()
        return total, int(scored.sum())


def make_batches(
    lengths: Sequence[int], batch_tokens: int, rng: random.Random
) -> list[list[int]]:
    """Index batches of similar length (little padding), in random order."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = 64  # sort within pools so batches stay random across epochs
    batches: list[list[int]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: lengths[i])
        batch: list[int] = []
        for index in chunk:
            longest = max([lengths[i] for i in batch] + [lengths[index]])
            if batch and longest * (len(batch) + 1) > batch_tokens:
                batches.append(batch)
                batch = []
            batch.append(index)
        if batch:
            batches.append(batch)
    rng.shuffle(batches)
    return batches


def pad(rows: Sequence[Sequence[int]], pad_id: int) -> Tensor:
    """Token rows right-padded with `pad_id` into one [B, T] tensor."""
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), pad_id, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def window(tokens: list[int], length: int, rng: random.Random) -> list[int]:
    """A random window of at most `length` tokens (the whole sequence when it fits)."""
    if len(tokens) <= length:
        return tokens
    start = rng.randrange(len(tokens) - length + 1)
    return tokens[start : start + length]


@torch.no_grad()
def evaluate(model: Transformer, seqs: Sequence[list[int]], vocab: Vocabulary,
             batch_tokens: int = 8192) -> float:
    """Mean -log p per scored token over `seqs` (each cut to max_positions from its start)."""
    model.eval()
    loss = GrammarLoss(vocab)
    limit = model.config.max_positions + 1
    rows = [s[:limit] for s in seqs]
    total, count = 0.0, 0
    for batch in make_batches([len(r) for r in rows], batch_tokens, random.Random(0)):
        tokens = pad([rows[i] for i in batch], vocab.PAD)
        logits = model.forward_train(tokens[:, :-1])
        batch_sum, batch_count = loss.sum_and_count(logits, tokens[:, :-1], tokens[:, 1:])
        total += float(batch_sum)
        count += batch_count
    return total / max(count, 1)


def _learning_rate(step: int, total_steps: int, settings: TrainSettings) -> float:
    if step < settings.warmup_steps:
        return settings.learning_rate * (step + 1) / settings.warmup_steps
    decay_steps = max(1, total_steps - settings.warmup_steps)
    progress = min(1.0, (step - settings.warmup_steps) / decay_steps)
    floor = settings.min_learning_rate_ratio
    return settings.learning_rate * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def train(
    train_seqs: Sequence[list[int]],
    valid_seqs: Sequence[list[int]],
    vocab: Vocabulary,
    config: ModelConfig,
    out_dir: Path,
    seed: int = 0,
    *,
    settings: TrainSettings = TrainSettings(),
    augment: Augment | None = None,
    threads: int = 1,
    extra: dict[str, Any] | None = None,
) -> TrainResult:
    """Train a Transformer on token sequences and save the best-on-valid checkpoint.

    Sequences start with BOS; longer ones than max_positions + 1 are cut to a random
    window each time they are drawn. The loss is the grammar-masked cross entropy over
    vocab.scored targets. Writes out_dir/model.pt and out_dir/config.json (model config,
    vocabulary, settings, history and `extra`). Same seed, data and threads: same weights.
    """
    torch.set_num_threads(threads)
    seed_everything(seed)
    rng = random.Random(seed)
    model = Transformer(config)
    loss_fn = GrammarLoss(vocab)
    # Decay matrices only: not embeddings (the head is tied to one), biases or norms.
    named = list(model.named_parameters())
    decay = [p for n, p in named if p.dim() >= 2 and "embedding" not in n]
    no_decay = [p for n, p in named if not (p.dim() >= 2 and "embedding" not in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": settings.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=settings.learning_rate, betas=(0.9, 0.98),
    )
    span = config.max_positions + 1  # a window of span tokens gives max_positions inputs
    lengths = [min(len(s), span) for s in train_seqs]
    steps_per_epoch = len(make_batches(lengths, settings.batch_tokens, random.Random(seed)))
    total_steps = steps_per_epoch * settings.max_epochs
    logger.info("training %d parameters, %d sequences, ~%d steps/epoch",
                parameter_count(model), len(train_seqs), steps_per_epoch)

    selection = _Selection(model, valid_seqs, vocab, settings.patience_evals)
    step, tokens_seen, train_seconds = 0, 0, 0.0
    started = time.perf_counter()
    for epoch in range(settings.max_epochs):
        epoch_sum, epoch_count = 0.0, 0
        for batch in make_batches(lengths, settings.batch_tokens, rng):
            model.train()
            batch_started = time.perf_counter()
            rows = [window(augment(train_seqs[i], rng) if augment else train_seqs[i], span, rng)
                    for i in batch]
            tokens = pad(rows, vocab.PAD)
            offset = 0
            if rng.random() < settings.position_shift_probability:
                offset = rng.randrange(span - tokens.shape[1] + 1)
            for group in optimizer.param_groups:
                group["lr"] = _learning_rate(step, total_steps, settings)
            logits = model.forward_train(tokens[:, :-1], position_offset=offset)
            batch_sum, batch_count = loss_fn.sum_and_count(logits, tokens[:, :-1], tokens[:, 1:])
            torch.autograd.backward(batch_sum / max(batch_count, 1))
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            train_seconds += time.perf_counter() - batch_started
            tokens_seen += tokens.numel()
            epoch_sum += float(batch_sum.detach())
            epoch_count += batch_count
            step += 1
            if settings.eval_every_steps and step % settings.eval_every_steps == 0:
                if selection.evaluate(step, epoch, epoch_sum / max(epoch_count, 1)):
                    break
        if not settings.eval_every_steps:
            selection.evaluate(step, epoch, epoch_sum / max(epoch_count, 1))
        if selection.should_stop:
            break

    seconds = time.perf_counter() - started
    model.load_state_dict(selection.best_state)
    model.eval()
    result = TrainResult(
        model=model, best_valid_loss=selection.best_loss, best_step=selection.best_step,
        steps=step, seconds=seconds, tokens_per_s=tokens_seen / max(train_seconds, 1e-9),
        history=selection.history,
    )
    save_checkpoint(model, Path(out_dir), {
        "vocabulary": vocab.to_json(), "seed": seed, "threads": threads,
        "settings": asdict(settings), "parameters": parameter_count(model),
        "best_valid_loss": result.best_valid_loss, "best_step": result.best_step,
        "steps": step, "seconds": round(seconds, 1),
        "tokens_per_s": round(result.tokens_per_s, 1), "history": result.history,
        **(extra or {}),
    })
    return result


class _Selection:
    """Keeps the weights with the best valid loss and says when patience has run out."""

    def __init__(self, model: Transformer, valid_seqs: Sequence[list[int]], vocab: Vocabulary,
                 patience: int):
        self.model, self.valid_seqs, self.vocab, self.patience = model, valid_seqs, vocab, patience
        self.best_loss, self.best_step = math.inf, 0
        self.best_state = copy.deepcopy(model.state_dict())
        self.history: list[dict[str, float]] = []
        self.evals_without_gain = 0

    @property
    def should_stop(self) -> bool:
        return self.evals_without_gain >= self.patience

    def evaluate(self, step: int, epoch: int, train_loss: float) -> bool:
        """Evaluate on valid, keep the best; True when training should stop."""
        valid_loss = evaluate(self.model, self.valid_seqs, self.vocab)
        self.history.append({"step": step, "epoch": epoch, "train_loss": round(train_loss, 5),
                             "valid_loss": round(valid_loss, 5)})
        logger.info("step %d epoch %d train %.4f valid %.4f", step, epoch, train_loss, valid_loss)
        if valid_loss < self.best_loss:
            self.best_loss, self.best_step = valid_loss, step
            self.best_state = copy.deepcopy(self.model.state_dict())
            self.evals_without_gain = 0
        else:
            self.evals_without_gain += 1
        return self.should_stop
