"""The music21 corpus as pieces of notes on the 16th-note grid, parsed once and cached."""

from __future__ import annotations

import json
import logging
import math
import re
import signal
import time
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from services.generate.music import keys
from services.generate.music.tokens import STEPS_PER_QUARTER, TIME_SIGNATURES, steps_per_bar
from training.music.jsb_overlap import HELD_OUT, MATCH_THRESHOLD, JsbIndex, piece_frames

if TYPE_CHECKING:  # music21 takes seconds to import: only the parsing functions load it
    from music21 import stream

logger = logging.getLogger(__name__)

# Bump when extraction changes so stale caches are rebuilt, never silently reused.
CORPUS_VERSION = 4
DEFAULT_CACHE_DIR = Path(".data/generate-corpus")
MAX_VOICES = 6
MIN_BARS = 2
LOW_PITCH, HIGH_PITCH = 21, 108
PARSE_TIMEOUT_S = 600
# Composers of the music21 corpus taken as "classical" (broadly: art music, 1550-1900).
CLASSICAL_COMPOSERS = ("beethoven", "mozart", "haydn", "handel", "schubert", "schumann_robert",
                       "schumann_clara", "corelli", "cpebach", "weber", "verdi", "joplin",
                       "beach", "chopin", "monteverdi", "palestrina")
# Bach files that are not chorales (bwv846 is the C major prelude of the WTC).
BACH_NOT_CHORALES = ("bwv846",)
# Encodings whose notices forbid derived electronic formats or name a commercial edition:
# left out, since the model folder commits their notes (originality.npz). This drops the
# Humdrum Palestrina masses (John Miller), three CCARH Bach files and two Ut Orpheus
# Monteverdi madrigals.
RESTRICTED_NOTICES = ("derivative electronic formats reserved", "ut orpheus")


@dataclass
class Piece:
    """One piece on the step grid; notes are (pitch, start, end, part), pickup already padded."""

    name: str
    style: str
    time_signature: str            # as written, e.g. "4/2"; see token_time_signature
    steps_per_bar: int
    tonic: int                     # pitch class 0-11
    minor: bool
    pad_steps: int                 # silent steps added before a pickup so bars align
    n_steps: int
    notes: npt.NDArray[np.int32] = field(repr=False)   # [N, 4]
    part_names: list[str] = field(default_factory=list, repr=False)
    # Pitches sounding at each quarter before the voice cap, for the JSB content match
    # (the cap can drop a choir voice that trumpets double, which would hide a chorale).
    match_frames: list[list[int]] = field(default_factory=list, repr=False)

    @property
    def token_time_signature(self) -> str:
        """The time signature as the tokens name it (`other` outside the list)."""
        return self.time_signature if self.time_signature in TIME_SIGNATURES else "other"

    def to_json(self) -> dict[str, Any]:
        """The piece as JSON for the corpus cache."""
        data = {k: v for k, v in self.__dict__.items() if k != "notes"}
        data["notes"] = self.notes.tolist()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Piece:
        """A piece read back from the corpus cache."""
        notes = np.asarray(data.pop("notes"), dtype=np.int32).reshape(-1, 4)
        return cls(notes=notes, **data)


def transpose(piece: Piece, semitones: int) -> Piece | None:
    """The piece moved by `semitones`, key included; None when a note leaves 21..108."""
    notes = piece.notes.copy()
    notes[:, 0] += semitones
    if len(notes) and (notes[:, 0].min() < LOW_PITCH or notes[:, 0].max() > HIGH_PITCH):
        return None
    return replace(piece, notes=notes, tonic=(piece.tonic + semitones) % 12)


# -- grid ---------------------------------------------------------------------------------
def quantise(onset_quarters: float, duration_quarters: float) -> tuple[int, int]:
    """(start, end) steps rounded to the grid; a note never shrinks below one step."""
    start = math.floor(onset_quarters * STEPS_PER_QUARTER + 0.5)
    end = math.floor((onset_quarters + duration_quarters) * STEPS_PER_QUARTER + 0.5)
    return start, max(end, start + 1)


