"""`GET /oauth/google/callback`: where Google sends a user back after connecting Gmail."""

from __future__ import annotations

import html

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from engine import gmail_connect
from engine.email.gmail import CALLBACK_PATH
from engine.runtime import Runtime


def _page(title: str, text: str, status: int) -> HTMLResponse:
    body = (
        '<!doctype html><html><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title></head>"
        '<body style="font-family: system-ui, sans-serif; max-width: 36rem; margin: 3rem auto; '
        f'padding: 0 1rem"><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>'
    )
    return HTMLResponse(body, status, headers={"Cache-Control": "no-store"})


def make_routes(rt: Runtime) -> list[Route]:
    async def callback(request: Request) -> HTMLResponse:
        params = request.query_params
        if params.get("error"):
            return _page(
                "Gmail not connected",
                f"Google said: {params['error']}. Ask for a new link to try again.",
                400,
            )
        code, state = params.get("code"), params.get("state")
        if not code or not state:
            return _page("Gmail not connected", "The link is missing its code or state.", 400)
        try:
            done = await run_in_threadpool(
                gmail_connect.complete,
                rt.db,
                rt.settings,
                rt.resolver,
                code=code,
                state=state,
                now=rt.clock.now(),
            )
        except gmail_connect.ConnectError as exc:
            return _page("Gmail not connected", str(exc), 400)
        waiting = f" {done.released} waiting emails go on now." if done.released else ""
        return _page(
            "Gmail connected",
            f"Workflow emails of {done.user} are now sent from {done.account}.{waiting}",
            200,
        )

    return [Route(CALLBACK_PATH, callback, methods=["GET"])]
