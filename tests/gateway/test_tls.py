"""TLS on the edge's public listener, with `make up`'s development CA (tools/dev_ca)."""

from __future__ import annotations

import asyncio
import json
import pathlib
import sys
from collections.abc import AsyncIterator

import grpc
import grpc.aio
import pytest

from cadenza.retrieval.v1 import retrieval_pb2, retrieval_pb2_grpc
from tests.gateway.public_path import Mesh, start
from tools.dev_ca import DevCertificates, ensure


@pytest.fixture
def certs(tmp_path: pathlib.Path) -> DevCertificates:
    return ensure(tmp_path / "tls")


@pytest.fixture
async def tls_mesh(tmp_path: pathlib.Path, certs: DevCertificates) -> AsyncIterator[Mesh]:
    running = await start("envoy", tmp_path / "edge", edge_settings={
        "tls_cert_file": certs.cert, "tls_key_file": certs.key})
    yield running
    await running.close()


async def get_track(address: str, credentials: grpc.ChannelCredentials | None) -> str:
    channel = (grpc.aio.secure_channel(address, credentials) if credentials
               else grpc.aio.insecure_channel(address))
    async with channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        reply = await stub.GetTrack(retrieval_pb2.GetTrackRequest(track_id="t1"), timeout=5)
        return reply.track.metadata.track_id


async def test_tls_handshake_with_the_dev_ca(tls_mesh: Mesh, certs: DevCertificates) -> None:
    assert tls_mesh.edge is not None
    trusted = grpc.ssl_channel_credentials(certs.ca.read_bytes())
    assert await get_track(tls_mesh.edge.address, trusted) == "t1"


async def test_a_client_without_the_ca_is_refused(tls_mesh: Mesh, tmp_path: pathlib.Path
                                                  ) -> None:
    assert tls_mesh.edge is not None
    # The system's roots do not know the dev CA; neither does another CA.
    other = ensure(tmp_path / "other")
    for credentials in (grpc.ssl_channel_credentials(),
                        grpc.ssl_channel_credentials(other.ca.read_bytes())):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await get_track(tls_mesh.edge.address, credentials)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    # Nor does plaintext get through a TLS listener.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await get_track(tls_mesh.edge.address, None)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def cli(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cadenza.cli.main", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    return int(proc.returncode or 0), out.decode()


async def test_the_cli_trusts_the_ca_it_is_given(tls_mesh: Mesh, certs: DevCertificates,
                                                 tmp_path: pathlib.Path) -> None:
    assert tls_mesh.edge is not None
    target = ("--target", tls_mesh.edge.address)
    code, out = await cli("health", "--json", *target, "--ca-file", str(certs.ca))
    # recommend is not running in this mesh, so the health check itself says 1.
    assert json.loads(out)["gateway"]["status"] == "SERVING", out
    assert code == 1
    code, out = await cli("health", *target, "--ca-file", str(ensure(tmp_path / "o").ca))
    assert code != 0 and "UNAVAILABLE" in out
    code, out = await cli("health", *target, "--insecure")
    assert code != 0 and "UNAVAILABLE" in out
    code, out = await cli("health", *target, "--ca-file", str(tmp_path / "missing.pem"))
    assert code != 0 and "no CA certificate" in out
