"""One run at a time per output folder: a lock object created only if absent.

Two runs writing one `--output` would interleave their shards and one run's rows would vanish
from the other's manifest. The lock is `OUTPUT/_lock.json`, created atomically — `O_CREAT|O_EXCL`
on local disks, a conditional upload (`if_generation_match=0`) on gs:// — holding the run id,
host, process id and start time (and a random nonce). A second run is refused with one line naming the holder.

A killed run cannot remove its lock. On the same host a lock whose process no longer exists is
stale and is taken over (so is one whose pid a process started after the lock was written has now), unless a live
process still holds the flock its writer keeps on it while it runs (a run in another pid namespace of the machine);
elsewhere (another machine, a Dataflow launcher) the message says which run holds it and since when,
and the operator removes the file once that run is known to be gone.
Writing the lock is also the launch-time check that `--output` is writable at all.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import socket
import stat
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems

from pipeline.io.file_reads import is_remote
from pipeline.io.files import read_regular_file
from pipeline.io.gcs_client import bucket_and_name, storage_client
from pipeline.io.stopping import ending_at_once
from pipeline.printable import printable, quoted

LOCK = "_lock.json"
LOCK_TEMPORARY = f"{LOCK}.tmp-"  # the lock is written under this name plus a random tail, then linked


class OutputLocked(Exception):
    pass


class OutputNotWritable(Exception):
    pass


class LockIsALink(OutputLocked):
    """The lock's name is a symbolic link, which no run makes: no run is said to hold it (`OutputLock.acquire`)."""


@dataclass(frozen=True)
class Holder:
    run_id: str
    host: str
    pid: int
    started: str
    # The writer's start in the kernel's own count (Linux: the boot's id, the process's start in clock ticks after
    # boot), which no change of the wall clock moves; "" and None where unknown (another system, an older lock)
    boot: str = ""
    ticks: int | None = None
    # Random, one a lock taken: which taking of a lock this is, beside the fields above, which two takings may share
    # (a fixed run id, pid 1 in containers of one host name started in the same second). "" in an older lock.
    nonce: str = ""

    def describe(self) -> str:
        # Read from a file in the output folder, outside input: each field escaped and cut (a lock's fields quoted
        # whole put terminal escapes and line breaks into the refusal, up to the 64 KiB a lock is read to)
        return (f"run {_shown(self.run_id)} (pid {_shown(str(self.pid))} on {_shown(self.host)}, started "
                f"{_shown(self.started)})")


SHOWN_CHARACTERS = 100  # of each field of a lock in a line (a run's id is 24, a host name at most 64)


def _shown(text: str) -> str:
    # cut where no escape is split: cut after escaping, `\x1b` could end as `\x1`, read as other text
    shown = printable(text)
    return (shown if len(shown) <= SHOWN_CHARACTERS
            else f"{printable(text, limit=SHOWN_CHARACTERS)}… ({len(shown):,} characters)")


def _this_run(run_id: str) -> Holder:
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ticks = _start_ticks(os.getpid())
    return Holder(run_id, socket.gethostname(), os.getpid(), started, _boot_id() if ticks is not None else "", ticks,
                  uuid.uuid4().hex)


