"""Shared test set-up: no network, few threads, small deterministic inputs."""

from __future__ import annotations

import os

# Set before anything imports huggingface_hub, which reads these at import time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

torch.set_num_threads(2)
