"""Sending one message over SMTP (SMTP_URL), with failures sorted by what they mean for a resend.

smtplib is driven step by step (EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA) so that the moment the
message data starts going out is known. Before it nothing was sent: `SmtpRetry` (try later) or
`SmtpFailed` (a permanent answer). After it a broken connection or a timeout is `SmtpUnknown`:
the server may have delivered the message, and email is at most once, so the caller must not
send it again by itself. A 5xx answer to the end of DATA is `SmtpFailed` (rejected), a 4xx
answer `SmtpRetry` (the server said it did not take the message).
"""

from __future__ import annotations

import re
import smtplib
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

from engine.email.message import POLICY

TlsMode = Literal["starttls", "ssl", "none"]
_DEFAULT_PORTS: dict[TlsMode, int] = {"starttls": 587, "ssl": 465, "none": 25}
_MODES: dict[str, TlsMode] = {"starttls": "starttls", "ssl": "ssl", "none": "none"}
_MODE_BY_PORT: dict[int, TlsMode] = {465: "ssl", 25: "none"}


class SmtpError(Exception):
    """An SMTP send that did not fully succeed; the text says what happened."""


class SmtpRetry(SmtpError):
    """Nothing was sent and trying again later may work (network, timeout, 4xx, TLS)."""


class SmtpFailed(SmtpError):
    """The server refused for good (5xx, wrong credentials, every recipient refused);
    `refused` names the recipients it refused (every one, when that is why)."""

    def __init__(self, message: str, refused: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.refused = dict(refused or {})


class SmtpUnknown(SmtpError):
    """The connection broke after the message data started: it may have been delivered."""


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: TlsMode = "starttls"


@dataclass(frozen=True)
class SmtpResult:
    """`refused`: recipient -> the server's answer, for those it refused (the others got it);
    `reply`: the server's answer to the message (often its queue id)."""

    refused: dict[str, str]
    reply: str = ""


def parse_smtp_url(url: str) -> SmtpConfig:
    """`smtp://user:password@host:port?tls=starttls|ssl|none` (or `smtps://` for ssl) as a
    config; ValueError naming SMTP_URL and the problem, never quoting the password."""

    def bad(problem: str) -> ValueError:
        return ValueError(f"SMTP_URL: {problem}")

    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise bad("the port must be a number from 1 to 65535") from None
    if parts.scheme not in ("smtp", "smtps"):
        raise bad(f"must start with smtp:// or smtps://, not {parts.scheme or 'nothing'}")
    if not parts.hostname:
        raise bad("names no host (smtp://user:password@host:port)")
    if parts.path not in ("", "/") or parts.fragment:
        raise bad("must not have a path (smtp://user:password@host:port?tls=...)")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"tls"})
    if unknown:
        raise bad(f"unknown option {unknown[0]!r} (only ?tls=starttls|ssl|none)")
    given = query.get("tls", [""])[-1].lower()
    if given and given not in _MODES:
        raise bad(f"tls must be starttls, ssl or none, not {given!r}")
    if parts.scheme == "smtps" and given not in ("", "ssl"):
        raise bad("smtps:// means tls=ssl; use smtp:// for starttls or none")
    tls: TlsMode
    if parts.scheme == "smtps":
        tls = "ssl"
    elif given:
        tls = _MODES[given]
    else:
        tls = _MODE_BY_PORT.get(port or 587, "starttls")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if username and password is None:
        raise bad("has a user but no password (smtp://user:password@host)")
    return SmtpConfig(
        host=parts.hostname,
        port=port or _DEFAULT_PORTS[tls],
        username=username,
        password=password if username else None,
        tls=tls,
    )


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {' '.join(text.split())}".strip()


def _by_code(code: int, what: str) -> SmtpError:
    return (SmtpRetry if 400 <= code < 500 else SmtpFailed)(what)


@contextmanager
def _before_data(step: str, config: SmtpConfig) -> Iterator[None]:
    """Errors before the message data went out: nothing was sent."""
    where = f"{config.host}:{config.port}"
    try:
        yield
    except SmtpError:
        raise
    except smtplib.SMTPAuthenticationError as exc:
        if 400 <= exc.smtp_code < 500:
            raise SmtpRetry(f"SMTP {step}: {_reply(exc.smtp_code, exc.smtp_error)}") from None
        raise SmtpFailed(
            f"SMTP {step}: the server refused the user and password in SMTP_URL "
            f"({_reply(exc.smtp_code, exc.smtp_error)}); fix them in SMTP_URL"
        ) from None
    except smtplib.SMTPResponseException as exc:
        raise _by_code(
            exc.smtp_code, f"SMTP {step}: {_reply(exc.smtp_code, exc.smtp_error)}"
        ) from None
    except smtplib.SMTPNotSupportedError as exc:
        raise SmtpFailed(f"SMTP {step}: {exc}; check SMTP_URL") from None
    except ssl.SSLError as exc:
        raise SmtpRetry(f"SMTP {step}: TLS with {where} failed: {exc}") from None
    except smtplib.SMTPServerDisconnected as exc:
        if isinstance(exc.__context__, TimeoutError):  # smtplib reports a timeout this way
            raise SmtpRetry(f"SMTP {step}: {where} did not answer in time") from None
        raise SmtpRetry(f"SMTP {step}: {where} closed the connection ({exc})") from None
    except TimeoutError:
        raise SmtpRetry(f"SMTP {step}: {where} did not answer in time") from None
    except OSError as exc:
        raise SmtpRetry(f"SMTP {step}: {where}: {exc or type(exc).__name__}") from None
    except smtplib.SMTPException as exc:  # e.g. no AUTH mechanism both sides know
        raise SmtpFailed(f"SMTP {step}: {exc}; check SMTP_URL") from None


