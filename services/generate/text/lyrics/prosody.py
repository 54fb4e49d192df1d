"""Words as a singer sees them: syllables, stress, rhyme (CMUdict) and display hyphenation.

Every figure comes from the CMU Pronouncing Dictionary through `pronouncing`, always
from a word's *first* pronunciation, so the decoder, the writer and the eval agree on
one reading of each word. A word missing from CMUdict has no pronunciation here and is
never written by the constrained decoder.

- Syllables are the vowels of the pronunciation (the phones carrying a stress digit).
- A syllable is *stressed* when its digit is 1 (primary) or 2 (secondary). CMUdict gives
  most monosyllables stress 1, including some function words ("to", "of", "I"), and a
  few stress 0 ("the", "a"): we take that as it is.
- Two words rhyme when their rhyming parts (`pronouncing.rhyming_part`: the last
  stressed vowel to the end) are equal and the words themselves differ: "night" and
  "light" rhyme, "night" and "night" do not (an identity rhyme is not a rhyme).
- Display hyphenation uses pyphen's `en_US` patterns when they give as many pieces as
  CMUdict has syllables; pyphen leaves many short words whole ("about", "open"), so next
  comes a split at the spelling's vowel groups when they are as many as the syllables
  ("a-bout", "o-pen", "kit-chen"); last, an even split of the letters. A word always
  has exactly one piece per syllable (one piece per sung note).
"""

from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass

import pronouncing
import pyphen

_VOWEL = re.compile(r"[012]$")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
_VOWELS = re.compile("[aeiouy]+")


@dataclass(frozen=True)
class Pronunciation:
    """A word's first CMUdict pronunciation, reduced to what singing needs."""

    word: str                    # lowercase spelling
    phones: str                  # e.g. "G EH1 N T AH0 L"
    stresses: tuple[bool, ...]   # one per syllable: True for stress 1 or 2
    rhyme: str                   # rhyming part, e.g. "EH1 N T AH0 L"

    @property
    def syllables(self) -> int:
        """Number of syllables (vowels)."""
        return len(self.stresses)

    @property
    def has_stress(self) -> bool:
        """Whether any syllable is stressed (a word fit to end a rhyming line)."""
        return any(self.stresses)


@functools.lru_cache(maxsize=1)
def _lookup() -> dict[str, list[str]]:
    pronouncing.init_cmu()
    table: dict[str, list[str]] = pronouncing.lookup
    return table


def pronounce(word: str) -> Pronunciation | None:
    """The word's first pronunciation, or None when CMUdict does not have the word.

    Case is ignored; the word may contain one apostrophe ("don't").
    """
    spelling = word.lower()
    if not _WORD.fullmatch(spelling):
        return None
    phones_list = _lookup().get(spelling)
    if not phones_list:
        return None
    return _pronunciation(spelling, phones_list[0])


@functools.lru_cache(maxsize=65536)
def _pronunciation(spelling: str, phones: str) -> Pronunciation | None:
    digits = [p[-1] for p in phones.split() if _VOWEL.search(p)]
    if not digits:
        return None
    return Pronunciation(spelling, phones, tuple(d in "12" for d in digits),
                         str(pronouncing.rhyming_part(phones)))


def syllable_count(word: str) -> int | None:
    """Syllables of the word by CMUdict; None when the word is unknown."""
    found = pronounce(word)
    return None if found is None else found.syllables


def rhymes(a: str, b: str) -> bool:
    """Whether two different words rhyme by CMUdict (first pronunciations)."""
    pa, pb = pronounce(a), pronounce(b)
    if pa is None or pb is None or pa.word == pb.word:
        return False
    return pa.rhyme == pb.rhyme


@functools.lru_cache(maxsize=1)
def _hyphenator() -> pyphen.Pyphen:
    return pyphen.Pyphen(lang="en_US")


def hyphenate(word: str, syllables: int) -> list[str]:
    """The word cut into exactly `syllables` pieces that join back to the word.

    pyphen's split when its count agrees with CMUdict's; otherwise an even split of the
    letters (the first pieces one letter longer when they do not divide evenly). A word
    with fewer letters than syllables gets empty pieces at the end.
    """
    if syllables <= 1:
        return [word]
    positions = list(_hyphenator().positions(word))
    if len(positions) != syllables - 1:
        positions = _vowel_cuts(word, syllables)
    if len(positions) == syllables - 1:
        cuts = [0, *positions, len(word)]
        return [word[a:b] for a, b in itertools.pairwise(cuts)]
    size, extra = divmod(len(word), syllables)
    pieces, start = [], 0
    for i in range(syllables):
        end = start + size + (1 if i < extra else 0)
        pieces.append(word[start:end])
        start = end
    return pieces


def _vowel_cuts(word: str, syllables: int) -> list[int]:
    """Cuts between vowel groups (V-CV, VC-CV), or [] when the groups are not as many."""
    lower = word.lower()
    spans = [[m.start(), m.end()] for m in _VOWELS.finditer(lower)]
    if spans and lower.startswith("y"):  # a leading y is a consonant ("young")
        spans[0][0] += 1
        if spans[0][0] == spans[0][1]:
            spans.pop(0)
    if len(spans) > syllables and lower.endswith("e") and spans[-1] == [len(lower) - 1,
                                                                          len(lower)]:
        spans.pop()  # a silent final e ("a-bove")
    if len(spans) != syllables:
        return []
    return [end if start - end <= 1 else end + 1
            for (_, end), (start, _) in itertools.pairwise(spans)]


def words_of(text: str) -> list[str]:
    """The words of a line of text, lowercase, punctuation dropped (apostrophes kept)."""
    return _WORD.findall(text.lower().replace("\u2019", "'"))
