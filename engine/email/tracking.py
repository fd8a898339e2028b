"""Open, click and unsubscribe links: URLs under PUBLIC_URL carrying tokens signed with
SECRET_KEY (engine.secrets), one purpose each, so a link cannot be altered or reused as another.

`rewrite` points an HTML body's http(s) links at `/t/c/{token}` and adds the `/t/o/{token}.gif`
pixel; `unsubscribe_url` makes the `/u/{token}` link for List-Unsubscribe. The `read_*`
functions give the routes (bot/email_web.py) what a token holds, or raise BadToken.
"""

from __future__ import annotations

import html as html_lib
from collections.abc import Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

from engine import secrets

OPEN, CLICK, UNSUBSCRIBE = "open", "click", "unsubscribe"


class BadToken(ValueError):
    """A tracking or unsubscribe token that was altered, made for another purpose or another
    key, or holds a target we never redirect to."""


@dataclass(frozen=True)
class Click:
    draft_id: int
    url: str


@dataclass(frozen=True)
class Unsubscribe:
    draft_id: int
    email: str


def is_trackable(url: str) -> bool:
    """An absolute http(s) URL with a host, no whitespace or control characters: the only
    targets we rewrite and redirect to."""
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def _base(public_url: str) -> str:
    return public_url.rstrip("/")


def pixel_url(*, public_url: str, secret_keys: Sequence[str], draft_id: int) -> str:
    return f"{_base(public_url)}/t/o/{secrets.sign(secret_keys, OPEN, {'d': draft_id})}.gif"


def click_url(*, public_url: str, secret_keys: Sequence[str], draft_id: int, url: str) -> str:
    token = secrets.sign(secret_keys, CLICK, {"d": draft_id, "u": url})
    return f"{_base(public_url)}/t/c/{token}"


def unsubscribe_url(
    *, public_url: str, secret_keys: Sequence[str], draft_id: int, email: str
) -> str:
    """`{public_url}/u/{token}`: the page (GET) and RFC 8058 one-click target (POST) that
    suppresses `email`."""
    token = secrets.sign(secret_keys, UNSUBSCRIBE, {"d": draft_id, "e": email})
    return f"{_base(public_url)}/u/{token}"


def _payload(token: str, purpose: str, secret_keys: Sequence[str]) -> dict[str, Any]:
    try:
        payload = secrets.unsign(secret_keys, purpose, token)
    except secrets.SecretsError as exc:
        raise BadToken(str(exc)) from None
    draft_id = payload.get("d") if isinstance(payload, dict) else None
    if type(draft_id) is not int:
        raise BadToken("the link holds no draft")
    return payload


def read_open(token: str, *, secret_keys: Sequence[str]) -> int:
    """The draft id an open pixel's token names."""
    return int(_payload(token, OPEN, secret_keys)["d"])


def read_click(token: str, *, secret_keys: Sequence[str]) -> Click:
    """The draft and target of a click token; BadToken also for a non-http(s) target."""
    payload = _payload(token, CLICK, secret_keys)
    url = payload.get("u")
    if not isinstance(url, str) or not is_trackable(url):
        raise BadToken("the link's target is not an http(s) URL")
    return Click(draft_id=payload["d"], url=url)


def read_unsubscribe(token: str, *, secret_keys: Sequence[str]) -> Unsubscribe:
    """The draft and address of an unsubscribe token."""
    payload = _payload(token, UNSUBSCRIBE, secret_keys)
    email = payload.get("e")
    if not isinstance(email, str) or "@" not in email:
        raise BadToken("the link holds no address")
    return Unsubscribe(draft_id=payload["d"], email=email)


class _Anchors(HTMLParser):
    """Finds each `<a ...>` start tag (offset, source text, attributes) and the last `</body>`."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self._source = source
        self._line_starts = [0] + [i + 1 for i, c in enumerate(source) if c == "\n"]
        self.anchors: list[tuple[int, str, list[tuple[str, str | None]]]] = []
        self.body_end: int | None = None

    def _offset(self) -> int:
        line, column = self.getpos()
        return self._line_starts[line - 1] + column

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            raw = self.get_starttag_text() or ""
            offset = self._offset()
            if self._source.startswith(raw, offset):
                self.anchors.append((offset, raw, attrs))

    def handle_endtag(self, tag: str) -> None:
        if tag == "body":
            self.body_end = self._offset()


def _start_tag(attrs: list[tuple[str, str | None]], self_closing: bool) -> str:
    parts = ["<a"]
    for name, value in attrs:
        parts.append(f" {name}" if value is None else f' {name}="{html_lib.escape(value)}"')
    parts.append(" />" if self_closing else ">")
    return "".join(parts)


def rewrite(html: str, *, draft_id: int, public_url: str, secret_keys: Sequence[str]) -> str:
    """`html` with each http(s) `<a href>` pointing at its click link and the open pixel added
    (before `</body>`, or at the end); other links, and every byte outside the rewritten `<a>`
    start tags, are left as they were."""
    parser = _Anchors(html)
    parser.feed(html)
    parser.close()
    own = _base(public_url) + "/"
    edits: list[tuple[int, int, str]] = []
    for offset, raw, attrs in parser.anchors:
        href = next((v for k, v in attrs if k == "href"), None)
        target = (href or "").strip()
        if not is_trackable(target) or target.startswith(own):
            continue
        link = click_url(
            public_url=public_url, secret_keys=secret_keys, draft_id=draft_id, url=target
        )
        # The first href is the one browsers follow; any later one goes.
        first = next(i for i, (k, _) in enumerate(attrs) if k == "href")
        kept = [(k, link if i == first else v) for i, (k, v) in enumerate(attrs)]
        kept = [a for i, a in enumerate(kept) if a[0] != "href" or i == first]
        tag = _start_tag(kept, raw.endswith("/>"))
        edits.append((offset, offset + len(raw), tag))
    pixel = pixel_url(public_url=public_url, secret_keys=secret_keys, draft_id=draft_id)
    at = len(html) if parser.body_end is None else parser.body_end
    edits.append((at, at, f'<img src="{html_lib.escape(pixel)}" width="1" height="1" alt="">'))
    out, done = [], 0
    for start, end, text in sorted(edits, key=lambda e: e[0]):
        out += [html[done:start], text]
        done = end
    out.append(html[done:])
    return "".join(out)
