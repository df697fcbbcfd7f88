"""One local file written whole or not at all: `evaluate --json`, a held-out record, a fusion model, a probe, its
scores and features cache.

Three writers did it three ways: the record's fsynced its temporary and kept the file's mode; the fit scripts' and
evaluate's did not fsync (a crash after the rename could leave an empty file under the name, the earlier one gone),
and gave a new file the umask's mode or the one it replaced. Here, for all of them: a temporary beside the file
(`.NAME.<random>`, the same filesystem, so the rename is one step), written and fsynced, given its mode (the file's
it replaces, else 0o644), renamed over the name, and the folder fsynced so that the rename itself lasts. The
temporary is removed however the write fails or is stopped before the rename.

The rename is the commit point: a stop (Ctrl-C, SIGTERM) that lands after it, in the folder's fsync or before the
caller noted the file, still counts the file as written (`written`), so a stopped command's line says what is on
disk: a fit said "not written (as it was)" of a model it had just replaced.

A name that is a folder, a named pipe, a socket or a device is refused before anything is written: the rename fails
on a folder after the whole write (a traceback), and replaces a named pipe a reader may be waiting on.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path

from pipeline.io.regular_files import kind_of

NEW_MODE = 0o644


class TargetNotAFile(ValueError):
    """The name to write is a folder, a named pipe, a socket or a device: refused, nothing written (one line)."""


def write_whole(path: str | os.PathLike[str], data: bytes, written: list[str] | None = None,
                name: str | None = None) -> None:
    """Writes `data` to the local file `path`, whole or not at all (see the module's docstring). Once the rename has
    replaced the file, `name` (by default the path) is added to `written`, also when a stop lands right after it."""
    target = Path(path)
    mode = _mode_for(target)
    # Made here rather than by mkstemp: a stop landing inside mkstemp, after it made the file, left it behind.
    temporary = target.parent / f".{target.name}.{secrets.token_hex(8)}"
    renaming = False
    try:
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with open(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fchmod(out.fileno(), mode)
            os.fsync(out.fileno())
        renaming = True
        os.replace(temporary, target)
        _sync_folder(target.parent)
        _note(written, name or str(path))  # inside: a stop landing on the way to it is noted below
    except BaseException as err:
        if renaming and not os.path.lexists(temporary):  # renamed: the name holds `data`, whatever came after
            _note(written, name or str(path))
        elif not isinstance(err, FileExistsError):  # another's temporary (64 random bits: never in practice)
            with contextlib.suppress(FileNotFoundError):  # a stop before the file was made
                os.unlink(temporary)
        raise


def check_target(path: str | os.PathLike[str]) -> None:
    """`TargetNotAFile` where `path` is a folder, a named pipe, a socket or a device, or lies in a folder that does not
    exist: for a command to refuse it before its minutes of work (what `write_whole` refuses only once that work is
    done, its result lost; a missing folder was "the job failed", exit 1, after the scoring)."""
    target = Path(path)
    _mode_for(target)
    if not target.parent.is_dir():
        raise TargetNotAFile(f"{target}: its folder {target.parent} does not exist: not written")


def _mode_for(target: Path) -> int:
    """The mode of the file `target` replaces, NEW_MODE when there is none; `TargetNotAFile` when it is no file."""
    try:
        info = os.stat(target)
    except FileNotFoundError:
        return NEW_MODE
    if not stat.S_ISREG(info.st_mode):
        raise TargetNotAFile(f"{target} is {kind_of(info.st_mode)}, not a file: not written")
    return stat.S_IMODE(info.st_mode)


def _sync_folder(folder: Path) -> None:
    """The rename on disk. A filesystem that cannot fsync a folder (some network and FUSE ones) is left to itself."""
    try:
        handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except PermissionError:  # a folder one may write in but not list (0o300): the rename is done, left to the disk
        return
    try:
        os.fsync(handle)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(handle)


def _note(written: list[str] | None, name: str) -> None:
    if written is not None and name not in written:
        written.append(name)
