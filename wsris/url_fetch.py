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

:func:`download_to_file` uses the same machinery for model weights named by a manifest
(trusted URLs, hundreds of MB): one total deadline (default
:data:`DEFAULT_DOWNLOAD_DEADLINE_S`, or ``$WSRIS_DOWNLOAD_TIMEOUT``), redirects to any
http(s) host (release assets are served from another host) but never https -> http, at
most :data:`MAX_REDIRECTS`, no private-address refusal, a progress bar.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import os
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from .errors import ConfigError, ImageError

DEFAULT_DEADLINE_S = 20.0
DEFAULT_DOWNLOAD_DEADLINE_S = 3600.0
MAX_REDIRECTS = 5
_CHUNK = 1 << 16


def _env_seconds(name: str, default: float) -> float | None:
    """``$name`` as a positive finite number of seconds, ``default`` when unset, None when
    set to anything else."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if 0 < value < float("inf") else None


def default_deadline() -> float:
    """``$WSRIS_URL_TIMEOUT`` seconds if set (a positive number), else 20."""
    value = _env_seconds("WSRIS_URL_TIMEOUT", DEFAULT_DEADLINE_S)
    if value is None:
        raise ImageError(f"WSRIS_URL_TIMEOUT={os.environ['WSRIS_URL_TIMEOUT']!r}: expected "
                         "a positive number of seconds")
    return value


def default_download_deadline() -> float:
    """``$WSRIS_DOWNLOAD_TIMEOUT`` seconds if set (a positive number), else 3600."""
    value = _env_seconds("WSRIS_DOWNLOAD_TIMEOUT", DEFAULT_DOWNLOAD_DEADLINE_S)
    if value is None:
        raise ConfigError(f"WSRIS_DOWNLOAD_TIMEOUT={os.environ['WSRIS_DOWNLOAD_TIMEOUT']!r}: "
                          "expected a positive number of seconds")
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
    """Follows at most :data:`MAX_REDIRECTS` redirects, only to http(s), never https ->
    http, and (unless :attr:`cross_host`) only on the same host."""

    max_redirections = MAX_REDIRECTS
    max_repeats = 2
    cross_host = False

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
            if not self.cross_host and \
                    (new.hostname or "").lower() != (old.hostname or "").lower():
                raise _Refused(f"redirected to another host ({new.hostname}): refused")
            if old.scheme.lower() == "https" and new.scheme.lower() == "http":
                raise _Refused(f"redirected from https to http ({target}): refused")
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


class _CrossHostRedirectHandler(_RedirectHandler):
    cross_host = True


class _Failure(Exception):
    """Why a transfer failed: ``kind`` is refused, timeout, http, unreachable, limit or
    other; ``detail`` says it in words."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def _transfer(url: str, write: Callable[[bytes], Any], *, seconds: float,
              allow_private: bool, cross_host: bool, max_bytes: int | None = None,
              on_length: Callable[[int | None], Any] | None = None) -> int:
    """Stream the body of ``url`` to ``write`` within ``seconds`` in all (connecting,
    every redirect, the headers and the body); returns the byte count. ``on_length`` is
    told the announced length first. Every failure is a :class:`_Failure`."""
    clock = _Deadline(seconds)
    http_handler, https_handler = _connection_classes(clock, allow_private)
    redirects = _CrossHostRedirectHandler if cross_host else _RedirectHandler
    handlers: list[Any] = [http_handler, https_handler, redirects]
    if not allow_private:
        handlers.append(urllib.request.ProxyHandler({}))
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(url, headers={"User-Agent": "wsris"})
    size = 0
    try:
        with opener.open(request, timeout=clock.remaining()) as response:
            raw = response.headers.get("Content-Length")
            length = int(raw) if raw is not None and raw.isdigit() else None
            if max_bytes is not None and length is not None and length > max_bytes:
                raise _Failure("limit", f"{url}: {length:,} bytes, over the download "
                                        f"limit of {max_bytes:,}")
            if on_length is not None:
                on_length(length)
            while max_bytes is None or size <= max_bytes:
                clock.remaining()
                chunk = response.read1(_CHUNK)
                if not chunk:
                    break
                write(chunk)
                size += len(chunk)
            clock.remaining()  # a body cut short by the deadline is not a short body
    except _Failure:
        raise
    except _Refused as exc:
        raise _Failure("refused", str(exc)) from exc
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, _Refused):
            raise _Failure("refused", str(reason)) from exc
        if clock.expired or isinstance(reason, TimeoutError):
            raise _Failure("timeout", f"not complete within {seconds:g} s") from exc
        if isinstance(exc, urllib.error.HTTPError):
            raise _Failure("http", f"HTTP {exc.code} {exc.reason}") from exc
        raise _Failure("unreachable", str(reason)) from exc
    except (OSError, ValueError, http.client.HTTPException) as exc:
        if clock.expired or isinstance(exc, TimeoutError):
            raise _Failure("timeout", f"not complete within {seconds:g} s") from exc
        raise _Failure("other", str(exc)) from exc
    finally:
        clock.cancel()
    return size


