"""Every error wsris raises on purpose is a subclass of :class:`WsrisError`.

The CLI prints these as one line and exits with the code attached to the class, so a
script can tell a bad input from a missing model from a corrupt file.
"""

from __future__ import annotations

import warnings


class WsrisError(Exception):
    """Base class of all wsris errors."""

    exit_code = 1


class InvalidInputError(WsrisError, ValueError):
    """An image or text that cannot be used (unreadable, empty, too large, wrong type)."""

    exit_code = 3


class ImageError(InvalidInputError):
    """An image that cannot be read or is not a usable picture."""


class NoImagesError(ImageError):
    """A folder with no image in it, or a glob pattern that matches no file."""


class TextError(InvalidInputError):
    """Text that is empty, tokenizes to nothing, or is otherwise unusable."""


class ManifestError(WsrisError):
    """`weights_manifest.json` (or a model's config.json) is malformed."""

    exit_code = 4


class ConfigError(ManifestError, ValueError):
    """A config section (a model's architecture, a training recipe) with an unknown field
    or a bad value; raised by :func:`wsris.strict.from_mapping` for every config."""


class UnknownModelError(WsrisError, KeyError):
    """A model name that is neither in the manifest nor a path nor an hf-hub: reference."""

    exit_code = 5

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnpublishedModelError(WsrisError):
    """A known model whose weights nobody has published: it must be trained."""

    exit_code = 5


class WeightsNotAvailableError(WsrisError):
    """Weights that cannot be had: offline and not cached, or no source reachable."""

    exit_code = 6


class ChecksumMismatchError(WsrisError):
    """A downloaded or cached file whose sha256 differs from the one pinned."""

    exit_code = 7


class WeightsMismatchError(WsrisError):
    """A checkpoint whose keys or shapes do not match the architecture."""

    exit_code = 7


class DeviceError(WsrisError):
    """A device or dtype that this machine or this code path cannot use."""

    exit_code = 8


class DatasetError(WsrisError):
    """A dataset that cannot be read: missing or malformed files, unknown split or spec."""

    exit_code = 9


class NlpModelError(WsrisError):
    """The spaCy English pipeline (for noun chunks) is not installed or cannot load."""

    exit_code = 10


class OutputError(WsrisError):
    """An output path that cannot or must not be written (checked before any model loads):
    a folder, an unwritable place, a non-PNG mask, an input image, or an existing file
    without ``--overwrite``."""

    exit_code = 11


#: The exit code of a run stopped with Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED_EXIT_CODE = 130

#: The exit code of a run stopped with SIGTERM (128 + SIGTERM), as shells report it.
TERMINATED_EXIT_CODE = 143


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the CLI receives SIGTERM, so a terminated run cleans
    up exactly as one stopped with Ctrl-C (every ``except KeyboardInterrupt`` and
    ``finally`` runs), then exits 143."""


class WsrisWarning(UserWarning):
    """Base class of the warnings wsris gives on purpose. The CLI prints each as one line
    (``wsris: warning: ...``); Python code can filter them by class."""


class TextWarning(WsrisWarning):
    """Text that is used, but not as written: truncated, or mostly unknown to the model."""


def warn(message: str, category: type[WsrisWarning] = WsrisWarning, stacklevel: int = 2) -> None:
    """Issue a wsris warning (the one path every deliberate warning takes)."""
    warnings.warn(message, category, stacklevel=stacklevel + 1)
