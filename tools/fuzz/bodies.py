"""Request bodies: random bytes, messages built from the descriptor, and mutations of those.

A Body remembers how it was made, so a report can say "mutated (truncate+splice)" next to
the hex. Every draw comes from the one Random handed in.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor, OneofDescriptor
from google.protobuf.message import Message

from tools.fuzz import values
from tools.fuzz.mutate import mutate

# A built message stays under this many bytes of strings, bytes and list items, so no
# single body costs the mesh more than a moment to read and reject.
MESSAGE_BUDGET_BYTES = 256 * 1024
MAX_DEPTH = 4
# The chance that each field of a message is set, chosen per message.
SET_FIELD_PROBABILITIES = (0.1, 0.2, 0.5, 0.85)
# How often each generator is used (random bytes, valid message, mutated message).
KIND_WEIGHTS = {"random": 0.25, "valid": 0.4, "mutated": 0.35}

_UNKNOWN_ENUM_NUMBERS = (-1, 4, 7, 99, 2**31 - 1, -(2**31))


@dataclass(frozen=True)
class Body:
    """One serialized request message and how it was made."""

    kind: str  # "random", "valid", "mutated" or "neutral" (see tools.fuzz.policy)
    data: bytes
    how: str = ""  # the mutation operators, for "mutated"

    def describe(self) -> str:
        """e.g. "mutated (flip_bits+truncate), 17 B"."""
        how = f" ({self.how})" if self.how else ""
        return f"{self.kind}{how}, {len(self.data)} B"


def _is_synthetic(oneof: OneofDescriptor) -> bool:
    """A proto3 `optional` field's own one-member oneof (protoc names it _<field>)."""
    fields = list(oneof.fields)
    return len(fields) == 1 and oneof.name == "_" + fields[0].name


class MessageBuilder:
    """Fills messages of any descriptor with random, often hostile, field values."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._budget = MESSAGE_BUDGET_BYTES
        self._density = 0.5

    def build(self, descriptor: Descriptor) -> Message:
        """A new message of this type; each field set or not at random, oneofs at most once.

        How many fields are set varies per message: sparse ones (one or two fields, the
        rest defaults) get past the other fields' checks to the one they probe; dense ones
        combine many odd values at once.
        """
        self._budget = MESSAGE_BUDGET_BYTES
        self._density = self.rng.choice(SET_FIELD_PROBABILITIES)
        message = message_factory.GetMessageClass(descriptor)()
        self._fill(message, descriptor, 0)
        return message

    def _fill(self, message: Any, descriptor: Descriptor, depth: int) -> None:
        chosen: set[str] = set()
        for oneof in descriptor.oneofs:
            if not _is_synthetic(oneof):
                options = [None, *oneof.fields]
                picked = self.rng.choice(options)
                chosen.update(f.name for f in oneof.fields if f is not picked)
        for field in descriptor.fields:
            if field.name in chosen:
                continue  # another member of its oneof was picked
            in_oneof = field.containing_oneof is not None and not _is_synthetic(
                field.containing_oneof)
            if not in_oneof and self.rng.random() >= self._density:
                continue
            if field.type == FieldDescriptor.TYPE_MESSAGE and depth >= MAX_DEPTH:
                continue
            self._set(message, field, depth)

    def _set(self, message: Any, field: FieldDescriptor, depth: int) -> None:
        target = getattr(message, field.name)
        entry: Any = field.message_type  # None unless a message (or map) field
        if entry is not None and entry.GetOptions().map_entry:
            key_field, value_field = entry.fields_by_name["key"], entry.fields_by_name["value"]
            for _ in range(self._count()):
                key = self._scalar(key_field)
                if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                    self._fill(target[key], value_field.message_type, depth + 1)
                else:
                    target[key] = self._scalar(value_field)
        elif field.is_repeated:
            for _ in range(self._count()):
                if entry is not None:
                    self._fill(target.add(), entry, depth + 1)
                else:
                    target.append(self._scalar(field))
        elif entry is not None:
            target.SetInParent()
            self._fill(target, entry, depth + 1)
        else:
            setattr(message, field.name, self._scalar(field))

    def _count(self) -> int:
        """How many items a list or map gets: mostly a few, sometimes up to ~200."""
        roll = self.rng.random()
        count = (self.rng.randint(0, 3) if roll < 0.6 else self.rng.randint(4, 20)
                 if roll < 0.9 else self.rng.randint(21, 200))
        count = min(count, max(self._budget // 64, 0))
        self._budget -= 8 * count
        return count

    def _scalar(self, field: FieldDescriptor) -> Any:
        kind = field.type
        if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return values.double(self.rng)
        if kind == FieldDescriptor.TYPE_BOOL:
            return self.rng.random() < 0.5
        if kind == FieldDescriptor.TYPE_ENUM:
            enum: Any = field.enum_type
            return self._enum(enum)
        if kind == FieldDescriptor.TYPE_STRING:
            text = values.text(self.rng, max(self._budget, 0))
            self._budget -= len(text.encode())
            return text
        if kind == FieldDescriptor.TYPE_BYTES:
            data = values.blob(self.rng, max(self._budget, 0))
            self._budget -= len(data)
            return data
        return values.integer(self.rng, kind)

    def _enum(self, enum: EnumDescriptor) -> int:
        # Proto3 enums are open: unknown numbers decode and must be refused by name.
        if self.rng.random() < 0.25:
            return self.rng.choice(_UNKNOWN_ENUM_NUMBERS)
        return int(self.rng.choice(enum.values).number)


class BodyMaker:
    """Draws bodies of one request type: random bytes, valid messages or mutated ones."""

    def __init__(self, rng: random.Random, descriptor: Descriptor) -> None:
        self.rng = rng
        self.descriptor = descriptor
        self.builder = MessageBuilder(rng)

    def random_bytes(self) -> Body:
        """0-64 random bytes mostly; sometimes up to 1 KiB, rarely up to 64 KiB."""
        roll = self.rng.random()
        size = (self.rng.randint(0, 64) if roll < 0.7 else self.rng.randint(65, 1024)
                if roll < 0.95 else self.rng.randint(1025, 65536))
        return Body("random", self.rng.randbytes(size))

    def valid(self) -> Body:
        """A message that decodes as the request type, with random field values."""
        message = self.builder.build(self.descriptor)
        return Body("valid", message.SerializeToString(deterministic=True))

    def mutated(self) -> Body:
        """A valid message with 1-3 byte-level mutations (a second one for splicing)."""
        base, other = self.valid().data, self.valid().data
        data, how = mutate(self.rng, base, other)
        return Body("mutated", data, how)

    def draw(self) -> Body:
        """One body from a generator chosen by KIND_WEIGHTS."""
        kind = self.rng.choices(list(KIND_WEIGHTS), weights=list(KIND_WEIGHTS.values()))[0]
        return {"random": self.random_bytes, "valid": self.valid, "mutated": self.mutated}[kind]()
