"""Outgoing HTTP (RELIABILITY 17-18): refused URLs, pinned connections, no redirects, caps.

Every test talks only to a local server on 127.0.0.1. A guard replaces the socket module's
connect and name lookup for the whole module: a connection to any other address is refused
locally (and recorded), and a lookup of any name fails, so a test that went wrong can send
nothing anywhere, and a test can show where the client tried to connect.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import socketserver
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from engine import http
from engine.settings import Settings
from tests.conftest import unavailable

PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"


# --- The local peer ----------------------------------------------------------------------------


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    client_port: int


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Peer

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.received.append(
            Received(
                self.command,
                self.path,
                {k.lower(): v for k, v in self.headers.items()},
                body,
                self.client_address[1],
            )
        )
        if self.path.startswith("/redirect"):
            self._reply(302, b"", location="/echo")
        elif self.path.startswith("/big"):
            size = int(self.path.partition("size=")[2] or 1024 * 1024)
            self._reply(200, b"x" * size)
        elif self.path.startswith("/slow"):
            self.server.release.wait(5)
            self._reply(200, b"late")
        else:
            self._reply(200, b'{"ok": true}')

    def _reply(self, status: int, body: bytes, location: str | None = None) -> None:
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Peer(ThreadingHTTPServer):
    """A recording HTTP(S) server on 127.0.0.1 that never looks its own name up."""

    daemon_threads = True

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[Received] = []
        self.sni: list[str | None] = []
        self.release = threading.Event()
        if tls is not None:

            def record_sni(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
                self.sni.append(name)

            tls.sni_callback = record_sni
            self.socket = tls.wrap_socket(self.socket, server_side=True)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def server_bind(self) -> None:
        # HTTPServer.server_bind would call getfqdn(): a lookup the guard exists to forbid.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.port

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that stop reading at the body cap reset the connection: expected


@contextlib.contextmanager
def running(peer: Peer) -> Iterator[Peer]:
    thread = threading.Thread(target=peer.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield peer
    finally:
        peer.release.set()
        peer.shutdown()
        peer.server_close()
        thread.join(5)


@pytest.fixture
def peer() -> Iterator[Peer]:
    with running(Peer()) as p:
        yield p


@dataclass
class Guard:
    connects: list[tuple[str, int]] = field(default_factory=list)
    lookups: list[str] = field(default_factory=list)


@pytest.fixture(autouse=True)
def guard(monkeypatch: pytest.MonkeyPatch) -> Guard:
    """No connection but to 127.0.0.1 and no lookup of a name: the network rule, enforced."""
    seen = Guard()
    real_connect, real_lookup = socket.create_connection, socket.getaddrinfo

    def connect(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        seen.connects.append((address[0], address[1]))
        if address[0] != "127.0.0.1":
            raise ConnectionRefusedError(f"test guard: no traffic to {address[0]}")
        return real_connect(address, *args, **kwargs)

    def lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        seen.lookups.append(str(host))
        if host != "127.0.0.1":
            raise socket.gaierror(socket.EAI_NONAME, f"test guard: no lookup of {host}")
        return real_lookup(host, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", connect)
    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    return seen


class FakeResolver:
    """Answers from a table; each name may have a list of answers, one per lookup, last repeats."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    @classmethod
    def fixed(cls, answers: dict[str, list[str]]) -> FakeResolver:
        return cls({host: [ips] for host, ips in answers.items()})

    def resolve(self, host: str, port: int) -> list[str]:
        seq = self.answers.get(host, [[]])
        answer = seq[min(sum(c == host for c in self.calls), len(seq) - 1)]
        self.calls.append(host)
        return list(answer)


# --- Refused URLs ------------------------------------------------------------------------------

RESOLVED = {
    "hooks.test": [PUBLIC_V4],
    "internal.example": ["10.0.0.5"],
    "mixed.example": [PUBLIC_V4, "192.168.1.1"],
    "mixed6.example": [PUBLIC_V6, "::1"],
    "odd.example": ["not-an-ip"],
}

