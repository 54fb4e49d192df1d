"""The lyrics loop: the model proposes each line, the constraint and a re-ranking decide.

For each planned line the writer forks the running Decoding into K candidates, samples
each token by token under the line's constraint (logits plus the stress bonus, at the
request's temperature, top-p 0.95), and keeps the candidate with the best score:

    mean log-probability per token (the model's own, unconstrained distribution)
    + stress_weight * stress score per syllable
    + rhyme_weight * log(1 + rhymes of the end word)   (only for a line that opens a rhyme)
    - repeat_penalty                                   (a line already written)
    - Penalties.ranking * repeated words in the line - Penalties.ranking_bigram * word
      pairs already sung in an earlier line

Sampling also subtracts repetition penalties from the first tokens of words already used
in the line (and, less, in the song): a 135M model otherwise loops. The winner's
Decoding, which has read the line and its line break, goes on to the next line, so the
model always reads its own chosen text. The K candidates step together, so
the batcher makes one backend call per token for all of them. Each candidate draws from
its own generator, `numpy.random.default_rng([seed, line, k])`: the same request gives
the same lyrics.

Rhyme planning is greedy and local: a line that opens a rhyme must end on a word with
enough rhymes short enough for its partner (the constraint), and the re-ranking prefers
words with many; the partner line then must end on one of them.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import itertools
import logging
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cadenza.kit.errors import InvalidArgument
from services.generate.inference.sampling import Sampling, sample
from services.generate.text.lyrics.constrained import LineSpec, LineState, LineTargets
from services.generate.text.lyrics.domain import (
    LyricLine,
    Lyrics,
    LyricsRequest,
    Plan,
    PlannedLine,
    plan,
)
from services.generate.text.lyrics.karaoke import lyric_events, write_karaoke
from services.generate.text.lyrics.lexicon import Lexicon, lexicon_for
from services.generate.text.lyrics.prompt import lyrics_messages
from services.generate.text.lyrics.prosody import hyphenate
from services.generate.text.model import Decoding, TextModel

logger = logging.getLogger(__name__)
TOP_P = 0.95


@dataclass(frozen=True)
class Penalties:
    """Logit penalties against the small model's loops ("love, love, love, love")."""

    in_line: float = 2.0            # per earlier use of a word in the same line
    in_line_function: float = 0.5   # the same for function words ("the", "a", "and")
    in_song: float = 0.8            # per earlier use in the song (not function words)
    in_song_max: float = 2.4
    ranking: float = 0.5            # re-ranking: per repeated non-function word in a line
    ranking_bigram: float = 0.3     # re-ranking: per word pair already in an earlier line


@dataclass
class _Candidate:
    state: LineState
    decoding: Decoding
    tokens: list[int]
    logprob: float


@dataclass
class _Written:
    line: LyricLine
    tokens: list[int]
    spellings: tuple[str, ...]

    @property
    def end_word(self) -> str:
        return self.spellings[-1]


PRIOR_PROMPT = ("Words used in songs and poems: love, heart, night, light, dream, river, home, "
                "fire, rain, soul,")


