"""Shared test set-up: no network, few threads, small deterministic inputs."""

from __future__ import annotations

import os

# Set before anything imports huggingface_hub, which reads these at import time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # wsris's policy, see wsris/__init__.py

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory):
    """A saved tiny SaG model (random weights, fixed seed) for API and CLI tests."""
    from tests.test_api import tiny_sag_config
    from wsris.api import Segmenter
    from wsris.registry import build_model

    torch.manual_seed(0)
    config = tiny_sag_config()
    seg = Segmenter(build_model("sag", config["architecture"]), config, name="tiny", device="cpu")
    return seg.save_pretrained(tmp_path_factory.mktemp("tiny"))


@pytest.fixture()
def image(tmp_path):
    """A small Shapes-Ref-like scene saved as a PNG file (the CLI tests' input image)."""
    from PIL import Image

    from tests.test_api import scene

    path = tmp_path / "scene.png"
    Image.fromarray(scene()).save(path)
    return path
