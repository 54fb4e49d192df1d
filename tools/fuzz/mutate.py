"""Byte-level mutations of serialized messages (and of files carried in bytes fields).

Each operator returns new bytes and never raises, whatever the input (empty included).
Most results no longer decode, which is the point: the decoder and the validators behind
it must turn every one of them into a clean status.
"""

from __future__ import annotations

import random
from collections.abc import Callable

# Wire types 0-5 exist (3 and 4 are deprecated groups); 6 and 7 never decode.
_WIRE_TYPES = (0, 1, 2, 3, 4, 5, 6, 7)
# Field numbers at the edges of the legal range (1 .. 2^29-1) and just past it.
_FIELD_NUMBERS = (1, 2, 3, 15, 16, 2047, 2048, 19000, 19999, 2**29 - 1, 2**29, 0)


def varint(value: int) -> bytes:
    """value as a protobuf base-128 varint (negative numbers as 64-bit two's complement)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def flip_bits(rng: random.Random, data: bytes, other: bytes) -> bytes:
    """Flips 1-8 random bits."""
    if not data:
        return bytes([1 << rng.randrange(8)])
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


def truncate(rng: random.Random, data: bytes, other: bytes) -> bytes:
    """Cuts the message short at a random point."""
    return data[:rng.randrange(len(data))] if data else data


def insert_bytes(rng: random.Random, data: bytes, other: bytes) -> bytes:
    """Inserts 1-16 random bytes at a random point."""
    at = rng.randint(0, len(data))
    return data[:at] + rng.randbytes(rng.randint(1, 16)) + data[at:]


def delete_bytes(rng: random.Random, data: bytes, other: bytes) -> bytes:
    """Deletes a random run of 1-16 bytes."""
    if not data:
        return data
    at = rng.randrange(len(data))
    return data[:at] + data[at + rng.randint(1, 16):]


def splice(rng: random.Random, data: bytes, other: bytes) -> bytes:
    """The head of this message joined to the tail of another valid one."""
    return data[:rng.randint(0, len(data))] + other[rng.randint(0, len(other)):]


def corrupt_varint(rng: random.Random, data: bytes, other: bytes) -> bytes:
    """Breaks a varint: an 11-byte (overlong) one, a lost terminator, or a lost continuation."""
    at = rng.randint(0, len(data))
    choice = rng.randrange(3)
    if choice == 0 or not data:
        return data[:at] + b"\xff" * 10 + b"\x01" + data[at:]
    at = min(at, len(data) - 1)
    out = bytearray(data)
    out[at] = out[at] | 0x80 if choice == 1 else out[at] & 0x7F
    return bytes(out)


def huge_length(rng: random.Random, data: bytes, other: bytes) -> bytes:
    """Appends a length-delimited field that claims far more bytes than follow."""
    number = rng.choice(_FIELD_NUMBERS[:-2])
    claimed = rng.choice((2**31 - 1, 2**31, 2**32 + 1, 2**63, 2**64 - 1, len(data) + 1))
    return data + varint(number << 3 | 2) + varint(claimed) + rng.randbytes(rng.randint(0, 4))


def unknown_field(rng: random.Random, data: bytes, other: bytes) -> bytes:
    """Appends a field with a random number and wire type (some legal, some not)."""
    number, wire = rng.choice(_FIELD_NUMBERS), rng.choice(_WIRE_TYPES)
    payload = {0: varint(rng.getrandbits(64)), 1: rng.randbytes(8), 5: rng.randbytes(4),
               2: varint(3) + b"abc"}.get(wire, b"")
    return data + varint(number << 3 | wire) + payload


def duplicate(rng: random.Random, data: bytes, other: bytes) -> bytes:
    """The message twice (a legal merge), or one of its slices repeated in place."""
    if rng.random() < 0.5 or not data:
        return data + data
    start = rng.randrange(len(data))
    end = rng.randint(start, len(data))
    return data[:end] + data[start:end] + data[end:]


OPERATORS: tuple[Callable[[random.Random, bytes, bytes], bytes], ...] = (
    flip_bits, truncate, insert_bytes, delete_bytes, splice, corrupt_varint, huge_length,
    unknown_field, duplicate,
)


def mutate(rng: random.Random, data: bytes, other: bytes = b"") -> tuple[bytes, str]:
    """1-3 random operators applied in turn; returns the bytes and the operators' names."""
    names = []
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
        operator = rng.choice(OPERATORS)
        data = operator(rng, data, other)
        names.append(operator.__name__)
    return data, "+".join(names)
