"""One thread policy for the CLI and the Python API, set by importing wsris."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

PROBE = """
import json, os, sys, warnings
{first}
import wsris
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    seg = wsris.load("sag-shapes", device="cpu")
print(json.dumps({{
    "policy": wsris.thread_policy(),
    "env": os.environ.get("OMP_WAIT_POLICY"),
    "warned": [str(w.message) for w in caught if "thread policy" in str(w.message)],
}}))
"""


def probe(first: str = "", env_policy: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if env_policy is not None:
        env["OMP_WAIT_POLICY"] = env_policy
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env["HF_HUB_OFFLINE"] = "1"
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(first=first)], env=env, cwd=REPO,
        capture_output=True, text=True, timeout=300, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # a fresh interpreter per case (about 4 s each)
@pytest.mark.parametrize(
    ("first", "env_policy", "value", "source", "warned"),
    [
        ("", None, "PASSIVE", "wsris", False),
        ("", "ACTIVE", "ACTIVE", "environment", False),  # the environment overrides
        ("import torch", None, "PASSIVE", "too late", True),  # torch came first
        ("import torch", "PASSIVE", "PASSIVE", "environment", False),
    ],
)
def test_policy_source_and_warning(first, env_policy, value, source, warned):
    got = probe(first, env_policy)
    assert got["env"] == value
    assert got["policy"] == {"OMP_WAIT_POLICY": value, "source": source}
    assert bool(got["warned"]) is warned


def test_cli_and_api_share_the_policy_module():
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["PYTHONPATH"] = str(REPO)
    out = subprocess.run(
        [sys.executable, "-c", "import os, wsris.cli; print(os.environ['OMP_WAIT_POLICY'])"],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    )
    assert out.stdout.strip() == "PASSIVE"


def test_too_late_warning_names_the_callers_line(monkeypatch, tiny_folder):
    """The warning points at the user's ``wsris.load`` line, not inside wsris."""
    import warnings

    import wsris
    import wsris.api

    monkeypatch.setattr(wsris.api, "thread_policy", lambda: {"source": "too late"})
    monkeypatch.setattr(wsris.api, "_WARNED", [])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wsris.load(tiny_folder, device="cpu")  # the line the warning must name
    line = sys._getframe().f_lineno - 1
    found = [w for w in caught if "imported before wsris" in str(w.message)]
    assert len(found) == 1
    assert found[0].filename == __file__ and found[0].lineno == line
