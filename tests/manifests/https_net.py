"""The internet for the real `curl`: one HTTPS server on loopback that answers every host
(github.com, get.helm.sh, charts.jetstack.io, ghcr.io, ...) with a certificate naming them all,
and a curlrc (CURL_HOME) that sends every connection there and trusts that certificate. Nothing
in the scripts or in curl is replaced: only where the network leads."""

from __future__ import annotations

import datetime
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from cryptography.hazmat.primitives.asymmetric import ec
from harness.certificates import certificate_pem, private_key_pem, self_signed_certificate

HOSTS = [
    "github.com",
    "api.github.com",
    "raw.githubusercontent.com",
    "get.helm.sh",
    "ghcr.io",
    "charts.jetstack.io",
    "argoproj.github.io",
    "bitnami-labs.github.io",
    "prometheus-community.github.io",
    "cloudnative-pg.github.io",
]


@dataclass
class Internet:
    """Files by URL path (any host); `requests` lists what was asked, in order."""

    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def serve(self, url: str, data: bytes | str) -> None:
        self.files[urlsplit(url).path] = data.encode() if isinstance(data, str) else data


def _certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed_certificate(
        key, "test internet", datetime.timedelta(days=1), hosts=HOSTS, ca=True
    )
    cert_path, key_path = directory / "internet.pem", directory / "internet.key"
    cert_path.write_bytes(certificate_pem(cert))
    key_path.write_bytes(private_key_pem(key))
    return cert_path, key_path


def _handler(internet: Internet) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = unquote(urlsplit(self.path).path)
            internet.requests.append(f"https://{self.headers.get('Host', '')}{self.path}")
            data = internet.files.get(path)
            self.send_response(200 if data is not None else 404)
            self.send_header("Content-Length", str(len(data or b"")))
            self.end_headers()
            self.wfile.write(data or b"")

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    return Handler


@contextmanager
def https_internet(directory: Path) -> Iterator[tuple[Internet, Path]]:
    """A running Internet and the CURL_HOME whose .curlrc leads curl to it."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = _certificate(directory)
    internet = Internet()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(internet))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    port = server.server_address[1]
    (directory / ".curlrc").write_text(f'connect-to = "::127.0.0.1:{port}"\ncacert = "{cert}"\n')
    try:
        yield internet, directory
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
