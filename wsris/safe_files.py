"""Files written safely: temporary names only wsris uses, their removal after a killed
run, and an exclusive final step.

A temporary file (or folder) of a wsris run is named ``.NAME.wsris-PID-XXXX.part``, with
the id of the process writing it; :func:`remove_leftovers` removes those of processes
that are gone (a run killed with SIGKILL, a power cut) and leaves a live run's alone.
:func:`create_exclusively` gives a finished temporary file its name only if nothing has
that name yet, so two racing runs cannot clobber each other. :class:`AtomicFile` puts the
pieces together for one file (a JSON report).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from .errors import OutputError

#: A temporary file of a wsris run: ``.NAME.wsris-PID-XXXX.part`` (see :func:`temp_prefix`).
_TEMP_NAME = re.compile(r"^\..*\.wsris-(\d+)-[^./]+\.part$")


def temp_prefix(name: str) -> str:
    """The prefix of a temporary file for ``name``, naming this process (mkstemp adds a
    random part and ``.part``)."""
    return f".{name}.wsris-{os.getpid()}-"


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but belongs to someone else
        return True
    return True


def remove_leftovers(folder: Path) -> list[Path]:
    """Remove the temporary files that killed wsris runs left in ``folder`` (those whose
    process is gone; a live run's files are left alone). Returns what was removed."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if match and not _process_alive(int(match.group(1))):
            try:
                if entry.is_symlink():
                    continue
                if entry.is_dir():  # an export's folder
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
                removed.append(entry)
            except OSError:
                pass
    return removed


def create_exclusively(temp: Path, path: Path, role: str) -> None:
    """Give ``temp`` the name ``path`` only if nothing has that name (atomic)."""
    try:
        os.link(temp, path)
    except FileExistsError:
        raise OutputError(
            f"{role} {path} was created by someone else while this run worked; pass "
            "--overwrite to replace it"
        ) from None
    except OSError:
        # No hard links here (some network or FAT file systems): an exclusive open is
        # the check, then the rename fills the name it reserved.
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            raise OutputError(
                f"{role} {path} was created by someone else while this run worked; pass "
                "--overwrite to replace it"
            ) from None
        os.replace(temp, path)
        return
    temp.unlink(missing_ok=True)




def same_file(a: Path, b: Path) -> bool:
    """The same file (or, when either does not exist, the same absolute path)."""
    try:
        if a.exists() and b.exists():
            return a.samefile(b)
    except OSError:
        pass
    return os.path.abspath(a) == os.path.abspath(b)


def inside(path: Path, folder: Path) -> bool:
    """``path`` lies inside the folder ``folder`` (an input that is a whole folder)."""
    try:
        if not folder.is_dir():
            return False
        Path(os.path.realpath(path)).relative_to(os.path.realpath(folder))
        return True
    except (ValueError, OSError):
        return False


class AtomicFile:
    """One output file checked before the work starts and written all at once.

    The constructor refuses a folder, an input of the run (a file, or a path inside an
    input folder) and an existing file without ``overwrite``; :meth:`prepare` makes the
    temporary file beside it (proving the place can be written, and removing a killed
    run's leftovers there); :meth:`commit` fills it and moves it into place (exclusively
    without ``overwrite``); :meth:`abort` removes it. Failures are
    :class:`~wsris.errors.OutputError` naming ``role``.
    """

    def __init__(self, path: str | Path, role: str, *, overwrite: bool = False,
                 inputs: tuple[Path, ...] = ()) -> None:
        self.path = Path(path)
        self.role = role
        self.overwrite = overwrite
        self.temp: Path | None = None
        if self.path.is_dir():
            raise OutputError(f"{role} {self.path} is a folder; give a file name")
        for src in inputs:
            if same_file(self.path, src) or inside(self.path, src):
                raise OutputError(f"{role} {self.path} is an input of this run; refusing to "
                                  "overwrite it")
        if self.path.exists() and not overwrite:
            raise OutputError(f"{role} {self.path} exists; pass --overwrite to replace it")

    def prepare(self) -> None:
        parent = self.path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            remove_leftovers(parent)
            fd, name = tempfile.mkstemp(prefix=temp_prefix(self.path.name), suffix=".part",
                                        dir=parent)
        except OSError as exc:
            raise OutputError(f"{self.role} {self.path}: cannot write in {parent}: "
                              f"{exc.strerror or exc}") from exc
        os.close(fd)
        self.temp = Path(name)

    def commit(self, write: Callable[[Path], None]) -> None:
        assert self.temp is not None, "prepare() first"
        try:
            write(self.temp)
            mask = os.umask(0)
            os.umask(mask)
            os.chmod(self.temp, 0o666 & ~mask)  # mkstemp's files are private
            if self.overwrite:
                os.replace(self.temp, self.path)
            else:
                create_exclusively(self.temp, self.path, self.role)
        except OSError as exc:
            self.abort()
            raise OutputError(f"{self.role} {self.path}: cannot write: "
                              f"{exc.strerror or exc}") from exc
        except BaseException:
            self.abort()
            raise
        self.temp = None

    def abort(self) -> None:
        if self.temp is not None:
            self.temp.unlink(missing_ok=True)
            self.temp = None
