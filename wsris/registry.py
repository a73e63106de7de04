"""The method registry: each method registers one :class:`MethodSpec` from its own folder.

A method is a package (``wsris/methods/chunk/``, ``wsris/methods/sag/``, or a third-party
one) whose ``__init__`` calls :func:`register_method`. The spec names everything the
rest of wsris needs: the model and its config class, the inference pipeline with its
options, variants and defaults, the training objective, converters for published
checkpoints and the paper. Code is named as ``"module:attribute"`` strings and imported
only when used (:func:`load_object`), so registering a method imports no torch.

The API, command line, manifest, evaluation, training and model cards ask this registry;
none of them names a method. A method outside wsris registers on import, or through the
``wsris.methods`` entry-point group (each entry point names a module that registers).

Backbones two methods share live in :mod:`wsris.backbones`, code two methods use in
:mod:`wsris.blocks`; everything else a method needs sits in its own folder.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ManifestError

__all__ = [
    "Converter",
    "MethodSpec",
    "build_model",
    "converter_names",
    "find_converter",
    "get_method",
    "is_method",
    "load_object",
    "method_names",
    "register_method",
    "run_converter",
    "unregister_method",
]

#: The methods that ship with wsris, imported (and so registered) on first use.
BUILTIN = ("wsris.methods.chunk", "wsris.methods.sag", "wsris.methods.tris")
ENTRY_POINT_GROUP = "wsris.methods"


@dataclass(frozen=True)
class Converter:
    """A converter of published checkpoints into wsris model folders.

    ``function`` is ``"module:function"`` called as ``function(src, out_dir) -> Path``
    (the manifest's ``url`` sources use it); ``command`` is ``"module:command"``, a click
    command that ``wsris convert NAME`` runs, or None for no command-line front.
    """

    function: str
    command: str | None = None


@dataclass(frozen=True, eq=False)
class MethodSpec:
    """Everything a method brings, by name. See the module docstring."""

    name: str
    title: str  # one line for listings: what the method does
    paper: str  # the citation model cards give
    config_class: str  # "module:Class" with from_dict(dict), to_dict() and the presets
    model_class: str  # "module:Class", built as Class(config) -> torch.nn.Module
    pipeline: str  # module with localize() and encode(); see wsris.pipelines.base
    options: frozenset[str]  # inference options the pipeline reads (anything else: a typo)
    defaults: Mapping[str, Mapping[str, Any]]  # preprocessing, text, inference of new models
    presets: tuple[str, ...] = ("tiny",)  # classmethods of config_class a recipe may name
    variants: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # --variant
    variant_help: str = ""  # what the variants are, for --help
    objective: str | None = None  # "module:Class", a wsris.training.objectives.Objective
    converters: Mapping[str, Converter] = field(default_factory=dict)
    card_tags: tuple[str, ...] = ()  # extra model-card tags
    # "module:factory" called with a config's "text" section, returning a tokenizer like
    # wsris.text.Tokenizer (__call__ -> TextBatch, check); None: wsris.text.Tokenizer
    tokenizer: str | None = None
    # what ``threshold`` does to this method's masks, one sentence (listings, errors, docs)
    threshold_meaning: str = "the mask is the heat map at or above the threshold"
    # an inference stage that, when a model runs it, picks the mask itself, so that the
    # threshold does not set the mask (the CLI refuses --threshold then); None: it always does
    mask_stage: str | None = None

    def __post_init__(self) -> None:
        unknown = {k for v in self.variants.values() for k in v} - set(self.options)
        if unknown:
            raise ValueError(f"method {self.name!r}: variants use unknown options {unknown}")
        missing = {"preprocessing", "text", "inference"} - set(self.defaults)
        if missing:
            raise ValueError(f"method {self.name!r}: defaults lack {sorted(missing)}")

    def threshold_sets_mask(self, inference: Mapping[str, Any]) -> bool:
        """Whether ``threshold`` decides the masks of a model with these inference options
        (False when the model runs :attr:`mask_stage`, which picks the mask itself)."""
        return self.mask_stage is None or self.mask_stage not in inference.get("stages", ())

    def config(self, architecture: Mapping[str, Any]) -> Any:
        """The method's config object of an architecture dict (strict: typos fail)."""
        return load_object(self.config_class).from_dict(dict(architecture))

    def current_names(self, architecture: Mapping[str, Any]) -> dict[str, Any]:
        """``architecture`` with earlier spellings of its field names replaced by today's
        (a config class may offer ``current_names``; see :mod:`wsris.backbones.fields`)."""
        rename = getattr(load_object(self.config_class), "current_names", None)
        return rename(dict(architecture)) if rename is not None else dict(architecture)

    def build_model(self, architecture: Mapping[str, Any]) -> Any:
        """A randomly initialised model of ``architecture``."""
        return load_object(self.model_class)(self.config(architecture))

    def preset(self, name: str) -> dict[str, Any]:
        """The architecture dict of a named preset."""
        if name not in self.presets:
            raise ManifestError(f"unknown {self.name} preset {name!r}; known: {self.presets}")
        return getattr(load_object(self.config_class), name)().to_dict()

    def variant_options(self, variant: str) -> dict[str, Any]:
        """The ``segment`` options of ``--variant variant``."""
        from .errors import InvalidInputError

        if variant not in self.variants:
            known = ", ".join(self.variants) or "none"
            raise InvalidInputError(
                f"unknown variant {variant!r} for a {self.name} model; choose one of {known}"
            )
        return dict(self.variants[variant])


_REGISTRY: dict[str, MethodSpec] = {}
_LOADED: list[bool] = []


def register_method(spec: MethodSpec, *, replace: bool = False) -> MethodSpec:
    """Add ``spec`` to the registry (``replace=True`` to redefine a name)."""
    if spec.name in _REGISTRY and not replace and _REGISTRY[spec.name] is not spec:
        raise ValueError(f"method {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def unregister_method(name: str) -> None:
    """Remove a method (for tests and plugins that register temporarily)."""
    _REGISTRY.pop(name, None)


def _load_builtins() -> None:
    if _LOADED:
        return
    _LOADED.append(True)
    for module in BUILTIN:
        importlib.import_module(module)


def _load_entry_points() -> None:
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in _REGISTRY:
            ep.load()


def method_names() -> tuple[str, ...]:
    """The registered methods, built-in ones first."""
    _load_builtins()
    return tuple(_REGISTRY)


def get_method(name: str) -> MethodSpec:
    """The spec of method ``name``; :class:`~wsris.errors.ManifestError` if unknown."""
    _load_builtins()
    if name not in _REGISTRY and isinstance(name, str):
        _load_entry_points()  # only when a name is not known already: costs a scan
    if name not in _REGISTRY:
        raise ManifestError(
            f"unknown method {name!r}; expected one of {', '.join(map(repr, _REGISTRY))}"
        )
    return _REGISTRY[name]


def is_method(name: object) -> bool:
    """Whether ``name`` is a registered method (entry points included)."""
    if not isinstance(name, str):
        return False
    try:
        get_method(name)
    except ManifestError:
        return False
    return True


def load_object(ref: str) -> Any:
    """The object a ``"module:attribute"`` string names (a module for ``"module"``)."""
    module, _, attr = ref.partition(":")
    obj: Any = importlib.import_module(module)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


def build_model(method: str, architecture: Mapping[str, Any]) -> Any:
    """A randomly initialised model of ``method`` from its architecture dict."""
    return get_method(method).build_model(architecture)


def find_converter(name: str) -> tuple[MethodSpec, Converter]:
    """The method and converter registered under converter name ``name``."""
    for method in method_names():
        spec = _REGISTRY[method]
        if name in spec.converters:
            return spec, spec.converters[name]
    raise ManifestError(f"unknown converter {name!r}; known: {', '.join(converter_names())}")


def converter_names() -> tuple[str, ...]:
    return tuple(c for m in method_names() for c in _REGISTRY[m].converters)


def run_converter(name: str, src: Any, out_dir: Any) -> Any:
    """Convert checkpoint ``src`` into model folder ``out_dir`` with converter ``name``."""
    function: Callable[..., Any] = load_object(find_converter(name)[1].function)
    return function(src, out_dir)