def cap_voices(notes: npt.NDArray[np.int32], max_voices: int = MAX_VOICES
               ) -> npt.NDArray[np.int32]:
    """Drops whole notes until at most `max_voices` pitches sound in any step.

    The victim is the lowest pitch that doubles (same pitch class) a higher sounding one;
    failing that, the lowest inner pitch. The bass and the top line always stay.
    """
    if len(notes) == 0:
        return notes
    n_steps = int(notes[:, 2].max())
    sounding: list[dict[int, set[int]]] = [{} for _ in range(n_steps)]
    for index, (pitch, start, end, _) in enumerate(notes):
        for step in range(start, end):
            sounding[step].setdefault(int(pitch), set()).add(index)
    dropped: set[int] = set()
    for step in range(n_steps):
        while len(sounding[step]) > max_voices:
            pitches = sorted(sounding[step])
            inner = pitches[1:-1]
            doubled = [p for p in inner if any((q - p) % 12 == 0 for q in pitches if q > p)]
            victim = (doubled or inner)[0]
            for index in sounding[step][victim]:
                dropped.add(index)
                pitch, start, end, _ = notes[index]
                for other in range(start, end):
                    owners = sounding[other].get(int(pitch))
                    if owners is not None and other != step:
                        owners.discard(index)
                        if not owners:
                            del sounding[other][int(pitch)]
            del sounding[step][victim]
    keep = np.array([i not in dropped for i in range(len(notes))])
    kept: npt.NDArray[np.int32] = notes[keep]
    return kept


def estimate_key(notes: npt.NDArray[np.int32]) -> tuple[int, bool]:
    """(tonic pitch class, minor) of (pitch, start, end, part) rows; see keys.estimate_key."""
    return keys.estimate_key(notes[:, 0], notes[:, 2] - notes[:, 1])


# -- music21 ------------------------------------------------------------------------------
def extract(score: stream.Score | stream.Part, name: str, style: str) -> list[Piece]:
    """A music21 score as pieces: one per stretch under one time signature.

    Bars stay aligned only under one metre, so a metre change starts a new piece (named
    `name#k`); stretches shorter than MIN_BARS bars or 8 notes are dropped.
    """
    # Only a Score has .parts and only a Part .partName (music21's types say so too): any
    # other shape raises here and parse_source counts the file as failed.
    parts: list[stream.Score | stream.Part] = (
        [p for p in score.parts] or [score])  # type: ignore[union-attr]
    changes: list[tuple[float, str]] = []  # (offset in quarters, time signature) per metre
    for ts in parts[0].recurse().getElementsByClass("TimeSignature"):
        if not changes or ts.ratioString != changes[-1][1]:
            changes.append((float(ts.getOffsetInHierarchy(parts[0])), ts.ratioString))
    if not changes:
        return []
    notes = [(pitch, onset, end, index) for index, part in enumerate(parts)
             for pitch, onset, end in part_notes(part)]
    measures = list(parts[0].getElementsByClass("Measure"))
    first_quarters = float(measures[0].duration.quarterLength) if measures else 0.0
    part_names = [str(p.partName or "") for p in parts]  # type: ignore[union-attr]
    pieces = []
    for k, (begin, signature) in enumerate(changes):
        finish = changes[k + 1][0] if k + 1 < len(changes) else math.inf
        try:
            bar_steps = steps_per_bar(signature)
        except ValueError:  # e.g. 5/3: not a whole number of steps
            continue
        # A pickup before the first bar line is padded so that bars align.
        first_steps = round(first_quarters * STEPS_PER_QUARTER) if k == 0 else bar_steps
        pad = bar_steps - first_steps if 0 < first_steps < bar_steps else 0
        rows = []
        for pitch, onset, end, part in notes:
            if begin <= onset < finish and LOW_PITCH <= pitch <= HIGH_PITCH:
                start, stop = quantise(onset - begin, min(end, finish) - onset)
                rows.append((pitch, start + pad, stop + pad, part))
        if len(rows) < 8 or max(r[2] for r in rows) < MIN_BARS * bar_steps:
            continue
        uncapped = np.array(sorted(rows, key=lambda r: (r[1], -r[0], r[3])), dtype=np.int32)
        kept = cap_voices(uncapped)
        frames = piece_frames(uncapped, pad, STEPS_PER_QUARTER, part_names)
        tonic, minor = estimate_key(kept)
        pieces.append(Piece(name=name if k == 0 else f"{name}#{k}", style=style,
                            time_signature=signature, steps_per_bar=bar_steps, tonic=tonic,
                            minor=minor, pad_steps=pad, n_steps=int(kept[:, 2].max()),
                            notes=kept, part_names=part_names,
                            match_frames=[sorted(f) for f in frames]))
    return pieces


