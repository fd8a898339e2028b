"""The Segment-spec HTTP API: /v1/identify, /v1/group, /v1/track, /v1/batch (+ page, screen, alias).

Auth as Segment does it (the write key as the Basic user name, or a Bearer token); limits of
32 KB per message and 500 KB per batch; 400 names every bad field; a batch is all-or-nothing.
`stage` traits are checked against the workspace's stage list, kept in a `StageCache`.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
from datetime import UTC, datetime

import pydantic_core
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine import lifecycle
from engine.ingest import schema
from engine.ingest.writer import IngestWriter

log = logging.getLogger(__name__)

WRITE_TIMEOUT_SECONDS = 30.0
OK = b'{"success":true}'


class _TooLarge(Exception):
    def __init__(self, field: str, size: int, limit: int) -> None:
        super().__init__(f"{field}: {size} bytes, over the {limit}-byte limit")
        self.field, self.size, self.limit = field, size, limit


def _errors(status: int, errors: list[schema.FieldError], **headers: str) -> JSONResponse:
    return JSONResponse(
        {"success": False, "errors": [e.as_dict() for e in errors]}, status, headers=headers
    )


def _authorized(request: Request, keys: list[str]) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return False
        key = decoded.partition(":")[0]
    elif scheme.lower() == "bearer":
        key = credentials.strip()
    else:
        return False
    return any(hmac.compare_digest(key.encode(), k.encode()) for k in keys) if key else False


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _TooLarge("body", int(declared), limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _TooLarge("body", len(body), limit)
    return bytes(body)


def _check_item_sizes(body: bytes) -> None:
    """In a batch over 32 KB, every single message must still be within 32 KB (of UTF-8)."""
    if len(body) <= schema.MAX_MESSAGE_BYTES:
        return
    try:
        # The parser parse_batch uses: it bounds nesting depth (json.loads recurses until
        # RecursionError) and refuses lone surrogates.
        data = pydantic_core.from_json(body)
    except ValueError:
        return  # the parser reports it
    items = data.get("batch") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return
    for index, item in enumerate(items):
        size = len(pydantic_core.to_json(item))  # compact UTF-8, not \uXXXX escapes
        if size > schema.MAX_MESSAGE_BYTES:
            raise _TooLarge(f"batch[{index}]", size, schema.MAX_MESSAGE_BYTES)


def _unavailable() -> JSONResponse:
    return _errors(
        503,
        [schema.FieldError("body", "storage is unavailable; retry later")],
        **{"Retry-After": "5"},
    )


async def _stages(cache: lifecycle.StageCache) -> lifecycle.Stages:
    """The stage list; only a stale cache costs a thread (and a query)."""
    stages = cache.fresh()
    return stages if stages is not None else await run_in_threadpool(cache.get)


def _parse(call: str, body: bytes, now: datetime, stages: lifecycle.Stages) -> list[schema.Change]:
    if call == "batch":
        _check_item_sizes(body)
        return schema.parse_batch(body, now=now, stages=stages)
    if call in schema.SINGLE:
        return [schema.parse_single(call, body, now=now, stages=stages)]
    try:
        data = pydantic_core.from_json(body)  # as parse_single and parse_batch parse
    except ValueError as exc:
        raise schema.InvalidPayload([schema.FieldError("body", f"Invalid JSON: {exc}")]) from None
    if not isinstance(data, dict):
        raise schema.InvalidPayload([schema.FieldError("body", "Input should be an object")])
    return [schema.parse_call({**data, "type": call}, now=now, stages=stages)]


def make_routes(
    *, writer: IngestWriter, write_keys: list[str], stages: lifecycle.StageCache
) -> list[Route]:
    """The /v1 routes, bound to a running writer, the accepted write keys and the stage list."""

    async def ingest(request: Request) -> Response:
        call = request.url.path.rsplit("/", 1)[-1]
        if not _authorized(request, write_keys):
            return _errors(
                401,
                [schema.FieldError("Authorization", "a valid write key is required")],
                **{"WWW-Authenticate": 'Basic realm="workflowbot"'},
            )
        limit = schema.MAX_BATCH_BYTES if call == "batch" else schema.MAX_MESSAGE_BYTES
        try:
            body = await _read_body(request, limit)
            changes = _parse(call, body, datetime.now(UTC), await _stages(stages))
        except _TooLarge as exc:
            message = f"is {exc.size} bytes; the limit is {exc.limit}"
            return _errors(413, [schema.FieldError(exc.field, message)])
        except schema.InvalidPayload as exc:
            return _errors(400, exc.errors)
        except OperationalError as exc:  # the stage list could not be read
            log.warning("ingest unavailable: %s", exc)
            return _unavailable()
        try:
            await asyncio.wait_for(
                asyncio.wrap_future(writer.submit(changes)), WRITE_TIMEOUT_SECONDS
            )
        except (TimeoutError, OperationalError) as exc:
            log.warning("ingest unavailable: %s", exc)
            return _unavailable()
        except DBAPIError:
            log.exception("ingest write refused by the database")
            return _errors(400, [schema.FieldError("body", "the database refused this data")])
        return Response(OK, media_type="application/json")

    return [Route(f"/v1/{call}", ingest, methods=["POST"]) for call in CALLS]


CALLS = ("identify", "group", "track", "batch", "page", "screen", "alias")
