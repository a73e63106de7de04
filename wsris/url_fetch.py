"""Fetching one http(s) URL safely enough to run behind a service that passes user URLs.

* One total deadline per download: connecting, the headers and the whole body must be
  done within ``deadline`` seconds (default :data:`DEFAULT_DEADLINE_S`, or
  ``$WSRIS_URL_TIMEOUT``); a server that sends one byte a second is cut off at the
  deadline, not served forever.
* Redirects only to http(s) on the same host (http -> https allowed), at most
  :data:`MAX_REDIRECTS` of them.
* Private, loopback, link-local, multicast and reserved destinations are refused after
  DNS resolution (the checked address is the one connected to, so a name that resolves
  differently the second time gains nothing), unless ``allow_private`` or
  ``$WSRIS_ALLOW_PRIVATE_URLS=1``. On by default; with it on, proxies from the
  environment are not used (the check must see the real destination).

Every failure is a :class:`~wsris.errors.ImageError` naming the URL and the reason.
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from .errors import ImageError

DEFAULT_DEADLINE_S = 20.0
MAX_REDIRECTS = 5
_CHUNK = 1 << 16


def default_deadline() -> float:
    """``$WSRIS_URL_TIMEOUT`` seconds if set (a positive number), else 20."""
    raw = os.environ.get("WSRIS_URL_TIMEOUT")
    if raw is None or not raw.strip():
        return DEFAULT_DEADLINE_S
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (value > 0 and value != float("inf")):
        raise ImageError(f"WSRIS_URL_TIMEOUT={raw!r}: expected a positive number of seconds")
    return value


def private_allowed() -> bool:
    """``$WSRIS_ALLOW_PRIVATE_URLS`` is 1/true/yes."""
    return os.environ.get("WSRIS_ALLOW_PRIVATE_URLS", "").strip().lower() in ("1", "true",
                                                                             "yes")


def is_public_address(address: str) -> bool:
    """False for private, loopback, link-local, multicast, reserved and unspecified
    addresses (IPv4-mapped IPv6 judged by its IPv4 address)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
                or ip.is_reserved or ip.is_unspecified)


