"""Walking request messages by descriptor: their numeric and enum fields, set by path."""

from __future__ import annotations

import re
from collections.abc import Iterator

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from cadenza.gateway.v1 import gateway_pb2
from cadenza.generate.v1 import generate_pb2
from cadenza.recommend.v1 import recommend_pb2
from cadenza.retrieval.v1 import retrieval_pb2

MODULES = (retrieval_pb2, recommend_pb2, generate_pb2, gateway_pb2)
F = FieldDescriptor
INTEGER_LIMITS = {
    F.TYPE_INT32: (-2**31, 2**31 - 1), F.TYPE_SINT32: (-2**31, 2**31 - 1),
    F.TYPE_INT64: (-2**63, 2**63 - 1), F.TYPE_SINT64: (-2**63, 2**63 - 1),
    F.TYPE_UINT32: (0, 2**32 - 1), F.TYPE_UINT64: (0, 2**64 - 1),
}
FLOATS = {F.TYPE_DOUBLE, F.TYPE_FLOAT}
_STEP = re.compile(r"^(\w+)(?:\[(\w+)\])?$")


def request_types() -> Iterator[Descriptor]:
    """The input message of every public method."""
    for module in MODULES:
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                yield method.input_type


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def reachable_fields(root: Descriptor) -> Iterator[FieldDescriptor]:
    """Every field reachable from a message, each message type visited once; a map
    yields its value field's map. Well-known types (Timestamp) are left to their own
    tests."""
    seen: set[str] = set()
    stack = [root]
    while stack:
        message = stack.pop()
        if message.full_name in seen or message.full_name.startswith("google.protobuf."):
            continue
        seen.add(message.full_name)
        for field in message.fields:
            if _is_map(field):
                yield field
            elif field.message_type is not None:
                stack.append(field.message_type)
            else:
                yield field


def value_type(field: FieldDescriptor) -> int:
    """The scalar type of a field, or of a map field's values."""
    return field.message_type.fields_by_name["value"].type if _is_map(field) else field.type


def is_numeric(field: FieldDescriptor) -> bool:
    """True for integer and floating-point fields (and maps with such values)."""
    kind = value_type(field)
    return kind in INTEGER_LIMITS or kind in FLOATS


def field_at(root: Descriptor, path: str) -> FieldDescriptor:
    """The descriptor of the field a path ("sampling.top_p", "weights[x]") ends at."""
    message, field = root, None
    for step in path.split("."):
        match = _STEP.match(step)
        assert match, path
        field = message.fields_by_name[match.group(1)]
        if field.message_type is not None and not _is_map(field):
            message = field.message_type
    assert field is not None
    return field


def set_path(request: Message, path: str, value: object) -> None:
    """Sets the field at `path`: a map entry for "name[key]", one item for "name[0]"."""
    *parents, last = path.split(".")
    target = request
    for step in parents:
        match = _STEP.match(step)
        assert match, path
        name, index = match.groups()
        target = getattr(target, name)
        if index is not None:  # "messages[0]": that item of a repeated message field
            while len(target) <= int(index):
                target.add()
            target = target[int(index)]
    match = _STEP.match(last)
    assert match, path
    name, key = match.groups()
    if key is None:
        setattr(target, name, value)
    elif key.isdigit():
        getattr(target, name).append(value)
    else:
        getattr(target, name)[key] = value
