from __future__ import annotations

import pytest
import torch

from wsris.device import autocast, resolve_device, resolve_dtype
from wsris.errors import DeviceError


def test_auto_picks_cuda_only_when_available():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(DeviceError, match="CUDA is not available"):
        resolve_device("cuda")


def test_unknown_device_and_dtype():
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_device("gpu0")
    with pytest.raises(DeviceError, match="unknown dtype"):
        resolve_dtype("int8", torch.device("cpu"))


def test_half_precision_refused_on_cpu():
    cpu = torch.device("cpu")
    assert resolve_dtype(None, cpu) == torch.float32
    assert resolve_dtype("float32", cpu) == torch.float32
    for dt in ("bfloat16", "float16", torch.float16):
        with pytest.raises(DeviceError, match="only on CUDA"):
            resolve_dtype(dt, cpu)


def test_float32_autocast_is_a_no_op():
    with autocast(torch.device("cpu"), torch.float32):
        assert not torch.is_autocast_enabled("cpu")
