"""The outbound guard: only globally routable destinations in production, vetted where
the socket connects (so DNS rebinding cannot swap in a private address), the host name
kept for TLS and the Host header. DNS is the third party here, so the resolver is the
one thing patched; the servers are real sockets on 127.0.0.1."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import override_settings

from parley import outbound
from tests.audit.receivers import make_tls_files

PUBLIC = "93.184.216.34"

REFUSED = [
    "127.0.0.1",
    "::1",
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",
    "100.100.100.200",  # carrier-grade NAT range; Alibaba's metadata address
    "0.0.0.0",  # noqa: S104 - an address to refuse, not to bind
    "224.0.0.1",  # multicast
    "239.255.255.250",
    "ff02::1",
    "ff0e::1",
    "2002:a00:1::1",  # 6to4 wrapping 10.0.0.1
    "2002:c0a8:101::1",  # 6to4 wrapping 192.168.1.1
    "2002:7f00:1::1",  # 6to4 wrapping 127.0.0.1
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:169.254.169.254",
    "64:ff9b::a9fe:a9fe",  # NAT64 wrapping 169.254.169.254
    "64:ff9b::a00:1",  # NAT64 wrapping 10.0.0.1
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "::a00:1",  # IPv4-compatible
    "fc00::1",
    "fe80::1",
    "240.0.0.1",
    "255.255.255.255",
]

ALLOWED = ["8.8.8.8", PUBLIC, "2606:4700::1111", "2002:808:808::1", "64:ff9b::808:808"]


class FakeDNS:
    """Answers for test names, in sequence (the last answer repeats); real DNS otherwise."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.answers: dict[str, list[str]] = {}
        self.calls: list[str] = []
        self._real = socket.getaddrinfo
        monkeypatch.setattr(socket, "getaddrinfo", self)

    def __call__(self, host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002
        if host not in self.answers:
            return self._real(host, port, family, type, proto, flags)
        self.calls.append(host)
        sequence = self.answers[host]
        address = sequence.pop(0) if len(sequence) > 1 else sequence[0]
        ip = ipaddress.ip_address(address)
        if ip.version == 6:
            return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, int(port), 0, 0))]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port)))]


@pytest.fixture
def dns(monkeypatch) -> FakeDNS:
    return FakeDNS(monkeypatch)


class Recorder(BaseHTTPRequestHandler):
    """Answers every GET/POST with the server's next status; records the Host header."""

    def _answer(self):
        self.server.hits.append(self.headers["Host"])
        self.server.times.append(time.monotonic())
        status = self.server.statuses.pop(0) if self.server.statuses else 200
        body = self.server.bodies.pop(0) if self.server.bodies else b"{}"
        self.send_response(status)
        for name, value in self.server.extra_headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer  # noqa: N815

    def log_message(self, *args):
        pass


def _reset(httpd: ThreadingHTTPServer) -> None:
    """What the next requests get (statuses, bodies, headers) and what they left (hits, times)."""
    httpd.hits, httpd.statuses, httpd.times, httpd.bodies, httpd.extra_headers = [], [], [], [], []


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    _reset(httpd)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("address", REFUSED)
@override_settings(PARLEY_OUTBOUND_ALLOW_PRIVATE=False)
def test_it_refuses_non_public_destinations(address, dns):
    dns.answers["victim.test"] = [address]
    with pytest.raises(outbound.OutboundError) as exc:
        outbound.check_destination("victim.test", 443)
    assert "refused" in str(exc.value) and not exc.value.transient
    # An address literal in a URL is refused the same way (real resolver).
    with pytest.raises(outbound.OutboundError):
        outbound.check_destination(address, 443)


@pytest.mark.parametrize("address", ALLOWED)
@override_settings(PARLEY_OUTBOUND_ALLOW_PRIVATE=False)
def test_it_lets_globally_routable_destinations_through(address, dns):
    dns.answers["public.test"] = [address]
    outbound.check_destination("public.test", 443)
    assert outbound.refusal_reason(ipaddress.ip_address(address)) is None


