"""The decoding constraint: which tokens may come next so a line has exactly its syllables.

The vocabulary is `lexicon.Lexicon`.

**Grammar of a line**: word (punctuation: ",")? word ... [,.!?]? newline, a mid-line
comma only after two words (since the line's start or the last comma) and only after a
word that could end a line (not "the," or "of,"). A next token is
allowed when some word that begins with it still fits: a word of s syllables fits r
remaining ones if s == r and it may end the line, or if r - s is at least the fewest
syllables of any word that may end the line (so the line can always be finished). The
newline comes exactly when the syllables are spent; a double newline ends a section.

**Ends of lines.** A line-ending word has a stressed vowel and is not an article,
conjunction, possessive or short preposition ("the", "and", "my", "of"). When the line
must rhyme, the ending word's rhyming part equals the target's and its spelling is none
of the group's earlier end words; common words only (KNOWN_WORDS) unless no
common word can finish the line. When it opens a rhyme, the ending word needs at least
`min_partners` rhymes in the vocabulary short enough for the partner line. If no word
can meet a rhyme (a one-syllable line whose target has no one-syllable rhymes), the line
keeps its syllable count and drops the rhyme; `LineState.rhyme_dropped` says so.

**Stress** is soft: `stress_scores` gives each word a score for where it would land,
+1 per stressed syllable on a strong note and -1 per unstressed one there, -/+0.25 for
stressed/unstressed syllables between beats, 0 on weak beats. The writer adds it to the
logits and to its re-ranking.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from services.generate.text.lyrics.lexicon import MAX_WORD_SYLLABLES, MAX_WORD_TOKENS, Lexicon
from services.generate.text.lyrics.phrases import Strength

# Score of a syllable by the strength of its note: (unstressed, stressed).
STRESS_TABLE: dict[Strength, tuple[float, float]] = {
    Strength.DOWNBEAT: (-1.0, 1.0), Strength.STRONG: (-1.0, 1.0),
    Strength.WEAK: (0.0, 0.0), Strength.OFFBEAT: (0.25, -0.25)}


@dataclass(frozen=True)
class LineSpec:
    """What one line must be."""

    syllables: int
    strengths: tuple[Strength, ...] | None = None   # one per syllable; None: no melody
    rhyme_with: tuple[str, ...] = ()   # earlier end words of its rhyme group (first = target)
    partner_syllables: int = 0         # >0: opens a rhyme for a later line this long
    min_partners: int = 3
    ends_section: bool = False


class LineTargets:
    """A line's per-word figures, computed once: which words may end it, stress scores."""

    def __init__(self, lexicon: Lexicon, spec: LineSpec) -> None:
        self.lexicon = lexicon
        self.spec = spec
        end_ok = lexicon.can_end.copy()
        self.rhyme_dropped = False
        if spec.rhyme_with:
            target = lexicon.rhyme_of(spec.rhyme_with[0])
            end_ok &= (lexicon.rhyme == target) & ~np.isin(lexicon.spelling_array,
                                                            list(spec.rhyme_with))
            if self._finishable(end_ok & lexicon.common):
                end_ok &= lexicon.common
        elif spec.partner_syllables > 0:
            end_ok &= lexicon.partners(spec.partner_syllables) >= spec.min_partners
        if not self._finishable(end_ok):
            self.rhyme_dropped = bool(spec.rhyme_with)
            end_ok = lexicon.can_end.copy()
            if not self._finishable(end_ok):
                end_ok = np.ones(len(lexicon), bool)
        self.end_ok = end_ok
        inline = end_ok & ~lexicon.line_start
        self.min_inline_end = (int(lexicon.syllables[inline].min()) if inline.any()
                               else spec.syllables + 1)
        self._fits: dict[tuple[int, bool], npt.NDArray[np.int64]] = {}
        self._scores: dict[int, npt.NDArray[np.float64]] = {}

    def _finishable(self, end_ok: npt.NDArray[np.bool_]) -> bool:
        lex, n = self.lexicon, self.spec.syllables
        inline = end_ok & ~lex.line_start
        whole = end_ok & lex.line_start & (lex.syllables == n)
        return bool(whole.any() or (inline.any() and lex.syllables[inline].min() < n))

    def fits(self, remaining: int, line_start: bool) -> npt.NDArray[np.int64]:
        """Rows of the words that may come next with `remaining` syllables left."""
        key = (remaining, line_start)
        if key not in self._fits:
            lex = self.lexicon
            form = lex.line_start if line_start else ~lex.line_start
            room = remaining - lex.syllables
            ok = form & (((room == 0) & self.end_ok) | (room >= self.min_inline_end))
            self._fits[key] = np.flatnonzero(ok)
        return self._fits[key]

    def stress_scores(self, position: int) -> npt.NDArray[np.float64]:
        """Each word's stress score if its first syllable is the line's `position`-th."""
        cached = self._scores.get(position)
        if cached is not None:
            return cached
        lex = self.lexicon
        scores = np.zeros(len(lex))
        strengths = self.spec.strengths or ()
        for j in range(min(MAX_WORD_SYLLABLES, len(strengths) - position)):
            unstressed, stressed = STRESS_TABLE[strengths[position + j]]
            present = lex.syllables > j
            scores += np.where(present, np.where(lex.stressed[:, j], stressed, unstressed), 0)
        self._scores[position] = scores
        return scores


