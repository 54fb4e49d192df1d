"""The words the constrained decoder may write, as token sequences, in arrays over words.

The decoder writes only words it can count: every vocab entry "Ġword" (a space and a
lowercase alphabetic word, plus "ĠI") that CMUdict knows, and a fixed list of
contractions ("don't", "I'm"). A word is the token sequence the tokenizer itself gives
for it, so the model reads text it could have written: " don't" is two tokens ("Ġdon",
"'t"), and the line-opening form is the capitalised word without a space ("Love",
"Don't"), at most three tokens. Words without a vowel letter ("mr"), words of one or
two letters outside SHORT_WORDS ("ai") and words of more than 8 syllables are left out.
The whole table is built once per tokenizer (about 1 s) into arrays over words.

Each word also carries its syllables, stress pattern and rhyme (CMUdict), whether it may
end a line, and whether it is *common* (a rhyme partner worth counting).
"""

from __future__ import annotations

import re
import weakref

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

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
    "me", "my", "your", "our", "his", "her", "their", "that", "this"})
NOT_AT_LINE_END = frozenset({
    "the", "a", "an", "and", "or", "but", "nor", "of", "to", "my", "your", "our", "their",
    "its", "his", "with", "from", "at", "for", "by", "as", "if", "than", "into", "onto",
    "i", "that's", "it's", "i'm", "i'll", "i've", "i'd"})
END_PUNCTUATION = (",", ".", "!", "?")
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
