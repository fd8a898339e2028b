"""The one outgoing HTTP client: public addresses only, pinned connections, capped everything.

Every outgoing call (webhooks, Gmail, Salesforce, HubSpot) goes through `client()`. The URL is
checked on every request, inside the transport: https only, every resolved address public (or
the host listed in WEBHOOK_ALLOWED_HOSTS), and the connection then goes to the very address that
was checked while the Host header, TLS SNI and certificate check keep the URL's name, so DNS
rebinding between check and connect has nothing to slip through. Redirects are never followed,
timeouts are capped and bodies are read up to a cap. httpx errors leave this module as
`TransportFailed` (retryable) or `UrlRefused` (permanent).
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
import ssl
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self

import httpx

if TYPE_CHECKING:
    from engine.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_TIMEOUT = 30.0
MAX_CONNECT_TIMEOUT = 5.0
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024
USER_AGENT = "workflowbot"


class Resolver(Protocol):
    def resolve(self, host: str, port: int) -> list[str]:
        """The IP addresses `host` has (empty if the name does not exist); OSError if unsure."""
        ...


class SystemResolver:
    """Name resolution by the operating system (`socket.getaddrinfo`)."""

    def resolve(self, host: str, port: int) -> list[str]:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            # "No such name" is an answer; anything else (EAI_AGAIN...) may pass, so it raises.
            if exc.errno in _NO_SUCH_NAME:
                return []
            raise
        return list(dict.fromkeys(str(info[4][0]) for info in infos))


_NO_SUCH_NAME = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


class UrlRefused(Exception):
    """The URL may not be called; the message names the problem (never a retryable failure)."""


class TransportFailed(Exception):
    """The call did not complete (timeout, connection, TLS); retryable; no secret in the message."""


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (`ip`, `port`) and what name to present (`host`)."""

    url: str
    host: str
    port: int
    ip: str


@dataclass(frozen=True)
class Response:
    """A response read up to the cap: `truncated` says the peer sent more than `body` holds."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    truncated: bool


# --- Addresses ---------------------------------------------------------------------------------

_V4_BLOCKED: tuple[tuple[ipaddress.IPv4Network, str], ...] = tuple(
    (ipaddress.IPv4Network(net), why)
    for net, why in (
        ("0.0.0.0/8", "an unspecified"),
        ("127.0.0.0/8", "a loopback"),
        ("10.0.0.0/8", "a private"),
        ("172.16.0.0/12", "a private"),
        ("192.168.0.0/16", "a private"),
        ("100.64.0.0/10", "a shared (carrier-grade NAT)"),
        ("169.254.0.0/16", "a link-local"),
        ("224.0.0.0/4", "a multicast"),
        ("192.0.0.0/24", "a reserved"),
        ("192.0.2.0/24", "a reserved"),
        ("192.88.99.0/24", "a reserved"),
        ("198.18.0.0/15", "a reserved"),
        ("198.51.100.0/24", "a reserved"),
        ("203.0.113.0/24", "a reserved"),
        ("240.0.0.0/4", "a reserved"),
    )
)

_V6_BLOCKED: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.IPv6Network(net), why)
    for net, why in (
        ("::/128", "an unspecified"),
        ("::1/128", "a loopback"),
        ("::/96", "a reserved"),  # IPv4-compatible, deprecated: no legitimate peer uses it
        ("fc00::/7", "a private"),
        ("fe80::/10", "a link-local"),
        ("fec0::/10", "a link-local"),
        ("ff00::/8", "a multicast"),
        ("64:ff9b:1::/48", "a private"),
        ("100::/64", "a reserved"),
        ("2001::/23", "a reserved"),  # Teredo and other special-purpose blocks
        ("2001:db8::/32", "a reserved"),
        ("3fff::/20", "a reserved"),
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _not_public(ip: IPAddress) -> str | None:
    """Why `ip` is not a public unicast address, or None if it is."""
    if isinstance(ip, ipaddress.IPv6Address):
        # Forms that carry an IPv4 address reach that address, so that address is judged.
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return _not_public(embedded)
        blocked: tuple[tuple[Any, str], ...] = _V6_BLOCKED
    else:
        blocked = _V4_BLOCKED
    # Explicit lists first: `is_global` differs between Python patch releases.
    for net, why in blocked:
        if ip in net:
            return why
    if ip.is_multicast or not ip.is_global:
        return "a non-public"
    return None


def _parse_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


# --- URLs --------------------------------------------------------------------------------------

_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
# A last label that browsers and inet_aton read as a number (`127.1`, `2130706433`, `0x7f000001`):
# such a host is an IPv4 address in disguise, and only the plain dotted quad is accepted.
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")


def _check_name(host: str) -> None:
    if _NUMERIC_LABEL.fullmatch(host.rsplit(".", 1)[-1]):
        raise UrlRefused(f"{host} is not a valid IPv4 address (use the dotted form a.b.c.d)")
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise UrlRefused(f"{host!r} is not a valid host name")


def _allowed(host: str, port: int, allowed_hosts: Collection[str]) -> bool:
    """Whether `host:port` is listed; an entry without a port allows every port."""
    for entry in allowed_hosts:
        try:
            parsed = httpx.URL("//" + entry.strip())
        except httpx.InvalidURL:
            continue  # a malformed entry allows nothing
        if parsed.raw_host.decode("ascii").rstrip(".") == host and parsed.port in (None, port):
            return True
    return False


@dataclass(frozen=True)
class _Parsed:
    url: httpx.URL
    host: str
    port: int
    literal: IPAddress | None
    allowed: bool


def _parse(url: str, allowed_hosts: Collection[str]) -> _Parsed:
    """Every check that needs no lookup: scheme, credentials, host form, port, allowed list."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise UrlRefused(f"not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise UrlRefused("https is required")
    if parsed.userinfo:
        raise UrlRefused("credentials in the URL are not allowed (send them in a header)")
    host = parsed.raw_host.decode("ascii").lower().rstrip(".")
    if not host:
        raise UrlRefused("the URL has no host")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if not 0 < port < 65536:
        raise UrlRefused(f"port {port} is out of range")
    literal = _parse_ip(host)
    if literal is None:
        _check_name(host)
    allowed = _allowed(host, port, allowed_hosts)
    if parsed.scheme != "https" and not allowed:
        raise UrlRefused("https is required")
    return _Parsed(parsed, host, port, literal, allowed)