def _boot_id() -> str:
    """This boot's id (Linux; a container's is its host's), "" where unknown."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii", errors="replace") as boot:
            return boot.read(64).strip()
    except OSError:
        return ""


def _start_ticks(pid: int) -> int | None:
    """When the process that has `pid` now started, in clock ticks after boot (Linux's /proc); None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
    except (OSError, ValueError, IndexError):
        return None


def _pid_alive(pid: int) -> bool:
    if not 0 < pid < 2**31:  # not a process id (0 and -1 would ask about whole groups): taken as alive, never stale
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


# A lock's `started` is written to the second, a process's start time read to the clock tick from a boot time to the
# second: a process that started more than this after the lock was written is certainly not its writer.
STARTED_SLACK_S = 2.0


def _process_started(pid: int) -> float | None:
    """When the process that has `pid` now started, in seconds since the epoch (Linux's /proc); None where unknown."""
    ticks = _start_ticks(pid)
    if ticks is None:
        return None
    try:
        with open("/proc/stat", encoding="ascii", errors="replace") as machine:
            booted = next(int(line.split()[1]) for line in machine if line.startswith("btime "))
        return booted + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _writer_alive(holder: Holder) -> bool:
    """Whether the process that wrote the lock may still run: its pid names a process that started before the lock
    was written. A pid is given again once its process is gone: a container restarted after its run was killed gives
    the new run (its first process) the dead run's pid and host name, and that lock named a live process, the rerun
    itself, so every rerun was refused for good. Taken as alive wherever the start times cannot be read.

    A lock that records its writer's start in clock ticks after this very boot is judged by them alone: the pid's
    process is its writer if it started at that tick. Its start read as a time of day moves with the wall clock, and
    a clock stepped forward after the lock was written (a virtual machine resumed and set right, NTP's first step
    after boot) made a live run's process look started after its own lock: a second run took the lock over, and two
    runs wrote one output."""
    if not _pid_alive(holder.pid):
        return False
    if holder.ticks is not None and holder.boot and holder.boot == _boot_id():
        now = _start_ticks(holder.pid)
        return now is None or now == holder.ticks
    started = _process_started(holder.pid)
    try:
        written = dt.datetime.strptime(holder.started, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()
    except ValueError:
        return True
    return started is None or started <= written + STARTED_SLACK_S


def _gcs_object(path: str) -> Any:
    """The storage client's handle of the object at gs:// `path` (nothing is asked of the store yet), through the
    client Beam's filesystem builds for the path, which every other gs:// call of the launcher goes through (its
    checks, the lock's read): the same credentials, project and headers (`storage_client`)."""
    bucket, name = bucket_and_name(path)
    return storage_client(path).bucket(bucket).blob(name)


def _create_if_absent(path: str, payload: bytes) -> tuple[bool, int | None]:
    """(True if this call created the file, False if it already existed; on a local disk, a descriptor of the file
    created holding `_hold`'s flock on it, for the run to keep open while it holds the lock)."""
    if path.startswith("gs://"):
        from google.api_core.exceptions import PreconditionFailed

        try:
            _gcs_object(path).upload_from_string(payload, if_generation_match=0)
        except PreconditionFailed:
            return False, None
        return True, None
    if is_remote(path):  # another Beam filesystem without a conditional create: best effort
        if FileSystems.exists(path):
            return False, None
        with FileSystems.create(path) as handle:
            handle.write(payload)
        return True, None
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    # The lock appears with its content or not at all: written beside it, then hard-linked to its name (a link
    # fails if the name exists). Created empty and then written, a kill in between left an empty lock that
    # no later run could read, and so none could take over as stale.
    temporary = os.path.join(os.path.dirname(path), f"{LOCK_TEMPORARY}{uuid.uuid4().hex}")
    held: int | None = None
    try:
        # Held before it is linked: the lock never shows without its flock (`_held_by_a_live_process`). Held before
        # it is written, too: a temporary holding its writer's lock is never without its flock, which tells a live
        # writer's from a killed run's leftover in every pid namespace (`_temporary_is_stale`); written and closed
        # first, one judged before its flock was removed under its writer. Open for writing: an NFS client emulates
        # flock() by a lock of the whole file's bytes, whose exclusive kind needs the file open for writing
        # (flock(2)); read-only, it was refused there, unsaid, and the lock held no flock. Written through the
        # descriptor holding it: there a close of any other descriptor of the file drops the process's lock.
        held = _hold(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o666))
        written = 0
        while written < len(payload):
            written += os.write(held, payload[written:])
        try:  # on the server before the lock shows, as the close that wrote it did (NFS writes back at close)
            os.fsync(held)
        except OSError as err:
            if err.errno not in (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):  # a filesystem that keeps no sync
                raise
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False, None
        except OSError as err:
            if err.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EXDEV):
                raise
            return _create_exclusively(path, payload)  # a filesystem without hard links
        created, held = held, None
        return True, created
    finally:
        if held is not None:
            os.close(held)
        with contextlib.suppress(OSError):
            os.unlink(temporary)


