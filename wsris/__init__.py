"""wsris: weakly supervised referring image segmentation.

>>> import wsris
>>> seg = wsris.load("albef-chunk-shapes")
>>> result = seg.segment("image.png", "the small red circle")
>>> result.mask  # bool array at the original image size

The public names are imported lazily, so ``import wsris`` (and ``wsris --help``) does not
load torch until a model is used.

Thread policy (one for the CLI, the Python API and the benchmarks): importing wsris sets
``OMP_WAIT_POLICY=PASSIVE`` unless the environment already sets it. PyTorch's OpenMP
threads otherwise spin while they wait for each other, which makes small models several
times slower on a machine whose cores are busy; passive waiting costs nothing measurable
on an idle one. OpenMP reads the setting when PyTorch is imported: import wsris first, or
set the variable in the environment. ``thread_policy()`` says what is in force.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

__version__ = "0.1.0.dev0"

THREAD_POLICY_ENV = "OMP_WAIT_POLICY"
THREAD_POLICY_DEFAULT = "PASSIVE"
_TORCH_BEFORE_WSRIS = "torch" in sys.modules
_POLICY_FROM_ENV = THREAD_POLICY_ENV in os.environ
os.environ.setdefault(THREAD_POLICY_ENV, THREAD_POLICY_DEFAULT)


def thread_policy() -> dict[str, Any]:
    """The OpenMP wait policy in force and where it came from.

    ``{"OMP_WAIT_POLICY": value, "source": "environment" | "wsris" | "too late"}``:
    ``"too late"`` means PyTorch was imported before wsris without the variable set, so
    OpenMP runs with its default (spinning) policy in this process.
    """
    if _POLICY_FROM_ENV:
        source = "environment"
    elif _TORCH_BEFORE_WSRIS:
        source = "too late"
    else:
        source = "wsris"
    return {THREAD_POLICY_ENV: os.environ.get(THREAD_POLICY_ENV), "source": source}

_EXPORTS = {
    "Segmenter": ".api",
    "EncodedImage": ".api",
    "load": ".api",
    "SegmentationResult": ".result",
    "WsrisError": ".errors",
    "list_models": ".registry",
}

__all__ = [*_EXPORTS, "segment", "thread_policy"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module 'wsris' has no attribute {name!r}")


def segment(image: Any, text: str | list[str], model: str = "albef-chunk-shapes", **kwargs: Any):
    """One-shot helper: ``wsris.load(model).segment(image, text, **kwargs)``."""
    from .api import load

    return load(model).segment(image, text, **kwargs)
