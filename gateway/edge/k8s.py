"""Envoy's config for Kubernetes, written by `python -m gateway.edge.k8s --out PATH`.

PATH is deploy/k8s/base/edge/envoy.json. The edge settings as deploy/k8s/base runs them
(backends at their Service names, the cert-manager Secret and the ConfigMap mounted at
fixed paths), rendered by gateway.edge.config. Beside envoy.json it writes the two other
files of the edge's ConfigMap: tls-sds.json (the listener's certificate, served to Envoy
by file-based SDS so that a certificate cert-manager renews is picked up without a
restart) and a copy of the descriptor set api.pb (kustomize reads no file outside its
root). tests/deploy checks the committed files against a fresh render, so they cannot
drift.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
from typing import Any

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from gateway.edge import config
from gateway.edge.settings import DESCRIPTOR_SET, EdgeSettings

# Where the Deployment mounts the ConfigMap edge-config and the Secret edge-tls.
CONFIG_DIR = "/etc/cadenza/edge"
TLS_DIR = "/etc/cadenza/tls"
# The Services of deploy/k8s/base (headless: DNS answers with every ready pod, so Envoy
# balances per call over all of them and health-checks each one).
ADDRESSES = {
    "retrieval": "retrieval-headless:50052",
    "recommend": "recommend-headless:50053",
    "generate": "generate-headless:50054",
    "gateway": "gateway-headless:50051",
}
# The names of the files in the ConfigMap (its keys).
CONFIG_FILE = "envoy.json"
SDS_FILE = "tls-sds.json"
DESCRIPTOR_FILE = "api.pb"
TLS_SECRET = "edge-tls"
_TYPE = "@type"


class _Given(EdgeSettings):
    """EdgeSettings from the values given and the defaults: never this machine's
    CADENZA_EDGE_* variables or files, so every render is the same."""

    @classmethod
    def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def settings() -> EdgeSettings:
    """The edge settings of the Kubernetes deployment."""
    return _Given(
        host="0.0.0.0",
        retrieval_address=ADDRESSES["retrieval"],
        recommend_address=ADDRESSES["recommend"],
        generate_address=ADDRESSES["generate"],
        gateway_address=ADDRESSES["gateway"],
        tls_cert_file=f"{TLS_DIR}/tls.crt",
        tls_key_file=f"{TLS_DIR}/tls.key",
        descriptor_set=f"{CONFIG_DIR}/{DESCRIPTOR_FILE}",
        authz=True,
        metering=True,
        # A command-line flag, not part of the config: the Deployment passes no
        # --concurrency, so Envoy starts one worker per core it sees.
        concurrency=0,
    )


def render() -> dict[str, Any]:
    """Envoy's bootstrap config for Kubernetes, the listener's certificate by SDS."""
    rendered = config.render(settings())
    (listener,) = rendered["static_resources"]["listeners"]
    (chain,) = listener["filter_chains"]
    common = chain["transport_socket"]["typed_config"]["common_tls_context"]
    # A static certificate is read once; SDS from a file, with the Secret's directory
    # watched, reloads it when the kubelet swaps in the renewed Secret.
    del common["tls_certificates"]
    common["tls_certificate_sds_secret_configs"] = [{
        "name": TLS_SECRET,
        "sds_config": {"path_config_source": {"path": f"{CONFIG_DIR}/{SDS_FILE}"},
                       "resource_api_version": "V3"}}]
    # SDS needs a node identity, even from a file (no management server sees it).
    rendered["node"] = {"id": "edge", "cluster": "cadenza-edge"}
    return rendered


def sds() -> dict[str, Any]:
    """The SDS file: the listener's certificate and key, reloaded when TLS_DIR changes."""
    edge = settings()
    return {"resources": [{
        _TYPE: "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
        "name": TLS_SECRET,
        "tls_certificate": {
            "certificate_chain": {"filename": edge.tls_cert_file},
            "private_key": {"filename": edge.tls_key_file},
            # The kubelet updates a Secret volume by renaming its ..data link: a move
            # into this directory, which is what Envoy watches for.
            "watched_directory": {"path": TLS_DIR},
        },
    }]}


def dumps(document: dict[str, Any]) -> str:
    """JSON as the committed files hold it (the layout gateway.edge.config writes)."""
    return json.dumps(document, indent=1) + "\n"


def write(out: pathlib.Path) -> list[pathlib.Path]:
    """Writes envoy.json to out, and tls-sds.json and api.pb beside it; returns the paths."""
    out.parent.mkdir(parents=True, exist_ok=True)
    sds_path, descriptors = out.with_name(SDS_FILE), out.with_name(DESCRIPTOR_FILE)
    out.write_text(dumps(render()))
    sds_path.write_text(dumps(sds()))
    shutil.copyfile(DESCRIPTOR_SET, descriptors)
    return [out, sds_path, descriptors]


def main() -> None:
    """`python -m gateway.edge.k8s --out deploy/k8s/base/edge/envoy.json`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=pathlib.Path, required=True,
                        help="envoy.json to write; tls-sds.json and api.pb go beside it")
    write(parser.parse_args().out)


if __name__ == "__main__":
    main()
