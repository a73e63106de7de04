"""The demo's HTTP side: the standard library's threading HTTP server on 127.0.0.1.

Routes: ``GET /`` the page; ``GET /api/info`` models and examples; ``GET
/api/example/ID.png`` an example image; ``POST /api/segment`` a JSON request (see
:meth:`wsris.demo.app.DemoApp.segment`) answered in JSON. Errors come back as
``{"error": "..."}`` with status 400 (bad request) or 500 (a fault of wsris).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

from ..errors import InvalidInputError, WsrisError
from .app import MAX_UPLOAD_BYTES, DemoApp, png_bytes
from .examples import example_image

HOST = "127.0.0.1"
DEFAULT_PORT = 7860
# a base64 image plus the phrases
MAX_BODY_BYTES = MAX_UPLOAD_BYTES * 4 // 3 + 100_000


def page() -> bytes:
    return (resources.files("wsris.demo") / "page.html").read_bytes()


class _Handler(BaseHTTPRequestHandler):
    app: DemoApp  # set on the subclass start_server makes
    server_version = "wsris-demo"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        pass  # quiet: the terminal shows the address and errors only

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        # the page loads nothing from elsewhere; say so to the browser as well
        self.send_header("Content-Security-Policy",
                         "default-src 'self'; img-src 'self' data:; "
                         "style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode("utf-8"), "application/json")

    def do_GET(self) -> None:  # noqa: N802 (the base class's name)
        path = self.path.split("?")[0]
        if path in ("/", "/index.html"):
            self._send(200, page(), "text/html; charset=utf-8")
        elif path == "/api/info":
            self._json(200, self.app.info())
        elif path.startswith("/api/example/") and path.endswith(".png"):
            from PIL import Image

            try:
                rgb = example_image(path[len("/api/example/"):-len(".png")])
            except KeyError:
                self._json(404, {"error": "unknown example"})
                return
            self._send(200, png_bytes(Image.fromarray(rgb)), "image/png")
        else:
            self._json(404, {"error": f"no page {path}"})

    def do_POST(self) -> None:  # noqa: N802
        if self.path.split("?")[0] != "/api/segment":
            self._json(404, {"error": f"no endpoint {self.path}"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._json(413, {"error": f"the request is larger than {MAX_BODY_BYTES} bytes"})
            return
        try:
            request = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(request, dict):
                raise InvalidInputError("the request must be a JSON object")
            self._json(200, self.app.segment(request))
        except (json.JSONDecodeError, UnicodeDecodeError):
            self._json(400, {"error": "the request is not JSON"})
        except InvalidInputError as exc:
            self._json(400, {"error": str(exc)})
        except WsrisError as exc:
            self._json(400 if exc.exit_code in (3, 5, 6) else 500, {"error": str(exc)})
        except Exception as exc:  # a bug: tell the page instead of dropping the connection
            self._json(500, {"error": f"{type(exc).__name__}: {exc}"})


def start_server(app: DemoApp, host: str = HOST, port: int = DEFAULT_PORT
                 ) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Serve ``app`` in a background thread; port 0 picks a free port (read it from
    ``server.server_address``). Stop with ``server.shutdown()``."""
    handler = type("Handler", (_Handler,), {"app": app})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="wsris-demo", daemon=True)
    thread.start()
    return server, thread


def serve(app: DemoApp, host: str = HOST, port: int = DEFAULT_PORT) -> None:
    """Serve ``app`` until interrupted (Ctrl-C)."""
    server, thread = start_server(app, host, port)
    try:
        thread.join()
    finally:
        server.shutdown()
        server.server_close()
