"""Field values at the edges: integers at every width's limits, IEEE oddities, hostile text,
and small files (MIDI, WAV, ...) for bytes fields, all drawn from the caller's Random.
"""

from __future__ import annotations

import math
import random
import struct

from google.protobuf.descriptor import FieldDescriptor

from tools.fuzz.mutate import mutate

_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
_SMALL_INTS = (0, 0, 1, 1, 2, 3, 4, -1, 5, 8, 10, 16, 20, 100)
_EDGE_INTS = (
    -1, 99, 100, 101, 127, 128, 129, 255, 256, 300, 500, 501, 600, 601, 1000, 1001, 1024,
    2**15, 2**16, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**32 - 1, 2**32, 2**53,
    2**53 + 1, 2**63 - 1, -(2**63), 2**64 - 1,
    # Unix times: 2000-01-01 and the second before, late 2023, the end of year 9999.
    946_684_800, 946_684_799, 1_700_000_000, 253_402_300_799, 253_402_300_800,
)
_EDGE_DOUBLES = (
    0.0, -0.0, 1.0, -1.0, 0.5, 1e-9, math.nan, -math.nan, math.inf, -math.inf, 1e308,
    -1e308, 1.7976931348623157e308, 5e-324, -5e-324, 2.2250738585072014e-308, 1e-320,
    3.4028234663852886e38, 1.401298464324817e-45, 2.0**53, 20.0, 19.999, 60.0, 100.0,
    300.0, 300.001, 600.0, 600.0000001, 86400.0,
)
# Words the API's comments document: reaching the validators past "unknown name".
_API_WORDS = (
    "timbre", "harmony", "rhythm", "loudness", "brightness", "pitch", "collaborative",
    "content", "seeds", "popularity", "C", "F# minor", "Bb major", "H major", "c#m", "4/4",
    "3/4", "6/8", "16/4", "17/4", "0/4", "4/0", "4/3", "99999999999999999999/4", " 3 / 4 ",
    "wav", "flac", "ogg", "mp3", "major", "minor", "cadenza-poly", "jsb", "folk", "metal",
)
_HOSTILE = (
    "\x00", "\x00abc", "a\x00b", "\u200b", "\u202e\u0645\u0631\u062d\u0628\u0627", "e\u0301",
    "\U0001f3b5", "\U0010ffff", "\ufffd", "\ufeff", "\uffff", "\u0660/\u0668", "1_000/4",
    "\u216b", "\n", "\t\r\n", " ", "%s%n%x", "{}", "' OR 1=1 --", "../../etc/passwd", "\\",
    "NaN", "nan", "inf", "-inf", "1e309", "-0", "0x10", "9" * 40, "null", "None",
)
_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-"
# Ids in this form are never ingested by the suite (see tools.fuzz.policy).
ABSENT_ID_PREFIX = "fuzz-absent-"


def integer(rng: random.Random, field_type: int) -> int:
    """An integer for a field of this protobuf type, inside the type's range."""
    low, high = _INT_RANGES[field_type]
    roll = rng.random()
    if roll < 0.4:
        value = rng.choice(_SMALL_INTS)
    elif roll < 0.75:
        value = rng.choice((*_EDGE_INTS, low, high, low + 1, high - 1))
    else:
        bits = rng.randint(1, 64)
        value = rng.getrandbits(bits) * rng.choice((1, -1))
    return min(max(value, low), high)


def double(rng: random.Random) -> float:
    """A double: an edge (NaN, infinities, extremes, subnormals, -0.0) or a plain number."""
    roll = rng.random()
    if roll < 0.5:
        return rng.choice(_EDGE_DOUBLES)
    if roll < 0.8:
        return round(rng.uniform(-10, 400), rng.randint(0, 3))
    return math.copysign(10.0 ** rng.uniform(-320, 308), rng.choice((1, -1)))