@dataclass
class LineState:
    """Where one line's decoding stands; `allowed` and `advance` drive it token by token."""

    targets: LineTargets
    remaining: int
    words: list[int] = field(default_factory=list)        # lexicon rows written
    punctuation: list[str] = field(default_factory=list)  # after each word ("" or ",")
    prefix: list[int] = field(default_factory=list)       # tokens of the word in progress
    candidates: npt.NDArray[np.int64] = field(
        default_factory=lambda: np.zeros(0, np.int64))
    phase: str = "start"   # start | word | end | done
    since_comma: int = 0   # words since the line's start or its last comma

    @classmethod
    def begin(cls, targets: LineTargets) -> LineState:
        """The state before a line's first token."""
        return cls(targets, targets.spec.syllables)

    @property
    def rhyme_dropped(self) -> bool:
        """Whether the line could not meet its rhyme and only keeps its syllables."""
        return self.targets.rhyme_dropped

    def copy(self) -> LineState:
        """An independent copy (for another candidate)."""
        return LineState(self.targets, self.remaining, list(self.words),
                         list(self.punctuation), list(self.prefix), self.candidates,
                         self.phase, self.since_comma)

    @property
    def position(self) -> int:
        """Syllables written so far."""
        return self.targets.spec.syllables - self.remaining

    def _word_starts(self, remaining: int, line_start: bool) -> tuple[
            npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        rows = self.targets.fits(remaining, line_start)
        position = self.targets.spec.syllables - remaining
        return rows, self.targets.stress_scores(position)[rows]

    def allowed(self) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
        """The allowed next tokens, and each one's stress score (0 where not allowed)."""
        lex = self.targets.lexicon
        mask = np.zeros(lex.vocab_size, bool)
        bonus = np.zeros(lex.vocab_size)
        if self.phase == "done":
            return mask, bonus
        if self.phase == "end":
            mask[self._line_break()] = True
            return mask, bonus
        if self.phase == "start":
            self._allow_starts(mask, bonus, self.remaining, not self.words)
            return mask, bonus
        k = len(self.prefix)
        rows = self.candidates
        longer = rows[lex.n_tokens[rows] > k]
        if len(longer):
            scores = self.targets.stress_scores(self.position)[longer]
            np.maximum.at(bonus, lex.tokens[longer, k], scores)
            mask[lex.tokens[longer, k]] = True
        complete = self._complete()
        if complete is not None:
            left = self.remaining - int(lex.syllables[complete])
            if left == 0:
                mask[[*lex.end_punctuation, self._line_break()]] = True
            else:
                # A comma needs two words before it: "lights, at ease, a stark, cold" is
                # what the model writes when it may put one anywhere.
                if self.since_comma + 1 >= 2 and lex.can_end[complete]:
                    mask[lex.comma] = True
                self._allow_starts(mask, bonus, left, False)
        bonus[~mask] = 0.0
        return mask, bonus

    def _allow_starts(self, mask: npt.NDArray[np.bool_], bonus: npt.NDArray[np.float64],
                      remaining: int, line_start: bool) -> None:
        rows, scores = self._word_starts(remaining, line_start)
        first = self.targets.lexicon.tokens[rows, 0]
        best = np.full(len(mask), -np.inf)
        np.maximum.at(best, first, scores)
        bonus[first] = best[first]
        mask[first] = True

    def _complete(self) -> int | None:
        lex = self.targets.lexicon
        rows = self.candidates[lex.n_tokens[self.candidates] == len(self.prefix)]
        return int(rows[0]) if len(rows) else None

    def _line_break(self) -> int:
        lex = self.targets.lexicon
        return lex.section_break if self.targets.spec.ends_section else lex.newline

    def advance(self, token: int) -> None:
        """Takes the chosen token (one that `allowed` allowed)."""
        lex = self.targets.lexicon
        if self.phase == "end":
            self.phase = "done"
            return
        if self.phase == "word":
            k = len(self.prefix)
            rows = self.candidates
            going_on = rows[:0] if k >= MAX_WORD_TOKENS else rows[
                (lex.n_tokens[rows] > k) & (lex.tokens[rows, k] == token)]
            if len(going_on):
                self.candidates = going_on
                self.prefix.append(token)
                return
            complete = self._complete()
            if complete is None:
                raise ValueError(f"token {token} is not allowed here")
            self.words.append(complete)
            self.punctuation.append("")
            self.since_comma += 1
            self.remaining -= int(lex.syllables[complete])
            self.prefix = []
            if token == self._line_break() and self.remaining == 0:
                self.phase = "done"
                return
            if token == lex.comma or token in lex.end_punctuation:
                self.punctuation[-1] = lex.punctuation_of(token)
                self.phase = "end" if self.remaining == 0 else "start"
                self.since_comma = 0
                return
        rows = self.targets.fits(self.remaining, not self.words)
        rows = rows[lex.tokens[rows, 0] == token]
        if not len(rows):
            raise ValueError(f"token {token} starts no word that fits here")
        self.candidates = rows
        self.prefix = [token]
        self.phase = "word"

    def stress_score(self) -> float:
        """The stress score of the words written so far."""
        total, position = 0.0, 0
        for row in self.words:
            total += float(self.targets.stress_scores(position)[row])
            position += int(self.targets.lexicon.syllables[row])
        return total
