"""RFC 5322 messages built with `email.message.EmailMessage`, with every header checked first.

`build` turns an `Outgoing` into the message that SMTP and Gmail send: addresses one per
entry (`check_address`), no CR/LF or other control character in any header (`HeaderError`
names the field), our own Message-ID, and List-Unsubscribe with RFC 8058 one-click when an
unsubscribe URL is given. Bodies go out as 7-bit (quoted-printable or base64 when needed), so
any SMTP server takes them; `html_to_text` makes the plain alternative of an HTML body.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email import errors as email_errors
from email import policy as email_policy
from email.headerregistry import Address, BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.policy import Policy
from email.utils import format_datetime, make_msgid
from html.parser import HTMLParser
from urllib.parse import urlsplit

# Every character str.splitlines() breaks on: any of them could end a header line somewhere.
_LINE_BREAKS = frozenset("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
_MESSAGE_ID = re.compile(r"<[!-=?-~]+@[!-=?-~]+>")  # printable ASCII, no '<' / '>' inside
_MAX_URL = 900  # a header line must stay under 998 characters


class HeaderError(ValueError):
    """A header value that cannot go into a message; the text names the field and the problem."""

    def __init__(self, field: str, value: str | None, problem: str) -> None:
        shown = value if value is None or len(value) <= 120 else value[:120] + "…"
        text = f"{field}: {problem}" if shown is None else f"{field}: {_quoted(shown)} {problem}"
        super().__init__(text)
        self.field, self.problem = field, problem


def _quoted(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


class _OneLineHeader(UnstructuredHeader, BaseHeader):
    """Written as given on one line: folded or encoded, a List-Unsubscribe URL is lost."""

    def fold(self, *, policy: Policy) -> str:
        return f"{self.name}: {self}{policy.linesep}"


def _registry() -> HeaderRegistry:
    registry = HeaderRegistry()
    registry.map_to_type("list-unsubscribe", _OneLineHeader)
    return registry


# CRLF line ends (policy.SMTP), 7-bit bodies for servers without 8BITMIME.
POLICY = email_policy.SMTP.clone(cte_type="7bit", header_factory=_registry())


@dataclass(frozen=True, kw_only=True)
class Outgoing:
    """What one email says; addresses are `Name <a@b.example>` or bare `a@b.example`."""

    sender: str
    to: Sequence[str]
    cc: Sequence[str] = ()
    reply_to: str | None = None
    subject: str
    text: str
    html: str | None = None
    message_id: str
    unsubscribe_url: str | None = None


def make_message_id(domain: str) -> str:
    """A new `<unique@domain>`; the domain is ours (EMAIL_FROM's or PUBLIC_URL's host), never
    this machine's name."""
    domain = domain.strip().lower()
    _check_line("message_id domain", domain)
    if not domain or not re.fullmatch(r"[a-z0-9.-]+", _ascii_domain("message_id", domain)):
        raise HeaderError("message_id domain", domain, "is not a domain name")
    return make_msgid(domain=_ascii_domain("message_id", domain))


def check_address(field: str, value: str) -> str:
    """One address (`Name <a@b>` or `a@b`), normalized; HeaderError naming `field` otherwise."""
    return str(_address(field, value))


def _check_line(field: str, value: str) -> None:
    for char in value:
        if char in _LINE_BREAKS:
            raise HeaderError(field, value, "holds a line break")
        if (ord(char) < 32 and char != "\t") or ord(char) == 127:
            raise HeaderError(field, value, "holds a control character")


def _ascii_domain(field: str, domain: str) -> str:
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise HeaderError(field, domain, "is not a valid domain name") from None


def _address(field: str, value: str) -> Address:
    _check_line(field, value)
    text = value.strip()
    if not text:
        raise HeaderError(field, value, "is empty")
    if "@" not in text:
        raise HeaderError(field, value, "is not an email address (no @)")
    try:
        header = email_policy.default.header_factory("to", text)
        found = list(header.addresses)
        defects = [type(d) for d in header.defects]
    except (email_errors.HeaderParseError, IndexError, ValueError):
        raise HeaderError(field, value, "is not an email address") from None
    if len(found) > 1:
        raise HeaderError(field, value, "holds several addresses (give one per entry)")
    if email_errors.NonASCIILocalPartDefect in defects:
        raise HeaderError(field, value, "has non-ASCII characters before the @")
    if not found or defects or not found[0].username or not found[0].domain:
        raise HeaderError(field, value, "is not an email address")
    address = found[0]
    domain = _ascii_domain(field, address.domain)
    return Address(display_name=address.display_name, username=address.username, domain=domain)


def _check_url(field: str, url: str) -> str:
    _check_line(field, url)
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise HeaderError(field, url, "must be an http(s) URL")
    if not url.isascii() or any(c in url for c in " <>\t") or len(url) > _MAX_URL:
        raise HeaderError(field, url, f"must be ASCII, without spaces or <>, under {_MAX_URL}")
    return url


