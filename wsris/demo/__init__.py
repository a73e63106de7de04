"""``wsris demo``: a local web page for trying the models (``wsris[demo]``).

:mod:`.app` does the work (models, examples, encode-once cache, PNG encoding) and knows
nothing of HTTP; :mod:`.server` serves it and ``page.html`` on 127.0.0.1 with the
standard library's HTTP server, so the demo adds no dependency, no CDN asset, no web
font and no telemetry: it works offline.
"""

from .app import DemoApp
from .server import serve, start_server

__all__ = ["DemoApp", "serve", "start_server"]
