"""What every stand-in shares: an HTTP request handler that keeps quiet, served on a free port
of 127.0.0.1 in a thread for as long as a `with` lasts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

POLL_SECONDS = 0.05  # how soon a stopped server notices (the default is half a second)


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that writes no access log (the demo prints what matters)."""

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def serving(
    handler: type[BaseHTTPRequestHandler],
    server_class: type[ThreadingHTTPServer] = ThreadingHTTPServer,
) -> Iterator[str]:
    """Serve `handler` on 127.0.0.1 (a free port) until the block ends; its base URL."""
    server = server_class(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(POLL_SECONDS,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
