"""The routes recipients reach from an email: the open pixel, click redirects, unsubscribe.

Tokens are the signed ones of engine.email.tracking. The pixel always answers the GIF; a click
redirects only a valid token to an http(s) target (anything else gets 400, never a redirect);
unsubscribing changes nothing on GET (mail scanners follow links) and suppresses the address on
POST (RFC 8058 one-click, or the page's button), idempotently. Without SECRET_KEY or PUBLIC_URL
the routes answer 404.
"""

from __future__ import annotations

import base64
import html
import logging

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from engine.email import tracking
from engine.runtime import Runtime
from storage.db import session_scope
from storage.queries import drafts, suppressions

log = logging.getLogger(__name__)

GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_CACHE = {
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
}
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>{title}</title></head>
<body style="font-family: sans-serif; max-width: 32rem; margin: 4rem auto; padding: 0 1rem">
{body}
</body></html>
"""


def mask(email: str) -> str:
    """`ann@example.com` as `a***@example.com`: enough to recognise, not to harvest."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=html.escape(title), body=body), status, NO_CACHE)


def _user_agent(request: Request) -> str:
    return request.headers.get("user-agent", "")[:500]


def make_routes(rt: Runtime) -> list[Route]:
    """/t/o/{token}.gif, /t/c/{token} and /u/{token}, on `rt`'s database and settings."""
    routes = _EmailRoutes(rt)
    return [
        Route("/t/o/{token}.gif", routes.pixel, methods=["GET"]),
        Route("/t/c/{token}", routes.click, methods=["GET"]),
        Route("/u/{token}", routes.unsubscribe, methods=["GET", "POST"]),
    ]


class _EmailRoutes:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    @property
    def _keys(self) -> list[str] | None:
        """The SECRET_KEY entries, or None when these routes are off (no key or PUBLIC_URL)."""
        settings = self.rt.settings
        return settings.secret_key if settings.secret_key and settings.public_url else None

    async def pixel(self, request: Request) -> Response:
        keys = self._keys
        if keys is None:
            return PlainTextResponse("Not Found", 404)
        try:
            draft_id = tracking.read_open(request.path_params["token"], secret_keys=keys)
        except tracking.BadToken:
            draft_id = None
        if draft_id is not None:
            await self._record_quietly(draft_id, "open", {"user_agent": _user_agent(request)})
        return Response(GIF, 200, NO_CACHE, media_type="image/gif")

    async def click(self, request: Request) -> Response:
        keys = self._keys
        if keys is None:
            return PlainTextResponse("Not Found", 404)
        try:
            target = tracking.read_click(request.path_params["token"], secret_keys=keys)
        except tracking.BadToken as exc:
            return PlainTextResponse(f"This link is not valid: {exc}.", 400, NO_CACHE)
        detail = {"url": target.url, "user_agent": _user_agent(request)}
        await self._record_quietly(target.draft_id, "click", detail)
        return RedirectResponse(target.url, 302, {**NO_CACHE, "Referrer-Policy": "no-referrer"})

    async def unsubscribe(self, request: Request) -> Response:
        keys = self._keys
        if keys is None:
            return PlainTextResponse("Not Found", 404)
        try:
            target = tracking.read_unsubscribe(request.path_params["token"], secret_keys=keys)
        except tracking.BadToken:
            return _page("Link not valid", "<p>This unsubscribe link is not valid.</p>", 400)
        shown = html.escape(mask(target.email))
        if request.method == "GET":  # a page and a button only: mail scanners follow GETs
            return _page(
                "Unsubscribe",
                f"<h1>Unsubscribe {shown}?</h1><p>You will get no more of these emails.</p>"
                '<form method="post"><input type="hidden" name="List-Unsubscribe" '
                'value="One-Click"><button type="submit">Unsubscribe</button></form>',
            )
        try:
            await run_in_threadpool(self._suppress, target)
        except SQLAlchemyError as exc:
            log.error("unsubscribe for draft %s not recorded: %s", target.draft_id, exc)
            return _page("Try again", "<p>That did not work just now. Please try again.</p>", 503)
        return _page(
            "Unsubscribed",
            f"<h1>You are unsubscribed</h1><p>{shown} will get no more of these emails.</p>",
        )

    def _record(self, draft_id: int, kind: str, detail: dict[str, str]) -> None:
        with session_scope(self.rt.db) as session:
            if drafts.get(session, draft_id=draft_id) is not None:  # not deleted since
                drafts.add_event(
                    session, draft_id=draft_id, kind=kind, at=self.rt.clock.now(), detail=detail
                )

    async def _record_quietly(self, draft_id: int, kind: str, detail: dict[str, str]) -> None:
        # With the database down the recipient still gets the pixel or the page they clicked
        # for; only the statistic is lost.
        try:
            await run_in_threadpool(self._record, draft_id, kind, detail)
        except SQLAlchemyError as exc:
            log.warning("email %s for draft %s not recorded: %s", kind, draft_id, exc)

    def _suppress(self, target: tracking.Unsubscribe) -> None:
        now = self.rt.clock.now()
        with session_scope(self.rt.db) as session:
            listed = suppressions.add(
                session, email=target.email, reason="unsubscribe", by="recipient", now=now
            )
            # One event per address listed: a repeated POST (or a scanner's) adds none.
            if listed and drafts.get(session, draft_id=target.draft_id) is not None:
                drafts.add_event(
                    session,
                    draft_id=target.draft_id,
                    kind="unsubscribe",
                    at=now,
                    detail={"email": target.email},
                )