STALE_TEMPORARY_SECONDS = 60
# How long a release waits for another thread's release of the same lock to end (the main thread's as the run ends, a
# stop's thread's): past it, an object store's delete that does not answer, it goes on by itself. One second: a stop's
# grace (5 s), its cleanup (3 s) and this stay under docker's and Cloud Run's 10 s before their SIGKILL.
RELEASE_WAIT_S = 1.0
MAX_LOCK_BYTES = 64 * 1024  # a lock is ~150 bytes; a larger file there is read no further


def _temporary_is_stale(entry: os.DirEntry[str], host: str) -> bool:
    """Whether a lock temporary is a killed run's leftover (a kill between writing it and unlinking it, which
    can come after the lock is linked): one a minute old, or one whose writer was a process on this machine
    that no longer exists; and in either case, held by no live process's flock, which its writer takes as it
    creates it. A live run's exists for a moment only, and says so by its live process, or by its flock where its pid
    means nothing here (a run in another pid namespace of the machine sharing its host name) or its age is misread
    (the wall clock stepped forward): removed, its writer's link then failed, "No such file or directory"."""
    if not entry.is_file(follow_symlinks=False):  # only what `_create_if_absent` writes (a FIFO would block)
        return False
    if time.time() - entry.stat().st_mtime <= STALE_TEMPORARY_SECONDS:
        try:  # read only as a regular file: one swapped for a named pipe since it was judged waited for a writer
            holder = _parsed(read_regular_file(entry.path, MAX_LOCK_BYTES))
        except ValueError:  # no regular file now, or larger than any lock: no temporary a run wrote
            return False
        if not (holder is not None and holder.host == host and not _writer_alive(holder)):
            return False
    # Asked last, and of a temporary its age or its pid already says is a leftover: a writer takes its flock again
    # where this shared one, held for a moment, made its own fail (`_hold`)
    return not _held_by_a_live_process(entry.path)


def _remove_stale_temporaries(path: str, host: str) -> None:
    """The lock's temporaries that killed runs left. Local disks only (none elsewhere). Housekeeping, done once the
    lock is taken: a folder that cannot be listed (one the run may write but not read, an NFS hiccup) is left as it
    is (its failure raised OutputNotWritable with the lock made, which then no run released)."""
    if is_remote(path):
        return
    try:
        entries = list(os.scandir(os.path.dirname(path) or "."))
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(LOCK_TEMPORARY):
            with contextlib.suppress(OSError):
                if _temporary_is_stale(entry, host):
                    os.unlink(entry.path)


# How long a takeover waits for the flock of the dead run's lock file (`_remove_dead_lock`), which another takeover
# holds for a moment; a process holding it longer is none that takes locks over.
TAKEOVER_WAIT_S = 5.0
TAKEOVER_PAUSE_S = 0.01


# How long a run watches a lock whose writer's pid names no process here but whose file a live process holds a flock
# on: a run in another pid namespace of the machine (held for good), or another run's takeover of a dead run's lock,
# which holds that flock for a moment (`_remove_dead_lock`) and then removes the file or lets it go.
TAKEOVER_SEEN_S = 1.0


def _taken_over_meanwhile(path: str, holder: Holder) -> bool:
    """Whether the lock at `path`, `holder`'s, whose writer's pid names no process here and whose file's flock a live
    process held, stopped being that file or that flock came free within TAKEOVER_SEEN_S: another run's takeover of it,
    under way as it was looked at. Taken for the live run's own, the run was refused naming the dead run, "if that run
    is gone, remove OUTPUT/_lock.json", a file that by then held the lock of the run that took it over."""
    deadline = time.monotonic() + TAKEOVER_SEEN_S
    while time.monotonic() < deadline:
        time.sleep(TAKEOVER_PAUSE_S)
        if _holder(path) != holder or not _held_by_a_live_process(path):
            return True
    return False


