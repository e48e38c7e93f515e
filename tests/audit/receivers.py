"""Local SIEM peers that speak the real protocols: syslog over TCP (RFC 5424 with
RFC 6587 octet counting, optionally TLS) and JSON over HTTPS."""

from __future__ import annotations

import contextlib
import datetime
import http.server
import json
import re
import socket
import ssl
import threading
from collections import Counter
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

RFC5424 = re.compile(
    r"^<(?P<pri>\d{1,3})>1 (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) (?P<procid>\S+) (?P<msgid>\S+) "
    r"(?P<sd>\[parley@32473 [^\]]*\]) \ufeff(?P<msg>.*)$",
    re.DOTALL,
)


def make_tls_files(directory: Path, host: str = "localhost") -> tuple[Path, Path, str]:
    """A self-signed certificate for ``host``; returns (cert, key, cert PEM as CA)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert_pem)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path, cert_pem.decode()


class SyslogReceiver:
    def __init__(self, tls: tuple[Path, Path] | None = None):
        self.messages: list[dict] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._context = None
        if tls:
            self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._context.load_cert_chain(*tls)
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        # A blocking listener: an accepted socket of a listener with a timeout
        # can stay non-blocking underneath, and TLS reads then end early.
        while not self._stop:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            if self._context:
                conn = self._context.wrap_socket(conn, server_side=True)
            buffer = b""
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                buffer += chunk
                while b" " in buffer:
                    length_text, rest = buffer.split(b" ", 1)
                    length = int(length_text)
                    if len(rest) < length:
                        break
                    self._parse(rest[:length].decode())
                    buffer = rest[length:]
        except Exception as exc:  # recorded for the test to see
            self.errors.append(repr(exc))
        finally:
            conn.close()

    def _parse(self, text: str) -> None:
        match = RFC5424.match(text)
        if not match:
            self.errors.append(f"not RFC 5424: {text[:120]!r}")
            return
        event = json.loads(match["msg"])
        with self._lock:
            self.messages.append(
                {
                    "pri": int(match["pri"]),
                    "msgid": match["msgid"],
                    "sd": match["sd"],
                    "event": event,
                }
            )

    def seqs(self) -> list[int]:
        with self._lock:
            return [m["event"]["seq"] for m in self.messages]

    def duplicates(self) -> dict[int, int]:
        return {seq: n for seq, n in Counter(self.seqs()).items() if n > 1}

    def close(self) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()


class HttpsJsonReceiver:
    def __init__(self, tls: tuple[Path, Path]):
        self.batches: list[dict] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.batches.append(
                    {"content_type": self.headers["Content-Type"], "body": json.loads(body)}
                )
                self.send_response(202)
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*tls)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()

    def close(self) -> None:
        self._server.shutdown()
