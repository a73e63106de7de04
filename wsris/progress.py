"""The progress bar of every long job: ``tqdm.auto``'s, a widget in Jupyter when
ipywidgets is installed and text everywhere else.

Without ipywidgets, importing ``tqdm.auto`` in a notebook warns ("IProgress not found")
and falls back to the text bar, which works; the warning says nothing a user must act on,
so it is left out here.
"""

from __future__ import annotations

import warnings
from typing import Any


def _auto() -> Any:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        from tqdm.auto import tqdm

    return tqdm


def tqdm(*args: Any, **kwargs: Any) -> Any:
    """``tqdm.auto.tqdm(*args, **kwargs)``."""
    return _auto()(*args, **kwargs)


def write(message: str) -> None:
    """Print ``message`` without breaking a running bar (``tqdm.write``)."""
    _auto().write(message)
