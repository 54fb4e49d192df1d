"""Lyrics requests and results, their validation, and the plan of lines a request asks for.

A request gives either a melody (one lyric line per phrase, one syllable per note) or
sections (verse/chorus/bridge, each with a number of lines and syllables per line). The
rhyme scheme applies per stanza: each section is cut into groups of four lines, and the
scheme's letters name rhyme groups inside one stanza (AABB: lines 1-2 and 3-4 rhyme);
a last, shorter stanza uses the scheme's first letters. A melody is one section, "verse".
A chorus that has the shape of an earlier chorus repeats its words, as songs do.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from cadenza.kit.errors import InvalidArgument
from services.generate.text.lyrics.phrases import Melody, MelodyNote, Strength, read_melody

SCHEMES = ("AABB", "ABAB", "ABCB", "AAAA")
SECTION_NAMES = ("verse", "chorus", "bridge")
MAX_THEME_CHARS = 300
MAX_SECTIONS = 8
MAX_LINES = 32
MAX_SECTION_LINES = 16
MAX_SYLLABLES_PER_LINE = 16
MAX_CANDIDATES = 32
STANZA_LINES = 4


@dataclass(frozen=True)
class Section:
    """A part of a song written without a melody."""

    name: str                 # verse | chorus | bridge
    lines: int
    syllables_per_line: int


@dataclass(frozen=True)
class LyricsRequest:
    """What to write: a theme, a rhyme scheme, and a melody or a structure of sections."""

    theme: str
    rhyme_scheme: str = "AABB"
    melody_midi: bytes | None = None
    sections: tuple[Section, ...] = ()
    seed: int = 0
    # The served defaults are the setting `make eval-lyrics` chose on its validation split
    # (K=4, stress weight 2, temperature 0.8).
    temperature: float = 0.8
    candidates: int = 4           # sampled candidates per line, best kept
    stress_weight: float = 2.0    # weight of stress fit against the model's log-probability


@dataclass(frozen=True)
class LyricLine:
    """One written line: its text, its syllables (one per note), where it stands."""

    text: str                       # "Gentle river, flowing"
    syllables: tuple[str, ...]      # ("Gen", "tle", "ri", "ver,", "flow", "ing")
    words: tuple[tuple[str, ...], ...]  # syllables grouped by word
    section: str
    rhyme: str                      # the scheme letter of the line in its stanza
    notes: tuple[MelodyNote, ...] = ()  # the phrase sung (empty without a melody)
    rhyme_dropped: bool = False     # no word could rhyme; only the syllables are kept

    @property
    def display(self) -> str:
        """The line hyphenated by syllable: "Gen-tle ri-ver, flow-ing"."""
        return " ".join("-".join(word) for word in self.words)


@dataclass(frozen=True)
class Lyrics:
    """Written lyrics: the lines, the whole text, and the karaoke MIDI (b"" without melody)."""

    lines: tuple[LyricLine, ...]
    text: str
    midi: bytes = b""
    mean_logprob: float = 0.0     # the model's log-probability per written token

    @property
    def display(self) -> str:
        """All lines hyphenated, one per line."""
        return "\n".join(line.display for line in self.lines)


@dataclass(frozen=True)
class PlannedLine:
    """One line to write: its length and metre, its section and its place in a rhyme."""

    index: int
    section: str
    syllables: int
    strengths: tuple[Strength, ...] | None
    notes: tuple[MelodyNote, ...]
    letter: str
    group: tuple[int, int, str]     # (section, stanza, letter)
    earlier: tuple[int, ...]        # earlier lines of its rhyme group
    partner_syllables: int          # fewest syllables of a later line in its group; 0: none
    later_partners: int             # how many later lines rhyme with it
    ends_section: bool
    repeat_of: int | None = None    # a repeated chorus line copies this line


@dataclass(frozen=True)
class Plan:
    """The validated request: its lines and, with a melody, the melody."""

    request: LyricsRequest
    lines: tuple[PlannedLine, ...]
    melody: Melody | None = None


_Shape = tuple[str, int, tuple[Strength, ...] | None, tuple[MelodyNote, ...]]


def plan(request: LyricsRequest) -> Plan:
    """Validates the request and lays out its lines; InvalidArgument names the bad field."""
    theme = request.theme.strip()
    if not theme:
        raise InvalidArgument("theme", "is empty; say what the song is about")
    if len(theme) > MAX_THEME_CHARS:
        raise InvalidArgument("theme", f"is {len(theme)} characters; the limit is "
                                       f"{MAX_THEME_CHARS}")
    if request.rhyme_scheme not in SCHEMES:
        raise InvalidArgument("rhyme_scheme", f"{request.rhyme_scheme!r} is unknown; use one "
                                              f"of {', '.join(SCHEMES)}")
    if not 0.0 < request.temperature <= 2.0:
        raise InvalidArgument("temperature", "must be in (0, 2]")
    if not 1 <= request.candidates <= MAX_CANDIDATES:
        raise InvalidArgument("candidates", f"must be 1-{MAX_CANDIDATES}")
    if not 0.0 <= request.stress_weight <= 10.0:
        raise InvalidArgument("stress_weight", "must be in [0, 10]")
    if request.melody_midi is not None:
        if request.sections:
            raise InvalidArgument("sections", "give sections or a melody, not both: a "
                                              "melody's phrases are its lines")
        melody = read_melody(request.melody_midi)
        shapes: list[_Shape] = [("verse", len(p), tuple(n.strength for n in p), p)
                                for p in melody.phrases]
        return Plan(request, _lay_out(shapes, request.rhyme_scheme), melody)
    _check_sections(request.sections)
    plain: list[_Shape] = [(s.name, s.syllables_per_line, None, ())
                           for s in request.sections for _ in range(s.lines)]
    return Plan(request, _lay_out(plain, request.rhyme_scheme))


def _check_sections(sections: tuple[Section, ...]) -> None:
    if not sections:
        raise InvalidArgument("sections", "are empty; give a melody or at least one section")
    if len(sections) > MAX_SECTIONS:
        raise InvalidArgument("sections", f"are {len(sections)}; the limit is {MAX_SECTIONS}")
    for i, section in enumerate(sections):
        if section.name not in SECTION_NAMES:
            raise InvalidArgument(f"sections[{i}].name", (
                f"{section.name!r} is unknown; use one of {', '.join(SECTION_NAMES)}"))
        if not 1 <= section.lines <= MAX_SECTION_LINES:
            raise InvalidArgument(f"sections[{i}].lines", f"must be 1-{MAX_SECTION_LINES}")
        if not 1 <= section.syllables_per_line <= MAX_SYLLABLES_PER_LINE:
            raise InvalidArgument(f"sections[{i}].syllables_per_line",
                                  f"must be 1-{MAX_SYLLABLES_PER_LINE}")
    total = sum(s.lines for s in sections)
    if total > MAX_LINES:
        raise InvalidArgument("sections", f"ask for {total} lines; the limit is {MAX_LINES}")




def _lay_out(shapes: list[_Shape], scheme: str) -> tuple[PlannedLine, ...]:
    """Sections (runs of one name), stanzas, rhyme groups and chorus repeats."""
    lines: list[PlannedLine] = []
    section_index, in_section = -1, 0
    first_chorus: dict[tuple[int, int], list[int]] = {}  # shape -> lines of that chorus
    current: list[int] = []
    for i, (name, syllables, strengths, notes) in enumerate(shapes):
        if i == 0 or name != shapes[i - 1][0]:
            section_index, in_section, current = section_index + 1, 0, []
        stanza, position = divmod(in_section, STANZA_LINES)
        letter = scheme[position]
        group = (section_index, stanza, letter)
        earlier = tuple(line.index for line in lines if line.group == group)
        ends = i + 1 == len(shapes) or shapes[i + 1][0] != name
        lines.append(PlannedLine(i, name, syllables, strengths, notes, letter, group,
                                 earlier, 0, 0, ends))
        current.append(i)
        in_section += 1
        if ends and name == "chorus":
            key = (len(current), syllables)
            if key in first_chorus:
                for at, source in zip(current, first_chorus[key], strict=True):
                    lines[at] = _replace(lines[at], repeat_of=source)
            else:
                first_chorus[key] = list(current)
    out = []
    for line in lines:
        later = [other for other in lines
                 if other.group == line.group and other.index > line.index]
        out.append(_replace(line, partner_syllables=min((o.syllables for o in later),
                                                        default=0),
                            later_partners=len(later)))
    return tuple(out)


def _replace(line: PlannedLine, **changes: int | None) -> PlannedLine:
    return dataclasses.replace(line, **changes)  # type: ignore[arg-type]
