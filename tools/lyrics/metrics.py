"""What the eval measures on a song's lines, all by CMUdict (first pronunciations).

- **Syllables exact**: a line's CMUdict syllable count equals its phrase's notes. A line
  with a word CMUdict lacks cannot be counted, so it is not exact.
- **Rhymes**: each line that the scheme pairs with an earlier one is scored against the
  first line of its group (AAAA: lines 2, 3, 4 against line 1); it rhymes when the last
  words' rhyming parts are equal and the words differ (`prosody.rhymes`).
- **Strong beats stressed**: syllables are laid on the phrase's notes in order; the share
  of strong-beat notes (downbeat or strong beat) whose syllable is stressed (stress 1 or
  2). A note left without a syllable counts as not stressed; a word CMUdict lacks gets
  one unstressed syllable per vowel group.
- **distinct-2**: distinct word bigrams over all bigrams (within lines), over a split.
- **Copied 6-grams**: the share of a song's 6-word runs (across its lines) found in the
  prompt's text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from services.generate.text.lyrics.domain import PlannedLine
from services.generate.text.lyrics.prosody import pronounce, rhymes, words_of


@dataclass
class Tally:
    """Counts summed over songs."""

    lines: int = 0
    lines_exact: int = 0
    rhyme_pairs: int = 0
    rhymes_ok: int = 0
    strong_notes: int = 0
    strong_stressed: int = 0
    six_grams: int = 0
    copied: int = 0
    songs: int = 0
    seconds: float = 0.0
    bigrams: list[tuple[str, str]] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        """Adds another tally's counts to this one."""
        for name in ("lines", "lines_exact", "rhyme_pairs", "rhymes_ok", "strong_notes",
                     "strong_stressed", "six_grams", "copied", "songs"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.seconds += other.seconds
        self.bigrams += other.bigrams

    def row(self) -> dict[str, float]:
        """The table's figures (shares in %)."""
        def share(a: int, b: int) -> float:
            return 100.0 * a / b if b else float("nan")
        return {"syllables exact %": share(self.lines_exact, self.lines),
                "rhymes %": share(self.rhymes_ok, self.rhyme_pairs),
                "strong beats stressed %": share(self.strong_stressed, self.strong_notes),
                "distinct-2": (len(set(self.bigrams)) / len(self.bigrams)
                               if self.bigrams else float("nan")),
                "copied 6-grams %": share(self.copied, self.six_grams),
                "s / song": self.seconds / self.songs if self.songs else float("nan")}


def _syllables(line: str) -> tuple[list[bool], bool]:
    """Stress flags of the line's syllables, and whether CMUdict knew every word."""
    flags: list[bool] = []
    known = True
    for word in words_of(line):
        found = pronounce(word)
        if found is None:
            known = False
            flags += [False] * max(1, len(re.findall("[aeiouy]+", word)))
        else:
            flags += list(found.stresses)
    return flags, known


def _ngrams(words: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


def score_song(lines: Sequence[str], planned: Sequence[PlannedLine], prompt: str,
               seconds: float) -> Tally:
    """The counts of one song; `planned` gives each line's notes and rhyme group."""
    tally = Tally(songs=1, seconds=seconds)
    for text, line in zip(lines, planned, strict=True):
        flags, known = _syllables(text)
        tally.lines += 1
        tally.lines_exact += int(known and len(flags) == line.syllables)
        for k, note in enumerate(line.notes):
            if note.strong:
                tally.strong_notes += 1
                tally.strong_stressed += int(k < len(flags) and flags[k])
        words = words_of(text)
        tally.bigrams += [(a, b) for a, b in _ngrams(words, 2)]
        if line.earlier:
            tally.rhyme_pairs += 1
            first = words_of(lines[line.earlier[0]])
            tally.rhymes_ok += int(bool(words and first) and rhymes(words[-1], first[-1]))
    song = [w for text in lines for w in words_of(text)]
    source = set(_ngrams(words_of(prompt), 6))
    grams = _ngrams(song, 6)
    tally.six_grams += len(grams)
    tally.copied += sum(g in source for g in grams)
    return tally