def part_notes(part: stream.Stream[Any]) -> list[tuple[int, float, float]]:
    """(MIDI pitch, onset, end) in quarters; tied notes merge into one held note.

    Ties are followed here rather than with music21's stripTies, which takes minutes on
    a long quartet movement. Grace notes and unpitched percussion are dropped.
    """
    from music21 import chord, note

    found: list[tuple[int, float, float]] = []
    open_ties: dict[int, list[float]] = {}  # pitch -> [onset, end] of a note still tied on
    for element in part.flatten().notes:
        if element.duration.isGrace:
            continue
        if isinstance(element, chord.Chord):
            members = [(n.pitch.midi, n.tie or element.tie) for n in element.notes]
        elif isinstance(element, note.Note):
            members = [(element.pitch.midi, element.tie)]
        else:
            continue
        onset = float(element.offset)
        end = onset + float(element.duration.quarterLength)
        for pitch, tie in members:
            kind = tie.type if tie is not None else None
            if kind in ("stop", "continue") and pitch in open_ties:
                open_ties[pitch][1] = end
                if kind == "stop":
                    found.append((pitch, *open_ties.pop(pitch)))
            elif kind in ("start", "continue"):
                if pitch in open_ties:  # a tie that never stopped
                    found.append((pitch, *open_ties.pop(pitch)))
                open_ties[pitch] = [onset, end]
            else:
                found.append((pitch, onset, end))
    found.extend((pitch, onset, end) for pitch, (onset, end) in open_ties.items())
    return found


@dataclass
class Source:
    """A family of corpus files parsed and cached together."""

    name: str
    style: str
    paths: list[str]

    def parse_file(self, path: str) -> list[tuple[str, stream.Score | stream.Part]]:
        """(name, music21 Score) for each tune of one file (ABC files hold hundreds)."""
        from music21 import converter, stream

        stem = _corpus_name(path)
        with _time_limit(PARSE_TIMEOUT_S):
            parsed = converter.parse(path)
        if not isinstance(parsed, stream.Opus):
            return [(stem, parsed)]
        named: list[tuple[str, stream.Score | stream.Part]] = []
        for index, score in enumerate(parsed.scores):
            number = score.metadata.number if score.metadata and score.metadata.number else index
            named.append((f"{stem}/{number}", score))
        return named


def _corpus_name(path: str) -> str:
    parts = Path(path).with_suffix("").parts
    return "/".join(parts[parts.index("corpus") + 1:]) if "corpus" in parts else Path(path).stem


class _time_limit:
    """Raises TimeoutError when a parse takes longer than `seconds` (main thread only)."""

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds

    def __enter__(self) -> None:
        def expire(signum: int, frame: FrameType | None) -> None:
            raise TimeoutError(f"parse took over {self.seconds} s")
        self.previous = signal.signal(signal.SIGALRM, expire)
        signal.alarm(self.seconds)

    def __exit__(self, *exc: object) -> None:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, self.previous)


def rights_notice(path: str) -> str:
    """The rights/copyright text an encoding carries (Humdrum !!!YE* lines, MusicXML rights)."""
    file = Path(path)
    if file.suffix == ".mxl":
        with zipfile.ZipFile(file) as archive:
            text = "".join(archive.read(n).decode("utf-8", "ignore")[:50_000]
                           for n in archive.namelist() if n.endswith(".xml") and "META" not in n)
    else:
        text = file.read_text(encoding="utf-8", errors="ignore")[:50_000]
    found = re.findall(r"<rights[^>]*>(.*?)</rights>", text, re.S)
    found += re.findall(r"^!!!YE[CM]: (.*)$", text, re.M)
    return " ".join(found)


def redistributable(path: str) -> bool:
    """Whether an encoding's notice allows committing notes derived from it."""
    notice = rights_notice(path).lower() if Path(path).suffix != ".abc" else ""
    return not any(restricted in notice for restricted in RESTRICTED_NOTICES)


def sources() -> list[Source]:
    """The corpus families: Bach chorales, Essen folk songs, the other composers."""
    from music21 import corpus

    scores = (".mxl", ".xml", ".krn", ".musicxml")
    bach = [str(p) for p in corpus.getComposer("bach") if Path(p).suffix in scores]
    chorales = [p for p in bach if Path(p).stem not in BACH_NOT_CHORALES]
    classical = [p for p in bach if Path(p).stem in BACH_NOT_CHORALES]
    for composer in CLASSICAL_COMPOSERS:
        classical += [str(p) for p in corpus.getComposer(composer) if Path(p).suffix in scores]
    essen = [str(p) for p in corpus.getComposer("essenFolksong") if Path(p).suffix == ".abc"]
    return [Source("bach-chorales", "chorale", sorted(filter(redistributable, chorales))),
            Source("essen-folk", "folk", sorted(essen)),
            Source("classical", "classical", sorted(filter(redistributable, classical)))]