REFUSED = [
    ("http://hooks.test:{port}/", "https is required"),
    ("ftp://hooks.test/", "https is required"),
    ("https://127.0.0.1:{port}/", "127.0.0.1 is a loopback address"),
    ("https://[::1]:{port}/", "::1 is a loopback address"),
    ("https://0.0.0.0:{port}/", "0.0.0.0 is an unspecified address"),
    ("https://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
    ("https://10.1.2.3/", "10.1.2.3 is a private address"),
    ("https://172.16.0.1/", "private address"),
    ("https://192.168.0.1/", "private address"),
    ("https://100.64.0.1/", "100.64.0.1 is a shared (carrier-grade NAT) address"),
    ("https://224.0.0.1/", "multicast address"),
    ("https://240.0.0.1/", "reserved address"),
    ("https://0x7f000001:{port}/", "0x7f000001 is not a valid IPv4 address"),
    ("https://2130706433:{port}/", "2130706433 is not a valid IPv4 address"),
    ("https://127.1:{port}/", "127.1 is not a valid IPv4 address"),
    ("https://1.2.3.4.5/", "not a valid IPv4 address"),
    ("https://0177.0.0.1:{port}/", "not a valid URL"),
    ("https://[::ffff:127.0.0.1]:{port}/", "::ffff:127.0.0.1 is a loopback address"),
    ("https://[::ffff:a9fe:a9fe]/", "link-local address"),
    ("https://[64:ff9b::a00:1]/", "private address"),  # NAT64 of 10.0.0.1
    ("https://[2002:7f00:1::]/", "loopback address"),  # 6to4 of 127.0.0.1
    ("https://[::7f00:1]/", "reserved address"),  # IPv4-compatible
    ("https://[fd00::1]/", "private address"),
    ("https://[fe80::1]/", "link-local address"),
    ("https://[ff02::1]/", "multicast address"),
    (
        "https://internal.example:{port}/",
        "internal.example resolves to 10.0.0.5, a private address",
    ),
    ("https://mixed.example/", "mixed.example resolves to 192.168.1.1, a private address"),
    ("https://mixed6.example/", "resolves to ::1, a loopback address"),
    ("https://nowhere.example/", "nowhere.example does not resolve"),
    ("https://odd.example/", "not an IP address"),
    ("https://user:pw@hooks.test/", "credentials in the URL are not allowed"),
    ("https://a%20b/", "not a valid host name"),
    ("https:///path", "the URL has no host"),
    ("https://hooks.test:99999/", "port 99999 is out of range"),
]


@pytest.mark.parametrize(("url", "problem"), REFUSED)
def test_refused_urls_are_decided_without_traffic(
    url: str, problem: str, peer: Peer, guard: Guard
) -> None:
    url = url.format(port=peer.port)
    resolver = FakeResolver.fixed(RESOLVED)
    with pytest.raises(http.UrlRefused, match=re.escape(problem)):
        http.check_url(url, allowed_hosts=[], resolver=resolver)
    with (
        http.client(allowed_hosts=[], resolver=resolver) as c,
        pytest.raises(http.UrlRefused, match=re.escape(problem)),
    ):
        c.request("POST", url, json={"a": 1})
    assert peer.received == []
    assert guard.connects == []
    assert guard.lookups == []


@pytest.mark.parametrize(
    ("url", "ip", "port"),
    [
        ("https://hooks.test/x?y=1", PUBLIC_V4, 443),
        ("https://HOOKS.test.:8443/", PUBLIC_V4, 8443),
        ("https://8.8.8.8/", "8.8.8.8", 443),
        (f"https://[{PUBLIC_V6}]/", PUBLIC_V6, 443),
        ("https://[::ffff:8.8.8.8]/", "::ffff:808:808", 443),
    ],
)
def test_public_targets_pass(url: str, ip: str, port: int) -> None:
    target = http.check_url(url, allowed_hosts=[], resolver=FakeResolver.fixed(RESOLVED))
    assert (target.ip, target.port) == (ip, port)
    assert target.host == target.host.lower().rstrip(".")


def test_allowed_hosts_match_case_insensitively_and_by_port() -> None:
    resolver = FakeResolver.fixed({"hooks.test": ["10.0.0.5"]})
    allowed = ["HOOKS.Test:8080", "127.0.0.1"]
    target = http.check_url("http://hooks.test:8080/h", allowed_hosts=allowed, resolver=resolver)
    assert (target.host, target.port, target.ip) == ("hooks.test", 8080, "10.0.0.5")
    with pytest.raises(http.UrlRefused, match="https is required"):
        http.check_url("http://hooks.test:9090/h", allowed_hosts=allowed, resolver=resolver)
    with pytest.raises(http.UrlRefused, match=re.escape("10.0.0.5, a private address")):
        http.check_url("https://hooks.test:9090/h", allowed_hosts=allowed, resolver=resolver)
    assert http.check_url("http://127.0.0.1:1/", allowed_hosts=allowed, resolver=resolver).ip == (
        "127.0.0.1"
    )
    with pytest.raises(http.UrlRefused, match="credentials"):
        http.check_url("http://u:p@127.0.0.1/", allowed_hosts=allowed, resolver=resolver)


def test_a_resolver_failure_is_retryable_not_a_refusal() -> None:
    class Down:
        def resolve(self, host: str, port: int) -> list[str]:
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    with pytest.raises(http.TransportFailed, match="could not be resolved now"):
        http.check_url("https://hooks.test/", allowed_hosts=[], resolver=Down())


def test_system_resolver_answers_addresses_and_nothing_for_unknown_names(guard: Guard) -> None:
    resolver = http.SystemResolver()
    assert resolver.resolve("127.0.0.1", 443) == ["127.0.0.1"]
    assert resolver.resolve("nowhere.test", 443) == []  # the guard answers EAI_NONAME
    assert guard.lookups == ["127.0.0.1", "nowhere.test"]


# --- Sending -----------------------------------------------------------------------------------


def test_post_with_json_reaches_an_allowed_local_peer(peer: Peer) -> None:
    with http.client(allowed_hosts=["127.0.0.1"], resolver=FakeResolver({})) as c:
        response = c.request(
            "POST",
            f"http://127.0.0.1:{peer.port}/hook?token=t",
            headers={"Webhook-Id": "step-1"},
            json={"event": "signup", "n": 1},
        )
    assert (response.status, response.body, response.truncated) == (200, b'{"ok": true}', False)
    assert response.headers["content-length"] == "12"
    [got] = peer.received
    assert (got.method, got.path) == ("POST", "/hook?token=t")
    assert json.loads(got.body) == {"event": "signup", "n": 1}
    assert got.headers["webhook-id"] == "step-1"
    assert got.headers["content-type"] == "application/json"
    assert got.headers["accept-encoding"] == "identity"


def test_connection_goes_to_the_checked_ip_under_the_urls_name(peer: Peer, guard: Guard) -> None:
    resolver = FakeResolver.fixed({"hooks.test": ["127.0.0.1"]})
    with http.client(allowed_hosts=["hooks.test"], resolver=resolver) as c:
        response = c.request("GET", f"http://hooks.test:{peer.port}/pinned")
    assert response.status == 200
    [got] = peer.received
    assert got.headers["host"] == f"hooks.test:{peer.port}"
    assert guard.connects == [("127.0.0.1", peer.port)]
    assert resolver.calls == ["hooks.test"]
    assert "hooks.test" not in guard.lookups  # the system resolver was never asked


def test_rebinding_cannot_redirect_the_connection(peer: Peer, guard: Guard) -> None:
    # The classic attack: public at check time, then 127.0.0.1. A second lookup at connect time
    # would reach the local peer; the pinned connection goes to the checked public address,
    # which the guard refuses locally.
    resolver = FakeResolver({"rebind.example": [[PUBLIC_V4], ["127.0.0.1"]]})
    with (
        http.client(allowed_hosts=[], resolver=resolver) as c,
        pytest.raises(http.TransportFailed, match="no traffic to " + re.escape(PUBLIC_V4)),
    ):
        c.request("POST", f"https://rebind.example:{peer.port}/", json={})
    assert guard.connects == [(PUBLIC_V4, peer.port)]
    assert resolver.calls == ["rebind.example"]
    assert peer.received == []


def test_each_send_checks_again(peer: Peer, guard: Guard) -> None:
    resolver = FakeResolver({"hooks.test": [[PUBLIC_V4], ["10.0.0.5"]]})
    url = "https://hooks.test/hook"
    assert http.check_url(url, allowed_hosts=[], resolver=resolver).ip == PUBLIC_V4  # at save
    with (
        http.client(allowed_hosts=[], resolver=resolver) as c,
        pytest.raises(http.UrlRefused, match=re.escape("resolves to 10.0.0.5, a private address")),
    ):
        c.request("POST", url, json={})  # at send
    assert guard.connects == []


def test_connections_are_not_reused(peer: Peer) -> None:
    with http.client(allowed_hosts=["127.0.0.1"], resolver=FakeResolver({})) as c:
        c.request("GET", f"http://127.0.0.1:{peer.port}/a")
        c.request("GET", f"http://127.0.0.1:{peer.port}/b")
    first, second = peer.received
    assert first.client_port != second.client_port


def test_redirects_are_returned_not_followed(peer: Peer) -> None:
    with http.client(allowed_hosts=["127.0.0.1"], resolver=FakeResolver({})) as c:
        response = c.request("GET", f"http://127.0.0.1:{peer.port}/redirect")
    assert response.status == 302
    assert response.headers["location"] == "/echo"
    assert [r.path for r in peer.received] == ["/redirect"]


def test_body_is_read_up_to_the_cap(peer: Peer) -> None:
    with http.client(allowed_hosts=["127.0.0.1"], resolver=FakeResolver({})) as c:
        big = c.request("GET", f"http://127.0.0.1:{peer.port}/big")
    assert (len(big.body), big.truncated) == (64 * 1024, True)
    assert big.headers["content-length"] == str(1024 * 1024)
    with http.client(
        allowed_hosts=["127.0.0.1"], resolver=FakeResolver({}), max_response_bytes=1000
    ) as c:
        exact = c.request("GET", f"http://127.0.0.1:{peer.port}/big?size=1000")
        over = c.request("GET", f"http://127.0.0.1:{peer.port}/big?size=1001")
    assert (len(exact.body), exact.truncated) == (1000, False)
    assert (len(over.body), over.truncated) == (1000, True)


def test_timeout_is_a_quick_transport_failure_without_secrets(peer: Peer) -> None:
    url = f"http://127.0.0.1:{peer.port}/slow/secret-path?token=s3cret"
    started = time.monotonic()
    with (
        http.client(allowed_hosts=["127.0.0.1"], resolver=FakeResolver({}), timeout=0.3) as c,
        pytest.raises(http.TransportFailed) as failed,
    ):
        c.request("GET", url)
    assert time.monotonic() - started < 2
    message = str(failed.value)
    assert message == f"GET http://127.0.0.1:{peer.port}: timed out (ReadTimeout)"
    assert "s3cret" not in message and "secret-path" not in message


def test_connection_refused_is_a_transport_failure() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        with (
            http.client(allowed_hosts=["127.0.0.1"], resolver=FakeResolver({})) as c,
            pytest.raises(http.TransportFailed, match=f"^POST http://127.0.0.1:{port}: "),
        ):
            c.request("POST", f"http://127.0.0.1:{port}/", content=b"x")


def test_from_settings_allows_the_configured_hosts(peer: Peer) -> None:
    settings = Settings(webhook_allowed_hosts=f"127.0.0.1:{peer.port}")
    with http.from_settings(settings) as c:
        assert c.request("GET", f"http://127.0.0.1:{peer.port}/s").status == 200
        with pytest.raises(http.UrlRefused, match="https is required"):
            c.request("GET", "http://127.0.0.1:1/s")


# --- TLS: SNI and certificate check use the URL's name -----------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for hooks.test, made by the openssl command line."""
    if shutil.which("openssl") is None:  # fails in CI, skips on a laptop without it
        unavailable("the openssl command", FileNotFoundError("not on PATH"))
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=hooks.test", "-addext",
         "subjectAltName=DNS:hooks.test", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_peer(certificate: tuple[Path, Path]) -> Iterator[Peer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    with running(Peer(tls=context)) as p:
        yield p


def test_tls_presents_and_verifies_the_urls_name(
    tls_peer: Peer, certificate: tuple[Path, Path], guard: Guard
) -> None:
    trust = ssl.create_default_context(cafile=str(certificate[0]))
    resolver = FakeResolver.fixed({"hooks.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    allowed = ["hooks.test", "other.test"]
    with http.client(allowed_hosts=allowed, resolver=resolver, ssl_context=trust) as c:
        response = c.request("POST", f"https://hooks.test:{tls_peer.port}/tls", json={"a": 1})
        assert response.status == 200
        assert tls_peer.sni == ["hooks.test"]
        [got] = tls_peer.received
        assert got.headers["host"] == f"hooks.test:{tls_peer.port}"
        # Same IP, another name: the certificate is checked against the name, so this fails.
        with pytest.raises(http.TransportFailed, match="CERTIFICATE_VERIFY_FAILED"):
            c.request("POST", f"https://other.test:{tls_peer.port}/tls", json={"a": 1})
    assert len(tls_peer.received) == 1
    assert guard.connects == [("127.0.0.1", tls_peer.port)] * 2


# --- Retry policy ------------------------------------------------------------------------------

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "120"}, 120.0),
        ({"retry-after": " 0 "}, 0.0),
        ({"Retry-After": format_datetime(NOW + timedelta(seconds=30), usegmt=True)}, 30.0),
        ({"Retry-After": format_datetime(NOW - timedelta(hours=1), usegmt=True)}, 0.0),
        ({"Retry-After": "-5"}, None),
        ({"Retry-After": "1.5"}, None),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": ""}, None),
        ({}, None),
    ],
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert http.retry_after(headers, NOW) == expected


@pytest.mark.parametrize(
    ("status", "permanent"),
    [
        (200, False),
        (301, True),
        (302, True),
        (400, True),
        (401, True),
        (403, True),
        (404, True),
        (408, False),
        (409, True),
        (410, True),
        (422, True),
        (425, False),
        (429, False),
        (500, False),
        (502, False),
        (503, False),
    ],
)
def test_is_permanent(status: int, permanent: bool) -> None:
    assert http.is_permanent(status) is permanent