class _LockFileHeld(Exception):
    """The dead run's lock file's flock held by another process for TAKEOVER_WAIT_S."""


def _remove_dead_lock(path: str, judged: Holder) -> None:
    """Removes the lock at `path` that `judged` holds, judged a dead run's, taking turns with other takeovers on this
    machine (the only ones there are) by an exclusive flock on that very file: the first takes it, sees that `path`
    still names the file it holds and that the file still holds `judged`, and removes it; one after it finds the
    name gone or naming another file (the first's own lock) and removes nothing, and the caller judges again. Two runs
    that both judged it stale took turns to delete "it", and the second deleted the lock the first had just made, so
    both ran. A flock taken proves no live process holds the file (its writer would, `_hold`). Taken on the lock's
    folder before, that flock clashed with `flock OUTPUT pass-pipeline run --output=OUTPUT` (flock(1), the usual guard
    of a scheduled job against runs that overlap, holding the folder's flock for the whole run): after a killed run,
    every scheduled run was refused until someone removed the lock; and a folder the run may write and pass through
    but not read (mode 0300) could not be opened for its flock. `_LockFileHeld` where another process holds the file's
    flock past TAKEOVER_WAIT_S; OSError where the disk refuses the file or its removal."""
    try:
        try:  # for writing where one may: an NFS client's exclusive flock needs it (`_create_if_absent`)
            descriptor = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_NOFOLLOW)
        except PermissionError:  # another user's lock: on a local disk a flock needs no more
            descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except FileNotFoundError:  # another takeover removed it, before either open: judged again
        return
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode) or _parsed(_read_all(descriptor)) != judged:
            return  # another file by now (a takeover's own lock, whose writer holds its flock): judged again
        deadline = time.monotonic() + TAKEOVER_WAIT_S
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise _LockFileHeld() from None
                time.sleep(TAKEOVER_PAUSE_S)
        held, named = os.fstat(descriptor), os.stat(path, follow_symlinks=False)
        if (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino):
            os.unlink(path)
    except FileNotFoundError:  # removed by the takeover before this one: judged again
        return
    finally:
        os.close(descriptor)  # and with it the flock: a takeover waiting on this file finds its name gone


def _read_all(descriptor: int) -> bytes:
    """The file's first MAX_LOCK_BYTES, from its start."""
    chunks, size = [], 0
    while size < MAX_LOCK_BYTES and (chunk := os.pread(descriptor, MAX_LOCK_BYTES - size, size)):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _create_exclusively(path: str, payload: bytes) -> tuple[bool, int | None]:
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False, None
    try:
        _hold(descriptor)
        written = 0
        while written < len(payload):
            written += os.write(descriptor, payload[written:])
    except BaseException:
        os.close(descriptor)
        raise
    return True, descriptor


# How long a writer takes its flock again while another process holds one on its file: a probe's shared flock
# (`_held_by_a_live_process`), dropped the moment it is taken. No writer's file is held by another for longer.
HOLD_WAIT_S = 1.0
HOLD_PAUSE_S = 0.001


def _hold(descriptor: int) -> int:
    """`descriptor` with an exclusive flock on its file, which the kernel drops when the last descriptor of it closes:
    as the process ends, however it ends (a SIGKILL, the OOM killer). Nothing where the filesystem keeps no flocks.
    Taken again for up to HOLD_WAIT_S while another process holds one: taken once, a probe's flock held at that
    moment made it fail, unsaid, and the lock was linked holding none."""
    deadline = time.monotonic() + HOLD_WAIT_S
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() < deadline:
                time.sleep(HOLD_PAUSE_S)
                continue
        except OSError:
            pass
        return descriptor


