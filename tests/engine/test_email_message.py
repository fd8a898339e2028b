"""engine/email/message.py and tracking.rewrite: messages read back as RFC 5322 bytes, header
injection refused naming the field, the text alternative, List-Unsubscribe one-click."""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage
from typing import cast

import pytest

from engine import secrets
from engine.email import message, tracking
from engine.email.message import HeaderError, Outgoing

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
UNSUBSCRIBE = "https://bot.example.com/u/" + "eyJkIjo3LCJlIjoiYW5uQGV4YW1wbGUuY29tIn0" * 3 + ".sig"


def outgoing(**changes: object) -> Outgoing:
    base = Outgoing(
        sender="Workflow Bot <bot@example.com>",
        to=["Ann Lee <ann@example.com>"],
        subject="Your trial ends soon",
        text="Hello Ann,\n\nyour trial ends on Friday.\n",
        message_id="<abc.123@example.com>",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def wire(built: EmailMessage) -> EmailMessage:
    """The message as a receiver parses its bytes."""
    raw = built.as_bytes()
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
    assert raw.isascii()  # 7-bit: any server takes it
    raw = raw.replace(b"\r\n", b"\n")  # as a mailbox stores it
    return cast(EmailMessage, email.message_from_bytes(raw, policy=email.policy.default))


def test_a_text_message_has_every_header_and_parses_back() -> None:
    got = wire(
        message.build(
            outgoing(cc=["bob@example.com"], reply_to="Support <help@example.com>"), now=NOW
        )
    )
    assert got["From"] == "Workflow Bot <bot@example.com>"
    assert got["To"] == "Ann Lee <ann@example.com>"
    assert got["Cc"] == "bob@example.com"
    assert got["Reply-To"] == "Support <help@example.com>"
    assert got["Subject"] == "Your trial ends soon"
    assert got["Date"].datetime == NOW
    assert got["Message-ID"] == "<abc.123@example.com>"
    assert got["List-Unsubscribe"] is None
    assert got["Bcc"] is None
    assert got.get_content_type() == "text/plain"
    assert got.get_content() == "Hello Ann,\n\nyour trial ends on Friday.\n"
    assert not got.defects


def test_with_html_it_is_multipart_alternative_with_the_text_first() -> None:
    html = "<p>Hello <b>Ann</b>,</p><p>your trial ends on Friday.</p>"
    got = wire(message.build(outgoing(text=message.html_to_text(html), html=html), now=NOW))
    assert got.get_content_type() == "multipart/alternative"
    parts = list(got.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert parts[0].get_content().strip() == "Hello Ann,\n\nyour trial ends on Friday."
    assert cast(EmailMessage, got.get_body(("html",))).get_content().strip() == html


def test_list_unsubscribe_is_one_unbroken_line_with_rfc_8058_post() -> None:
    built = message.build(outgoing(unsubscribe_url=UNSUBSCRIBE), now=NOW)
    raw = built.as_bytes()
    assert f"\r\nList-Unsubscribe: <{UNSUBSCRIBE}>\r\n".encode() in raw  # not folded, not encoded
    got = wire(built)
    assert got["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
    assert got["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_unicode_subject_names_and_bodies() -> None:
    got = wire(
        message.build(
            outgoing(
                sender="Zoë Ågren <zoe@example.com>",
                to=["Jürgen Müller <j@example.com>", '"Doe, Jane" <jane@example.com>'],
                subject="Grüße — 你好 🎉",
                text="Schöne Grüße\n",
                html="<p>Schöne Grüße — 你好</p>",
            ),
            now=NOW,
        )
    )
    assert got["Subject"] == "Grüße — 你好 🎉"
    assert got["From"].addresses[0].display_name == "Zoë Ågren"
    assert [a.display_name for a in got["To"].addresses] == ["Jürgen Müller", "Doe, Jane"]
    assert [a.addr_spec for a in got["To"].addresses] == ["j@example.com", "jane@example.com"]
    assert "Schöne Grüße" in cast(EmailMessage, got.get_body(("plain",))).get_content()
    assert "你好" in cast(EmailMessage, got.get_body(("html",))).get_content()


def test_a_non_ascii_domain_goes_out_as_punycode() -> None:
    assert message.check_address("to", "ann@bücher.example") == "ann@xn--bcher-kva.example"


def test_the_date_is_the_given_time_in_its_zone() -> None:
    local = NOW.astimezone(timezone(timedelta(hours=-5)))
    got = wire(message.build(outgoing(), now=local))
    assert got["Date"] == "Mon, 02 Mar 2026 04:30:00 -0500"


@pytest.mark.parametrize(
    ("field", "changes"),
    [
        ("subject", {"subject": "Hi\r\nBcc: victim@example.com"}),
        ("subject", {"subject": "Hi\nthere"}),
        ("subject", {"subject": "Hi\u2028there"}),
        ("to", {"to": ["a@b.com\nBcc: x"]}),
        ("cc", {"cc": ["c@d.com\rBcc: x"]}),
        ("from", {"sender": "Bot <bot@example.com>\nBcc: x@y.com"}),
        ("reply_to", {"reply_to": "r@example.com\r\nX-Evil: 1"}),
        ("message_id", {"message_id": "<a@b>\r\nBcc: x"}),
        ("unsubscribe_url", {"unsubscribe_url": "https://x.example/u/t\r\nBcc: x"}),
    ],
)
def test_a_line_break_in_any_header_is_refused_naming_the_field(
    field: str, changes: dict[str, object]
) -> None:
    with pytest.raises(HeaderError) as caught:
        message.build(outgoing(**changes), now=NOW)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    assert "holds a line break" in str(caught.value)


def test_the_error_text_quotes_the_value() -> None:
    with pytest.raises(HeaderError) as caught:
        message.check_address("to", "a@b.com\nBcc: x")
    assert str(caught.value) == 'to: "a@b.com\\nBcc: x" holds a line break'


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("ann", "no @"),
        ("ann@", "is not an email address"),
        ("@example.com", "is not an email address"),
        ("a@b@c.com", "is not an email address"),
        ("a@b.com, c@d.com", "holds several addresses"),
        ("Ann <a@b.com>, Bob <c@d.com>", "holds several addresses"),
        ("a@b.com c@d.com", "is not an email address"),
        ("Ann <a@b.com> trailing", "is not an email address"),
        ("jürgen@example.com", "non-ASCII characters before the @"),
        ("a\x00@b.com", "control character"),
    ],
)
def test_check_address_refuses(value: str, problem: str) -> None:
    with pytest.raises(HeaderError, match=re.escape(problem)) as caught:
        message.check_address("to[0]", value)
    assert str(caught.value).startswith("to[0]: ")


@pytest.mark.parametrize(
    ("value", "normal"),
    [
        ("ann@example.com", "ann@example.com"),
        ("  ann@example.com ", "ann@example.com"),
        ("<ann@example.com>", "ann@example.com"),
        ("Ann Lee <ann@example.com>", "Ann Lee <ann@example.com>"),
        ('"Lee, Ann" <ann@example.com>', '"Lee, Ann" <ann@example.com>'),
        ("Ann (work) <ann@example.com>", "Ann <ann@example.com>"),
    ],
)
def test_check_address_normalizes(value: str, normal: str) -> None:
    assert message.check_address("to", value) == normal


def test_no_recipient_is_refused() -> None:
    with pytest.raises(HeaderError, match=r"^to: needs at least one address$"):
        message.build(outgoing(to=[]), now=NOW)


def test_an_unsubscribe_url_must_be_http() -> None:
    with pytest.raises(HeaderError, match="unsubscribe_url"):
        message.build(outgoing(unsubscribe_url="javascript:alert(1)"), now=NOW)


def test_message_ids_are_ours_and_unique() -> None:
    ids = {message.make_message_id("Mail.Example.com") for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"<[^@<>\s]+@mail\.example\.com>", i) for i in ids)
    got = wire(message.build(outgoing(message_id=next(iter(ids))), now=NOW))
    assert got["Message-ID"] in ids


@pytest.mark.parametrize("domain", ["", "exa mple.com", "a.com\r\nBcc: x", "a@b.com"])
def test_a_message_id_needs_a_domain_name(domain: str) -> None:
    with pytest.raises(HeaderError, match="message_id"):
        message.make_message_id(domain)


def test_html_to_text_reads_like_the_email() -> None:
    html = """<html><head><title>Trial</title><style>p { color: red }</style></head><body>
      <h1>Your   trial &amp; you</h1>
      <p>Hi Ann,<br>your trial ends <b>Friday</b>.</p>
      <p>See <a href="https://example.com/pricing?a=1&amp;b=2">our plans</a> or write to
         <a href="mailto:help@example.com">help@example.com</a>.</p>
      <ul><li>One</li><li>Two<ol><li>first</li><li>second</li></ol></li></ul>
      <script>document.write("tracking")</script>
      <table><tr><td>Seats</td><td>12</td></tr></table>
      <p>&copy; Example&nbsp;Inc.</p></body></html>"""
    assert message.html_to_text(html) == (
        "Your trial & you\n\n"
        "Hi Ann,\nyour trial ends Friday.\n\n"
        "See our plans (https://example.com/pricing?a=1&b=2) or write to help@example.com.\n\n"
        "- One\n- Two\n  1. first\n  2. second\n\n"
        "Seats 12\n\n"
        "© Example\xa0Inc."
    )


def test_html_to_text_of_plain_text_and_of_nothing() -> None:
    assert message.html_to_text("just   words\n here") == "just words here"
    assert message.html_to_text("") == ""
    assert message.html_to_text("<script>x</script><style>y</style>") == ""


# -- tracking.rewrite ----------------------------------------------------------------------

KEYS = ["test-secret"]


def test_rewrite_points_http_links_at_signed_click_urls_and_adds_the_pixel() -> None:
    html = (
        "<html><body><p>Hi <a class='cta' href=\"https://example.com/a?x=1&amp;y=2\">plans</a>,"
        ' <a href="mailto:help@example.com">mail</a> <a href="#top">top</a>'
        " <A HREF=HTTP://Example.com/B>b</A> <a href='javascript:alert(1)'>j</a></p>\n"
        "</body></html>"
    )
    out = tracking.rewrite(
        html, draft_id=7, public_url="https://bot.example.com/", secret_keys=KEYS
    )
    tokens = re.findall(r'href="https://bot\.example\.com/t/c/([^"]+)"', out)
    clicks = [tracking.read_click(t, secret_keys=KEYS) for t in tokens]
    assert [(c.draft_id, c.url) for c in clicks] == [
        (7, "https://example.com/a?x=1&y=2"),
        (7, "HTTP://Example.com/B"),
    ]
    assert '<a class="cta" href="https://bot.example.com/t/c/' in out  # attribute order kept
    pixel = re.search(r'<img src="https://bot\.example\.com/t/o/([^"]+)\.gif" width="1" ', out)
    assert pixel is not None
    assert tracking.read_open(pixel.group(1), secret_keys=KEYS) == 7
    assert out.endswith('alt="">\n</body></html>') or out.endswith('alt=""></body></html>')
    # Everything but the two rewritten start tags and the pixel is byte-identical.
    untouched = re.sub(r"<a [^>]*/t/c/[^>]*>|<img [^>]*/t/o/[^>]*>", "", out)
    original = re.sub(r"<a class='cta' [^>]*>|<A HREF=HTTP[^>]*>", "", html)
    assert untouched == original


def test_rewrite_without_a_body_tag_appends_the_pixel() -> None:
    out = tracking.rewrite(
        "<p>Hi</p>", draft_id=1, public_url="https://b.example", secret_keys=KEYS
    )
    assert out.startswith('<p>Hi</p><img src="https://b.example/t/o/')


def test_rewrite_leaves_our_own_links_alone() -> None:
    own = tracking.unsubscribe_url(
        public_url="https://b.example", secret_keys=KEYS, draft_id=1, email="ann@example.com"
    )
    html = f'<a href="{own}">unsubscribe</a>'
    out = tracking.rewrite(html, draft_id=1, public_url="https://b.example", secret_keys=KEYS)
    assert out.startswith(html)


def test_tokens_are_bound_to_their_purpose() -> None:
    token = secrets.sign(KEYS, "click", {"d": 1, "u": "https://example.com"})
    with pytest.raises(tracking.BadToken):
        tracking.read_open(token, secret_keys=KEYS)
    with pytest.raises(tracking.BadToken):
        tracking.read_unsubscribe(token, secret_keys=KEYS)
    with pytest.raises(tracking.BadToken):
        tracking.read_click(token, secret_keys=["another-key"])
    assert tracking.read_click(token, secret_keys=["new-key", *KEYS]).url == "https://example.com"