@override_settings(PARLEY_OUTBOUND_ALLOW_PRIVATE=False)
def test_one_private_answer_refuses_the_name(dns, monkeypatch):
    def two_answers(host, port, *args, **kwargs):
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC, port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.1", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", two_answers)
    with pytest.raises(outbound.OutboundError, match="refused"):
        outbound.check_destination("mixed.test", 443)


@pytest.mark.parametrize("address", REFUSED)
@override_settings(PARLEY_OUTBOUND_ALLOW_PRIVATE=False)
def test_the_connection_itself_refuses_what_the_name_turns_into(address, dns, server):
    """DNS rebinding: public when the guard looks, private when the client connects."""
    dns.answers["rebind.test"] = [PUBLIC, address]
    with pytest.raises(outbound.OutboundError) as exc:
        outbound.request("GET", f"http://rebind.test:{server.server_port}/x", retries=0)
    assert "refused" in str(exc.value) and not exc.value.transient
    assert server.hits == []
    assert dns.calls == ["rebind.test", "rebind.test"]


@override_settings(PARLEY_OUTBOUND_ALLOW_PRIVATE=False)
def test_rebinding_to_loopback_never_reaches_the_local_server(dns, server):
    dns.answers["rebind.test"] = [PUBLIC, "127.0.0.1"]
    with pytest.raises(outbound.OutboundError, match="refused"):
        outbound.request(
            "POST", f"http://rebind.test:{server.server_port}/hook", json_body={}, retries=3
        )
    assert server.hits == []


@override_settings(
    PARLEY_OUTBOUND_ALLOW_PRIVATE=False,
    PARLEY_OUTBOUND_ALLOWED_NETWORKS=[ipaddress.ip_network("127.0.0.1/32")],
)
def test_every_retry_vets_its_new_connection(dns, server):
    """The first connection lands (explicitly allowed); the retry's lookup turns private."""
    server.statuses = [503]  # HTTP/1.0 server: the connection closes, the retry reconnects
    dns.answers["flaky.test"] = ["127.0.0.1", "127.0.0.1", "10.0.0.7"]
    with pytest.raises(outbound.OutboundError, match="refused"):
        outbound.request("GET", f"http://flaky.test:{server.server_port}/", backoff=0)
    assert len(server.hits) == 1
    assert dns.calls == ["flaky.test"] * 3


@override_settings(
    PARLEY_OUTBOUND_ALLOW_PRIVATE=False,
    PARLEY_OUTBOUND_ALLOWED_NETWORKS=[ipaddress.ip_network("127.0.0.1/32")],
)
def test_retries_with_backoff_still_work_on_vetted_connections(dns, server):
    server.statuses = [503, 502]
    dns.answers["flaky.test"] = ["127.0.0.1"]
    response = outbound.request("GET", f"http://flaky.test:{server.server_port}/", backoff=0)
    assert response.status == 200 and response.attempts == 3
    assert server.hits == [f"flaky.test:{server.server_port}"] * 3


@override_settings(
    PARLEY_OUTBOUND_ALLOW_PRIVATE=False,
    PARLEY_OUTBOUND_ALLOWED_NETWORKS=[ipaddress.ip_network("127.0.0.1/32")],
)
def test_tls_and_the_host_header_keep_the_host_name(dns, tmp_path):
    """Connected to the vetted IP, yet SNI, the certificate check and Host use the name."""
    cert, key, ca_pem = make_tls_files(tmp_path, host="crm.test")
    seen_sni: list[str | None] = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    _reset(httpd)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: seen_sni.append(name)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port = httpd.server_address[1]
    try:
        dns.answers["crm.test"] = ["127.0.0.1"]
        response = outbound.request("GET", f"https://crm.test:{port}/v1", ca_pem=ca_pem)
        assert response.status == 200
        assert httpd.hits == [f"crm.test:{port}"] and seen_sni == ["crm.test"]
        # The same server under another name: its certificate does not match, refused.
        dns.answers["other.test"] = ["127.0.0.1"]
        with pytest.raises(outbound.OutboundError, match="SSL"):
            outbound.request("GET", f"https://other.test:{port}/v1", ca_pem=ca_pem, retries=0)
        assert len(httpd.hits) == 1
    finally:
        httpd.shutdown()
        httpd.server_close()


