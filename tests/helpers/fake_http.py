"""A threaded HTTP server on 127.0.0.1 for fake model servers in the default test tier."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[ThreadingHTTPServer]:
    """Serves `handler` on a free port. The server carries `mode` (what the fake should do),
    `requests` (what it received) and `release` (set on exit, for handlers told to hang)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    httpd.mode, httpd.requests, httpd.release = "ok", [], threading.Event()
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield httpd
    finally:
        httpd.release.set()
        httpd.shutdown()
        httpd.server_close()
