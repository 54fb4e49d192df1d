"""The decoding constraint: which tokens may come next so a line has exactly its syllables.

**Vocabulary.** The decoder writes only words it can count: every vocab entry "Ġword"
(a space and a lowercase alphabetic word, plus "ĠI") that CMUdict knows, and a fixed
list of contractions ("don't", "I'm"). A word is the token sequence the tokenizer itself
gives for it, so the model reads text it could have written: " don't" is two tokens
("Ġdon", "'t"), and the line-opening form is the capitalised word without a space
("Love", "Don't"), at most three tokens. Words without a vowel letter ("mr"), single
letters other than "a", "I" and "o", and words of more than 8 syllables are left out.
The whole table is built once per tokenizer (about 1 s) into arrays over words.

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

import re
import weakref
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from services.generate.text.lyrics.phrases import Strength
from services.generate.text.lyrics.prosody import pronounce

MAX_WORD_SYLLABLES = 8
MAX_WORD_TOKENS = 3
CONTRACTIONS = (
    "don't", "can't", "won't", "i'm", "i'll", "i've", "i'd", "it's", "you're", "you'll",
    "you've", "we're", "we'll", "we've", "they're", "they'll", "there's", "that's", "let's",
    "what's", "he's", "she's", "isn't", "wasn't", "didn't", "doesn't", "couldn't",
    "wouldn't", "aren't", "weren't", "haven't", "here's", "where's")
# Words of one or two letters the vocabulary keeps (CMUdict also has "ai", "ow", "ba"...).
SHORT_WORDS = frozenset({
    "a", "i", "o", "ah", "am", "an", "as", "at", "be", "by", "do", "go", "he", "if", "in",
    "is", "it", "me", "my", "no", "of", "oh", "on", "or", "so", "to", "up", "us", "we", "ye"})
# Single tokens with a lower id than this count as common words (byte-level BPE numbers
# tokens in merge order, roughly by frequency); a line that opens a rhyme must end on a
# word with enough common rhymes, so its partner is not forced to "fridge" or "midge".
COMMON_TOKEN_ID = 20_000
# With a model at hand (`Lexicon.rank_words`), the common words are instead the ones the
# model finds likeliest in a list of "words used in songs and poems" (this many): that
# also drops BPE fragments that CMUdict happens to list ("wat", "moll").
KNOWN_WORDS = 6000
# Function words: repeating them in a line is normal, repeating other words is not.
FUNCTION_WORDS = frozenset({
    "a", "an", "the", "and", "or", "but", "of", "to", "in", "on", "at", "by", "for", "with",
    "from", "as", "is", "are", "was", "be", "i", "you", "we", "he", "she", "it", "they",
    "me", "my", "your", "our", "his", "her", "their", "that", "this", "so", "no", "not"})
NOT_AT_LINE_END = frozenset({
    "the", "a", "an", "and", "or", "but", "nor", "of", "to", "my", "your", "our", "their",
    "its", "his", "with", "from", "at", "for", "by", "as", "if", "than", "into", "onto",
    "i", "that's", "it's", "i'm", "i'll", "i've", "i'd"})
END_PUNCTUATION = (",", ".", "!", "?")
# Score of a syllable by the strength of its note: (unstressed, stressed).
STRESS_TABLE: dict[Strength, tuple[float, float]] = {
    Strength.DOWNBEAT: (-1.0, 1.0), Strength.STRONG: (-1.0, 1.0),
    Strength.WEAK: (0.0, 0.0), Strength.OFFBEAT: (0.25, -0.25)}
_SPELLING = re.compile(r"[a-z]+")


def _display(spelling: str) -> str:
    """The inline spelling: "I" and its contractions capitalised, others lowercase."""
    return "I" + spelling[1:] if spelling == "i" or spelling.startswith("i'") else spelling


class Lexicon:
    """Every word the decoder may write, as token sequences, in arrays over words."""

    def __init__(self, tokenizer: Tokenizer, vocab_size: int) -> None:
        self.vocab_size = vocab_size
        spellings = sorted(self._vocab_spellings(tokenizer)
                           | {c for c in CONTRACTIONS if pronounce(c) is not None})
        rows: list[tuple[str, str, tuple[int, ...], bool]] = []
        for line_start in (False, True):
            forms = [(_display(s)[0].upper() + _display(s)[1:]) if line_start
                     else " " + _display(s) for s in spellings]
            encodings = tokenizer.encode_batch(forms, add_special_tokens=False)
            for spelling, form, encoding in zip(spellings, forms, encodings, strict=True):
                ids = tuple(int(i) for i in encoding.ids)
                pieces = encoding.tokens
                if (0 < len(ids) <= MAX_WORD_TOKENS and all(i < vocab_size for i in ids)
                        and not any(p.startswith("Ġ") for p in pieces[1:])
                        and tokenizer.decode(list(ids)) == form):
                    rows.append((spelling, form.strip(), ids, line_start))
        self.spellings: list[str] = []
        self.forms: list[str] = []
        n = len(rows)
        self.tokens = np.full((n, MAX_WORD_TOKENS), -1, np.int64)
        self.n_tokens = np.zeros(n, np.int64)
        self.syllables = np.zeros(n, np.int64)
        self.stressed = np.zeros((n, MAX_WORD_SYLLABLES), bool)
        self.rhyme = np.zeros(n, np.int64)
        self.line_start = np.zeros(n, bool)
        self.can_end = np.zeros(n, bool)
        self.common = np.zeros(n, bool)
        self.rhyme_ids: dict[str, int] = {}
        for row, (spelling, form, ids, line_start) in enumerate(rows):
            found = pronounce(spelling)
            assert found is not None  # _vocab_spellings and CONTRACTIONS are checked
            self.spellings.append(spelling)
            self.forms.append(form)
            self.tokens[row, :len(ids)] = ids
            self.n_tokens[row] = len(ids)
            self.syllables[row] = found.syllables
            self.stressed[row, :found.syllables] = found.stresses
            self.rhyme[row] = self.rhyme_ids.setdefault(found.rhyme, len(self.rhyme_ids))
            self.line_start[row] = line_start
            self.can_end[row] = found.has_stress and spelling not in NOT_AT_LINE_END
            self.common[row] = (len(ids) == 1 and ids[0] < COMMON_TOKEN_ID) or (
                spelling in CONTRACTIONS)
        self.spelling_array = np.asarray(self.spellings)
        self.function_word = np.isin(self.spelling_array, list(FUNCTION_WORDS))
        self.rows_by_spelling: dict[str, list[int]] = {}
        for row, spelling in enumerate(self.spellings):
            self.rows_by_spelling.setdefault(spelling, []).append(row)
        self.spelling_index = {s: i for i, s in enumerate(self.spellings)
                               if not self.line_start[i]}
        self._count_rhymes()
        self.newline = self._single(tokenizer, "\n")
        self.section_break = self._single(tokenizer, "\n\n", fallback=self.newline)
        self.comma = self._single(tokenizer, ",")
        self.end_punctuation = tuple(self._single(tokenizer, p) for p in END_PUNCTUATION)

    @staticmethod
    def _vocab_spellings(tokenizer: Tokenizer) -> set[str]:
        found = set()
        for piece in tokenizer.get_vocab():
            if not piece.startswith("Ġ"):
                continue
            word = piece[1:]
            spelling = "i" if word == "I" else word
            if not _SPELLING.fullmatch(spelling) or not re.search("[aeiouy]", spelling):
                continue
            if len(spelling) <= 2 and spelling not in SHORT_WORDS:
                continue
            pronunciation = pronounce(spelling)
            if pronunciation is not None and pronunciation.syllables <= MAX_WORD_SYLLABLES:
                found.add(spelling)
        return found

    @staticmethod
    def _single(tokenizer: Tokenizer, text: str, fallback: int | None = None) -> int:
        ids = tokenizer.encode(text, add_special_tokens=False).ids
        if len(ids) != 1:
            if fallback is not None:
                return fallback
            raise ValueError(f"the tokenizer has no single token for {text!r}")
        return int(ids[0])

    def _count_rhymes(self) -> None:
        # Distinct common inline line-ending spellings per rhyme and syllable count,
        # cumulative over syllables.
        counts = np.zeros((len(self.rhyme_ids), MAX_WORD_SYLLABLES + 1), np.int64)
        ends = self.can_end & ~self.line_start & self.common
        np.add.at(counts, (self.rhyme[ends], self.syllables[ends]), 1)
        self.rhyme_counts = np.cumsum(counts, axis=1)

    def rank_words(self, prior: npt.NDArray[np.floating], known: int = KNOWN_WORDS) -> None:
        """Replaces the token-id guess of which words are common by a model's judgement.

        `prior` is a next-token score per vocab id (the writer asks its model for "words
        used in songs and poems"); the `known` best single-token inline words, and every
        contraction, become the common ones, and every form of a spelling follows it.
        """
        single = np.flatnonzero(~self.line_start & (self.n_tokens == 1))
        order = single[np.argsort(-prior[self.tokens[single, 0]], kind="stable")]
        chosen = {self.spellings[row] for row in order[:known]} | set(CONTRACTIONS)
        self.common = np.isin(self.spelling_array, list(chosen))
        self._count_rhymes()

    def __len__(self) -> int:
        return len(self.spellings)

    def punctuation_of(self, token: int) -> str:
        """The mark of a punctuation token ("," "." "!" "?")."""
        marks = dict(zip(self.end_punctuation, END_PUNCTUATION, strict=True))
        return "," if token == self.comma else marks[token]

    def rhyme_of(self, spelling: str) -> int | None:
        """The rhyme id of a word by its first pronunciation; None if no word has it."""
        found = pronounce(spelling)
        return None if found is None else self.rhyme_ids.get(found.rhyme)

    def partners(self, max_syllables: int) -> npt.NDArray[np.int64]:
        """For each word: how many other common line-ending words rhyme with it and have at
        most `max_syllables` syllables."""
        cap = min(max_syllables, MAX_WORD_SYLLABLES)
        total = self.rhyme_counts[self.rhyme, cap]
        own = (self.can_end & self.common & (self.syllables <= cap)).astype(np.int64)
        result: npt.NDArray[np.int64] = total - own
        return result


_CACHE: weakref.WeakKeyDictionary[Tokenizer, Lexicon] = weakref.WeakKeyDictionary()


def lexicon_for(tokenizer: Tokenizer, vocab_size: int) -> Lexicon:
    """The tokenizer's Lexicon, built on first use and kept while the tokenizer lives."""
    lexicon = _CACHE.get(tokenizer)
    if lexicon is None or lexicon.vocab_size != vocab_size:
        lexicon = Lexicon(tokenizer, vocab_size)
        _CACHE[tokenizer] = lexicon
    return lexicon


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
