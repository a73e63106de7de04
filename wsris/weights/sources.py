"""Where weights come from: the package itself, the Hugging Face Hub, or a URL.

Every function here returns a local folder holding ``config.json`` and
``model.safetensors``; ``api.load`` reads it. Files pinned by sha256 in the manifest
are checked on every load; a file that fails the check is deleted from the cache so no
later load can trust it.
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from importlib import resources
from pathlib import Path

from ..errors import (
    ChecksumMismatchError,
    ConfigError,
    UnknownModelError,
    WeightsNotAvailableError,
)
from .checksums import sha256_file
from .manifest import FileSpec, ModelSpec, Source

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
HF_PREFIX = "hf-hub:"


def _env_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def is_offline(local_files_only: bool | None) -> bool:
    """``local_files_only=True`` or the ``HF_HUB_OFFLINE`` setting: the setting holds for
    every source (Hub, URL) even when a caller passes ``local_files_only=False``, as it
    does for huggingface_hub itself."""
    return bool(local_files_only) or _env_offline()


def offline_reason(local_files_only: bool | None) -> str:
    """Why downloads are off, in the user's terms."""
    if local_files_only:
        return "offline: downloads are off (local_files_only=True)"
    return "offline: downloads are off (HF_HUB_OFFLINE is set)"


def _not_cached(what: str, local_files_only: bool | None, hint: str) -> str:
    """The message for a file that is not cached: offline by choice, or the network
    could not be reached."""
    if is_offline(local_files_only):
        return f"{what} is not in the local cache and {offline_reason(local_files_only)}; {hint}"
    return (f"{what} is not in the local cache and the server could not be reached "
            f"(no network, or a firewall or proxy in the way?); {hint}")


