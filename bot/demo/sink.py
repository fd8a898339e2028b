"""A webhook receiver on 127.0.0.1: records every request; answers as the test says."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from bot.demo.serving import QuietHandler, serving


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Sink:
    url: str
    received: list[Received] = field(default_factory=list)
    # Answers in order (status, headers); when used up, 200.
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    on_request: Callable[[Received], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ids(self) -> list[str]:
        with self.lock:
            return [r.headers["webhook-id"] for r in self.received]


@contextmanager
def webhook_sink() -> Iterator[Sink]:
    sink = Sink(url="")

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            got = Received(
                self.path, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length)
            )
            with sink.lock:
                sink.received.append(got)
                status, headers = sink.answers.pop(0) if sink.answers else (200, {})
            if sink.on_request is not None:
                sink.on_request(got)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    with serving(Handler) as url:
        sink.url = url
        yield sink