def build(outgoing: Outgoing, *, now: datetime) -> EmailMessage:
    """The message for `outgoing`, dated `now`: text/plain, or multipart/alternative (text
    first) with `html`; HeaderError names the first header that cannot be written."""
    if not outgoing.to:
        raise HeaderError("to", None, "needs at least one address")
    msg = EmailMessage(policy=POLICY)
    msg["From"] = _address("from", outgoing.sender)
    msg["To"] = [_address("to", a) for a in outgoing.to]
    if outgoing.cc:
        msg["Cc"] = [_address("cc", a) for a in outgoing.cc]
    if outgoing.reply_to:
        msg["Reply-To"] = _address("reply_to", outgoing.reply_to)
    _check_line("subject", outgoing.subject)
    msg["Subject"] = outgoing.subject
    msg["Date"] = format_datetime(now if now.tzinfo else now.replace(tzinfo=UTC))
    _check_line("message_id", outgoing.message_id)
    if not _MESSAGE_ID.fullmatch(outgoing.message_id):
        raise HeaderError("message_id", outgoing.message_id, "is not <id@domain>")
    msg["Message-ID"] = outgoing.message_id
    if outgoing.unsubscribe_url:
        url = _check_url("unsubscribe_url", outgoing.unsubscribe_url)
        msg["List-Unsubscribe"] = f"<{url}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(outgoing.text)
    if outgoing.html is not None:
        msg.add_alternative(outgoing.html, subtype="html")
    return msg


# -- HTML to text ------------------------------------------------------------------------

_BLOCKS = frozenset(
    "address article aside blockquote dd div dl dt fieldset figcaption figure footer form "  # noqa: SIM905
    "header hr main nav ol p pre section table tbody thead tfoot tr ul".split()
)
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_DROPPED = frozenset({"script", "style", "head", "title", "template", "noscript", "svg"})
_SPACE = re.compile(r"[ \t\n\r\f]+")  # HTML's white space: &nbsp; stays


class _TextMaker(HTMLParser):
    """Collects text with the line breaks the HTML's blocks imply."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._breaks = 0  # line breaks owed before the next text (2 = a blank line)
        self._dropped = 0
        self._pre = 0
        self._links: list[tuple[str, int]] = []  # (href, len(out) when the <a> opened)
        self._lists: list[list[int]] = []  # [number] for <ol>, [-1] for <ul>

    def _owe(self, breaks: int) -> None:
        self._breaks = max(self._breaks, breaks)

    def _write(self, text: str) -> None:
        if not text:
            return
        if self.out and self._breaks:
            self.out.append("\n" * self._breaks)
        self._breaks = 0
        self.out.append(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROPPED:
            self._dropped += 1
        elif tag == "br":
            self._breaks = min(self._breaks + 1, 2)
        elif tag in _HEADINGS or tag == "p":
            self._owe(2)
        elif tag == "li":
            self._owe(1)
            marker = "- "
            if self._lists and self._lists[-1][0] >= 0:
                self._lists[-1][0] += 1
                marker = f"{self._lists[-1][0]}. "
            self._write("  " * max(len(self._lists) - 1, 0) + marker)
        elif tag in ("ul", "ol"):
            self._owe(1 if self._lists else 2)
            self._lists.append([0 if tag == "ol" else -1])
        elif tag in _BLOCKS:
            self._owe(2 if tag in ("blockquote", "table", "pre") else 1)
            if tag == "pre":
                self._pre += 1
        elif tag in ("td", "th") and self.out and not self._breaks:
            self._write(" ")  # cells of a row side by side
        elif tag == "a":
            self._links.append((dict(attrs).get("href") or "", len(self.out)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _DROPPED:  # <br/>, <hr/>; a self-closed <script/> holds nothing
            self.handle_starttag(tag, attrs)
            if tag not in ("br", "hr"):
                self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROPPED:
            self._dropped = max(self._dropped - 1, 0)
        elif tag in _HEADINGS or tag in ("p", "blockquote", "table", "pre"):
            self._owe(2)
            if tag == "pre":
                self._pre = max(self._pre - 1, 0)
        elif tag in ("ul", "ol"):
            if self._lists:
                self._lists.pop()
            self._owe(1 if self._lists else 2)
        elif tag in _BLOCKS or tag == "li":
            self._owe(1)
        elif tag == "a" and self._links:
            href, start = self._links.pop()
            self._link_end(href.strip(), start)

    def _link_end(self, href: str, start: int) -> None:
        shown = "".join(self.out[start:]).strip()
        target = href.removeprefix("mailto:") if href.lower().startswith("mailto:") else href
        if not href or href.startswith("#") or href.lower().startswith("javascript:"):
            return
        if not shown:
            self._write(target)
        elif target not in shown:
            self._write(f" ({target})")

    def handle_data(self, data: str) -> None:
        if self._dropped:
            return
        if self._pre:
            for i, line in enumerate(data.split("\n")):
                if i:
                    self._owe(1)
                self._write(line)
            return
        text = _SPACE.sub(" ", data)
        if not self.out or self._breaks or self.out[-1].endswith((" ", "\n")):
            text = text.lstrip()
        self._write(text)


def html_to_text(html: str) -> str:
    """A readable plain-text version of `html`: blocks on their own lines, links as
    `text (url)`, scripts and styles dropped, entities decoded, whitespace collapsed."""
    maker = _TextMaker()
    maker.feed(html)
    maker.close()
    lines = [line.rstrip() for line in "".join(maker.out).split("\n")]
    text = "\n".join(lines).strip("\n")
    return re.sub(r"\n{3,}", "\n\n", text)
