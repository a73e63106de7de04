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
from typing import Any

from ._thread_policy import THREAD_POLICY_DEFAULT as THREAD_POLICY_DEFAULT
from ._thread_policy import THREAD_POLICY_ENV as THREAD_POLICY_ENV
from ._thread_policy import thread_policy
from ._version import __version__ as __version__

_EXPORTS = {
    "Segmenter": ".api",
    "EncodedImage": ".api",
    "load": ".api",
    "SegmentationResult": ".result",
    "WsrisError": ".errors",
    "list_models": ".weights.manifest",
}

__all__ = [*_EXPORTS, "segment", "thread_policy"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module 'wsris' has no attribute {name!r}")


def segment(image: Any, text: str | list[str], model: str | None = None, **kwargs: Any):
    """One-shot helper: ``wsris.load(model).segment(image, text, **kwargs)``; without
    ``model``, the default model of ``wsris segment`` (the bundled one with the highest
    measured ``shapes:val`` mIoU, see ``wsris models``)."""
    from .api import load

    if model is None:
        from .weights.manifest import default_model

        model = default_model()[0]
    return load(model).segment(image, text, **kwargs)