def text(rng: random.Random, budget: int) -> str:
    """A string: empty, id-like, documented words, hostile unicode, or long (within budget)."""
    roll = rng.random()
    if roll < 0.15:
        return ""
    if roll < 0.3:
        return ABSENT_ID_PREFIX + "".join(rng.choice(_ID_CHARS) for _ in range(rng.randint(1, 12)))
    if roll < 0.5:
        return rng.choice(_API_WORDS)
    if roll < 0.65:
        return "".join(chr(rng.randint(32, 126)) for _ in range(rng.randint(1, 24)))
    if roll < 0.85:
        return "".join(rng.choice(_HOSTILE) for _ in range(rng.randint(1, 4)))
    if roll < 0.95:
        # Any code point but the surrogates, which cannot be UTF-8 encoded.
        points = (rng.choice((rng.randint(0, 0xD7FF), rng.randint(0xE000, 0x10FFFF)))
                  for _ in range(rng.randint(1, 32)))
        return "".join(chr(p) for p in points)
    length = min(budget, rng.choice((129, 257, 1000, 4097, 10_000, 100_000)))
    return rng.choice(("a", "\u00e9", "\U0001f3b5", "x y")) * max(length // 4, 1)


def _midi_quantity(value: int) -> bytes:
    """A MIDI variable-length quantity: base 128, most significant group first."""
    groups = [value & 0x7F]
    while value > 0x7F:
        value >>= 7
        groups.append(value & 0x7F | 0x80)
    return bytes(reversed(groups))


def small_midi(rng: random.Random) -> bytes:
    """A small Standard MIDI File: one track, 1-8 notes of at most a quarter note each."""
    ticks_per_quarter = rng.choice((480, 96, 1, 0x7FFF))
    events = bytearray()
    if rng.random() < 0.5:
        tempo = rng.choice((500_000, 250_000, 1, 0xFFFFFF))
        events += b"\x00\xff\x51\x03" + tempo.to_bytes(3, "big")
    if rng.random() < 0.5:
        numerator, log_denominator = rng.choice(((4, 2), (3, 2), (6, 3), (0, 2), (255, 0)))
        events += bytes((0, 0xFF, 0x58, 4, numerator, log_denominator, 24, 8))
    channel = rng.choice((0, 0, 0, 9))  # 9 is the drum channel
    for _ in range(rng.randint(1, 8)):
        pitch = rng.choice((rng.randint(0, 127), 60, 72))
        length = max(ticks_per_quarter * rng.randint(1, 4) // 4, 1)
        events += b"\x00" + bytes((0x90 | channel, pitch, rng.randint(1, 127)))
        events += _midi_quantity(length) + bytes((0x80 | channel, pitch, 0))
    events += b"\x00\xff\x2f\x00"
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, ticks_per_quarter)
    return header + b"MTrk" + struct.pack(">I", len(events)) + bytes(events)


def small_wav(rng: random.Random) -> bytes:
    """A small PCM WAV; odd sample rates make a few hundred samples last 5-60 s or more."""
    rate = rng.choice((22_050, 8_000, 44_100, 100, 20, 1, 0, 2**32 - 1))
    channels = rng.choice((1, 1, 2, 0))
    samples = rng.randbytes(2 * rng.choice((0, 1, 100, 500, 2000)))
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * 2 * max(channels, 1) % 2**32,
                      2 * max(channels, 1), 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(samples)) + samples
    return b"RIFF" + struct.pack("<I", len(body)) + body


_MAGIC = (b"RIFF", b"MThd", b"MTrk", b"fLaC", b"OggS", b"ID3\x03", b"\xff\xfb", b"\x89PNG")


def blob(rng: random.Random, budget: int) -> bytes:
    """Bytes: empty, random, or a small file of a format the API reads, maybe mutated."""
    roll = rng.random()
    if roll < 0.15:
        return b""
    if roll < 0.5:
        return rng.randbytes(rng.randint(1, 64))
    if roll < 0.6:
        return rng.randbytes(min(budget, rng.randint(65, 8192)))
    if roll < 0.7:
        return rng.choice(_MAGIC) + rng.randbytes(rng.randint(0, 64))
    data = small_midi(rng) if rng.random() < 0.5 else small_wav(rng)
    return mutate(rng, data)[0] if rng.random() < 0.5 else data
