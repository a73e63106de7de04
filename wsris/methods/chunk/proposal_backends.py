"""The libraries the mask proposals run on (OpenCV, higra) and their thread setting,
imported on first use and as lightly as possible."""

from __future__ import annotations

import contextlib
import sys
import types


def _single_threaded_blas():
    """Limit BLAS to one thread while proposals are computed, if threadpoolctl is present.

    The matrix products here are small (a few thousand rows at most); with a multithreaded
    BLAS on a busy machine they get many times slower than on one thread.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _import_higra() -> types.ModuleType:
    """``import higra``, without what only its plotting helpers use.

    higra imports ``higra.plot``, which tries ``matplotlib.pyplot`` and
    ``scipy.cluster`` and copes when they are missing; importing them costs more than the
    rest of higra (about 1 s idle, 3 s on a busy machine). They are hidden from that one
    import, when nothing has imported them yet (a ``None`` entry in ``sys.modules`` makes
    an import fail), and unhidden at once. The cost: higra's own plot functions say
    matplotlib is missing in this process; wsris never calls them.
    """
    if "higra" in sys.modules:
        return sys.modules["higra"]
    hidden = [name for name in ("matplotlib", "scipy.cluster") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import higra
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
    return higra


def _backends():
    try:
        import cv2

        hg = _import_higra()
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(
            "mask proposals need higra and OpenCV: pip install 'wsris[proposals]'"
        ) from exc
    return cv2, hg