@override_settings(PARLEY_OUTBOUND_ALLOW_PRIVATE=True)
def test_local_servers_work_when_private_addresses_are_allowed(server):
    response = outbound.request("POST", f"http://127.0.0.1:{server.server_port}/x", json_body={})
    assert response.status == 200 and response.json() == {}
    outbound.check_destination("127.0.0.1", server.server_port)


@override_settings(PARLEY_OUTBOUND_ALLOW_PRIVATE=False)
def test_raw_tcp_connections_are_vetted_too(dns):
    """The syslog SIEM path opens sockets through the same guard."""
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        dns.answers["siem.test"] = ["127.0.0.1"]
        with pytest.raises(outbound.OutboundError, match="refused"):
            outbound.open_connection("siem.test", listener.getsockname()[1], timeout=2)
        listener.settimeout(0.2)
        with pytest.raises(TimeoutError):
            listener.accept()
    finally:
        listener.close()


def test_allowed_networks_must_be_cidrs(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    from parley.env import env_networks

    monkeypatch.setenv("PARLEY_OUTBOUND_ALLOWED_NETWORKS", "10.20.0.0/16, fd00::/64")
    assert [str(n) for n in env_networks("PARLEY_OUTBOUND_ALLOWED_NETWORKS")] == [
        "10.20.0.0/16",
        "fd00::/64",
    ]
    for bad in ("10.20.0.1/16", "example.com", "10.0.0.0/33", "1²7.0.0.0/8", "::ffff:0:0/200"):
        monkeypatch.setenv("PARLEY_OUTBOUND_ALLOWED_NETWORKS", bad)
        with pytest.raises(ImproperlyConfigured):
            env_networks("PARLEY_OUTBOUND_ALLOWED_NETWORKS")


def test_an_error_answer_keeps_a_bounded_body_and_its_headers(server):
    # A vendor's error code is in the body (Graph answers 131047 with HTTP 400).
    server.statuses = [400]
    server.bodies = [b'{"error": {"code": 131047}}' + b" " * 40_000]
    server.extra_headers = [("X-Vendor", "yes")]
    with pytest.raises(outbound.OutboundError) as caught:
        outbound.request("POST", f"http://127.0.0.1:{server.server_port}/x", json_body={})
    error = caught.value
    assert error.status == 400 and not error.transient
    assert error.body.startswith(b'{"error": {"code": 131047}}')
    assert len(error.body) == outbound.ERROR_BODY_LIMIT
    assert error.headers["x-vendor"] == "yes"
    assert "131047" not in str(error)  # the body is for the caller, never the message


def test_a_transient_answer_waits_for_its_retry_after(server):
    server.statuses = [429]
    server.extra_headers = [("Retry-After", "1")]
    response = outbound.request("GET", f"http://127.0.0.1:{server.server_port}/", backoff=0)
    assert response.status == 200 and response.attempts == 2
    assert server.times[1] - server.times[0] >= 0.95


def test_a_retry_after_beyond_the_limit_ends_the_call(server):
    server.statuses = [503]
    server.extra_headers = [("Retry-After", "3600")]
    with pytest.raises(outbound.OutboundError) as caught:
        outbound.request("GET", f"http://127.0.0.1:{server.server_port}/", backoff=0)
    assert caught.value.transient and caught.value.retry_after == 3600
    assert len(server.hits) == 1
