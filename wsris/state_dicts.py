"""Strict comparison of a state dict with the one an architecture expects.

Every loader and converter refuses weights that do not fill the model exactly; this is
the one place that works out what differs and says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .errors import WeightsMismatchError


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(value.shape) if hasattr(value, "shape") else tuple(value)


def check_state_dict(
    what: str,
    expected: Mapping[str, Any],
    given: Mapping[str, Any],
    may_be_missing: Iterable[str] = (),
) -> None:
    """Raise :class:`WeightsMismatchError` naming every missing, unexpected and mis-shaped
    key of ``given`` against ``expected`` (tensors or shapes by name). Keys listed in
    ``may_be_missing`` may be absent from ``given``."""
    allowed = set(may_be_missing)
    missing = sorted(set(expected) - set(given) - allowed)
    unexpected = sorted(set(given) - set(expected))
    wrong = sorted(
        f"{k}: checkpoint {_shape(v)} vs model {_shape(expected[k])}"
        for k, v in given.items()
        if k in expected and _shape(v) != _shape(expected[k])
    )
    if missing or unexpected or wrong:
        raise WeightsMismatchError(
            f"{what} does not match the architecture; "
            f"missing keys: {missing or 'none'}; unexpected keys: {unexpected or 'none'}; "
            f"shape mismatches: {wrong or 'none'}"
        )
