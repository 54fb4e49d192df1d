"""Does a text state only what the facts say? Key, tempo, loudness, brightness, instruments.

A small language model invents freely, so every description and title is checked before
it is served: any key, tempo word, beats-per-minute figure, loudness or brightness word,
or instrument it names must match the measured facts. Texts that state nothing checkable
pass; the check rejects, it does not require.
"""

from __future__ import annotations

import re

from services.generate.text.facts import MusicFacts

_FLATS = {"db": "c#", "eb": "d#", "gb": "f#", "ab": "g#", "bb": "a#", "cb": "b", "fb": "e"}
_KEY = re.compile(r"\b([A-G])(?:\s?(#|♯|sharp|b|♭|flat))?[\s-]+(major|minor)\b",
                  re.IGNORECASE)
_BPM = re.compile(r"\b(\d{2,3})\s*(?:bpm|beats per minute)\b", re.IGNORECASE)
# Words that claim a tempo, and the bands (facts.TEMPO_WORDS) each is true of.
TEMPO_CLAIMS = {
    "very slow": {"very slow"}, "slow": {"very slow", "slow"}, "slowly": {"very slow", "slow"},
    "leisurely": {"slow", "moderate"}, "unhurried": {"very slow", "slow", "moderate"},
    "moderate": {"moderate"}, "moderately": {"moderate"}, "medium": {"moderate"},
    "fast": {"fast", "very fast"}, "quick": {"fast", "very fast"},
    "brisk": {"fast", "very fast"}, "lively": {"fast", "very fast"},
    "uptempo": {"fast", "very fast"}, "up-tempo": {"fast", "very fast"},
    "rapid": {"very fast"}, "very fast": {"very fast"},
}
LOUDNESS_CLAIMS = {"quiet": {"quiet"}, "soft": {"quiet"}, "gentle": {"quiet", "moderate"},
                   "loud": {"loud"}, "powerful": {"loud"}, "thunderous": {"loud"}}
BRIGHTNESS_CLAIMS = {"dark": {"dark"}, "warm": {"warm", "dark"}, "bright": {"bright"},
                     "brilliant": {"bright"}, "sparkling": {"bright"}}
INSTRUMENTS = ("piano", "guitar", "violin", "viola", "cello", "bass", "organ", "flute",
               "clarinet", "oboe", "bassoon", "trumpet", "trombone", "horn", "saxophone",
               "harp", "drums", "percussion", "choir", "voice", "vocals", "strings", "synth",
               "harpsichord", "accordion", "banjo", "ukulele", "harmonica", "tuba")


def _pitch_class(letter: str, accidental: str | None) -> str:
    name = letter.lower()
    if accidental:
        sign = accidental.lower()
        if sign in ("#", "♯", "sharp"):
            name += "#"
        else:
            name = _FLATS.get(name + "b", name)
    return name


def _words(text: str) -> str:
    return " " + re.sub(r"[^a-z\- ]+", " ", text.lower()) + " "


def _claims(text: str, table: dict[str, set[str]]) -> list[tuple[str, set[str]]]:
    words = _words(text)
    # Longest phrases first, each matched span removed, so "very slow" is not also "slow".
    found = []
    for phrase in sorted(table, key=len, reverse=True):
        if f" {phrase} " in words:
            found.append((phrase, table[phrase]))
            words = words.replace(f" {phrase} ", " ")
    return found


def problems(text: str, facts: MusicFacts) -> list[str]:
    """What the text states that the facts contradict (empty: grounded)."""
    out = []
    for match in _KEY.finditer(text):
        stated = (_pitch_class(match.group(1), match.group(2)), match.group(3).lower())
        measured = (_pitch_class(facts.key[:1], facts.key[1:] or None) if facts.key else "",
                    facts.mode)
        if stated != measured:
            out.append(f"states the key {match.group(0)!r}; it is "
                       f"{(facts.key + ' ' + facts.mode).strip() or 'unknown'}")
    for match in _BPM.finditer(text):
        bpm = float(match.group(1))
        if not facts.tempo_bpm or abs(bpm - facts.tempo_bpm) > 0.05 * facts.tempo_bpm:
            out.append(f"states {match.group(0)!r}; the tempo is {facts.tempo_bpm:.0f} bpm")
    for table, word, what in ((TEMPO_CLAIMS, facts.tempo_word, "tempo"),
                              (LOUDNESS_CLAIMS, facts.loudness_word, "loudness"),
                              (BRIGHTNESS_CLAIMS, facts.brightness_word, "brightness")):
        for phrase, true_of in _claims(text, table):
            if word not in true_of:
                out.append(f"calls the {what} {phrase!r}; it is {word or 'unknown'}")
    words = _words(text)
    own = " ".join(facts.instruments).lower()
    for instrument in INSTRUMENTS:
        if f" {instrument} " in words and instrument not in own:
            out.append(f"names {instrument!r}; the instruments are "
                       f"{', '.join(facts.instruments) or 'unknown'}")
    return out
