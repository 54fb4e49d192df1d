"""Every numeric field of every request has a range: in ranges.py and in the .proto."""

from __future__ import annotations

import pathlib
import re

import pytest

from tests.requests.fields import field_at, is_numeric, reachable_fields, request_types
from tests.requests.ranges import BOUNDS, Bound

PROTOS = pathlib.Path(__file__).resolve().parents[2] / "protos"


def test_every_numeric_request_field_has_a_bound() -> None:
    numeric = {f.full_name for root in request_types() for f in reachable_fields(root)
               if is_numeric(f)}
    covered = {b.field for b in BOUNDS}
    assert numeric - covered == set(), "numeric request fields without a Bound in ranges.py"
    assert covered - numeric == set(), "Bounds for fields no request has"


@pytest.mark.parametrize("bound", BOUNDS, ids=lambda b: f"{b.root.__name__}.{b.path}")
def test_the_path_reaches_the_field(bound: Bound) -> None:
    assert field_at(bound.root.DESCRIPTOR, bound.path).full_name == bound.field


def _comment(full_name: str) -> str:
    """The // comment lines right above a field in its .proto file, and after it."""
    package, message, field = full_name.rsplit(".", 2)
    path = PROTOS.joinpath(*package.split("."), f"{package.split('.')[1]}.proto")
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"\s*message {message} \{{", line))
    at = next(i for i in range(start, len(lines))
              if re.match(rf"\s*(optional |repeated )?[\w.<>, ]+ {field} = \d+;", lines[i]))
    above = []
    for line in reversed(lines[start + 1:at]):
        if not line.strip().startswith("//"):
            break
        above.append(line.strip()[2:].strip())
    after = lines[at].split("//", 1)[1] if "//" in lines[at] else ""
    return " ".join([*reversed(above), after])


@pytest.mark.parametrize("bound", BOUNDS, ids=lambda b: b.field)
def test_the_proto_documents_the_range(bound: Bound) -> None:
    comment = _comment(bound.field)
    assert bound.doc.lower() in comment.lower(), (
        f"{bound.field}: the .proto comment {comment!r} does not say {bound.doc!r}")
