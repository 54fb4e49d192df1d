"""A served text model: its tokenizer, its chat template, and decoding through the batcher.

Everything that writes text (free generation, lyrics, titles) drives the model through a
Decoding: feed tokens, read the next-token logits. A Decoding is cheap to fork (its cache
arrays are never written in place), so a caller can explore alternatives from one
prefix without recomputing it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer

from cadenza.kit.errors import InvalidArgument
from services.generate.inference.backend import ModelSpec, TextSpec
from services.generate.inference.batcher import Cache, DecodeBatcher

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Message:
    """One chat message."""

    role: str      # system | user | assistant
    content: str


class Decoding:
    """One sequence being decoded: its position, cache and the logits of its next token."""

    __slots__ = ("_batcher", "cache", "logits", "position", "tokens")

    def __init__(self, batcher: DecodeBatcher, tokens: list[int], cache: Cache,
                 logits: npt.NDArray[np.float32]) -> None:
        self._batcher = batcher
        self.tokens = tokens          # every token fed so far, prompt included
        self.cache = cache
        self.logits = logits          # [V]: the distribution of the next token
        self.position = len(tokens)

    async def feed(self, tokens: Sequence[int]) -> None:
        """Appends tokens; afterwards `logits` is the distribution after the last of them."""
        if not tokens:
            return
        self.logits, self.cache = await self._batcher.step(list(tokens), self.position,
                                                           self.cache)
        self.tokens = [*self.tokens, *tokens]
        self.position += len(tokens)

    def fork(self) -> Decoding:
        """An independent copy at the same point (shares the read-only cache arrays)."""
        return Decoding(self._batcher, list(self.tokens), self.cache, self.logits)


class TextModel:
    """A loaded text model: tokenizer, chat template and a batcher to decode with."""

    def __init__(self, spec: ModelSpec, batcher: DecodeBatcher) -> None:
        if spec.text is None:
            raise ValueError(f"model {spec.name} is a {spec.modality} model, not a text one")
        self.spec = spec
        self.text: TextSpec = spec.text
        self.batcher = batcher
        self.tokenizer = Tokenizer.from_file(str(self.text.tokenizer_file))
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        self._template = env.from_string(self.text.chat_template)
        self.eos_token_ids = frozenset(self.text.eos_token_ids)

    @property
    def name(self) -> str:
        """The model's name, as ListModels shows it."""
        return self.spec.name

    @property
    def max_positions(self) -> int:
        """The longest sequence (prompt and completion) the model reads."""
        return self.spec.max_positions

    def encode(self, text: str) -> list[int]:
        """Token ids of plain text (special-token strings in it stay plain text)."""
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: Sequence[int]) -> str:
        """The text of token ids, special tokens dropped."""
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=True))

    def chat_prompt(self, messages: Sequence[Message]) -> list[int]:
        """The chat rendered with the model's own template, ready for the assistant's turn."""
        for i, message in enumerate(messages):
            if message.role not in ROLES:
                raise InvalidArgument(f"messages[{i}].role",
                                      f"unknown role; use one of {', '.join(ROLES)}")
        text = self._template.render(
            messages=[{"role": m.role, "content": m.content} for m in messages],
            add_generation_prompt=True, bos_token="", eos_token="")
        # The template writes the special tokens as text; encode them as the specials.
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)

    async def start(self, prompt: Sequence[int]) -> Decoding:
        """Reads the prompt in one call; the Decoding's logits are the first token's."""
        if not prompt:
            raise InvalidArgument("prompt", "is empty")
        decoding = Decoding(self.batcher, [], self.batcher.empty_cache(),
                            np.zeros(self.spec.vocab_size, np.float32))
        await decoding.feed(prompt)
        return decoding
