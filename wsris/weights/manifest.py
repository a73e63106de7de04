"""``weights_manifest.json`` -> :class:`ModelSpec`.

The manifest maps model names to everything needed to build, preprocess for and find
the weights of a model. Its schema is documented in docs/manifest.md
and checked here field by field, so a malformed entry fails with its name and field.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ManifestError, UnknownModelError
from ..registry import converter_names, is_method, method_names

SOURCE_KINDS = ("bundled", "hf", "url")
TEXT_STYLES = ("albef", "bert", "clip")  # clip: CLIP's BPE (TRIS's own tokenizer)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class FileSpec:
    name: str
    sha256: str
    size: int | None = None


@dataclass(frozen=True)
class Source:
    """One place the weights can come from. Which fields are set depends on ``kind``."""

    kind: str
    path: str | None = None  # bundled: folder under wsris/
    repo_id: str | None = None  # hf
    revision: str | None = None  # hf: a pinned 40-hex commit
    files: tuple[FileSpec, ...] = ()  # bundled and hf
    url: str | None = None  # url
    sha256: str | None = None  # url: None when upstream publishes no checksum
    converter: str | None = None  # url


@dataclass(frozen=True)
class ModelSpec:
    name: str
    method: str
    config: dict[str, Any]  # architecture, preprocessing, text, inference
    license: str
    paper: str
    description: str = ""
    training_data: str = ""
    sources: tuple[Source, ...] = ()
    note: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    random_init: bool = False

    @property
    def published(self) -> bool:
        return bool(self.sources)

    @property
    def threshold(self) -> float:
        return float(self.config["inference"]["threshold"])


def _fail(entry: str, field_name: str, why: str) -> ManifestError:
    return ConfigError(f"weights manifest: model {entry!r}, field {field_name!r}: {why}")


def _get(d: dict, key: str, typ: type | tuple[type, ...], entry: str, where: str = "") -> Any:
    name = f"{where}{key}"
    if key not in d:
        raise _fail(entry, name, "missing")
    if not isinstance(d[key], typ):
        want = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
        raise _fail(entry, name, f"expected {want}, got {type(d[key]).__name__}")
    return d[key]


def validate_config(config: Any, entry: str, where: str = "config.") -> dict[str, Any]:
    """Check the parts of a model config every loader relies on."""
    if not isinstance(config, dict):
        raise _fail(entry, where.rstrip("."), "expected an object")
    _get(config, "architecture", dict, entry, where)
    arch = config["architecture"]
    pre = _get(config, "preprocessing", dict, entry, where)
    size = _get(pre, "size", list, entry, f"{where}preprocessing.")
    if len(size) != 2 or not all(_is_int(s) and s > 0 for s in size):
        raise _fail(entry, f"{where}preprocessing.size", "expected [height, width] > 0")
    model_size = arch.get("image_size")
    if _is_int(model_size) and list(size) != [model_size, model_size]:
        raise _fail(entry, f"{where}preprocessing.size",
                    f"{size} does not match the model's image_size {model_size}")
    for key in ("mean", "std"):
        values = _get(pre, key, list, entry, f"{where}preprocessing.")
        if len(values) != 3 or not all(_is_number(v) for v in values):
            raise _fail(entry, f"{where}preprocessing.{key}", "expected 3 finite numbers")
        if key == "std" and any(v <= 0 for v in values):
            raise _fail(entry, f"{where}preprocessing.std", "must be > 0")
    if pre.get("interpolation", "bicubic") not in INTERPOLATIONS:
        raise _fail(entry, f"{where}preprocessing.interpolation",
                    f"expected one of {', '.join(INTERPOLATIONS)}")
    text = _get(config, "text", dict, entry, where)
    if text.get("style", "bert") not in TEXT_STYLES:
        raise _fail(entry, f"{where}text.style", f"expected one of {TEXT_STYLES}")
    limit = arch.get("text_max_positions")
    max_length = text.get("max_length")
    if max_length is not None:
        if not _is_int(max_length) or max_length < 3:
            raise _fail(entry, f"{where}text.max_length",
                        "expected an integer of at least 3 ([CLS], a word, [SEP]) or null")
        if _is_int(limit) and max_length > limit:
            raise _fail(entry, f"{where}text.max_length",
                        f"{max_length} is over the text encoder's limit of {limit} positions")
    max_words = text.get("max_words")
    if max_words is not None and (not _is_int(max_words) or max_words < 1):
        raise _fail(entry, f"{where}text.max_words", "expected an integer >= 1 or null")
    vocabulary = text.get("vocabulary")
    if vocabulary is not None:
        from ..text import VOCABULARIES

        if vocabulary not in VOCABULARIES:
            raise _fail(entry, f"{where}text.vocabulary",
                        f"unknown vocabulary {vocabulary!r}; known: {', '.join(VOCABULARIES)}")
    inference = _get(config, "inference", dict, entry, where)
    threshold = _get(inference, "threshold", (int, float), entry, f"{where}inference.")
    if not _is_number(threshold) or not 0.0 <= threshold <= 1.0:
        raise _fail(entry, f"{where}inference.threshold", "must be a number in [0, 1]")
    return config


#: ``preprocessing.interpolation`` values (see :func:`wsris.images.to_model_input`).
INTERPOLATIONS = ("bicubic", "bilinear")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _files(raw: Any, entry: str, where: str) -> tuple[FileSpec, ...]:
    if not isinstance(raw, dict) or not raw:
        raise _fail(entry, where, "expected a non-empty object {file name: {sha256, size}}")
    out = []
    for name, info in raw.items():
        if not isinstance(info, dict):
            raise _fail(entry, f"{where}.{name}", "expected an object with sha256")
        sha = _get(info, "sha256", str, entry, f"{where}.{name}.")
        if not _SHA256.match(sha):
            raise _fail(entry, f"{where}.{name}.sha256", "expected 64 lowercase hex digits")
        size = info.get("size")
        if size is not None and (not isinstance(size, int) or size < 0):
            raise _fail(entry, f"{where}.{name}.size", "expected a byte count")
        out.append(FileSpec(name, sha, size))
    if "model.safetensors" not in raw or "config.json" not in raw:
        raise _fail(entry, where, "must list config.json and model.safetensors")
    return tuple(out)


def _source(raw: Any, entry: str, i: int) -> Source:
    where = f"sources[{i}]."
    if not isinstance(raw, dict):
        raise _fail(entry, where.rstrip("."), "expected an object")
    kind = _get(raw, "kind", str, entry, where)
    if kind == "bundled":
        path = _get(raw, "path", str, entry, where)
        return Source(kind, path=path, files=_files(raw.get("files"), entry, where + "files"))
    if kind == "hf":
        repo = _get(raw, "repo_id", str, entry, where)
        if repo.count("/") != 1:
            raise _fail(entry, where + "repo_id", "expected 'org/name'")
        rev = _get(raw, "revision", str, entry, where)
        if not _COMMIT.match(rev):
            raise _fail(entry, where + "revision", "must be pinned to a 40-hex commit")
        files = _files(raw.get("files"), entry, where + "files")
        return Source(kind, repo_id=repo, revision=rev, files=files)
    if kind == "url":
        url = _get(raw, "url", str, entry, where)
        if "sha256" not in raw:
            raise _fail(entry, where + "sha256", "missing (null when no checksum is published)")
        sha = raw["sha256"]
        if sha is not None and (not isinstance(sha, str) or not _SHA256.match(sha)):
            raise _fail(entry, where + "sha256", "expected 64 lowercase hex digits or null")
        conv = _get(raw, "converter", str, entry, where)
        if conv not in converter_names():
            raise _fail(entry, where + "converter", f"expected one of {converter_names()}")
        return Source(kind, url=url, sha256=sha, converter=conv)
    raise _fail(entry, where + "kind", f"expected one of {SOURCE_KINDS}, got {kind!r}")


def parse_manifest(data: Any) -> dict[str, ModelSpec]:
    """Validate a parsed manifest and return its specs by name."""
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise ManifestError("weights manifest: expected an object with a 'models' object")
    if data.get("schema_version") != 1:
        raise ManifestError("weights manifest: 'schema_version' must be 1")
    specs = {}
    for name, entry in data["models"].items():
        if not isinstance(entry, dict):
            raise _fail(name, "(entry)", "expected an object")
        method = _get(entry, "method", str, name)
        if not is_method(method):
            raise _fail(name, "method", f"expected one of {method_names()}, got {method!r}")
        sources = _get(entry, "sources", list, name)
        note = entry.get("note", "")
        if not sources and not note:
            raise _fail(name, "note", "a model with no sources needs a note on how to train it")
        specs[name] = ModelSpec(
            name=name,
            method=method,
            config=validate_config(_get(entry, "config", dict, name), name),
            license=_get(entry, "license", str, name),
            paper=_get(entry, "paper", str, name),
            description=entry.get("description", ""),
            training_data=entry.get("training_data", ""),
            sources=tuple(_source(s, name, i) for i, s in enumerate(sources)),
            note=note,
            metrics=entry.get("metrics", {}),
            random_init=bool(entry.get("random_init", False)),
        )
    return specs


def _default_manifest_text() -> str:
    return (resources.files("wsris") / "weights_manifest.json").read_text(encoding="utf-8")


def _parse_text(text: str, where: str) -> dict[str, ModelSpec]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"weights manifest {where} is not JSON: {exc}") from exc
    return parse_manifest(data)


@lru_cache(maxsize=1)
def _bundled_manifest() -> dict[str, ModelSpec]:
    return _parse_text(_default_manifest_text(), "(bundled)")


def load_manifest(path: str | Path | None = None) -> dict[str, ModelSpec]:
    """The specs of the bundled manifest (read once), or of the manifest file at ``path``."""
    if path is None:
        return dict(_bundled_manifest())
    return _parse_text(Path(path).read_text(encoding="utf-8"), str(path))


def get_spec(name: str, manifest: dict[str, ModelSpec] | None = None) -> ModelSpec:
    specs = load_manifest() if manifest is None else manifest
    if name in specs:
        return specs[name]
    close = difflib.get_close_matches(name, specs, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise UnknownModelError(
        f"unknown model {name!r}.{hint} Known models: {', '.join(sorted(specs))}. "
        "A local folder path or 'hf-hub:org/repo@revision' also works."
    )


def list_models() -> list[str]:
    """Names in the manifest, sorted."""
    return sorted(load_manifest())


def default_model(manifest: dict[str, ModelSpec] | None = None) -> tuple[str, str]:
    """The model ``wsris segment`` uses without ``--model``, and why: of the models that
    ship inside the package with trained weights, the one with the highest mIoU measured
    on ``shapes:val`` (``metrics.mIoU`` in the manifest)."""
    specs = load_manifest() if manifest is None else manifest
    scored = [
        (float(s.metrics["mIoU"]), name)
        for name, s in specs.items()
        if any(src.kind == "bundled" for src in s.sources) and not s.random_init
        and isinstance(s.metrics.get("mIoU"), (int, float))
        and str(s.metrics.get("data", "")).startswith("shapes:val")
    ]
    if not scored:
        raise ManifestError("no bundled model with a measured shapes:val mIoU to default to")
    scored.sort(reverse=True)
    best = scored[0][1]
    # two decimals: bundled models can be level to one (57.19 against 57.17)
    others = ", ".join(f"{n} {m * 100:.2f}" for m, n in scored)
    return best, f"highest shapes:val mIoU of the bundled models ({others})"
