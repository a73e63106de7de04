"""Strict comparison of a state dict with the one an architecture expects.

Every loader and converter refuses weights that do not fill the model exactly; this is
the one place that works out what differs and says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import WeightsMismatchError


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(value.shape) if hasattr(value, "shape") else tuple(value)


#: How many keys of each kind an error message names before it says "and N more".
SHOWN_KEYS = 3


def _listed(keys: list[str]) -> str:
    if not keys:
        return "none"
    shown = repr(keys[:SHOWN_KEYS])
    return shown if len(keys) <= SHOWN_KEYS else f"{shown} and {len(keys) - SHOWN_KEYS} more"


def likely_cause(pairs: list[tuple[tuple[int, ...], tuple[int, ...]]]) -> str | None:
    """The dimension most mismatched shapes disagree on, as ``"width W in the checkpoint,
    M in the model"``: a checkpoint of another size of the same architecture."""
    from collections import Counter

    votes: Counter[tuple[int, int]] = Counter()
    for given, want in pairs:
        if len(given) != len(want):
            continue
        votes.update({(g, w) for g, w in zip(given, want, strict=True) if g != w})
    if not votes:
        return None
    (g, w), n = votes.most_common(1)[0]
    return (f"{n} of the {len(pairs)} mis-shaped tensors have a dimension of {g} where the "
            f"model has {w}: a checkpoint of another model size (width {g} vs {w})?")


def check_state_dict(
    what: str,
    expected: Mapping[str, Any],
    given: Mapping[str, Any],
    may_be_missing: Iterable[str] = (),
) -> None:
    """Raise :class:`WeightsMismatchError` summarising the missing, unexpected and
    mis-shaped keys of ``given`` against ``expected`` (tensors or shapes by name): the
    count of each, the first few by name, and the likely cause when shapes differ in one
    dimension (another model width). Keys in ``may_be_missing`` may be absent."""
    allowed = set(may_be_missing)
    missing = sorted(set(expected) - set(given) - allowed)
    unexpected = sorted(set(given) - set(expected))
    pairs = {
        k: (_shape(v), _shape(expected[k]))
        for k, v in given.items()
        if k in expected and _shape(v) != _shape(expected[k])
    }
    wrong = [f"{k}: checkpoint {g} vs model {m}" for k, (g, m) in sorted(pairs.items())]
    if missing or unexpected or wrong:
        cause = likely_cause(list(pairs.values()))
        raise WeightsMismatchError(
            f"{what} does not match the architecture ({len(missing)} missing, "
            f"{len(unexpected)} unexpected, {len(wrong)} mis-shaped of {len(expected)} "
            f"tensors); missing keys: {_listed(missing)}; unexpected keys: "
            f"{_listed(unexpected)}; shape mismatches: {_listed(wrong)}"
            + (f". Likely cause: {cause}" if cause else "")
        )


def fitted_tensors(build: Any, config: Any, state: Mapping[str, Any]) -> dict[str, Any]:
    """Load ``state`` strictly into ``build(config)`` made on the meta device (no memory
    allocated) and return the model's tensors, contiguous and in its own key order: the
    last check of every converter, done by PyTorch itself."""
    import torch

    with torch.device("meta"):
        model = build(config)
    model.load_state_dict(state, strict=True, assign=True)
    return {k: v.detach().contiguous() for k, v in model.state_dict().items()}


def conversion_paths(src: Any, out_dir: Any, overwrite: bool) -> tuple[Any, Any]:
    """``src`` and ``out_dir`` as paths, once ``src`` is a file and ``out_dir`` holds no
    converted weights (or ``overwrite``): the first check of every converter."""
    from pathlib import Path

    from ..errors import InvalidInputError

    src, out_dir = Path(src), Path(out_dir)
    if not src.is_file():
        raise InvalidInputError(f"{src} is not a file")
    weights = out_dir / "model.safetensors"
    if weights.exists() and not overwrite:
        raise InvalidInputError(f"{weights} exists; pass overwrite=True (--overwrite) to replace")
    return src, out_dir
