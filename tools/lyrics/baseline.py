"""The unconstrained baseline: the same model and chat, sampled freely, lines as they come.

Tokens are drawn from the full vocabulary at the same temperature and top-p as the
constrained writer, from `numpy.random.default_rng([seed, 1_000_003])`, until the
end-of-turn token or a budget of 24 tokens per line. The reply is split at newlines;
blank lines and lines without a letter (or that look like headings: "Verse 1:") are
dropped, and the list is cut or padded with empty lines to the number of phrases.
"""

from __future__ import annotations

import re

import numpy as np

from services.generate.inference.sampling import Sampling, sample
from services.generate.text.lyrics.prompt import lyrics_messages
from services.generate.text.lyrics.writer import TOP_P
from services.generate.text.model import TextModel

TOKENS_PER_LINE = 24
_HEADING = re.compile(r"^\W*(verse|chorus|bridge|title|song|lyrics)\b[^a-z]*:?\W*$|:$",
                      re.IGNORECASE)


async def write_unconstrained(model: TextModel, theme: str, scheme: str, n_lines: int,
                              mean_syllables: int, *, seed: int,
                              temperature: float) -> list[str]:
    """`n_lines` lines from the model's free reply to the lyrics chat."""
    prompt = model.chat_prompt(lyrics_messages(theme, n_lines, scheme, mean_syllables))
    decoding = await model.start(prompt)
    rng = np.random.default_rng([seed, 1_000_003])
    sampling = Sampling(temperature=temperature, top_p=TOP_P)
    allowed = np.ones(model.spec.vocab_size, bool)
    tokens: list[int] = []
    for _ in range(TOKENS_PER_LINE * n_lines):
        token = sample(decoding.logits, allowed, sampling, rng)
        if token in model.eos_token_ids:
            break
        tokens.append(token)
        if model.decode(tokens).count("\n") >= n_lines + 2:
            break
        await decoding.feed([token])
    return take_lines(model.decode(tokens), n_lines)


def take_lines(reply: str, n_lines: int) -> list[str]:
    """The reply's lyric lines, cut or padded to `n_lines`."""
    lines = [line.strip() for line in reply.splitlines()]
    lines = [line for line in lines
             if re.search("[A-Za-z]", line) and not _HEADING.search(line)]
    return (lines + [""] * n_lines)[:n_lines]
