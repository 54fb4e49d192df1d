"""Free text generation: a chat or a prompt in, text deltas out, then the finish reason.

Decoding is token by token through the shared batcher, so concurrent completions (and
music generations on the same model server) share backend calls. Text goes out only in
whole characters and never as the start of a stop sequence that may yet complete.
"""

from __future__ import annotations

import enum
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from cadenza.kit.errors import InvalidArgument
from services.generate import metrics
from services.generate.inference.sampling import Sampling, sample
from services.generate.text.model import Message, TextModel

DEFAULT_MAX_TOKENS = 256
MAX_TOKENS = 1024
MAX_STOPS, MAX_STOP_CHARS = 4, 64
MAX_MESSAGES = 64
MAX_TEMPERATURE = 2.0
MAX_TOP_K = 1000


class FinishReason(enum.Enum):
    """Why a completion ended."""

    STOP = "stop"        # the model ended its turn, or wrote a stop sequence
    LENGTH = "length"    # max_tokens, or the end of the context


@dataclass(frozen=True)
class TextRequest:
    """What a caller asked for: a chat or a raw prompt, and how to decode."""

    model: str = ""
    messages: tuple[Message, ...] = ()
    prompt: str | None = None          # set: raw continuation, no chat template
    max_tokens: int = DEFAULT_MAX_TOKENS
    sampling: Sampling = field(default_factory=Sampling)   # temperature 0 = greedy
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass(frozen=True)
class Completion:
    """A finished completion."""

    model: str
    version: str
    seed: int
    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int


def check(request: TextRequest) -> TextRequest:
    """Raises InvalidArgument naming the first field out of range."""
    r = request
    if r.prompt is None:
        if not r.messages:
            raise InvalidArgument("chat.messages", "is empty; send at least one message")
        if len(r.messages) > MAX_MESSAGES:
            raise InvalidArgument("chat.messages", f"at most {MAX_MESSAGES}, got "
                                                   f"{len(r.messages)}")
        if not any(m.content.strip() for m in r.messages):
            raise InvalidArgument("chat.messages", "every message is empty")
    elif not r.prompt.strip():
        raise InvalidArgument("prompt", "is empty")
    if not 1 <= r.max_tokens <= MAX_TOKENS:
        raise InvalidArgument("max_tokens", f"must be 1-{MAX_TOKENS} (unset: "
                                            f"{DEFAULT_MAX_TOKENS}), got {r.max_tokens}")
    s = r.sampling
    if not 0 <= s.temperature <= MAX_TEMPERATURE:  # False for NaN
        raise InvalidArgument("sampling.temperature", f"must be in [0, {MAX_TEMPERATURE:g}] "
                                                      f"(0 = greedy), got {s.temperature}")
    if not 0 <= s.top_k <= MAX_TOP_K:
        raise InvalidArgument("sampling.top_k", f"must be 0 (off) to {MAX_TOP_K}, got {s.top_k}")
    if not 0 < s.top_p <= 1:
        raise InvalidArgument("sampling.top_p", f"must be in (0, 1], got {s.top_p}")
    if len(r.stop) > MAX_STOPS:
        raise InvalidArgument("stop", f"at most {MAX_STOPS} sequences, got {len(r.stop)}")
    for i, stop in enumerate(r.stop):
        if not 1 <= len(stop) <= MAX_STOP_CHARS:
            raise InvalidArgument(f"stop[{i}]", f"must be 1-{MAX_STOP_CHARS} characters, got "
                                                f"{len(stop)}")
    return r


def prompt_tokens(model: TextModel, request: TextRequest) -> list[int]:
    """The prompt's tokens, checked against the model's context."""
    ids = (model.encode(request.prompt) if request.prompt is not None
           else model.chat_prompt(request.messages))
    field_name = "prompt" if request.prompt is not None else "chat.messages"
    room = model.max_positions - len(ids)
    if room < 1:
        raise InvalidArgument(field_name, f"is {len(ids)} tokens; model {model.name} reads "
                                          f"at most {model.max_positions - 1} plus one to write")
    if request.max_tokens > room:
        raise InvalidArgument("max_tokens", f"the prompt is {len(ids)} tokens, so at most "
                                            f"{room} more fit the model's {model.max_positions}"
                                            f"-token context; got {request.max_tokens}")
    return ids


def choose(logits: npt.NDArray[np.float32], sampling: Sampling,
           rng: np.random.Generator, allowed: npt.NDArray[np.bool_]) -> int:
    """The next token: the likeliest at temperature 0, else a seeded draw."""
    if sampling.temperature == 0:
        return int(np.argmax(np.where(allowed, logits, -np.inf)))
    return sample(logits, allowed, sampling, rng)


def _held_back(text: str, stops: Sequence[str]) -> int:
    """How many trailing characters might be the start of a stop sequence."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest


async def complete(model: TextModel, request: TextRequest,
                   ) -> AsyncIterator[str | Completion]:
    """Yields text deltas as they are decoded, then exactly one Completion."""
    started = time.perf_counter()
    prompt = prompt_tokens(model, request)
    seed = request.seed if request.seed is not None else secrets.randbits(63)
    rng = np.random.default_rng(seed)
    allowed = np.ones(model.spec.vocab_size, np.bool_)
    produced: list[int] = []
    text = sent = ""
    reason = FinishReason.LENGTH
    with model.batcher.session():
        decoding = await model.start(prompt)
        while len(produced) < request.max_tokens:
            token = choose(decoding.logits, request.sampling, rng, allowed)
            if token in model.eos_token_ids:
                reason = FinishReason.STOP
                break
            produced.append(token)
            text = model.decode(produced)
            cut = min((i for i in (text.find(s) for s in request.stop) if i >= 0), default=-1)
            if cut >= 0:
                text, reason = text[:cut], FinishReason.STOP
                ready = len(text)
            else:
                # U+FFFD at the end: a character whose bytes are not all decoded yet.
                ready = len(text.rstrip("\ufffd"))
                ready -= _held_back(text[:ready], request.stop)
            if ready > len(sent):
                if not sent:
                    metrics.FIRST_EVENT_SECONDS.labels(model.name).observe(
                        time.perf_counter() - started)
                yield text[len(sent):ready]
                sent = text[:ready]
            if cut >= 0:
                break
            if len(produced) < request.max_tokens:
                await decoding.feed([token])
    # What was held back: a stop sequence's start that never completed.
    text = text.rstrip("\ufffd")
    if len(text) > len(sent):
        yield text[len(sent):]
    metrics.TOKENS.labels(model.batcher.backend.name, model.name).inc(len(produced))
    yield Completion(model.name, model.spec.version, seed, text, reason, len(prompt),
                     len(produced))