def _envelope(message: EmailMessage) -> tuple[str, list[str]]:
    if message["Bcc"] is not None:
        raise ValueError("the message has a Bcc header: it would show to every recipient")
    senders = [a for _, a in getaddresses(message.get_all("From", [])) if a]
    if len(senders) != 1:
        raise ValueError("the message needs exactly one From address")
    seen: dict[str, None] = {}
    for header in ("To", "Cc"):
        for _, address in getaddresses(message.get_all(header, [])):
            if address:
                seen.setdefault(address, None)
    if not seen:
        raise ValueError("the message has no To or Cc address")
    return senders[0], list(seen)


def _data_bytes(message: EmailMessage) -> bytes:
    """The DATA payload: CRLF line ends, leading dots doubled, and the final `.` line."""
    raw = message.as_bytes(policy=POLICY)
    raw = re.sub(rb"\r\n|\r|\n", b"\r\n", raw)
    raw = re.sub(rb"(?m)^\.", b"..", raw)
    if not raw.endswith(b"\r\n"):
        raw += b"\r\n"
    return raw + b".\r\n"


def _connect(config: SmtpConfig, timeout: float, context: ssl.SSLContext) -> smtplib.SMTP:
    with _before_data("connect", config):
        if config.tls == "ssl":
            return smtplib.SMTP_SSL(config.host, config.port, timeout=timeout, context=context)
        return smtplib.SMTP(config.host, config.port, timeout=timeout)
    raise AssertionError("unreachable")  # _before_data re-raises every error


def _hello(client: smtplib.SMTP, config: SmtpConfig, context: ssl.SSLContext) -> None:
    with _before_data("EHLO", config):
        client.ehlo_or_helo_if_needed()
    if config.tls == "starttls":
        if not client.has_extn("starttls"):
            raise SmtpFailed(
                f"SMTP: {config.host}:{config.port} does not offer STARTTLS; use its TLS port "
                "(smtps://) or, on a trusted network only, ?tls=none in SMTP_URL"
            )
        with _before_data("STARTTLS", config):
            client.starttls(context=context)
            client.ehlo()
    if config.username:
        if not client.has_extn("auth"):
            raise SmtpFailed(
                f"SMTP: {config.host}:{config.port} offers no AUTH; remove the user and "
                "password from SMTP_URL or use the server's submission port"
            )
        with _before_data("AUTH", config):
            client.login(config.username, config.password or "")


def _envelope_commands(
    client: smtplib.SMTP, config: SmtpConfig, sender: str, recipients: list[str], eight_bit: bool
) -> dict[str, str]:
    options = ["BODY=8BITMIME"] if eight_bit and client.has_extn("8bitmime") else []
    with _before_data("MAIL FROM", config):
        code, text = client.mail(sender, options)
        if code != 250:
            raise _by_code(code, f"SMTP MAIL FROM:<{sender}>: {_reply(code, text)}")
    refused: dict[str, str] = {}
    for recipient in recipients:
        with _before_data("RCPT TO", config):
            code, text = client.rcpt(recipient)
        if code in (250, 251):
            continue
        if 400 <= code < 500 or code == -1:
            raise SmtpRetry(f"SMTP RCPT TO:<{recipient}>: {_reply(code, text)}")
        refused[recipient] = _reply(code, text)
    if len(refused) == len(recipients):
        detail = "; ".join(f"{r}: {why}" for r, why in refused.items())
        raise SmtpFailed(f"SMTP: every recipient was refused ({detail})", refused)
    return refused


def _data(client: smtplib.SMTP, config: SmtpConfig, data: bytes) -> str:
    with _before_data("DATA", config):
        client.putcmd("data")
        code, text = client.getreply()
        if code != 354:
            raise _by_code(code, f"SMTP DATA: {_reply(code, text)}")
    # From here on the server may deliver what it got: never SmtpRetry.
    where = f"{config.host}:{config.port}"
    try:
        client.send(data)
        code, text = client.getreply()
    except (OSError, smtplib.SMTPException) as exc:
        raise SmtpUnknown(
            f"SMTP: the connection to {where} broke while sending the message "
            f"({exc or type(exc).__name__}): it may have been delivered"
        ) from None
    if code == 250:
        return _reply(code, text)
    if 500 <= code < 600:
        raise SmtpFailed(f"SMTP: the server rejected the message: {_reply(code, text)}")
    if 400 <= code < 500:
        raise SmtpRetry(f"SMTP: the server did not take the message: {_reply(code, text)}")
    raise SmtpUnknown(f"SMTP: unexpected answer to the message: {_reply(code, text)}")


def send(
    config: SmtpConfig,
    message: EmailMessage,
    *,
    timeout: float = 30.0,
    ssl_context: ssl.SSLContext | None = None,
) -> SmtpResult:
    """Send `message` from its From address to its To and Cc addresses; SmtpRetry, SmtpFailed
    or SmtpUnknown otherwise (see the module docstring). `ssl_context` defaults to the system's
    trusted CAs with host name checking."""
    sender, recipients = _envelope(message)
    data = _data_bytes(message)
    context = ssl_context or ssl.create_default_context()
    client = _connect(config, timeout, context)
    sent = False
    try:
        _hello(client, config, context)
        refused = _envelope_commands(client, config, sender, recipients, not data.isascii())
        reply = _data(client, config, data)
        sent = True
        return SmtpResult(refused=refused, reply=reply)
    finally:
        _close(client, polite=sent)


def _close(client: smtplib.SMTP, *, polite: bool) -> None:
    try:
        if polite:
            client.quit()  # the message is accepted; a failing QUIT changes nothing
    except (OSError, smtplib.SMTPException):
        pass
    finally:
        client.close()
