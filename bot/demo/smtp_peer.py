"""A real SMTP server on 127.0.0.1 (aiosmtpd) that records what it receives and can misbehave.

`smtp_peer(...)` starts one on a free port; the test reads `peer.received` (envelope sender,
recipients, the message bytes) and may change the behaviour while it runs: refuse recipients
(550), answer MAIL with 451, answer the end of DATA with 554, drop the connection after the
message data arrived (the client cannot know whether it was taken), or hang there. With
`users` it requires AUTH; with `tls="starttls"` or `"ssl"` it uses a self-signed certificate
made for 127.0.0.1, and `peer.client_context` trusts exactly that certificate.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import ipaddress
import socket
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import quote

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HOST = "127.0.0.1"


def free_port() -> int:
    """A port free on 127.0.0.1 now (the server binds it a moment later)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes

    @property
    def message(self) -> EmailMessage:
        """The content parsed (with LF line ends, as a mailbox would store it)."""
        content = self.content.replace(b"\r\n", b"\n")
        return cast(EmailMessage, email.message_from_bytes(content, policy=email.policy.default))


@dataclass
class SmtpPeer:
    port: int
    tls: Literal["none", "starttls", "ssl"]
    users: dict[str, str]
    client_context: ssl.SSLContext | None  # trusts the peer's certificate (TLS modes only)
    received: list[Received] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)  # recipients answered 550
    mail_reply: str | None = None  # e.g. "451 4.3.0 try later" instead of 250 to MAIL
    data_reply: str | None = None  # e.g. "554 5.7.1 rejected" instead of 250 to DATA's end
    drop_after_data: bool = False  # close the connection instead of answering DATA's end
    hang_after_data: float = 0.0  # wait this long before answering DATA's end
    logins: list[str] = field(default_factory=list)  # user names that logged in

    def url(self, user: str | None = None, password: str | None = None) -> str:
        """The SMTP_URL for this peer."""
        auth = ""
        if user is not None:
            auth = f"{quote(user, safe='')}:{quote(password or '', safe='')}@"
        scheme = "smtps" if self.tls == "ssl" else "smtp"
        query = "" if self.tls == "ssl" else f"?tls={self.tls}"
        return f"{scheme}://{auth}{HOST}:{self.port}{query}"

    # aiosmtpd handler hooks

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.mail_reply:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return f"550 5.1.1 <{address}>: no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content
        assert isinstance(content, bytes)
        if self.drop_after_data:
            assert server.transport is not None
            server.transport.close()
            return "421 closed"  # never reaches the client
        if self.hang_after_data:
            await asyncio.sleep(self.hang_after_data)
        if self.data_reply:
            return self.data_reply
        self.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), content))
        return f"250 2.0.0 Ok: queued as Q{len(self.received)}"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword):
            user, password = data.login.decode(), data.password.decode()
            if self.users.get(user) == password:
                self.logins.append(user)
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


def self_signed(host: str = HOST) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) for `host` (an IP address), valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _server_context(cert: bytes, key: bytes) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as tmp:
        cert_file, key_file = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        cert_file.write_bytes(cert)
        key_file.write_bytes(key)
        context.load_cert_chain(cert_file, key_file)
    return context


@contextmanager
def smtp_peer(
    *,
    tls: Literal["none", "starttls", "ssl"] = "none",
    users: dict[str, str] | None = None,
) -> Iterator[SmtpPeer]:
    """An SMTP server on a free 127.0.0.1 port for the block's duration. With `users`, AUTH
    (PLAIN/LOGIN) is required before MAIL (after STARTTLS with `tls="starttls"`)."""
    server_context = client_context = None
    if tls != "none":
        cert, key = self_signed()
        server_context = _server_context(cert, key)
        client_context = ssl.create_default_context(cadata=cert.decode())
    peer = SmtpPeer(free_port(), tls, dict(users or {}), client_context)
    options: dict[str, Any] = {}
    if users is not None:
        options.update(
            authenticator=peer.authenticate,
            auth_required=True,
            # aiosmtpd does not count implicit TLS ("ssl") as TLS for auth_require_tls.
            auth_require_tls=tls == "starttls",
        )
    if tls == "starttls":
        options.update(tls_context=server_context, require_starttls=True)
    controller = Controller(
        peer,
        hostname=HOST,
        port=peer.port,
        ssl_context=server_context if tls == "ssl" else None,
        server_hostname="peer.test",
        **options,
    )
    controller.start()
    try:
        yield peer
    finally:
        controller.stop()