def parse_source(source: Source) -> tuple[list[Piece], dict[str, Any]]:
    """Every piece of a source, and what happened (counts, failures, seconds)."""
    pieces: list[Piece] = []
    stats: dict[str, Any] = {"files": len(source.paths), "scores": 0, "failed": [], "unusable": 0,
                   "split_at_metre_changes": 0}
    began = time.perf_counter()
    for path in source.paths:
        try:
            scores = source.parse_file(path)
        except Exception as error:  # a file music21 cannot read: count it, go on
            stats["failed"].append(f"{_corpus_name(path)}: {type(error).__name__}: {error}"[:200])
            logger.warning("%s: parse failed: %s", path, error)
            continue
        for name, score in scores:
            stats["scores"] += 1
            try:
                found = extract(score, name, source.style)
            except Exception as error:
                stats["failed"].append(f"{name}: {type(error).__name__}: {error}"[:200])
                continue
            stats["unusable"] += not found  # no time signature, or too short
            stats["split_at_metre_changes"] += len(found) > 1
            pieces += found
    stats["pieces"] = len(pieces)
    stats["parse_s"] = round(time.perf_counter() - began, 1)
    return pieces, stats


def load_source(source: Source, cache_dir: Path = DEFAULT_CACHE_DIR
                ) -> tuple[list[Piece], dict[str, Any]]:
    """The pieces of one source, from the cache when it is there (parsing takes minutes)."""
    path = Path(cache_dir) / f"v{CORPUS_VERSION}" / f"{source.name}.json"
    files = [_corpus_name(p) for p in source.paths]
    if path.exists():
        data = json.loads(path.read_text())
        if data["stats"].get("paths") == files:  # same files as now: the parse still holds
            return [Piece.from_json(p) for p in data["pieces"]], data["stats"]
    pieces, stats = parse_source(source)
    stats["paths"] = files
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"stats": stats, "pieces": [p.to_json() for p in pieces]}))
    tmp.replace(path)
    return pieces, stats


def load_corpus(cache_dir: Path = DEFAULT_CACHE_DIR,
                only: tuple[str, ...] | None = None
                ) -> tuple[list[Piece], dict[str, dict[str, Any]]]:
    """All pieces of every source (or of the sources named in `only`), and per-source stats."""
    pieces: list[Piece] = []
    stats: dict[str, dict[str, Any]] = {}
    for source in sources():
        if only is not None and source.name not in only:
            continue
        found, stats[source.name] = load_source(source, cache_dir)
        logger.info("%s: %d pieces, %d failed, %.0f s to parse", source.name, len(found),
                    len(stats[source.name]["failed"]), stats[source.name]["parse_s"])
        pieces += found
    return pieces, stats


@dataclass
class TrainingCorpus:
    """The pieces a served model may train on, and the JSB chorales left out of them."""

    pieces: list[Piece]
    held_out: list[dict[str, Any]]  # name, JSB split and index, score: left out
    stats: dict[str, dict[str, Any]]


def training_corpus(cache_dir: Path = DEFAULT_CACHE_DIR,
                    only: tuple[str, ...] | None = None) -> TrainingCorpus:
    """Every corpus piece except those matching a JSB valid/test chorale by content.

    Every piece is checked, not only the chorales: a chorale can hide under another name.
    """
    pieces, stats = load_corpus(cache_dir, only)
    index = JsbIndex()
    kept: list[Piece] = []
    held_out: list[dict[str, Any]] = []
    for piece in pieces:
        frames = [frozenset(f) for f in piece.match_frames]
        match = index.best(frames, HELD_OUT) if len(frames) >= 4 else None
        if match is not None and match.score >= MATCH_THRESHOLD:
            held_out.append({"name": piece.name, "split": match.split, "index": match.index,
                             "score": round(match.score, 3)})
        else:
            kept.append(piece)
    logger.info("left out %d pieces matching JSB valid/test; %d kept", len(held_out), len(kept))
    return TrainingCorpus(kept, held_out, stats)
