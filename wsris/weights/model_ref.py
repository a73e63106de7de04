"""What a model reference means and what its config says, without loading weights.

Light on purpose (no torch): the command line checks the model name, its text settings
and every input against them before the model loads, so a bad input fails in well under
a second.
"""

from __future__ import annotations

import copy
import json
import shlex
from pathlib import Path
from typing import Any

from ..errors import ManifestError, UnknownModelError
from ..registry import get_method, is_method, method_names
from ..text import Tokenizer
from .manifest import get_spec, load_manifest, validate_config
from .sources import CONFIG_NAME, HF_PREFIX, WEIGHTS_NAME


def read_config(folder: Path, what: str) -> dict[str, Any]:
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise UnknownModelError(
            f"{what}: {folder} is not a model folder (no {CONFIG_NAME}); a model folder holds "
            f"{CONFIG_NAME} and {WEIGHTS_NAME}, as written by `wsris convert` or training"
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{what}: {path} is not valid JSON: {exc}") from exc
    method = config.get("method") if isinstance(config, dict) else None
    if not is_method(method):
        raise ManifestError(
            f"{what}: {path} field 'method' must be one of {', '.join(method_names())}"
        )
    if isinstance(config.get("architecture"), dict):  # validate_config names anything else
        # files written before the backbone fields had one spelling still load
        config["architecture"] = get_method(method).current_names(config["architecture"])
    validate_config(config, what, where="")
    return config


def text_tokenizer(config: dict[str, Any]) -> Tokenizer:
    """The tokenizer of a model config, capped at its text encoder's position limit."""
    from ..registry import load_object

    method = config.get("method")
    factory = get_method(method).tokenizer if isinstance(method, str) else None
    if factory is not None:  # a method with its own vocabulary (TRIS: CLIP's BPE)
        return load_object(factory)(config["text"])
    limit = config.get("architecture", {}).get("text_max_positions")
    return Tokenizer.from_config(config["text"], encoder_limit=limit)


def resolve_model(name_or_path: str | Path) -> tuple[str, str]:
    """What a model reference means, without loading anything: ``("folder", path)``,
    ``("hf", reference)`` or ``("manifest", name)``.

    A ``Path``, or a string with a slash, is a folder; ``hf-hub:...`` is the Hub; any other
    string is a manifest name, unless a folder of that name exists here: then the folder,
    and when the manifest has the same name too, an error that says how to choose.
    """
    if isinstance(name_or_path, Path) or (
        isinstance(name_or_path, str) and ("/" in name_or_path or "\\" in name_or_path)
        and not name_or_path.startswith(HF_PREFIX)
    ):
        folder = Path(name_or_path).expanduser()
        if not folder.is_dir():
            raise UnknownModelError(
                f"{str(name_or_path)!r} looks like a path but is not a folder; a model folder "
                f"holds {CONFIG_NAME} and {WEIGHTS_NAME}"
            )
        return "folder", str(folder)
    if not isinstance(name_or_path, str) or not name_or_path:
        raise UnknownModelError(f"expected a model name or path, got {name_or_path!r}")
    if name_or_path.startswith(HF_PREFIX):
        return "hf", name_or_path
    local = Path(name_or_path)
    if local.is_dir():
        if name_or_path in load_manifest():
            raise UnknownModelError(
                f"{name_or_path!r} is both a model in the manifest and a folder here; say "
                f"which: './{name_or_path}' for the folder, or run from another directory "
                "for the manifest model"
            )
        return "folder", str(local)
    get_spec(name_or_path, load_manifest())  # unknown names fail here, with suggestions
    return "manifest", name_or_path


def peek_config(name_or_path: str | Path) -> dict[str, Any] | None:
    """The config of a model without loading its weights: checks that the reference
    resolves (unknown names, unpublished models and folders without a config fail here)
    and returns the config, or None for a Hub repository not yet downloaded."""
    kind, target = resolve_model(name_or_path)
    if kind == "folder":
        return read_config(Path(target), Path(target).name)
    if kind == "hf":
        return None
    spec = get_spec(target, load_manifest())
    if not spec.published:
        from .sources import raise_unpublished

        raise_unpublished(spec)
    return copy.deepcopy(spec.config)


def usage_lines(folder: Path) -> list[str]:
    """How to use a converted folder, in forms that work when pasted: a name without a
    slash gets ``./`` so it can never be taken for a manifest name."""
    ref = str(folder)
    if "/" not in ref and "\\" not in ref:
        ref = f"./{ref}"
    return [f"use it with: wsris.load({ref!r})",
            f"         or: wsris segment IMAGE TEXT --model {shlex.quote(ref)}"]
