"""engine/email/smtp.py against a real SMTP server (tests/smtp_peer.py): what goes over the wire,
and each failure sorted as retry (nothing sent), failed (permanent) or unknown (maybe sent)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from engine.email import message, smtp
from engine.email.smtp import SmtpConfig
from tests.helpers import free_port
from tests.smtp_peer import smtp_peer

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def mail(
    to: tuple[str, ...] = ("Ann <ann@example.com>",),
    cc: tuple[str, ...] = ("bob@example.com",),
    text: str = "Hello Ann,\nyour trial ends soon.\n",
) -> EmailMessage:
    return message.build(
        message.Outgoing(
            sender="Workflow Bot <bot@example.com>",
            to=to,
            cc=cc,
            subject="Your trial",
            text=text,
            message_id=message.make_message_id("example.com"),
        ),
        now=NOW,
    )


def test_a_plain_send_delivers_to_to_and_cc_from_the_from_address() -> None:
    built = mail()
    with smtp_peer() as peer:
        result = smtp.send(smtp.parse_smtp_url(peer.url()), built, timeout=5)
    assert result.refused == {}
    assert result.reply == "250 2.0.0 Ok: queued as Q1"
    [got] = peer.received
    assert got.mail_from == "bot@example.com"
    assert got.rcpt_tos == ["ann@example.com", "bob@example.com"]
    assert got.message["Message-ID"] == built["Message-ID"]
    assert got.message["Bcc"] is None
    assert got.message.get_content() == "Hello Ann,\nyour trial ends soon.\n"


def test_lines_starting_with_a_dot_arrive_intact() -> None:
    text = ".hidden\n.\n..two\nend\n"
    with smtp_peer() as peer:
        smtp.send(smtp.parse_smtp_url(peer.url()), mail(text=text), timeout=5)
    assert peer.received[0].message.get_content() == text


def test_starttls_and_auth_with_a_percent_encoded_password() -> None:
    password = "p@ss:w/rd%"
    with smtp_peer(tls="starttls", users={"bot@example.com": password}) as peer:
        config = smtp.parse_smtp_url(peer.url("bot@example.com", password))
        assert config.tls == "starttls"
        assert config.password == password
        smtp.send(config, mail(), timeout=5, ssl_context=peer.client_context)
    assert peer.logins == ["bot@example.com"]
    assert len(peer.received) == 1


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # it is TLS
def test_implicit_tls_smtps_with_auth() -> None:
    with smtp_peer(tls="ssl", users={"bot": "secret"}) as peer:
        config = smtp.parse_smtp_url(peer.url("bot", "secret"))
        assert config.tls == "ssl"
        smtp.send(config, mail(), timeout=5, ssl_context=peer.client_context)
    assert peer.logins == ["bot"]
    assert len(peer.received) == 1


def test_an_untrusted_certificate_is_a_retry_and_sends_nothing() -> None:
    with smtp_peer(tls="starttls", users={"bot": "secret"}) as peer:
        config = smtp.parse_smtp_url(peer.url("bot", "secret"))
        with pytest.raises(smtp.SmtpRetry, match="TLS"):
            smtp.send(config, mail(), timeout=5)  # the system CAs do not know the peer
    assert peer.logins == []
    assert peer.received == []


def test_starttls_asked_of_a_server_without_it_fails_naming_smtp_url() -> None:
    with smtp_peer() as peer:
        config = SmtpConfig(host="127.0.0.1", port=peer.port, tls="starttls")
        with pytest.raises(smtp.SmtpFailed, match=r"does not offer STARTTLS.*SMTP_URL"):
            smtp.send(config, mail(), timeout=5)
    assert peer.received == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_wrong_credentials_fail_naming_the_setting_without_the_password() -> None:
    with smtp_peer(users={"bot": "right"}) as peer:
        config = smtp.parse_smtp_url(peer.url("bot", "wrong-password"))
        with pytest.raises(smtp.SmtpFailed) as caught:
            smtp.send(config, mail(), timeout=5)
    assert "535" in str(caught.value)
    assert "SMTP_URL" in str(caught.value)
    assert "wrong-password" not in str(caught.value)
    assert peer.received == []


def test_a_refused_recipient_is_reported_and_the_others_get_it() -> None:
    with smtp_peer() as peer:
        peer.refuse.add("bob@example.com")
        result = smtp.send(smtp.parse_smtp_url(peer.url()), mail(), timeout=5)
    assert list(result.refused) == ["bob@example.com"]
    assert result.refused["bob@example.com"].startswith("550 5.1.1")
    assert peer.received[0].rcpt_tos == ["ann@example.com"]


def test_every_recipient_refused_is_a_failure_and_nothing_is_sent() -> None:
    with smtp_peer() as peer:
        peer.refuse.update({"ann@example.com", "bob@example.com"})
        with pytest.raises(smtp.SmtpFailed, match="every recipient was refused"):
            smtp.send(smtp.parse_smtp_url(peer.url()), mail(), timeout=5)
    assert peer.received == []


def test_451_to_mail_from_is_a_retry() -> None:
    with smtp_peer() as peer:
        peer.mail_reply = "451 4.3.0 try again later"
        with pytest.raises(smtp.SmtpRetry, match=r"451 4\.3\.0"):
            smtp.send(smtp.parse_smtp_url(peer.url()), mail(), timeout=5)
    assert peer.received == []


def test_550_to_mail_from_is_a_failure() -> None:
    with smtp_peer() as peer:
        peer.mail_reply = "550 5.7.1 sender not allowed"
        with pytest.raises(smtp.SmtpFailed, match="MAIL FROM"):
            smtp.send(smtp.parse_smtp_url(peer.url()), mail(), timeout=5)


def test_554_to_the_message_is_a_rejection() -> None:
    with smtp_peer() as peer:
        peer.data_reply = "554 5.7.1 message looks like spam"
        with pytest.raises(smtp.SmtpFailed, match="rejected the message: 554"):
            smtp.send(smtp.parse_smtp_url(peer.url()), mail(), timeout=5)


def test_a_connection_dropped_after_the_data_is_unknown_never_retry() -> None:
    with smtp_peer() as peer:
        peer.drop_after_data = True
        with pytest.raises(smtp.SmtpUnknown, match="may have been delivered"):
            smtp.send(smtp.parse_smtp_url(peer.url()), mail(), timeout=5)


def test_a_timeout_waiting_for_the_answer_to_the_data_is_unknown() -> None:
    with smtp_peer() as peer:
        peer.hang_after_data = 3.0
        with pytest.raises(smtp.SmtpUnknown):
            smtp.send(smtp.parse_smtp_url(peer.url()), mail(), timeout=0.5)


def test_a_server_that_is_down_is_a_retry() -> None:
    config = SmtpConfig(host="127.0.0.1", port=free_port(), tls="none")
    with pytest.raises(smtp.SmtpRetry, match="connect"):
        smtp.send(config, mail(), timeout=5)


@contextmanager
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(5)
        yield listener.getsockname()[1]


def test_a_server_that_never_greets_is_a_retry() -> None:
    with silent_server() as port:
        config = SmtpConfig(host="127.0.0.1", port=port, tls="none")
        with pytest.raises(smtp.SmtpRetry, match="did not answer in time"):
            smtp.send(config, mail(), timeout=0.5)


def test_a_message_with_bcc_is_refused_before_connecting() -> None:
    built = mail()
    built["Bcc"] = "hidden@example.com"
    with pytest.raises(ValueError, match="Bcc"):
        smtp.send(SmtpConfig(host="127.0.0.1", port=free_port()), built)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.com", SmtpConfig("mail.example.com", 587, None, None, "starttls")),
        ("smtp://u:p@mail.example.com:587", SmtpConfig("mail.example.com", 587, "u", "p")),
        ("smtp://mail.example.com:465", SmtpConfig("mail.example.com", 465, tls="ssl")),
        ("smtp://mail.example.com:25", SmtpConfig("mail.example.com", 25, tls="none")),
        ("smtp://mail.example.com:2525", SmtpConfig("mail.example.com", 2525)),
        ("smtps://mail.example.com", SmtpConfig("mail.example.com", 465, tls="ssl")),
        ("smtp://mail.example.com?tls=ssl", SmtpConfig("mail.example.com", 465, tls="ssl")),
        ("smtp://mail.example.com?tls=none", SmtpConfig("mail.example.com", 25, tls="none")),
        ("smtp://h:2525?tls=NONE", SmtpConfig("h", 2525, tls="none")),
        (
            "smtp://apikey%40x.com:a%2Fb%3Ac%40d@smtp.example.com:587?tls=starttls",
            SmtpConfig("smtp.example.com", 587, "apikey@x.com", "a/b:c@d", "starttls"),
        ),
        ("smtp://[::1]:2525", SmtpConfig("::1", 2525)),
    ],
)
def test_smtp_url_parsing(url: str, expected: SmtpConfig) -> None:
    assert smtp.parse_smtp_url(url) == expected


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://u:hunter2@mail.example.com", "must start with smtp:// or smtps://"),
        ("mail.example.com:587", "must start with smtp://"),
        ("smtp://u:hunter2@:587", "names no host"),
        ("smtp://u:hunter2@mail.example.com:port", "port must be a number"),
        ("smtp://u:hunter2@mail.example.com:99999", "port must be a number"),
        ("smtp://u:hunter2@mail.example.com?tls=maybe", "tls must be starttls, ssl or none"),
        ("smtps://u:hunter2@mail.example.com?tls=starttls", "smtps:// means tls=ssl"),
        ("smtp://u:hunter2@mail.example.com?secure=1", "unknown option 'secure'"),
        ("smtp://u:hunter2@mail.example.com/path", "must not have a path"),
        ("smtp://user@mail.example.com", "has a user but no password"),
    ],
)
def test_bad_smtp_urls_name_the_setting_and_never_the_password(url: str, problem: str) -> None:
    with pytest.raises(ValueError) as caught:
        smtp.parse_smtp_url(url)
    text = str(caught.value)
    assert text.startswith("SMTP_URL: ")
    assert problem in text
    assert "hunter2" not in text


def test_the_config_repr_hides_the_password() -> None:
    assert "hunter2" not in repr(smtp.parse_smtp_url("smtp://u:hunter2@h"))