def _check_seconds(deadline: float | None, default: Callable[[], float],
                   error: type[Exception]) -> float:
    seconds = default() if deadline is None else float(deadline)
    if not (seconds > 0 and seconds != float("inf")):
        raise error(f"URL deadline must be a positive number of seconds, got {deadline}")
    return seconds


def _require_http(url: str, error: type[Exception]) -> None:
    if urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
        raise error(f"cannot fetch {url}: only http(s) URLs are read")


def fetch(url: str, *, max_bytes: int, deadline: float | None = None,
          allow_private: bool | None = None) -> bytes:
    """The body of ``url`` (at most ``max_bytes``), within ``deadline`` seconds in all."""
    seconds = _check_seconds(deadline, default_deadline, ImageError)
    allow = private_allowed() if allow_private is None else bool(allow_private)
    _require_http(url, ImageError)
    parts: list[bytes] = []
    try:
        size = _transfer(url, parts.append, seconds=seconds, allow_private=allow,
                         cross_host=False, max_bytes=max_bytes)
    except _Failure as exc:
        if exc.kind == "limit":
            raise ImageError(exc.detail) from exc
        if exc.kind == "timeout":
            raise _timed_out(url, seconds) from exc
        if exc.kind == "unreachable":
            raise ImageError(f"cannot reach {url}: {exc.detail}") from exc
        raise ImageError(f"cannot fetch image {url}: {exc.detail}") from exc
    if size > max_bytes:
        raise ImageError(f"{url}: more than the download limit of {max_bytes:,} bytes")
    if not size:
        raise ImageError(f"{url}: the server sent no data")
    return b"".join(parts)


def _timed_out(url: str, seconds: float) -> ImageError:
    return ImageError(f"cannot fetch image {url}: not complete within {seconds:g} s (the "
                      "deadline for connecting and the whole download; WSRIS_URL_TIMEOUT "
                      "or --url-timeout changes it)")


class DownloadError(OSError):
    """A weights download that failed; ``unreachable``: the server could not be reached
    at all (no network, a firewall), as opposed to a refusal, an HTTP error or a timeout."""

    def __init__(self, message: str, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


def download_to_file(url: str, dest: str | os.PathLike[str], *,
                     deadline: float | None = None, progress: bool = True) -> None:
    """Download a trusted http(s) ``url`` (a manifest's weights) to ``dest`` within
    ``deadline`` seconds in all (default ``$WSRIS_DOWNLOAD_TIMEOUT`` or 3600), through a
    temporary file beside it that is removed on any failure. Redirects may change host
    (not https -> http); private addresses are allowed. Failures: :class:`DownloadError`."""
    seconds = _check_seconds(deadline, default_download_deadline, ConfigError)
    _require_http(url, DownloadError)
    from .progress import tqdm

    dest = os.fspath(dest)
    folder = os.path.dirname(os.path.abspath(dest))
    handle = tempfile.NamedTemporaryFile(dir=folder, prefix=f".{os.path.basename(dest)}.",
                                         suffix=".part", delete=False)
    bar = tqdm(total=None, unit="B", unit_scale=True, unit_divisor=1024,
               disable=not progress, desc=os.path.basename(dest))

    def write(chunk: bytes) -> None:
        handle.write(chunk)
        bar.update(len(chunk))

    def set_total(length: int | None) -> None:
        bar.total = length
        bar.refresh()

    done = False
    try:
        with handle, bar:
            _transfer(url, write, seconds=seconds, allow_private=True, cross_host=True,
                      on_length=set_total)
        os.replace(handle.name, dest)
        done = True
    except _Failure as exc:
        if exc.kind == "timeout":
            raise DownloadError(
                f"{exc.detail} (the deadline for connecting and the whole download; "
                "WSRIS_DOWNLOAD_TIMEOUT changes it)") from exc
        raise DownloadError(exc.detail, unreachable=exc.kind == "unreachable") from exc
    finally:
        if not done:
            with contextlib.suppress(OSError):
                os.unlink(handle.name)