def check_url(url: str, *, allowed_hosts: Collection[str], resolver: Resolver) -> Target:
    """The target to connect to for `url`, or UrlRefused naming the problem (resolves the name).

    Hosts in `allowed_hosts` (case-insensitive, `host` or `host:port`) may use http and private
    addresses; all others need https and every address they resolve to must be public. A
    resolver that fails (rather than answering) raises TransportFailed: it may pass.
    """
    p = _parse(url, allowed_hosts)
    host = p.host
    if p.literal is not None:
        if not p.allowed and (why := _not_public(p.literal)):
            raise UrlRefused(f"{host} is {why} address")
        return Target(url=str(p.url), host=host, port=p.port, ip=str(p.literal))

    try:
        answers = resolver.resolve(host, p.port)
    except OSError as exc:
        raise TransportFailed(f"{host} could not be resolved now: {exc}") from exc
    if not answers:
        raise UrlRefused(f"{host} does not resolve")
    addresses = [_parse_ip(answer) for answer in answers]
    for answer, ip in zip(answers, addresses, strict=True):
        if ip is None:
            raise UrlRefused(f"{host} resolves to {answer!r}, not an IP address")
        # Every answer is judged, not only the one used: the next lookup may pick another.
        if not p.allowed and (why := _not_public(ip)):
            raise UrlRefused(f"{host} resolves to {ip}, {why} address")
    return Target(url=str(p.url), host=host, port=p.port, ip=str(addresses[0]))


def _safe(url: httpx.URL) -> str:
    """Scheme, host and port only: paths and queries of webhook URLs often carry tokens."""
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.raw_host.decode('ascii')}{port}"


# --- The client --------------------------------------------------------------------------------


