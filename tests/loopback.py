"""A loopback HTTP server for the download tests: routes are a handler's ``do_GET``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    """Quiet, with the replies the tests need; ``stop`` ends the endless ones."""

    stop: threading.Event

    def log_message(self, *args) -> None:
        pass

    def send_body(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, where: str) -> None:
        self.send_response(302)
        self.send_header("Location", where)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def drip(self, chunk: bytes = b"\0", headers_only: bool = False) -> None:
        """``chunk`` every 50 ms until the test ends: a body that never finishes, or
        (``headers_only``) headers that never end."""
        if headers_only:
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
        else:
            self.send_response(200)
            self.send_header("Content-Length", "1000000")
            self.end_headers()
        while not self.stop.wait(0.05):
            try:
                self.wfile.write(chunk)
                self.wfile.flush()
            except OSError:
                return


@contextmanager
def serve(handler: type[Handler]) -> Iterator[ThreadingHTTPServer]:
    """``handler`` served on 127.0.0.1 (a free port) in a thread; ``server.base`` is its
    ``http://127.0.0.1:PORT``."""
    stop = threading.Event()
    routes = type("Routes", (handler,), {"stop": stop})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), routes)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield httpd
    finally:
        stop.set()
        httpd.shutdown()
        httpd.server_close()
