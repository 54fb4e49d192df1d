"""The chat that asks the model for song lyrics: a songwriter system turn and the request.

The constrained writer and the unconstrained baseline of the eval send the same chat,
so the eval compares decoding, not prompts. The chat is zero-shot (FEW_SHOT = False):
with the worked example below (original lines, AABB, eight syllables each) SmolLM2-135M
copied the example word for word whenever its lines fitted the melody, so the example
is kept only to try again with a bigger model.
"""

from __future__ import annotations

from services.generate.text.model import Message

FEW_SHOT = False
SYSTEM = ("You are a songwriter. You write simple, singable song lyrics in plain English: "
          "short lines, concrete images, one line per line of music.")
EXAMPLE_REQUEST = "Write 4 lines of a song about a long road home. Rhyme scheme: AABB."
EXAMPLE_LYRICS = ("I walked the road through rain and snow\n"
                  "The lights of town were burning low\n"
                  "My mother waiting by the door\n"
                  "I will not leave her any more")


def lyrics_messages(theme: str, n_lines: int, scheme: str, syllables: int | None) -> list[
        Message]:
    """The chat for `n_lines` lines about `theme` (about `syllables` syllables each)."""
    shape = f" Each line has about {syllables} syllables." if syllables else ""
    request = (f"Write {n_lines} lines of a song about {theme.strip()}. "
               f"Rhyme scheme: {scheme}.{shape}")
    if not FEW_SHOT:
        return [Message("system", SYSTEM), Message("user", request)]
    return [Message("system", SYSTEM), Message("user", EXAMPLE_REQUEST),
            Message("assistant", EXAMPLE_LYRICS), Message("user", request)]


def prompt_text(messages: list[Message]) -> str:
    """The words of the chat, for measuring how much of it a song copies."""
    return "\n".join(m.content for m in messages)
