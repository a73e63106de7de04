"""Reading third-party PyTorch checkpoints (``.pth``) without running code from them.

The converters of published weights (ALBEF, the official SaG code, TRIS) all read with
:func:`read_torch_checkpoint`: ``torch.load(weights_only=True)`` on the CPU, which
unpickles tensors and plain containers only, plus the globals a converter allows by name.
"""

from __future__ import annotations

import contextlib
import pickle
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import WeightsMismatchError


def read_torch_checkpoint(src: Path, *, allowed_globals: Iterable[Any] = (),
                          refusal_hint: str = "") -> Mapping[str, Any]:
    """The dict in the checkpoint ``src``, memory-mapped where the file's format allows.

    A file that names any global beyond ``allowed_globals`` is refused with the global's
    name and ``refusal_hint`` (what the user can do about it); an unreadable file, or one
    that holds no dict, is a :class:`~wsris.errors.WeightsMismatchError` too. A missing
    file stays a ``FileNotFoundError``.
    """
    allowed = list(allowed_globals)
    if allowed and not hasattr(torch.serialization, "safe_globals"):
        raise WeightsMismatchError(
            f"reading {src} safely needs torch >= 2.5 (installed: {torch.__version__})"
        )
    try:
        with torch.serialization.safe_globals(allowed) if allowed else contextlib.nullcontext():
            try:
                obj = torch.load(src, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError:  # legacy (non-zip) files cannot be memory-mapped
                obj = torch.load(src, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f"an object of type {found.group(1)}" if found else f"something it refuses ({exc})"
        hint = f". {refusal_hint}" if refusal_hint else ""
        raise WeightsMismatchError(
            f"{src} cannot be read with torch.load(weights_only=True), which runs no code "
            f"from the file: it holds {what}{hint}"
        ) from None
    except Exception as exc:  # noqa: BLE001 - reading only: every other failure is the file's
        raise WeightsMismatchError(
            f"{src} is not a readable PyTorch checkpoint (torch.load(weights_only=True)): {exc}"
        ) from None
    if not isinstance(obj, Mapping):
        raise WeightsMismatchError(f"{src} holds a {type(obj).__name__}, not a checkpoint dict")
    return obj
