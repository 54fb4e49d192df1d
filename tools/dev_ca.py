"""A local development CA and the edge's server certificate, made once by `make up`.

`python -m tools.dev_ca DIR` writes DIR/ca.pem (trust this), DIR/server.pem and
DIR/server.key (Envoy's), for 127.0.0.1 and localhost. Existing files are kept, so the
CA a developer has already trusted stays valid.
"""

from __future__ import annotations

import argparse
import pathlib
from dataclasses import dataclass

import trustme


@dataclass(frozen=True)
class DevCertificates:
    """Where the CA and the server's certificate chain and key are."""
    ca: pathlib.Path
    cert: pathlib.Path
    key: pathlib.Path


def ensure(directory: pathlib.Path, names: tuple[str, ...] = ("127.0.0.1", "localhost")
           ) -> DevCertificates:
    """The CA and server certificate in directory, made now if any file is missing."""
    files = DevCertificates(directory / "ca.pem", directory / "server.pem",
                            directory / "server.key")
    if all(p.exists() for p in (files.ca, files.cert, files.key)):
        return files
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="Cadenza local development")
    server = ca.issue_cert(*names)
    ca.cert_pem.write_to_path(str(files.ca))
    files.cert.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    server.private_key_pem.write_to_path(str(files.key))
    files.key.chmod(0o600)
    return files


def main() -> None:
    """The `python -m tools.dev_ca DIR` entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("directory", type=pathlib.Path)
    made = ensure(parser.parse_args().directory)
    print(f"CA {made.ca}\nserver certificate {made.cert}\nkey {made.key}")


if __name__ == "__main__":
    main()
