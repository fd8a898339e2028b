"""Small helpers the tests share: reading rows back, waiting for a condition, serving an app."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session


def one(db: Engine, model: Any, **where: Any) -> Any:
    """The one row of `model` matching `where` (fails if none or several)."""
    with Session(db) as s:
        return s.scalars(select(model).filter_by(**where)).one()


def count(db: Engine, model: Any) -> int:
    """How many rows `model`'s table holds."""
    with Session(db) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def all_rows(db: Engine, model: Any) -> list[Any]:
    """Every row of `model`."""
    with Session(db) as s:
        return list(s.scalars(select(model)))


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    """Poll until `predicate()` is true, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a free 127.0.0.1 port; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