class _PinnedTransport(httpx.HTTPTransport):
    """Checks every request's URL, then connects to the checked IP under the URL's name."""

    def __init__(
        self, *, allowed_hosts: Collection[str], resolver: Resolver, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._allowed_hosts = allowed_hosts
        self._resolver = resolver

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        target = check_url(
            str(request.url), allowed_hosts=self._allowed_hosts, resolver=self._resolver
        )
        # httpcore connects to the URL's host, so the URL gets the IP; the Host header was set
        # from the original URL and is kept, and `sni_hostname` makes TLS present and verify
        # the name rather than the IP.
        pinned = httpx.Request(
            request.method,
            request.url.copy_with(host=target.ip),
            headers=request.headers,
            stream=request.stream,
            extensions={**request.extensions, "sni_hostname": target.host},
        )
        return super().handle_request(pinned)


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    """The system's trust store, loaded once per process: loading it takes ~25 ms, which a
    client per step would pay every time. An SSLContext is safe to share between threads."""
    return ssl.create_default_context()


class Closing:
    """Usable in `with`: `close()` on the way out."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class OutgoingClient(Closing):
    """An httpx client behind the guarded transport; safe to share between threads."""

    def __init__(
        self,
        *,
        allowed_hosts: Collection[str],
        resolver: Resolver,
        timeout: float = 10.0,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if timeout <= 0 or max_response_bytes < 0:
            raise ValueError("timeout must be positive and max_response_bytes not negative")
        self._timeout = min(timeout, MAX_TIMEOUT)
        self._max_bytes = max_response_bytes
        self._allowed_hosts = tuple(allowed_hosts)
        transport = _PinnedTransport(
            allowed_hosts=self._allowed_hosts,
            resolver=resolver,
            verify=ssl_context if ssl_context is not None else _default_ssl_context(),
            trust_env=False,
            # No pooled connections: two names on one IP would otherwise share a TLS session
            # verified for the first name only. Our call rates make reuse worth nothing.
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        self._client = httpx.Client(
            transport=transport,
            follow_redirects=False,
            trust_env=False,
            timeout=httpx.Timeout(self._timeout, connect=min(self._timeout, MAX_CONNECT_TIMEOUT)),
            # Identity so the cap bounds what we hold: a compressed body can expand 1000-fold.
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
        )

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | str | None = None,
    ) -> Response:
        """The peer's response (3xx included, never followed); UrlRefused or TransportFailed."""
        # Refused before httpx sees it, which would read `https:///x` as the path `/x`; the
        # transport checks again, with the lookup, what httpx is about to send.
        safe = _safe(_parse(url, self._allowed_hosts).url)
        deadline = time.monotonic() + self._timeout
        try:
            with self._client.stream(
                method, url, headers=headers, json=json, content=content
            ) as response:
                body, truncated = self._read(response, deadline)
                return Response(
                    status=response.status_code,
                    headers=MappingProxyType(dict(response.headers.items())),
                    body=body,
                    truncated=truncated,
                )
        except httpx.TimeoutException as exc:
            raise TransportFailed(f"{method} {safe}: timed out ({type(exc).__name__})") from exc
        except httpx.InvalidURL as exc:  # e.g. an allowed host resolving to a scoped IPv6 address
            raise UrlRefused(f"not a valid URL: {exc}") from None
        except httpx.RequestError as exc:
            detail = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise TransportFailed(f"{method} {safe}: {detail}") from exc

    def _read(self, response: httpx.Response, deadline: float) -> tuple[bytes, bool]:
        """Up to the cap of raw body bytes, and whether more followed; stops reading at once."""
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_raw():
            if size + len(chunk) > self._max_bytes:
                chunks.append(chunk[: self._max_bytes - size])
                return b"".join(chunks), True
            chunks.append(chunk)
            size += len(chunk)
            # httpx times each read; this bounds a peer dripping a byte just inside that timeout.
            if time.monotonic() > deadline:
                raise httpx.ReadTimeout("body not read within the timeout")
        return b"".join(chunks), False

    def close(self) -> None:
        """Release the connections."""
        self._client.close()


class UsesClient(Closing):
    """A peer's client built on one OutgoingClient (`_http`): closed with it."""

    _http: OutgoingClient

    def close(self) -> None:
        """Release the connections."""
        self._http.close()


def client(
    *,
    allowed_hosts: Collection[str],
    resolver: Resolver,
    timeout: float = 10.0,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ssl_context: ssl.SSLContext | None = None,
) -> OutgoingClient:
    """A guarded client; `timeout` is capped at 30 s (connect at 5 s), bodies at the byte cap."""
    return OutgoingClient(
        allowed_hosts=allowed_hosts,
        resolver=resolver,
        timeout=timeout,
        max_response_bytes=max_response_bytes,
        ssl_context=ssl_context,
    )


def from_settings(settings: Settings, resolver: Resolver | None = None) -> OutgoingClient:
    """A guarded client allowing WEBHOOK_ALLOWED_HOSTS, resolving with the system by default."""
    return client(
        allowed_hosts=settings.webhook_allowed_hosts,
        resolver=resolver if resolver is not None else SystemResolver(),
    )


# --- Retry policy ------------------------------------------------------------------------------

# Permanent: 3xx (never followed) and every 4xx but those a later attempt may change: the request
# timed out (408), the peer wants it replayed later (425) or is rate limiting (429). 5xx is
# retryable; 2xx is no failure, so callers check success first. 409 is permanent: receivers
# answer it for "already processed" or a conflicting state, which a replay will not change.
_RETRYABLE_4XX = frozenset({408, 425, 429})


def is_permanent(status: int) -> bool:
    """Whether a failed call answered with `status` must not be retried (False for 2xx and 5xx)."""
    if 300 <= status < 400:
        return True  # redirects are not followed, so the same URL answers the same way again
    return 400 <= status < 500 and status not in _RETRYABLE_4XX


def retry_after(headers: Mapping[str, str], now: datetime) -> float | None:
    """Seconds to wait from `now` per Retry-After (seconds or HTTP-date), None if absent or bad."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    value = value.strip()
    if re.fullmatch(r"[0-9]+", value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # "-0000" dates are UTC by RFC 5322
    return max(0.0, (when - now).total_seconds())