def _held_by_a_live_process(path: str) -> bool:
    """Whether a live process holds the flock of the lock file at `path` (`_hold`): its writer, wherever its pid is
    seen. A process's pid names it only in its own pid namespace: two containers sharing a host name (`docker run
    --network=host`, a Kubernetes pod on the host's network) and an output folder read each other's pid as a dead
    one's (or as another process's, started at another tick), and the second run took the first one's live lock over,
    two runs writing one output. A flock is the kernel's, seen from every namespace on the machine. False where none
    can be told (a lock written before locks held one, a filesystem without flocks, no regular file there)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a named pipe put there is not waited on
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            return False
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)  # shared: two runs asking at once do not clash
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(descriptor)  # and with it the shared flock, if it was taken
    return False


def _parsed(payload: bytes) -> Holder | None:
    try:
        data: Any = json.loads(payload)
        ticks = data.get("ticks")
        return Holder(str(data["run_id"]), str(data["host"]), int(data["pid"]), str(data["started"]),
                      str(data.get("boot") or ""), ticks if isinstance(ticks, int) and not isinstance(ticks, bool)
                      else None, str(data.get("nonce") or ""))
    except Exception:  # unreadable or half-written: treated as held by an unknown run
        return None


def _link_target(path: str) -> str | None:
    """Where the lock at `path` leads if it is a symbolic link (on a local disk), else None (a file, nothing there)."""
    if is_remote(path):
        return None
    try:
        return os.readlink(path)
    except OSError:  # no link (EINVAL), or gone since
        return None


def _holder(path: str) -> Holder | None:
    try:
        return _read_holder(path)
    except Exception:  # unreadable: treated as held by an unknown run
        return None


def _read_holder(path: str) -> Holder | None:
    # Only a regular file of at most MAX_LOCK_BYTES (a lock is written as one): a named pipe there was read for
    # ever, waiting for a writer (a refresh finishing a publish in a release hung for good), and a link to
    # /dev/zero until memory ran out.
    return _parsed(read_regular_file(path, MAX_LOCK_BYTES))


# A release reads the lock again this many times, RELEASE_READ_PAUSE_S apart, when a read fails (an object store's
# transient error): a lock read as "not this run's" was marked released and stayed, and on gs:// nothing takes a
# lock over, so the next month's run was refused until someone removed it.
RELEASE_READS = 3
RELEASE_READ_PAUSE_S = 0.1


def _read_holder_and_generation(path: str) -> tuple[Holder | None, int | None]:
    """The lock's holder and, on gs://, the generation of the object read (None elsewhere, and where it is gone): a
    release deletes that generation only. Read raw (as Beam's reader reads it: a gzip-encoded object is not inflated)
    and only up to MAX_LOCK_BYTES, as `_read_holder` reads a lock."""
    if not path.startswith("gs://"):
        return _read_holder(path), None
    found = _gcs_object(path)
    found = found.bucket.get_blob(found.name)
    if found is None:
        return None, None
    generation = int(found.generation)
    if (found.size or 0) > MAX_LOCK_BYTES:
        raise ValueError(f"{path} is over {MAX_LOCK_BYTES:,} bytes, more than any run writes")
    if found.size == 0:
        # An empty lock (emptied by hand: the store keeps no half-written object) has no bytes to read, and GCS answers
        # the ranged read of one 416: read three times, it was said to be a lock that could not be read to release it
        return None, generation
    data = found.download_as_bytes(raw_download=True, if_generation_match=generation, end=MAX_LOCK_BYTES)
    if len(data) > MAX_LOCK_BYTES:
        raise ValueError(f"{path} is over {MAX_LOCK_BYTES:,} bytes, more than any run writes")
    return _parsed(data), generation


def _holder_for_release(path: str) -> tuple[Holder | None, int | None] | Exception:
    """The lock's holder and its object's generation (`_read_holder_and_generation`), or the last read's error when
    every read failed. A lock that is no regular file or is larger than any lock (`read_regular_file`'s ValueError: a
    named pipe, a device, a link to one) is not this run's, which wrote a regular file of ~150 bytes: no holder at
    once, as any other run's (read again, each release waited 0.2 s and said it could not be read). One gone by the
    last read leaves nothing to release: no holder either (a release said to remove a lock that was not there)."""
    failed: Exception = OSError("not read")
    for attempt in range(RELEASE_READS):
        if attempt:
            time.sleep(RELEASE_READ_PAUSE_S)
        try:
            return _read_holder_and_generation(path)
        except ValueError:
            return None, None
        except Exception as err:
            failed = err
    try:
        gone = not FileSystems.exists(path)
    except Exception:  # the store still not answering: whose it is cannot be told
        gone = False
    return (None, None) if gone else failed


class OutputLock:
    """`with OutputLock(output, run_id):` — held for the whole run, released however it ends."""

    def __init__(self, output: str, run_id: str, path: str = "") -> None:
        # `path`: a lock of one file (`review apply`'s STORE.lock) rather than of a folder's run
        self.path = path or FileSystems.join(output, LOCK)
        self.output = output
        # what an error says could not be written: `review apply` has no --output ("cannot write to --output STORE")
        self._written = path or f"--output {output}"
        self.me = _this_run(run_id)
        self._releasing = threading.Lock()
        self._turn_holder: int | None = None  # the thread whose release holds the turn
        self._released = False
        self._held: int | None = None  # the descriptor holding the lock file's flock while the run holds it

    def acquire(self) -> None:
        self._released = False
        payload = json.dumps(self.me.__dict__, sort_keys=True).encode()
        for _ in range(3):  # tries again after removing a stale lock, or after another run's takeover of one
            try:
                created, self._held = _create_if_absent(self.path, payload)
                if created:
                    _remove_stale_temporaries(self.path, self.me.host)
                    return
            except OSError as err:
                raise OutputNotWritable(f"cannot write to {self._written}: "
                                        f"{err.strerror or type(err).__name__}") from None
            except Exception as err:  # a filesystem client's own error (permissions, missing bucket)
                raise OutputNotWritable(f"cannot write to {self._written}: {type(err).__name__}: "
                                        f"{str(err)[:200]}") from None
            linked = _link_target(self.path)
            if linked is not None:
                # No run makes one (a run links its lock as a file of its own). Followed, one leading to a dead run's
                # lock was judged stale and then refused "cannot be taken over (Too many levels of symbolic links)"
                # (the takeover opens the lock without following links), one leading nowhere "in use by another run":
                # said as what it is, neither followed nor removed (whose it is, only the operator knows)
                raise LockIsALink(f"{self.output} cannot be locked: {self.path} is a symbolic link (to "
                                   f"{_shown(linked)}), which no run makes; remove the link if no run uses it, and "
                                   f"run again")
            holder = _holder(self.path)
            if holder == self.me and is_remote(self.path):
                # This very lock (its run, host, pid, start and nonce): a conditional create the object store carried
                # out and whose answer was lost, which the client retried and found there. Read as another run's, the
                # run was refused by itself, and the lock it made stayed on gs://, where no run takes a lock over.
                return
            if self._stale(holder):
                # Left by a killed run on this machine: removed only as the file judged, under its flock
                # (`_remove_dead_lock`), then the lock made again
                gone = f"{self.output} holds the lock of a run that is gone ({holder.describe() if holder else ''})"
                try:
                    if holder is not None:  # always so where `_stale` holds: said for the type's sake
                        _remove_dead_lock(self.path, holder)
                except _LockFileHeld:
                    raise OutputLocked(
                        f"{gone}, and another process holds a lock (flock) of that file, which taking it over waited "
                        f"for {TAKEOVER_WAIT_S:g} s; remove {self.path} once no run uses the folder, and run again"
                    ) from None
                except OSError as err:
                    # The lock not to be removed (a sticky folder, another user's lock), a disk without flocks: out of
                    # the lock, "the job failed", exit 1, as if it had run
                    raise OutputLocked(f"{gone}, which cannot be taken over ({err.strerror or type(err).__name__}); "
                                       f"remove {self.path} and run again") from None
                continue
            if holder is not None and self._dead_by_its_pid(holder) and _taken_over_meanwhile(self.path, holder):
                continue  # judged again: most likely the lock of the run that took it over, a live run's
            who = holder.describe() if holder else "another run"
            raise OutputLocked(f"{self.output} is in use by {who}; if that run is gone, remove {self.path}")
        raise OutputLocked(f"{self.output}: could not take the lock {self.path}")

    def _stale(self, holder: Holder | None) -> bool:
        return bool(holder and self._dead_by_its_pid(holder) and not _held_by_a_live_process(self.path))

    def _dead_by_its_pid(self, holder: Holder) -> bool:
        """Whether the lock is of a run on this machine whose pid names no process here, or another one now."""
        return holder.host == self.me.host and not is_remote(self.path) and not _writer_alive(holder)

    def release(self) -> None:
        """Deletes the lock if it is this run's, once. The main thread (as the run ends) and a stop's thread
        (io/stopping.py) may both release it. Each found it theirs before either deleted it, and the later delete
        removed whatever lock was there by then: another run's, taken in between. They take turns now, and the
        second finds it released; one that waited RELEASE_WAIT_S for the other (a delete not answering) goes on as
        before. A delete that finds nothing there has nothing to say (it said the lock could not be released, just
        before the process ended)."""
        # Not waited for: a turn the main thread holds while a second signal's handler ends the process (io/stopping.py
        # releases from a thread then, and the main thread, held in the handler, never goes on to hand the turn back).
        halted = self._turn_holder == threading.main_thread().ident and ending_at_once()
        turn = self._releasing.acquire(timeout=0 if halted else RELEASE_WAIT_S)
        try:
            if turn:
                self._turn_holder = threading.get_ident()
            if self._released:
                return
            read = _holder_for_release(self.path) if FileSystems.exists(self.path) else (None, None)
            if isinstance(read, Exception):
                # Whose it is cannot be told: left, and not marked released, so that a later release (the run's own
                # as it ends, after a stop's) reads it again. Said, not raised: what the run did stands.
                # named as --output was typed: its line break printed a forged line of its own. The lock is a file
                # to remove, so in Python's quoting (escaped as a message, a backslash and an n read as a line break)
                print(f"pass-pipeline: the lock {quoted(self.path)} could not be read to release it "
                      f"({type(read).__name__}); remove it once no run is using {quoted(self.output)}",
                      file=sys.stderr)
                return
            holder, generation = read
            if holder == self.me and generation is not None:
                self._delete_generation(generation)
            elif holder == self.me:
                try:
                    FileSystems.delete([self.path])
                except BeamIOError:
                    if FileSystems.exists(self.path):
                        raise
            self._released = True
            if self._held is not None:  # after the delete: the lock is never there without its flock
                held, self._held = self._held, None
                os.close(held)
        finally:
            if turn:
                self._turn_holder = None
                self._releasing.release()

    def _delete_generation(self, generation: int) -> None:
        """Deletes the lock object on gs:// if it is still the generation read and found this run's. Deleted by name,
        an object removed by hand and retaken by a run on another machine since the read was that run's lock: it
        was deleted, and a third run could start beside it. Another generation now is not this run's: left, and said
        (the store answers 412, nothing deleted). One gone since has nothing to release."""
        from google.api_core.exceptions import NotFound, PreconditionFailed

        try:
            _gcs_object(self.path).delete(if_generation_match=generation)
        except NotFound:
            pass
        except PreconditionFailed:
            now = _holder(self.path)
            print(f"pass-pipeline: the lock {printable(self.path)} is no longer this run's: it was replaced since this "
                  f"run read it (now held by {now.describe() if now else 'another run'}); left as it is",
                  file=sys.stderr)

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
