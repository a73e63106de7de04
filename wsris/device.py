"""Device and precision choices, with clear errors for what this machine cannot do."""

from __future__ import annotations

import contextlib

import torch

from .errors import DeviceError

DeviceLike = str | torch.device
_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
}


def resolve_device(device: DeviceLike = "auto") -> torch.device:
    """``"auto"`` is the first CUDA device when there is one, else the CPU."""
    if isinstance(device, torch.device):
        dev = device
    elif device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise DeviceError(
                f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda[:N]'"
            ) from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {str(dev)!r} requested but CUDA is not available here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {str(dev)!r} requested but only {torch.cuda.device_count()} "
                "CUDA device(s) exist"
            )
    elif dev.type not in ("cpu", "mps"):
        raise DeviceError(f"unsupported device type {dev.type!r}")
    return dev


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """float32 by default; bfloat16/float16 run as CUDA autocast, and only there."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str):
        if dtype not in _DTYPES:
            raise DeviceError(f"unknown dtype {dtype!r}; use one of {', '.join(_DTYPES)}")
        dtype = _DTYPES[dtype]
    if dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise DeviceError(f"unsupported dtype {dtype}; use float32, bfloat16 or float16")
    if dtype != torch.float32:
        if device.type != "cuda":
            raise DeviceError(
                f"{dtype} runs only on CUDA (as autocast); on {device.type} use float32"
            )
        if dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
            raise DeviceError("this GPU does not support bfloat16; use float16 or float32")
    return dtype


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """Mixed precision on CUDA for bf16/fp16; nothing at float32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
