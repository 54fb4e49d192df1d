"""The committed generated code is exactly what `make protos` produces."""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_regenerating_protos_changes_nothing(tmp_path: pathlib.Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "tools/gen_protos.py"), "--out", str(tmp_path)],
                   check=True)
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert generated, "protoc produced nothing"
    # Package markers only need to exist (cadenza/__init__.py has a docstring).
    stale = [str(rel) for rel in generated
             if not (ROOT / rel).exists() or (rel.name != "__init__.py" and
                                              (ROOT / rel).read_bytes() !=
                                              (tmp_path / rel).read_bytes())]
    assert not stale, f"run `make protos` and commit: {stale}"
    committed = sorted(p.relative_to(ROOT) for p in (ROOT / "cadenza").rglob("*_pb2*.py*"))
    orphans = set(committed) - set(generated)
    assert not orphans, f"generated files without a .proto: {sorted(map(str, orphans))}"


def test_every_rpc_has_its_own_request_and_response_messages() -> None:
    from cadenza.gateway.v1 import gateway_pb2
    from cadenza.generate.v1 import generate_pb2
    from cadenza.recommend.v1 import recommend_pb2
    from cadenza.retrieval.v1 import retrieval_pb2

    for module in (retrieval_pb2, recommend_pb2, generate_pb2, gateway_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                assert method.input_type.name == f"{method.name}Request", method.full_name
                if method.output_type.full_name == "google.longrunning.Operation":
                    continue  # AIP-151: a method that starts an operation returns it
                assert method.output_type.name == f"{method.name}Response", method.full_name
