"""Reading the file the official SaG training writes, with no code in it ever run.

The official ``save_ckpt`` stores ``{"model": state_dict, "iou": ..., "loss": ...,
"epoch": ..., "args": argparse.Namespace}``; ``iou`` is a NumPy float scalar. Under
``torch.load(weights_only=True)`` those need three globals beyond PyTorch's own:
``argparse.Namespace``, NumPy's scalar constructor (``numpy.core.multiarray.scalar`` as
NumPy 1.x pickles it, ``numpy._core.multiarray.scalar`` as NumPy 2.x does) and
``numpy.dtype`` (with the dtype classes its state is set on). :func:`read_official_checkpoint`
allows exactly those; a file that names any other global is refused.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ...weights.torch_files import read_torch_checkpoint

# NumPy scalar types the official ``iou`` / ``loss`` can be (float64 in practice).
_SCALAR_DTYPES = ("Float64DType", "Float32DType", "Float16DType", "Int64DType", "Int32DType")


def official_safe_globals() -> list[Any]:
    """What ``torch.serialization.safe_globals`` needs for an official checkpoint: the
    objects, each NumPy 1.x spelling paired with the name it is pickled under."""
    import numpy as np

    core = getattr(np, "_core", None) or np.core  # NumPy 2.x, else 1.x
    scalar = core.multiarray.scalar
    allowed: list[Any] = [
        (argparse.Namespace, "argparse.Namespace"),
        (scalar, "numpy.core.multiarray.scalar"),
        (scalar, "numpy._core.multiarray.scalar"),
        (np.dtype, "numpy.dtype"),
    ]
    dtypes = getattr(np, "dtypes", None)  # NumPy >= 1.25: a dtype's class is not np.dtype
    allowed += [getattr(dtypes, n) for n in _SCALAR_DTYPES if hasattr(dtypes, n)]
    return allowed


def read_official_checkpoint(src: Path) -> Any:
    """The official checkpoint ``src`` read on the CPU with
    :func:`~wsris.weights.torch_files.read_torch_checkpoint`, :func:`official_safe_globals`
    allowed. Raises :class:`WeightsMismatchError` for a file that is no such checkpoint,
    including one that names any other global."""
    return read_torch_checkpoint(src, allowed_globals=official_safe_globals())
