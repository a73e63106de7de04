"""All-or-nothing output files for the command line.

An :class:`OutputPlan` is checked before any model loads: every path is validated (not a
folder, not an input, a known image format, a place that can be written, no clash with an
existing file unless ``overwrite``), and a hidden temporary file is created beside each
one, which proves it can be written. The command then fills the temporary files and
:meth:`OutputPlan.commit` moves them all into place; on any failure (or Ctrl-C, or
SIGTERM) :meth:`OutputPlan.abort` removes them and any folder the plan created, so a failed
run leaves nothing behind and never a partial set.

Without ``overwrite`` the move is an exclusive create (a hard link that fails if the name
exists), so of two runs racing for one path exactly one wins and the other fails with an
:class:`~wsris.errors.OutputError`. The temporary files carry a name only wsris uses,
``.NAME.wsris-PID-XXXX.part``; those of a killed run (its process is gone) are removed by
the next run that writes in that folder.
"""

from __future__ import annotations

import functools
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import OutputError
from ..safe_files import create_exclusively, remove_leftovers, same_file, temp_prefix

#: ``--format`` choices for masks, and the PIL format each writes.
MASK_FORMATS = {"png": "PNG", "bmp": "BMP", "tiff": "TIFF", "jpeg": "JPEG"}


def numbered(path: Path, index: int, count: int) -> Path:
    """``out.png`` for one text; ``out_0.png``, ``out_1.png``, ... for several."""
    if count == 1:
        return path
    return path.with_name(f"{path.stem}_{index}{path.suffix}")


