"""Deprecated module aliases: an old module path that now names another module.

An alias module calls :func:`moved` and becomes the new module (``sys.modules`` is
pointed at it), so every name, private ones included, keeps working for one release
with a :class:`DeprecationWarning`. The aliases are listed in CHANGELOG.md.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from types import ModuleType

REMOVED_IN = "0.2"


def moved(old: str, new: str) -> ModuleType:
    """Make module ``old`` an alias of module ``new``, with a deprecation warning."""
    warnings.warn(
        f"{old} has moved to {new}; the old path goes away in wsris {REMOVED_IN}",
        DeprecationWarning,
        stacklevel=3,
    )
    module = importlib.import_module(new)
    sys.modules[old] = module
    return module