def wsris_cache_dir() -> Path:
    """Converted third-party checkpoints live here (``$WSRIS_CACHE`` to move it)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "wsris"
    return Path(os.environ.get("WSRIS_CACHE", default))


def _verify(path: Path, expected: FileSpec, what: str, remove: list[Path]) -> None:
    actual = sha256_file(path)
    if actual == expected.sha256:
        return
    removed = False
    for p in remove:  # never leave a corrupt file where a later load would find it
        if p.is_symlink() or p.exists():
            p.unlink()
            removed = True
    fate = ("the file was refused and removed from the cache" if removed else
            f"the file was refused and left where it is ({path})")
    raise ChecksumMismatchError(
        f"{what}: sha256 of {expected.name} is {actual}, expected {expected.sha256}; {fate}"
    )


def _bundled(spec: ModelSpec, source: Source) -> Path:
    folder = Path(str(resources.files("wsris") / source.path))
    for f in source.files:
        path = folder / f.name
        if not path.is_file():
            raise WeightsNotAvailableError(
                f"{spec.name}: bundled file {path} is missing (the package was installed "
                "without its weights?)"
            )
        _verify(path, f, f"{spec.name} (bundled)", remove=[])
    return folder


def _hf_fetch_hint(repo_id: str, revision: str, name: str | None) -> str:
    if name:
        return f"run `wsris download {name}` while online"
    return f"run `hf download {repo_id} --revision {revision}` while online"


def _hf(
    spec: ModelSpec,
    source: Source,
    revision: str | None,
    cache_dir: str | Path | None,
    local_files_only: bool | None,
) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    rev = revision or source.revision
    pinned = rev == source.revision
    folder: Path | None = None
    for f in source.files:
        try:
            path = Path(
                hf_hub_download(
                    source.repo_id,
                    f.name,
                    revision=rev,
                    cache_dir=cache_dir,
                    local_files_only=is_offline(local_files_only),
                )
            )
        except LocalEntryNotFoundError as exc:
            raise WeightsNotAvailableError(_not_cached(
                f"{spec.name}: {f.name} of {source.repo_id}@{rev}", local_files_only,
                _hf_fetch_hint(source.repo_id, rev, spec.name),
            )) from exc
        except OSError as exc:  # network errors, HTTP errors, missing repo
            raise WeightsNotAvailableError(
                f"{spec.name}: cannot fetch {f.name} from {source.repo_id}@{rev}: {exc}"
            ) from exc
        if pinned:
            _verify(path, f, f"{spec.name} ({source.repo_id}@{rev})", [path, path.resolve()])
        folder = path.parent
    assert folder is not None  # the manifest requires at least two files
    return folder


def _converted_dir(spec: ModelSpec, source: Source) -> Path:
    tag = source.sha256[:12] if source.sha256 else "unpinned"
    return wsris_cache_dir() / "converted" / f"{spec.name}-{tag}"


def _url(spec: ModelSpec, source: Source, local_files_only: bool | None) -> Path:
    target = _converted_dir(spec, source)
    if (target / CONFIG_NAME).is_file() and (target / WEIGHTS_NAME).is_file():
        return target
    how = (
        f"download {source.url} yourself, run `wsris convert {source.converter} FILE DIR`, "
        "then load DIR"
    )
    if is_offline(local_files_only):
        raise WeightsNotAvailableError(
            f"{spec.name}: not converted yet ({target} is missing) and "
            f"{offline_reason(local_files_only)}; run `wsris download {spec.name}` while "
            f"online, or {how}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        raw = Path(tmp) / Path(source.url).name
        try:
            _download(source.url, raw)
        except ConfigError:  # a bad $WSRIS_DOWNLOAD_TIMEOUT
            raise
        except Exception as exc:  # urllib raises many types; all mean "not available"
            import urllib.error

            from ..url_fetch import DownloadError

            if (isinstance(exc, DownloadError) and exc.unreachable) or (
                isinstance(exc, urllib.error.URLError)
                and not isinstance(exc, urllib.error.HTTPError)
            ):
                reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
                raise WeightsNotAvailableError(
                    f"{spec.name}: cannot reach {source.url} ({reason}): no network, or "
                    f"a firewall or proxy in the way? Or {how}"
                ) from exc
            raise WeightsNotAvailableError(
                f"{spec.name}: cannot download {source.url}: {exc}; or {how}"
            ) from exc
        if source.sha256:
            _verify(raw, FileSpec(raw.name, source.sha256), f"{spec.name} ({source.url})", [raw])
        else:  # upstream publishes no checksum; the converter records the one we got
            warnings.warn(
                f"{spec.name}: {source.url} has no pinned sha256; its digest "
                f"{sha256_file(raw)} is recorded in config.json",
                stacklevel=2,
            )
        from ..registry import run_converter

        out = Path(tmp) / "converted"
        run_converter(source.converter, raw, out)
        out.rename(target)  # atomic: a half-converted folder is never seen
    return target


def _download(url: str, dest: Path) -> None:
    """http(s): one total deadline (``$WSRIS_DOWNLOAD_TIMEOUT``, default 3600 s) and a
    redirect policy (:func:`wsris.url_fetch.download_to_file`); other schemes (file://)
    through torch.hub."""
    if url.lower().startswith(("http://", "https://")):
        from ..url_fetch import download_to_file

        download_to_file(url, dest)
    else:
        import torch.hub

        torch.hub.download_url_to_file(url, str(dest), progress=True)


def fetch(
    spec: ModelSpec,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool | None = None,
) -> Path:
    """The local folder of ``spec``'s weights, trying its sources in manifest order."""
    if not spec.published:
        raise_unpublished(spec)
    reasons = []
    for source in spec.sources:
        try:
            if source.kind == "bundled":
                return _bundled(spec, source)
            if source.kind == "hf":
                return _hf(spec, source, revision, cache_dir, local_files_only)
            return _url(spec, source, local_files_only)
        except WeightsNotAvailableError as exc:
            reasons.append(str(exc))
    raise WeightsNotAvailableError(" | ".join(reasons))


def raise_unpublished(spec: ModelSpec) -> None:
    from ..errors import UnpublishedModelError

    raise UnpublishedModelError(
        f"{spec.name}: no weights have been published for this model. {spec.note} "
        "Or load a checkpoint you trained: wsris.load('/path/to/folder')."
    )


def cached_status(spec: ModelSpec, cache_dir: str | Path | None = None) -> str:
    """``bundled``, ``cached``, ``downloadable`` or ``unpublished``; never touches the network."""
    if not spec.published:
        return "unpublished"
    for source in spec.sources:
        if source.kind == "bundled":
            folder = Path(str(resources.files("wsris") / source.path))
            if all((folder / f.name).is_file() for f in source.files):
                return "bundled"
        elif source.kind == "hf":
            from huggingface_hub import try_to_load_from_cache

            found = [
                try_to_load_from_cache(
                    source.repo_id, f.name, revision=source.revision, cache_dir=cache_dir
                )
                for f in source.files
            ]
            if all(isinstance(p, str) for p in found):
                return "cached"
        else:
            if (_converted_dir(spec, source) / WEIGHTS_NAME).is_file():
                return "cached"
    return "downloadable"


# What the Hub accepts as a user/org or repo name, and a revision (branch, tag, commit).
_HF_NAME = re.compile(r"^(?!\.)(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_HF_REVISION = re.compile(r"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._/-]{0,255}$")


def parse_hf_reference(ref: str) -> tuple[str, str | None]:
    """``hf-hub:org/repo@rev`` -> (``org/repo``, ``rev`` or None)."""
    body = ref[len(HF_PREFIX) :]
    repo, _, rev = body.partition("@")
    if (repo.count("/") != 1 or not all(_HF_NAME.match(part) for part in repo.split("/"))
            or (rev and not _HF_REVISION.match(rev))):
        raise UnknownModelError(f"{ref!r}: expected 'hf-hub:org/repo' or 'hf-hub:org/repo@rev'")
    return repo, rev or None


def fetch_hf_repo(
    ref: str,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool | None = None,
) -> Path:
    """Any Hub repo laid out as ``config.json`` + ``model.safetensors``."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    repo, rev = parse_hf_reference(ref)
    rev = revision or rev
    try:
        return Path(
            snapshot_download(
                repo,
                revision=rev,
                cache_dir=cache_dir,
                allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, "README.md"],
                local_files_only=is_offline(local_files_only),
            )
        )
    except LocalEntryNotFoundError as exc:
        raise WeightsNotAvailableError(
            _not_cached(ref, local_files_only, _hf_fetch_hint(repo, rev or "main", None))
        ) from exc
    except OSError as exc:
        raise WeightsNotAvailableError(f"{ref}: cannot fetch from the Hub: {exc}") from exc