def _looks_like_mask(path: Path) -> bool:
    """True for a single-channel image holding only 0 and 255: what wsris writes as a
    mask. Anything else beside the outputs is not ours to remove."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            if img.mode not in ("L", "1"):
                return False
            colours = img.convert("L").getcolors(256) or []
    except Exception:  # unreadable, not an image: not a mask
        return False
    return {value for _, value in colours} <= {0, 255}


@functools.cache
def _can_write(pil_format: str) -> bool:
    """Whether PIL can really write ``pil_format`` (some registered formats are read-only
    stubs, e.g. HDF5), tried on a 1x1 image in memory."""
    import io

    from PIL import Image

    try:
        Image.new("RGB", (1, 1)).save(io.BytesIO(), format=pil_format)
    except Exception:  # noqa: BLE001 - any failure means this format cannot be written
        return False
    return True


def _image_format(path: Path) -> str | None:
    from PIL import Image

    return Image.registered_extensions().get(path.suffix.lower())


@dataclass
class _Planned:
    path: Path
    pil_format: str
    role: str
    temp: Path | None = None


@dataclass
class OutputPlan:
    """The files one run will write; see the module docstring."""

    overwrite: bool = False
    inputs: tuple[Path, ...] = ()
    files: list[_Planned] = field(default_factory=list)
    stale: list[Path] = field(default_factory=list)
    _made_dirs: list[Path] = field(default_factory=list)

    def add(self, path: Path, role: str, *, fmt: str | None = None,
            mask: bool = False) -> Path:
        """Plan ``path``; ``fmt`` (a :data:`MASK_FORMATS` key) overrides the suffix. A mask
        must be PNG unless ``fmt`` says otherwise."""
        path = Path(path)
        if path.is_dir():
            raise OutputError(f"{role} {path} is a folder; give a file name")
        if fmt is not None:
            pil_format = MASK_FORMATS[fmt]
        else:
            pil_format = _image_format(path) or ""
            if mask and pil_format != "PNG":
                raise OutputError(
                    f"{role} {path}: masks are written as PNG (lossless, 255 inside); give a "
                    ".png name, or choose another format explicitly with --format"
                )
            if not pil_format:
                raise OutputError(
                    f"{role} {path}: no image format for "
                    f"{repr(path.suffix) if path.suffix else 'a name without a suffix'}; "
                    "use .png (or .jpg, .webp, ...)"
                )
            if not _can_write(pil_format):
                raise OutputError(
                    f"{role} {path}: {pil_format} images ({path.suffix}) cannot be written "
                    "here; use .png (or .jpg, .webp, ...)"
                )
        for src in self.inputs:
            if same_file(path, src):
                raise OutputError(f"{role} {path} is the input image; refusing to overwrite it")
        for other in self.files:
            if same_file(path, other.path):
                raise OutputError(f"{role} {path} is also the {other.role}; give another name")
        if path.exists() and not self.overwrite:
            raise OutputError(f"{role} {path} exists; pass --overwrite to replace it")
        self.files.append(_Planned(path, pil_format, role))
        return path

    def numbered_family(self, path: Path, count: int, role: str) -> None:
        """Masks ``stem_<k>.suffix`` beside ``path`` that this run does not write: left
        from an earlier run with more texts, they would look like part of this one.
        Refused without ``overwrite``; with it, removed on :meth:`commit`.

        Only what a wsris run would have written counts: ``k`` spelled as :func:`numbered`
        spells it, a file that holds a mask (one channel, only 0 and 255), and never an
        input of this run or one of its own outputs; anything else is left alone."""
        if count == 1:
            return
        pattern = re.compile(re.escape(path.stem) + r"_(0|[1-9]\d*)" + re.escape(path.suffix)
                             + "$")
        folder = path.parent if str(path.parent) else Path(".")
        if not folder.is_dir():
            return
        for entry in sorted(folder.iterdir()):
            match = pattern.match(entry.name)
            if not (match and int(match.group(1)) >= count and entry.is_file()
                    and not entry.is_symlink()):
                continue
            if self._is_ours(entry) or not _looks_like_mask(entry):
                continue
            if not self.overwrite:
                raise OutputError(
                    f"{entry} is left from an earlier run with more texts and would look "
                    f"like part of this one; remove it or pass --overwrite (removes it)"
                )
            self.stale.append(entry)

    def _is_ours(self, path: Path) -> bool:
        """An input of this run or a file it plans to write."""
        return any(same_file(path, other) for other in (*self.inputs, *self.paths))

    def prepare(self) -> None:
        """Create the folders and one hidden temporary file beside each output (which
        proves each place can be written)."""
        cleaned: set[Path] = set()
        try:
            for planned in self.files:
                parent = planned.path.parent
                self._make_dirs(parent, planned)
                if parent not in cleaned:
                    cleaned.add(parent)
                    remove_leftovers(parent)
                try:
                    fd, name = tempfile.mkstemp(
                        prefix=temp_prefix(planned.path.name), suffix=".part", dir=parent
                    )
                except OSError as exc:
                    raise OutputError(
                        f"{planned.role} {planned.path}: cannot write in {parent}: "
                        f"{exc.strerror or exc}"
                    ) from exc
                os.close(fd)
                planned.temp = Path(name)
        except BaseException:
            self.abort()
            raise

    def _make_dirs(self, folder: Path, planned: _Planned) -> None:
        missing: list[Path] = []
        probe = folder
        while not probe.exists() and probe != probe.parent:
            missing.append(probe)
            probe = probe.parent
        if probe.exists() and not probe.is_dir():
            raise OutputError(f"{planned.role} {planned.path}: {probe} is a file, not a folder")
        for d in reversed(missing):
            try:
                d.mkdir()
            except OSError as exc:
                raise OutputError(
                    f"{planned.role} {planned.path}: cannot create {d}: {exc.strerror or exc}"
                ) from exc
            self._made_dirs.append(d)

    def write(self, path: Path, save: Callable[[Path, str], None]) -> None:
        """Fill the temporary file of ``path``: ``save(temp_path, pil_format)``."""
        for planned in self.files:
            if planned.path == path:
                assert planned.temp is not None, "prepare() first"
                try:
                    save(planned.temp, planned.pil_format)
                except OSError as exc:  # a full disk, a quota, a file system gone
                    raise OutputError(
                        f"{planned.role} {planned.path}: cannot write: {exc.strerror or exc}"
                    ) from exc
                return
        raise KeyError(path)

    def drop(self, paths: Iterable[Path]) -> None:
        """Leave ``paths`` out of this run (their input was skipped): their temporary
        files are removed now and :meth:`commit` does not write them."""
        gone = {Path(p) for p in paths}
        for planned in [p for p in self.files if p.path in gone]:
            if planned.temp is not None:
                planned.temp.unlink(missing_ok=True)
            self.files.remove(planned)

    def commit(self) -> None:
        """Move every temporary file into place and remove stale numbered files.

        Without ``overwrite`` each move is an exclusive create: when another process
        created one of the paths since :meth:`prepare`, the files this commit already
        placed are taken back and an :class:`OutputError` is raised (nothing of this run
        stays; the other run's file is untouched)."""
        umask = os.umask(0)
        os.umask(umask)
        placed: list[_Planned] = []
        try:
            for planned in self.files:
                assert planned.temp is not None, "prepare() first"
                os.chmod(planned.temp, 0o666 & ~umask)  # mkstemp's files are private
                if self.overwrite:
                    os.replace(planned.temp, planned.path)
                else:
                    create_exclusively(planned.temp, planned.path, planned.role)
                placed.append(planned)
                planned.temp = None
        except BaseException:
            if not self.overwrite:
                for planned in placed:  # this run created them: take them back
                    planned.path.unlink(missing_ok=True)
            self.abort()
            raise
        for stale in self.stale:
            if not self._is_ours(stale):
                stale.unlink(missing_ok=True)
        self._made_dirs.clear()

    def abort(self) -> None:
        """Remove the temporary files and the folders this plan created."""
        for planned in self.files:
            if planned.temp is not None:
                planned.temp.unlink(missing_ok=True)
                planned.temp = None
        for d in reversed(self._made_dirs):
            try:
                d.rmdir()
            except OSError:
                pass
        self._made_dirs.clear()

    @property
    def paths(self) -> Iterable[Path]:
        return [p.path for p in self.files]
