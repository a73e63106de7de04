"""The OpenMP wait policy wsris sets on import (see :mod:`wsris`, "Thread policy").

Imported first by ``wsris/__init__.py``, so the policy is in the environment before any
module imports torch.
"""

from __future__ import annotations

import os
import sys
from typing import Any

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
