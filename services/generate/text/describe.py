"""Titles and a description of a piece, written by the language model from its facts.

Candidates are sampled together (they share batched decode steps), cleaned, and checked
against the facts (grounding.problems); the first grounded one, in seed order, is kept.
When no candidate is grounded the description falls back to one written from the facts
alone, so a served description never contradicts the measurements.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from cadenza.kit.errors import InvalidArgument
from services.generate.inference.sampling import Sampling
from services.generate.text.completion import Completion, TextRequest, complete
from services.generate.text.facts import MusicFacts
from services.generate.text.grounding import problems
from services.generate.text.model import Message, TextModel

DEFAULT_TITLES, MAX_TITLES = 3, 10
DESCRIPTION_CANDIDATES = 4
_SYSTEM = ("You write short, accurate catalog copy for music. Use only the facts given; "
           "never invent a key, tempo or instrument.")


@dataclass(frozen=True)
class Description:
    """What DescribeMusic returns."""

    titles: tuple[str, ...]
    description: str
    grounded_by_model: bool     # False: the fallback written from the facts
    facts: MusicFacts


def check_title_count(count: int) -> int:
    """0 means the default; otherwise 1..MAX_TITLES."""
    if count == 0:
        return DEFAULT_TITLES
    if not 1 <= count <= MAX_TITLES:
        raise InvalidArgument("title_count", f"must be 1-{MAX_TITLES} (0 = {DEFAULT_TITLES}), "
                                             f"got {count}")
    return count


def _facts_block(facts: MusicFacts) -> str:
    return "\n".join(f"- {line}" for line in facts.lines()) or "- (no facts known)"


async def _sample(model: TextModel, prompt: str, n: int, max_tokens: int, temperature: float,
                  seed: int, stop: tuple[str, ...] = ()) -> list[Completion]:
    requests = [TextRequest(messages=(Message("system", _SYSTEM), Message("user", prompt)),
                            max_tokens=max_tokens, stop=stop, seed=seed + i,
                            sampling=Sampling(temperature=temperature, top_p=0.95))
                for i in range(n)]

    async def one(request: TextRequest) -> Completion:
        result = None
        async for item in complete(model, request):
            if isinstance(item, Completion):
                result = item
        assert result is not None
        return result

    return list(await asyncio.gather(*(one(r) for r in requests)))


def clean_title(text: str) -> str:
    """The first line without quotes, a "Title:" label, numbering or end punctuation."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    line = re.sub(r"^(title\s*:\s*|\d+[.)]\s*|[-*]\s*)", "", line, flags=re.IGNORECASE)
    line = line.strip().strip("\"'“”*").strip().rstrip(".!")
    return line if 1 <= len(line.split()) <= 8 and len(line) <= 60 else ""


def fallback_description(facts: MusicFacts) -> str:
    """A description from the facts alone: what is known, said plainly."""
    parts = [facts.tempo_word, "piece"] if facts.tempo_word else ["piece"]
    text = "A " + " ".join(parts)
    if facts.key:
        text += f" in {facts.key} {facts.mode}".rstrip()
    if facts.instruments:
        text += " for " + ", ".join(facts.instruments)
    text += "."
    if facts.loudness_word and facts.brightness_word:
        text += f" Its sound is {facts.loudness_word} and {facts.brightness_word}."
    if facts.artist:
        text += f" By {facts.artist}."
    return text


async def describe(model: TextModel, facts: MusicFacts, title_count: int,
                   seed: int) -> Description:
    """N grounded titles and one grounded paragraph about the piece."""
    block = _facts_block(facts)
    title_prompt = (f"Facts about a piece of music:\n{block}\n\nSuggest one new, evocative "
                    "title for it, two to five words. Answer with the title only.")
    description_prompt = (f"Facts about a piece of music:\n{block}\n\nWrite two sentences "
                          "describing this piece for a music catalog, using only these facts.")
    titles: list[str] = []
    attempt = 0
    while len(titles) < title_count and attempt < 3:
        batch = await _sample(model, title_prompt, 2 * title_count, 16, 0.9,
                              seed + 1000 * attempt, stop=("\n",))
        for completion in batch:
            title = clean_title(completion.text)
            if (title and title.lower() not in {t.lower() for t in titles}
                    and not problems(title, facts) and len(titles) < title_count):
                titles.append(title)
        attempt += 1
    candidates = await _sample(model, description_prompt, DESCRIPTION_CANDIDATES, 96, 0.7,
                               seed + 7)
    grounded = [c.text.strip() for c in candidates
                if c.text.strip() and c.finish_reason.value == "stop"
                and not problems(c.text, facts)]
    if grounded:
        return Description(tuple(titles), grounded[0], True, facts)
    return Description(tuple(titles), fallback_description(facts), False, facts)
