"""Generates Python, typed .pyi and gRPC code for every .proto under protos/ into --out."""

from __future__ import annotations

import argparse
import pathlib
import shutil
import sys
import tempfile

from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
# The public API's descriptors, imports included, for Envoy's gRPC-JSON transcoder.
DESCRIPTOR_SET = pathlib.Path("gateway/edge/api.pb")


def generate(out: pathlib.Path) -> None:
    """Writes the Python, .pyi and gRPC modules of every .proto into out."""
    files = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    include = str(pathlib.Path(protoc.__file__).parent / "_proto")
    # mypy-protobuf writes the .pyi files (messages and typed stubs/servicers for grpc.aio),
    # so that mypy --strict checks every call through them; protoc's own --pyi_out leaves
    # the gRPC module untyped.
    bin_dir = pathlib.Path(sys.executable).parent
    args = ["protoc", f"-I{PROTOS}", f"-I{include}", *_google_include(), f"--python_out={out}",
            f"--grpc_python_out={out}", f"--mypy_out={out}", f"--mypy_grpc_out={out}",
            f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
            f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}", *files]
    if protoc.main(args) != 0:
        sys.exit("protoc failed")
    (out / DESCRIPTOR_SET).parent.mkdir(parents=True, exist_ok=True)
    descriptors = ["protoc", f"-I{PROTOS}", f"-I{include}", *_google_include(),
                   "--include_imports", f"--descriptor_set_out={out / DESCRIPTOR_SET}", *files]
    if protoc.main(descriptors) != 0:
        sys.exit("protoc failed writing the descriptor set")
    # Generated packages need __init__.py so setuptools and mypy see them.
    for proto in files:
        package = out / pathlib.Path(proto).parent
        while package != out and package.name:
            (package / "__init__.py").touch()
            package = package.parent


def _google_include() -> list[str]:
    """googleapis-common-protos ships google/api/*.proto beside its modules, and the
    long-running operations proto as operations_proto.proto, though its module registers
    it as google/longrunning/operations.proto: an alias under that name keeps the two
    agreeing (protos import the registered name)."""
    import google.api.annotations_pb2 as annotations

    site = pathlib.Path(annotations.__file__).parents[2]
    alias = pathlib.Path(tempfile.mkdtemp(prefix="cadenza-protos-"))
    (alias / "google" / "longrunning").mkdir(parents=True)
    shutil.copy(site / "google" / "longrunning" / "operations_proto.proto",
                alias / "google" / "longrunning" / "operations.proto")
    return [f"-I{alias}", f"-I{site}"]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=pathlib.Path, default=ROOT)
    generate(parser.parse_args().out)
