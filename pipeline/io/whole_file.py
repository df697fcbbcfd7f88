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
on a folder after the whole write (a traceback), and replaces a named pipe a reader may be waiting on. So is a
symbolic link: the rename replaced the link with a file, and the file it led to (a model kept elsewhere) was left as
it was, stale, though the command said it had written it.

`check_output` is what a command runs on each file it will write, before its minutes of work: all of the above, a
folder that does not exist or that this user may not write in, and a place inside a dataset's folder (a file its
manifest does not list: `verify` refused the dataset from then on); `check_output_folder` the same of a folder a
command writes files into whose names it learns only as it works. `checked_then_run` is that check and the work
after it for an argparse script (docs/measurements/): a refusal its parser's error line, one that comes at the write
one line too.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Callable, Collection, Iterable
from pathlib import Path

from pipeline.io.regular_files import kind_of
from pipeline.printable import printable, said

NEW_MODE = 0o644
# What marks a folder that may hold a run's dataset (pipeline/io/layout.py's MANIFEST and STAGING): only under one of
# them is layout (and with it Beam, seconds at a script's start) imported to tell for sure.
DATASET_MARKS = ("manifest.json", "_staging")


class TargetNotAFile(ValueError):
    """The name to write is no file to write whole (a folder, a named pipe, a socket, a device, a symbolic link; for
    `check_output` also a missing or unwritable folder, or a place inside a dataset): refused, nothing written (one
    line)."""


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


def check_output(flag: str, path: str | os.PathLike[str], folder_made: bool = False, always_written: bool = True
                 ) -> None:
    """`TargetNotAFile` naming `flag` (the option, or the argument as `--help` names it) where `path` is no file to
    write whole (a folder, a named pipe, a socket, a device or a symbolic link), lies in a folder that does not exist
    or one this user may not write in, or lies inside a dataset's folder: for a command to refuse it before its minutes
    of work (what `write_whole` refuses only once that work is done, its result lost; a missing folder was "the job
    failed", exit 1, after the scoring). With `folder_made` (the command makes the
    folders it is in), a missing folder is fine, but not a file, a named pipe... in the way of one. Without
    `always_written` (a cache, written only when it misses), a folder one may not write in is left to the write."""
    target = Path(path)
    try:
        _check_folders(target, folder_made, always_written)
        _mode_for(target)
    except TargetNotAFile as err:
        raise TargetNotAFile(f"{flag} {err}") from None
    if dataset := _dataset_folder_above(target):
        raise TargetNotAFile(f"{flag} {target} lies inside the dataset {dataset}, whose manifest does not list it "
                             "(verify would refuse the dataset): write it outside")


def check_output_folder(flag: str, folder: str | os.PathLike[str]) -> None:
    """`TargetNotAFile` naming `flag` where `folder`, which a command makes if need be and writes files into whose
    names it learns only as it works (one image a photograph), is no folder to write in: a file, a named pipe... or a
    link to one or to nothing in its place (a folder through a link is one), a folder above it that is none, one this
    user may not write in, or a dataset's folder or one inside it (files its manifest does not list)."""
    target = Path(folder)
    if os.path.isdir(target):
        if not os.access(target, os.W_OK | os.X_OK):
            raise TargetNotAFile(f"{flag} {target} is a folder this user may not write in: not written")
    elif os.path.lexists(target):
        raise TargetNotAFile(f"{flag} {target} is {_in_place(target)}, not a folder: not written")
    else:
        try:
            _check_folders(target, made=True)
        except TargetNotAFile as err:
            raise TargetNotAFile(f"{flag} {err}") from None
    # a name inside it, for the dataset's own folder is no place for them either
    if dataset := _dataset_folder_above(target / "written"):
        raise TargetNotAFile(f"{flag} {target}: what is written in it lies inside the dataset {dataset}, whose "
                             "manifest does not list it (verify would refuse the dataset): write it outside")


def checked_then_run(parser: argparse.ArgumentParser, outputs: Iterable[str | os.PathLike[str]],
                     work: Callable[[], object], caches: Collection[str | os.PathLike[str]] = (),
                     folders: Iterable[str | os.PathLike[str]] = (), flag: str = "out") -> None:
    """`check_output` on each of `outputs` in turn (the folders they lie in made by `work`; one of `caches`, written
    only when missing, not `always_written`), `check_output_folder` on each of `folders`, then `work`: the first
    refused is `parser`'s error line (its usage, then `PROG: error: FLAG ...`, exit 2), before the work; what
    `write_whole` refuses at the write (a file made a link while the work ran) is `PROG: ...`, exit 1, not a traceback
    after it. Each measurement script spelt both out around its work (ten lines, five times). Both lines are `said`:
    they quote the output's path, whose escapes drove the terminal and whose line break printed a forged line of its
    own."""
    try:
        for path in outputs:
            check_output(flag, path, folder_made=True, always_written=path not in caches)
        for folder in folders:
            check_output_folder(flag, folder)
    except TargetNotAFile as err:
        parser.error(said(err))
    try:
        work()
    except TargetNotAFile as err:  # what became one while the work ran
        raise SystemExit(f"{parser.prog}: {said(err)}") from None


def _check_folders(target: Path, made: bool, writable: bool = True) -> None:
    """`target`'s folder must be there, or with `made` (the command makes it) the nearest of those above it that is:
    a folder (through a link too), with `writable` one this user may write in. A file in the way was a traceback
    (NotADirectoryError), or mkdir's after the work; a folder one may not write in (another user's, a read-only copy)
    a PermissionError after it (evaluate's "the job failed", exit 1, once the split was scored)."""
    for above in target.parents:
        if os.path.isdir(above):
            if writable and not os.access(above, os.W_OK | os.X_OK):  # root: only a read-only filesystem (EROFS)
                raise TargetNotAFile(f"{target}: {above} is a folder this user may not write in: not written")
            return
        if not made and not os.path.lexists(above):
            raise TargetNotAFile(f"{target}: its folder {above} does not exist: not written")
        if os.path.lexists(above):
            raise TargetNotAFile(f"{target}: {above} is {_in_place(above)}, not a folder: not written")


def _in_place(path: Path) -> str:
    """What lies at `path`, which is no folder, in words (through a link: a link to nothing where it leads nowhere)."""
    mode = os.stat(path).st_mode if os.path.exists(path) else None
    return "a link to nothing" if mode is None else "a file" if stat.S_ISREG(mode) else kind_of(mode)


def _dataset_folder_above(target: Path) -> str | None:
    """layout.dataset_folder_above, asked only where a folder above `target` has a dataset's marks."""
    if not any(os.path.lexists(above / mark) for above in Path(os.path.realpath(target)).parents
               for mark in DATASET_MARKS):
        return None
    from pipeline.io.layout import dataset_folder_above  # Beam: only here (layout does not import this module)

    return dataset_folder_above(str(target))


def _mode_for(target: Path) -> int:
    """The mode of the file `target` replaces, NEW_MODE when there is none; `TargetNotAFile` when it is no file or
    a symbolic link (the rename would replace the link, the file it leads to left as it was)."""
    if target.is_symlink():
        raise TargetNotAFile(f"{target} is a symbolic link (to {printable(os.readlink(target), limit=200)}): the "
                             "file is written whole under its name, which would replace the link and leave the file it "
                             "leads to as it was; give that file's own path")
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
