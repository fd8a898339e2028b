"""The Gmail client against a local stand-in for Google that checks every request it gets."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from urllib.parse import parse_qs, urlsplit

import pytest

from engine.email import gmail
from engine.settings import Settings
from tests.gmail_peer import READ_SCOPE, SEND_SCOPE, GooglePeer, google_error, google_peer

REDIRECT = "https://bot.example.com/oauth/google/callback"
ACCOUNT = "csm@acme.example"


class NoLookups:
    """Every URL here is a literal 127.0.0.1: a name lookup means something went wrong."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def resolve(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        return []


def settings_for(url: str, **overrides: str | None) -> Settings:
    values: dict[str, str | None] = {
        "google_client_id": "client-123.apps.googleusercontent.com",
        "google_client_secret": "client-secret-456",
        "gmail_api_url": url + "/",
        "google_token_url": url + "/token",
        "public_url": "https://bot.example.com",
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


def message(to: str | None = "ana@customer.example", msgid: str | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = ACCOUNT
    if to:
        msg["To"] = to
    msg["Subject"] = "Your renewal, Ana"
    msg["Message-ID"] = msgid or make_msgid(domain="workflowbot.example")
    msg.set_content("Hi Ana,\n\nYour renewal is next month. Ünïcode survives too.\n")
    return msg.as_bytes()


@pytest.fixture
def peer() -> Iterator[GooglePeer]:
    with google_peer() as p:
        yield p


@pytest.fixture
def client(peer: GooglePeer) -> Iterator[gmail.GmailClient]:
    with gmail.GmailClient(settings_for(peer.url), NoLookups(), timeout=5) as c:
        yield c


def connect(peer: GooglePeer, client: gmail.GmailClient) -> gmail.Tokens:
    code = peer.grant(ACCOUNT, REDIRECT)
    tokens = client.exchange_code(code, REDIRECT, peer.now)
    peer.requests.clear()
    return tokens


# --- The OAuth flow ----------------------------------------------------------------------------


def test_authorization_url_asks_for_offline_consent_to_send_and_read() -> None:
    settings = settings_for("http://127.0.0.1:1")
    url = gmail.authorization_url(
        settings, state="st-1", redirect_uri=gmail.callback_url(settings), login_hint=ACCOUNT
    )
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == settings.google_auth_url
    assert parse_qs(parts.query, strict_parsing=True) == {
        "client_id": ["client-123.apps.googleusercontent.com"],
        "redirect_uri": [REDIRECT],
        "response_type": ["code"],
        "scope": [f"{SEND_SCOPE} {READ_SCOPE}"],
        "access_type": ["offline"],
        "prompt": ["consent"],
        "include_granted_scopes": ["true"],
        "state": ["st-1"],
        "login_hint": [ACCOUNT],
    }
    assert "login_hint" not in gmail.authorization_url(settings, state="s", redirect_uri=REDIRECT)


@pytest.mark.parametrize("missing", ["google_client_id", "google_client_secret"])
def test_a_missing_client_setting_is_named(peer: GooglePeer, missing: str) -> None:
    with (
        gmail.GmailClient(settings_for(peer.url, **{missing: None}), NoLookups()) as c,
        pytest.raises(gmail.GmailFailed, match=missing.upper()),
    ):
        c.exchange_code(peer.grant(ACCOUNT, REDIRECT), REDIRECT, peer.now)
    assert peer.requests == []


def test_the_code_is_exchanged_for_tokens_and_the_address(
    peer: GooglePeer, client: gmail.GmailClient
) -> None:
    code = peer.grant(ACCOUNT, REDIRECT)
    tokens = client.exchange_code(code, REDIRECT, peer.now)
    assert tokens.email == ACCOUNT
    assert tokens.expires_at == peer.now + timedelta(seconds=3599)
    assert tokens.access_token.startswith("ya29.") and tokens.refresh_token.startswith("1//")
    assert peer.routes() == ["token", "profile"]
    assert peer.grant_types() == ["authorization_code"]
    assert tokens.access_token not in repr(tokens) and tokens.refresh_token not in repr(tokens)
    assert gmail.Tokens.from_dict(json.loads(json.dumps(tokens.as_dict()))) == tokens
    # A code works once, as at Google; reusing it means connecting again.
    with pytest.raises(gmail.GmailAuthError, match="invalid_grant"):
        client.exchange_code(code, REDIRECT, peer.now)


def test_a_grant_without_the_read_scope_is_refused(
    peer: GooglePeer, client: gmail.GmailClient
) -> None:
    code = peer.grant(ACCOUNT, REDIRECT, scopes=(SEND_SCOPE,))
    with pytest.raises(gmail.GmailFailed, match=r"did not grant gmail\.readonly"):
        client.exchange_code(code, REDIRECT, peer.now)


def test_refresh_keeps_the_refresh_token_unless_google_sends_a_new_one(
    peer: GooglePeer, client: gmail.GmailClient
) -> None:
    tokens = connect(peer, client)
    later = peer.now + timedelta(minutes=10)
    refreshed = client.refresh(tokens, later)
    assert refreshed.refresh_token == tokens.refresh_token
    assert refreshed.access_token != tokens.access_token
    assert refreshed.expires_at == later + timedelta(seconds=3599)
    assert refreshed.email == ACCOUNT
    peer.rotate_refresh_tokens = True
    rotated = client.refresh(refreshed, later)
    assert rotated.refresh_token != tokens.refresh_token
    assert client.refresh(rotated, later).refresh_token != rotated.refresh_token


# --- Sending -----------------------------------------------------------------------------------


def test_send_posts_the_message_as_base64url_and_returns_gmails_id(
    peer: GooglePeer, client: gmail.GmailClient
) -> None:
    tokens = connect(peer, client)
    raw = message()
    gmail_id, used = client.send(tokens, raw, peer.now)
    assert used == tokens  # still valid: no refresh
    assert peer.routes() == ["send"]
    [sent] = peer.sent
    assert sent.id == gmail_id and sent.account == ACCOUNT
    assert sent.message["Subject"] == "Your renewal, Ana"
    body = sent.message.get_body()
    assert body is not None and "Ünïcode" in body.get_content()
    assert base64.urlsafe_b64decode(json.loads(peer.requests[0].body)["raw"]) == raw


def test_an_expiring_token_is_refreshed_once_before_sending(
    peer: GooglePeer, client: gmail.GmailClient
) -> None:
    tokens = connect(peer, client)
    peer.now = tokens.expires_at - timedelta(seconds=30)  # still valid at Google, but only just
    gmail_id, used = client.send(tokens, message(), peer.now)
    assert peer.routes() == ["token", "send"]
    assert peer.grant_types() == ["refresh_token"]
    assert used.access_token != tokens.access_token
    assert used.expires_at == peer.now + timedelta(seconds=3599)
    assert [m.id for m in peer.sent] == [gmail_id]


def test_a_401_refreshes_and_sends_again_once(peer: GooglePeer, client: gmail.GmailClient) -> None:
    tokens = connect(peer, client)
    peer.expire_access_tokens()  # Google dropped the token before its time
    gmail_id, used = client.send(tokens, message(), peer.now)
    assert peer.routes() == ["send", "token", "send"]
    assert used.access_token != tokens.access_token
    assert [m.id for m in peer.sent] == [gmail_id]


def test_a_second_401_is_not_replayed_again(peer: GooglePeer, client: gmail.GmailClient) -> None:
    tokens = connect(peer, client)
    peer.expire_access_tokens()
    peer.fail_next("send", *google_error(401, "Invalid Credentials", "authError"))
    peer.fail_next("send", *google_error(401, "Invalid Credentials", "authError"))
    with pytest.raises(gmail.GmailAuthError, match="Invalid Credentials"):
        client.send(tokens, message(), peer.now)
    assert peer.routes() == ["send", "token", "send"]
    assert peer.sent == []


def test_a_revoked_grant_asks_the_user_to_reconnect(
    peer: GooglePeer, client: gmail.GmailClient
) -> None:
    tokens = connect(peer, client)
    peer.revoke()
    with pytest.raises(gmail.GmailAuthError, match=r"invalid_grant.*expired or revoked") as info:
        client.send(tokens, message(), peer.now)
    assert "reconnect" in info.value.error
    assert peer.routes() == ["send", "token"]
    assert peer.sent == []


def test_429_is_retried_later_per_retry_after_and_sent_once(
    peer: GooglePeer, client: gmail.GmailClient
) -> None:
    tokens = connect(peer, client)
    status, body = google_error(429, "User-rate limit exceeded", "rateLimitExceeded")
    peer.fail_next("send", status, body, headers={"Retry-After": "30"})
    with pytest.raises(gmail.GmailRetry, match="User-rate limit exceeded") as info:
        client.send(tokens, message(), peer.now)
    assert info.value.retry_after == 30.0
    assert peer.routes() == ["send"]
    assert peer.sent == []


def test_a_403_rate_limit_is_retryable_but_a_permission_refusal_is_not(
    peer: GooglePeer, client: gmail.GmailClient
) -> None:
    tokens = connect(peer, client)
    peer.fail_next("send", *google_error(403, "User Rate Limit Exceeded", "userRateLimitExceeded"))
    with pytest.raises(gmail.GmailRetry):
        client.send(tokens, message(), peer.now)
    peer.fail_next("send", *google_error(403, "Delegation denied", "forbidden"))
    with pytest.raises(gmail.GmailFailed, match=r"403: Delegation denied \(forbidden\)") as info:
        client.send(tokens, message(), peer.now)
    assert not isinstance(info.value, gmail.GmailAuthError)


def test_a_server_error_is_retryable(peer: GooglePeer, client: gmail.GmailClient) -> None:
    tokens = connect(peer, client)
    peer.fail_next("send", *google_error(500, "Internal error encountered.", "backendError"))
    with pytest.raises(gmail.GmailRetry, match="500: Internal error") as info:
        client.send(tokens, message(), peer.now)
    assert info.value.retry_after is None
    assert peer.routes() == ["send"]


def test_a_bad_message_fails_with_googles_message(
    peer: GooglePeer, client: gmail.GmailClient
) -> None:
    tokens = connect(peer, client)
    with pytest.raises(gmail.GmailFailed, match="Recipient address required") as info:
        client.send(tokens, message(to=None), peer.now)
    assert "invalidArgument" in info.value.error
    assert peer.routes() == ["send"] and peer.sent == []


def test_a_message_without_message_id_is_not_sent(
    peer: GooglePeer, client: gmail.GmailClient
) -> None:
    tokens = connect(peer, client)
    raw = b"From: a@x.example\r\nTo: b@y.example\r\nSubject: hi\r\n\r\nbody\r\n"
    with pytest.raises(gmail.GmailFailed, match="no Message-ID"):
        client.send(tokens, raw, peer.now)
    assert peer.requests == []


def test_google_unreachable_is_retryable(peer: GooglePeer) -> None:
    with socket.socket() as s:  # a port nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = f"http://127.0.0.1:{port}"
    tokens = gmail.Tokens("ya29.x", "1//0x", datetime(2025, 1, 6, 10, tzinfo=UTC), ACCOUNT)
    with gmail.GmailClient(settings_for(down), NoLookups(), timeout=2) as c:
        with pytest.raises(gmail.GmailRetry, match=r"127\.0\.0\.1"):
            c.send(tokens, message(), datetime(2025, 1, 6, 9, tzinfo=UTC))
        with pytest.raises(gmail.GmailRetry):
            c.refresh(tokens, datetime(2025, 1, 6, 9, tzinfo=UTC))


# --- Reconciling after a crash -----------------------------------------------------------------


def test_find_sent_finds_our_message_id_and_nothing_for_another(
    peer: GooglePeer, client: gmail.GmailClient
) -> None:
    tokens = connect(peer, client)
    ours = make_msgid(domain="workflowbot.example")
    gmail_id, tokens = client.send(tokens, message(msgid=ours), peer.now)
    assert client.find_sent(tokens, ours, peer.now) == (gmail_id, tokens)
    assert client.find_sent(tokens, ours.strip("<>"), peer.now)[0] == gmail_id
    other = make_msgid(domain="workflowbot.example")
    assert client.find_sent(tokens, other, peer.now) == (None, tokens)
    [listed, *_] = [r for r in peer.requests if r.route == "list"]
    assert listed.query["q"] == [f"rfc822msgid:{ours}"]
    assert listed.query["labelIds"] == ["SENT"]


def test_find_sent_refreshes_an_expired_token(peer: GooglePeer, client: gmail.GmailClient) -> None:
    tokens = connect(peer, client)
    ours = make_msgid(domain="workflowbot.example")
    gmail_id, _ = client.send(tokens, message(msgid=ours), peer.now)
    peer.requests.clear()
    peer.now = tokens.expires_at + timedelta(hours=2)  # the worker crashed and came back later
    found, used = client.find_sent(tokens, ours, peer.now)
    assert found == gmail_id
    assert used.access_token != tokens.access_token
    assert peer.routes() == ["token", "list"]


def test_a_message_id_gmail_cannot_search_for_is_refused(client: gmail.GmailClient) -> None:
    tokens = gmail.Tokens("ya29.x", "1//0x", datetime(2025, 1, 6, 10, tzinfo=UTC))
    with pytest.raises(gmail.GmailFailed, match="not a Message-ID Gmail can search"):
        client.find_sent(tokens, "<a b@c>", datetime(2025, 1, 6, 9, tzinfo=UTC))