class LyricsWriter:
    """Writes lyrics with one text model; `create` it at start-up (it takes ~2 s)."""

    @classmethod
    async def create(cls, model: TextModel, *, rhyme_weight: float = 0.03,
                     repeat_penalty: float = 2.0,
                     penalties: Penalties | None = None) -> LyricsWriter:
        """A writer whose lexicon knows which words the model finds common in songs.

        One model call: the next-token scores after PRIOR_PROMPT rank the vocabulary's
        words (`Lexicon.rank_words`); the writer's lexicon is its own copy.
        """
        writer = cls(model, rhyme_weight=rhyme_weight, repeat_penalty=repeat_penalty,
                     penalties=penalties)
        decoding = await model.start(model.encode(PRIOR_PROMPT))
        writer.lexicon = copy.copy(writer.lexicon)
        writer.lexicon.rank_words(decoding.logits)
        return writer

    def __init__(self, model: TextModel, *, rhyme_weight: float = 0.03,
                 repeat_penalty: float = 2.0, penalties: Penalties | None = None) -> None:
        self.model = model
        self.lexicon: Lexicon = lexicon_for(model.tokenizer, model.spec.vocab_size)
        self.rhyme_weight = rhyme_weight
        self.repeat_penalty = repeat_penalty
        self.penalties = penalties or Penalties()

    async def write(self, request: LyricsRequest) -> Lyrics:
        """Lyrics for the request; InvalidArgument names a bad field."""
        laid_out = plan(request)
        lines = laid_out.lines
        mean_syllables = round(sum(line.syllables for line in lines) / len(lines))
        prompt = self.model.chat_prompt(lyrics_messages(
            request.theme, len(lines), request.rhyme_scheme, mean_syllables))
        needed = len(prompt) + sum(2 * line.syllables + 4 for line in lines)
        if needed > self.model.max_positions:
            field = "melody_midi" if request.melody_midi is not None else "sections"
            raise InvalidArgument(field, f"ask for about {needed} tokens; the model reads "
                                         f"{self.model.max_positions}: write fewer lines")
        decoding = await self.model.start(prompt)
        written: list[_Written] = []
        logprob, n_tokens = 0.0, 0
        for line in lines:
            last = line.index == len(lines) - 1
            if line.repeat_of is not None:
                source = written[line.repeat_of]
                tokens = [*source.tokens[:-1], self._line_break(line)]
                await decoding.feed(tokens if not last else tokens[:-1])
                written.append(_Written(_with_notes(source.line, line), tokens,
                                        source.spellings))
                continue
            best = await self._best_line(decoding, line, written, request, feed_last=not last)
            decoding = best.decoding
            logprob, n_tokens = logprob + best.logprob, n_tokens + len(best.tokens)
            written.append(self._record(best, line))
        lyrics = self._lyrics(laid_out, [w.line for w in written])
        return dataclasses.replace(lyrics, mean_logprob=logprob / max(n_tokens, 1))

    def _line_break(self, line: PlannedLine) -> int:
        return self.lexicon.section_break if line.ends_section else self.lexicon.newline

    def _spec(self, line: PlannedLine, written: list[_Written]) -> LineSpec:
        return LineSpec(syllables=line.syllables, strengths=line.strengths,
                        rhyme_with=tuple(written[i].end_word for i in line.earlier),
                        partner_syllables=line.partner_syllables,
                        min_partners=max(3, line.later_partners + 2),
                        ends_section=line.ends_section)

    async def _best_line(self, decoding: Decoding, line: PlannedLine, written: list[_Written],
                         request: LyricsRequest, *, feed_last: bool) -> _Candidate:
        targets = LineTargets(self.lexicon, self._spec(line, written))
        song_penalty = self._song_penalty(written)
        sampling = Sampling(temperature=request.temperature, top_p=TOP_P)
        weight = request.stress_weight if line.strengths is not None else 0.0
        candidates = await asyncio.gather(*(
            self._sample_line(decoding.fork(), LineState.begin(targets), sampling,
                              np.random.default_rng([request.seed, line.index, k]), weight,
                              song_penalty, feed_last)
            for k in range(request.candidates)))
        earlier = {w.spellings for w in written}
        old_pairs = {pair for w in written for pair in itertools.pairwise(w.spellings)}
        partners = (self.lexicon.partners(line.partner_syllables)
                    if line.partner_syllables else None)

        def score(candidate: _Candidate) -> float:
            state = candidate.state
            value = candidate.logprob / len(candidate.tokens)
            value += weight * state.stress_score() / line.syllables
            if partners is not None:
                value += self.rhyme_weight * math.log1p(int(partners[state.words[-1]]))
            if tuple(self.lexicon.spellings[r] for r in state.words) in earlier:
                value -= self.repeat_penalty
            content = [r for r in state.words if not self.lexicon.function_word[r]]
            spellings = [self.lexicon.spellings[r] for r in content]
            value -= self.penalties.ranking * (len(spellings) - len(set(spellings)))
            words = [self.lexicon.spellings[r] for r in state.words]
            value -= self.penalties.ranking_bigram * sum(
                pair in old_pairs for pair in itertools.pairwise(words))
            return value

        scores = [score(c) for c in candidates]
        return candidates[int(np.argmax(scores))]

    def _song_penalty(self, written: list[_Written]) -> npt.NDArray[np.float64]:
        counts: dict[str, int] = {}
        for w in written:
            for spelling in w.spellings:
                counts[spelling] = counts.get(spelling, 0) + 1
        penalty = np.zeros(self.lexicon.vocab_size)
        for spelling, count in counts.items():
            rows = self.lexicon.rows_by_spelling.get(spelling, [])
            if rows and not self.lexicon.function_word[rows[0]]:
                value = min(self.penalties.in_song * count, self.penalties.in_song_max)
                penalty[self.lexicon.tokens[rows, 0]] += value
        return penalty

    def _line_penalty(self, state: LineState) -> npt.NDArray[np.float64]:
        penalty = np.zeros(self.lexicon.vocab_size)
        lex = self.lexicon
        for row in state.words:
            rows = lex.rows_by_spelling[lex.spellings[row]]
            value = (self.penalties.in_line_function if lex.function_word[row]
                     else self.penalties.in_line)
            penalty[lex.tokens[rows, 0]] += value
        return penalty

    async def _sample_line(self, decoding: Decoding, state: LineState, sampling: Sampling,
                           rng: np.random.Generator, stress_weight: float,
                           song_penalty: npt.NDArray[np.float64],
                           feed_last: bool) -> _Candidate:
        tokens: list[int] = []
        logprob = 0.0
        penalty, n_words = song_penalty, 0
        with self.model.batcher.session():
            while True:
                mask, bonus = state.allowed()
                logits = decoding.logits
                if len(state.words) != n_words:
                    n_words = len(state.words)
                    penalty = song_penalty + self._line_penalty(state)
                # The penalty sits on words' first tokens, so it leaves continuations,
                # punctuation and line breaks alone.
                token = sample(logits + stress_weight * bonus - penalty, mask, sampling, rng)
                logprob += float(logits[token]) - _logsumexp(logits)
                tokens.append(token)
                state.advance(token)
                if state.phase == "done" and not feed_last:
                    break
                await decoding.feed([token])
                if state.phase == "done":
                    break
        return _Candidate(state, decoding, tokens, logprob)

    def _record(self, candidate: _Candidate, line: PlannedLine) -> _Written:
        lex, state = self.lexicon, candidate.state
        words = []
        for row, mark in zip(state.words, state.punctuation, strict=True):
            pieces = hyphenate(lex.forms[row], int(lex.syllables[row]))
            words.append((*pieces[:-1], pieces[-1] + mark))
        syllables = tuple(piece for word in words for piece in word)
        lyric = LyricLine(text=_text(lex, state), syllables=syllables, words=tuple(words),
                          section=line.section, rhyme=line.letter, notes=line.notes,
                          rhyme_dropped=state.rhyme_dropped)
        if state.rhyme_dropped:
            logger.info("line %d keeps its %d syllables but no word rhymes with %s",
                        line.index, line.syllables, state.targets.spec.rhyme_with[0])
        return _Written(lyric, candidate.tokens, tuple(lex.spellings[r] for r in state.words))

    def _lyrics(self, laid_out: Plan, lines: list[LyricLine]) -> Lyrics:
        parts: list[str] = []
        for planned, line in zip(laid_out.lines, lines, strict=True):
            parts.append(line.text + ("\n\n" if planned.ends_section else "\n"))
        text = "".join(parts).strip("\n")
        midi = b""
        if laid_out.melody is not None:
            midi = write_karaoke(laid_out.melody, lyric_events([line.words for line in lines]))
        return Lyrics(tuple(lines), text, midi)


def _text(lexicon: Lexicon, state: LineState) -> str:
    return " ".join(lexicon.forms[row] + mark
                    for row, mark in zip(state.words, state.punctuation, strict=True))


def _with_notes(line: LyricLine, planned: PlannedLine) -> LyricLine:
    return LyricLine(line.text, line.syllables, line.words, planned.section, planned.letter,
                     planned.notes, line.rhyme_dropped)


def _logsumexp(logits: npt.NDArray[np.float32]) -> float:
    top = float(logits.max())
    return top + math.log(float(np.exp(logits.astype(np.float64) - top).sum()))


async def write_lyrics(model: TextModel, request: LyricsRequest) -> Lyrics:
    """Lyrics for the request with `model` (a server keeps one LyricsWriter instead)."""
    writer = await LyricsWriter.create(model)
    return await writer.write(request)