class _Deadline:
    """Shuts every socket of one download when the deadline passes, which ends any read
    or write blocked on it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            self.expired = True
            raise TimeoutError("deadline passed")
        return left

    def track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                self._shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def cancel(self) -> None:
        self._timer.cancel()


def _connector(deadline: _Deadline, allow_private: bool):
    """A ``socket.create_connection`` that resolves the host, refuses non-public
    addresses (unless allowed), connects to a checked address within the deadline and
    hands the socket to the deadline."""

    def create_connection(address: tuple[str, int], timeout: Any = None,
                          source_address: Any = None) -> socket.socket:
        host, port = address
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        if not infos:
            raise OSError(f"{host} does not resolve")
        if not allow_private:
            for info in infos:
                if not is_public_address(info[4][0]):
                    raise _Refused(
                        f"{host} resolves to {info[4][0]}, a private, loopback or "
                        "link-local address (refused; set WSRIS_ALLOW_PRIVATE_URLS=1 or "
                        "pass allow_private=True to allow it)"
                    )
        last: OSError | None = None
        for family, kind, proto, _, sockaddr in infos:
            sock = socket.socket(family, kind, proto)
            deadline.track(sock)
            try:
                sock.settimeout(deadline.remaining())
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                sock.close()
                last = exc
        assert last is not None
        raise last

    return create_connection


class _Refused(OSError):
    """A destination or redirect that the policy refuses (not a network failure)."""


def _connection_classes(deadline: _Deadline, allow_private: bool):
    connect = _connector(deadline, allow_private)

    class HTTPConnection(http.client.HTTPConnection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._create_connection = connect

    class HTTPSConnection(http.client.HTTPSConnection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._create_connection = connect

        def connect(self) -> None:
            super().connect()
            deadline.track(self.sock)  # the TLS socket replaces the one tracked above

    class HTTPHandler(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(HTTPConnection, req)

    class HTTPSHandler(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return self.do_open(HTTPSConnection, req)

    return HTTPHandler, HTTPSHandler


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follows at most :data:`MAX_REDIRECTS` redirects, only to http(s) on the same host."""

    max_redirections = MAX_REDIRECTS
    max_repeats = 2

    def http_error_302(self, req, fp, code, msg, headers):
        visited = getattr(req, "redirect_dict", {})
        if len(visited) >= self.max_redirections:
            raise _Refused(f"more than {self.max_redirections} redirects")
        target = headers.get("Location") or headers.get("URI")
        if target:
            old = urllib.parse.urlsplit(req.full_url)
            new = urllib.parse.urlsplit(urllib.parse.urljoin(req.full_url, target))
            if new.scheme.lower() not in ("http", "https"):
                raise _Refused(f"redirected to {target!r}: only http(s) redirects are "
                               "followed")
            if (new.hostname or "").lower() != (old.hostname or "").lower():
                raise _Refused(f"redirected to another host ({new.hostname}): refused")
            if old.scheme.lower() == "https" and new.scheme.lower() == "http":
                raise _Refused(f"redirected from https to http ({target}): refused")
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def fetch(url: str, *, max_bytes: int, deadline: float | None = None,
          allow_private: bool | None = None) -> bytes:
    """The body of ``url`` (at most ``max_bytes``), within ``deadline`` seconds in all."""
    seconds = default_deadline() if deadline is None else float(deadline)
    if not (seconds > 0 and seconds != float("inf")):
        raise ImageError(f"URL deadline must be a positive number of seconds, got {deadline}")
    allow = private_allowed() if allow_private is None else bool(allow_private)
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise ImageError(f"cannot fetch {url}: only http(s) URLs are read")
    clock = _Deadline(seconds)
    http_handler, https_handler = _connection_classes(clock, allow)
    handlers: list[Any] = [http_handler, https_handler, _RedirectHandler]
    if not allow:
        handlers.append(urllib.request.ProxyHandler({}))
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(url, headers={"User-Agent": "wsris"})
    try:
        with opener.open(request, timeout=clock.remaining()) as response:
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > max_bytes:
                raise ImageError(
                    f"{url}: {int(length):,} bytes, over the download limit of {max_bytes:,}"
                )
            parts: list[bytes] = []
            size = 0
            while size <= max_bytes:
                clock.remaining()
                chunk = response.read1(_CHUNK)
                if not chunk:
                    break
                parts.append(chunk)
                size += len(chunk)
            clock.remaining()  # a body cut short by the deadline is not a short body
    except ImageError:
        raise
    except _Refused as exc:
        raise ImageError(f"cannot fetch image {url}: {exc}") from exc
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, _Refused):
            raise ImageError(f"cannot fetch image {url}: {reason}") from exc
        if clock.expired or isinstance(reason, TimeoutError):
            raise _timed_out(url, seconds) from exc
        if isinstance(exc, urllib.error.HTTPError):
            raise ImageError(f"cannot fetch image {url}: HTTP {exc.code} {exc.reason}") from exc
        raise ImageError(f"cannot reach {url}: {reason}") from exc
    except (OSError, ValueError, http.client.HTTPException) as exc:
        if clock.expired or isinstance(exc, TimeoutError):
            raise _timed_out(url, seconds) from exc
        raise ImageError(f"cannot fetch image {url}: {exc}") from exc
    finally:
        clock.cancel()
    body = b"".join(parts)
    if len(body) > max_bytes:
        raise ImageError(f"{url}: more than the download limit of {max_bytes:,} bytes")
    if not body:
        raise ImageError(f"{url}: the server sent no data")
    return body


def _timed_out(url: str, seconds: float) -> ImageError:
    return ImageError(f"cannot fetch image {url}: not complete within {seconds:g} s (the "
                      "deadline for connecting and the whole download; WSRIS_URL_TIMEOUT "
                      "or --url-timeout changes it)")
