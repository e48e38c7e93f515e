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
import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from parley import outbound
from parley.env import env_networks
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
    threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    ).start()
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
    threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    ).start()
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


# --- circuit breaker and rate limit (real Redis, explicit clock) ---------------------------------


class Clock:
    """The wall clock the breaker and buckets read, moved by hand."""

    def __init__(self, start: float = 1_800_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fixed = Clock()
    monkeypatch.setattr(outbound, "clock", fixed)
    return fixed


def _client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def _url(server) -> str:
    return f"http://127.0.0.1:{server.server_port}/x"


def _fail(server, times: int) -> None:
    server.statuses = [503] * times
    for _ in range(times):
        with pytest.raises(outbound.OutboundError) as caught:
            outbound.request("GET", _url(server), retries=0)
        assert not isinstance(caught.value, outbound.CircuitOpen)


@override_settings(PARLEY_OUTBOUND_BREAKER_FAILURES=3, PARLEY_OUTBOUND_BREAKER_RESET_SECONDS=30)
def test_the_breaker_opens_after_n_failures_and_then_spares_the_network(server, clock):
    _fail(server, 3)
    assert len(server.hits) == 3
    clock.now += 10
    with pytest.raises(outbound.CircuitOpen) as caught:
        outbound.request("GET", _url(server), retries=3, backoff=0)
    assert caught.value.transient and caught.value.status is None
    assert caught.value.retry_after == pytest.approx(20, abs=0.01)
    assert len(server.hits) == 3  # no request was made


@override_settings(PARLEY_OUTBOUND_BREAKER_FAILURES=3)
def test_a_success_or_an_answer_breaks_the_streak(server, clock):
    _fail(server, 2)
    server.statuses = [404]  # an answer: the destination is up
    with pytest.raises(outbound.OutboundError):
        outbound.request("GET", _url(server), retries=0)
    _fail(server, 2)
    outbound.request("GET", _url(server), retries=0)  # still closed
    assert len(server.hits) == 6


@override_settings(PARLEY_OUTBOUND_BREAKER_FAILURES=2)
def test_429_does_not_count_toward_the_breaker(server, clock):
    server.statuses = [429, 429, 429]
    for _ in range(3):
        with pytest.raises(outbound.OutboundError) as caught:
            outbound.request("GET", _url(server), retries=0)
        assert caught.value.status == 429
    assert outbound.request("GET", _url(server), retries=0).status == 200


@override_settings(PARLEY_OUTBOUND_BREAKER_FAILURES=2)
def test_network_failures_count(clock):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens: connection refused
    for _ in range(2):
        with pytest.raises(outbound.OutboundError) as caught:
            outbound.request("GET", f"http://127.0.0.1:{port}/", retries=0)
        assert not isinstance(caught.value, outbound.CircuitOpen)
    with pytest.raises(outbound.CircuitOpen):
        outbound.request("GET", f"http://127.0.0.1:{port}/", retries=0)


@override_settings(PARLEY_OUTBOUND_BREAKER_FAILURES=2, PARLEY_OUTBOUND_BREAKER_RESET_SECONDS=30)
def test_half_open_success_closes_and_failure_reopens(server, clock):
    _fail(server, 2)
    clock.now += 31
    server.statuses = [500]  # the trial fails: open again for a full cool-down
    with pytest.raises(outbound.OutboundError) as caught:
        outbound.request("GET", _url(server), retries=0)
    assert not isinstance(caught.value, outbound.CircuitOpen) and len(server.hits) == 3
    with pytest.raises(outbound.CircuitOpen) as caught:
        outbound.request("GET", _url(server), retries=0)
    assert caught.value.retry_after == pytest.approx(30, abs=0.01)
    clock.now += 31
    assert outbound.request("GET", _url(server), retries=0).status == 200  # the trial succeeds
    for _ in range(3):  # closed: everyone goes through
        outbound.request("GET", _url(server), retries=0)
    assert len(server.hits) == 7


def test_half_open_lets_exactly_one_trial_through_across_racing_workers():
    """Eight workers, each with its own Redis connection, race for the trial."""
    destination = "https://racing.test:443"
    now = 1_800_000_000.0
    opener = outbound.CircuitBreaker(_client(), failures=1, reset_seconds=30)
    assert opener.record(destination, failed=True, now=now)
    barrier = threading.Barrier(8)
    verdicts: list[object] = []
    lock = threading.Lock()

    def worker():
        breaker = outbound.CircuitBreaker(_client(), failures=1, reset_seconds=30)
        barrier.wait()
        try:
            verdict: object = breaker.admit(destination, now=now + 31, lease=25)
        except outbound.CircuitOpen as exc:
            verdict = exc
        with lock:
            verdicts.append(verdict)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert verdicts.count(True) == 1
    refused = [v for v in verdicts if isinstance(v, outbound.CircuitOpen)]
    assert len(refused) == 7
    assert all(v.retry_after == pytest.approx(25, abs=0.01) for v in refused)
    # The trial's worker died: after its lease another may try.
    assert opener.admit(destination, now=now + 31 + 26, lease=25) is True


def test_the_breaker_is_shared_between_workers_and_isolated_per_destination():
    now = 1_800_000_000.0
    worker_a = outbound.CircuitBreaker(_client(), failures=3, reset_seconds=30)
    worker_b = outbound.CircuitBreaker(_client(), failures=3, reset_seconds=30)
    down, up = "https://down.test:443", "https://up.test:443"
    assert not worker_a.record(down, failed=True, now=now)
    assert not worker_b.record(down, failed=True, now=now + 1)
    assert worker_a.record(down, failed=True, now=now + 2)  # the third, counted across workers
    with pytest.raises(outbound.CircuitOpen):
        worker_b.admit(down, now=now + 3, lease=25)
    assert worker_b.admit(up, now=now + 3, lease=25) is False  # another destination: closed
    assert worker_b.admit("https://down.test:8443", now=now + 3, lease=25) is False  # other port


def test_the_destination_is_scheme_host_and_port():
    assert outbound.destination_of("https://Graph.Facebook.com/v21.0/x?y=1") == (
        "https://graph.facebook.com:443"
    )
    assert outbound.destination_of("http://shop.test/hook") == "http://shop.test:80"
    assert outbound.destination_of("https://shop.test:8443/") == "https://shop.test:8443"
    assert outbound.destination_of("https://[2606:4700::1111]/") == "https://[2606:4700::1111]:443"


def test_a_quiet_streak_is_forgotten():
    breaker = outbound.CircuitBreaker(_client(), failures=2, reset_seconds=30)
    breaker.record("https://quiet.test:443", failed=True, now=0)
    key = outbound.CircuitBreaker.key("https://quiet.test:443")
    assert 0 < _client().ttl(key) <= outbound.BREAKER_WINDOW_SECONDS


@override_settings(REDIS_URL="redis://127.0.0.1:1/0", PARLEY_OUTBOUND_BREAKER_FAILURES=1)
def test_redis_down_fails_open_with_one_warning(server, caplog):
    server.statuses = [503, 503]
    with caplog.at_level("WARNING", logger="parley.outbound"):
        for _ in range(2):
            with pytest.raises(outbound.OutboundError) as caught:
                outbound.request("GET", _url(server), retries=0, rate_key="channel:1")
            assert caught.value.status == 503
        assert outbound.request("GET", _url(server), retries=0, rate_key="channel:1").status == 200
    assert len(server.hits) == 3
    assert sum("Redis unavailable" in r.getMessage() for r in caplog.records) == 1


def test_the_rate_limit_allows_its_rate_and_refuses_beyond_with_retry_after(server, clock):
    for _ in range(5):
        outbound.request("GET", _url(server), retries=0, rate_key="channel:7", rate_per_second=5)
    with pytest.raises(outbound.RateLimited) as caught:
        outbound.request("GET", _url(server), retries=0, rate_key="channel:7", rate_per_second=5)
    assert caught.value.transient and caught.value.retry_after == pytest.approx(0.2, abs=0.001)
    assert len(server.hits) == 5  # refused without a request
    # Another channel has its own bucket.
    outbound.request("GET", _url(server), retries=0, rate_key="channel:8", rate_per_second=5)
    clock.now += 0.2
    outbound.request("GET", _url(server), retries=0, rate_key="channel:7", rate_per_second=5)
    assert len(server.hits) == 7


@override_settings(PARLEY_OUTBOUND_CHANNEL_RATE_PER_SECOND=2)
def test_the_rate_defaults_to_the_setting(server, clock):
    outbound.request("GET", _url(server), retries=0, rate_key="channel:9")
    outbound.request("GET", _url(server), retries=0, rate_key="channel:9")
    with pytest.raises(outbound.RateLimited):
        outbound.request("GET", _url(server), retries=0, rate_key="channel:9")


def test_the_rate_limit_is_shared_between_workers():
    now = 1_800_000_000.0
    worker_a, worker_b = outbound.RateLimiter(_client()), outbound.RateLimiter(_client())
    for _ in range(3):
        worker_a.take("channel:shared", rate_per_second=4, now=now)
    worker_b.take("channel:shared", rate_per_second=4, now=now)
    with pytest.raises(outbound.RateLimited) as caught:
        worker_b.take("channel:shared", rate_per_second=4, now=now)
    assert caught.value.retry_after == pytest.approx(0.25, abs=0.001)
    with pytest.raises(outbound.RateLimited):
        worker_a.take("channel:shared", rate_per_second=4, now=now + 0.1)
    worker_a.take("channel:shared", rate_per_second=4, now=now + 0.25)


@pytest.mark.parametrize(
    "bad",
    [{"rate_key": ""}, {"rate_key": "a\x00b"}, {"rate_key": "x" * 201}, {"rate_key": "ch²"}]
    + [{"rate_key": "c", "rate_per_second": v} for v in (0, -1, float("nan"), float("inf"), True)],
)
def test_bad_rate_arguments_are_refused_before_any_request(server, bad):
    with pytest.raises(ValueError):
        outbound.request("GET", _url(server), retries=0, **bad)
    assert server.hits == []


def test_on_attempt_is_told_about_every_attempt(server):
    seen: list[tuple] = []

    def record(*, attempt, status, error, elapsed_ms):
        seen.append((attempt, status, error, elapsed_ms >= 0))

    server.statuses = [503, 502]
    response = outbound.request("GET", _url(server), backoff=0, on_attempt=record)
    assert response.status == 200
    assert seen == [
        (1, 503, "OutboundError", True),
        (2, 502, "OutboundError", True),
        (3, 200, None, True),
    ]
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    seen.clear()
    with pytest.raises(outbound.OutboundError):
        outbound.request("GET", f"http://127.0.0.1:{port}/", retries=0, on_attempt=record)
    assert seen == [(1, None, "ConnectionRefusedError", True)]


def test_a_failing_on_attempt_does_not_fail_the_call(server):
    def broken(**_kwargs):
        raise RuntimeError("database down")

    assert outbound.request("GET", _url(server), retries=0, on_attempt=broken).status == 200
    assert len(server.hits) == 1


class _KeepAlive(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive: notes the client port of every request."""

    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.ports.append(self.client_address[1])
        self.server.connections.append(self.connection)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@pytest.fixture
def keepalive_server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _KeepAlive)
    httpd.ports, httpd.connections = [], []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02})
    thread.start()
    try:
        yield httpd
    finally:
        outbound.pools_clear()
        httpd.shutdown()
        httpd.server_close()


@override_settings(PARLEY_OUTBOUND_ALLOW_PRIVATE=True)
def test_calls_to_one_destination_reuse_a_kept_connection(keepalive_server, monkeypatch):
    """Replies of a channel cost one handshake per connection, not per message; a
    forked process (gunicorn, Celery prefork) never uses its parent's sockets."""
    url = f"http://127.0.0.1:{keepalive_server.server_port}/send"
    for _ in range(5):
        assert outbound.request("POST", url, json_body={"n": 1}, retries=0).status == 200
    assert len(keepalive_server.ports) == 5 and len(set(keepalive_server.ports)) == 1

    real_pid = outbound.os.getpid()
    monkeypatch.setattr(outbound.os, "getpid", lambda: real_pid + 1)  # as after a fork
    assert outbound.request("POST", url, json_body={}, retries=0).status == 200
    assert len(set(keepalive_server.ports)) == 2


@override_settings(PARLEY_OUTBOUND_ALLOW_PRIVATE=True)
def test_a_kept_connection_the_server_closed_is_replaced(keepalive_server):
    url = f"http://127.0.0.1:{keepalive_server.server_port}/send"
    assert outbound.request("POST", url, json_body={}, retries=0).status == 200
    # The server closes the kept connection (as its idle timeout would).
    for kept in keepalive_server.connections:
        kept.shutdown(socket.SHUT_RDWR)
    time.sleep(0.05)
    assert outbound.request("POST", url, json_body={}, retries=0).status == 200
    assert len(keepalive_server.ports) == 2
    assert keepalive_server.ports[0] != keepalive_server.ports[1]  # a new connection
