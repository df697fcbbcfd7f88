"""`pass-pipeline verify RELEASE`: every file against the manifest, each hashed as a stream and then, if it
matched, read as a stream (one record held at a time), the formats against each other and the rejections, ledger and
near-duplicate index against the kept photos (release/verify.py); one line per problem."""

from __future__ import annotations

import os

from apache_beam.io.filesystems import FileSystems

from pipeline.commands.run import UsageError
from pipeline.io.file_reads import spaced_path_problem
from pipeline.io.files import is_remote, matching
from pipeline.io.layout import manifest_of
from pipeline.io.stopping import stops_saying
from pipeline.printable import printable, quoted
from pipeline.release.verify import MANIFEST, staging_note, verify

WHAT_TO_GIVE = "give a dataset's folder: a run's --output, or ROOT/releases/NAME of a refresh"


def verify_command(release: str, previous: str = "") -> int:
    """0 for an intact dataset, 1 with one line per problem (and, beside a run's dataset, a note line on the staging
    folders runs left there: `staging_note`); a folder that holds no manifest.json at all is no
    dataset to check (a typo, a file, the releases' root): one usage line, exit 2, as for any command. Stopped
    (SIGTERM, Ctrl-C), it says the dataset was not checked to the end and that nothing was changed: verify only
    reads (io/stopping.py)."""
    with stops_saying(lambda: f"{release[:200]} was not (fully) checked; nothing was changed"):
        return _verify(release, previous)


def _verify(release: str, previous: str = "") -> int:
    for what, value in (("the dataset's folder", release), ("--previous", previous)):
        if problem := spaced_path_problem(what, value):
            raise UsageError(problem)
    if previous and not FileSystems.exists(FileSystems.join(previous, MANIFEST)):
        raise UsageError(f"--previous {previous[:200]} holds no manifest.json, so no published release; give the "
                         "folder of the release this one was made from")
    if previous and not matching(FileSystems.join(previous, "parquet", "*.parquet")):
        # Its photos are read from its Parquet shards, as a refresh reads them (one without them is refused there too)
        raise UsageError(f"--previous {previous[:200]} holds no parquet/*.parquet shards, where its photos are read")
    if not FileSystems.exists(FileSystems.join(release, MANIFEST)):
        shown = release[:200]
        if not is_remote(release) and os.path.isfile(release):
            raise UsageError(f"{shown} is a file, not a dataset's folder; {WHAT_TO_GIVE}")
        if not is_remote(release) and not os.path.exists(release):
            raise UsageError(f"{shown} does not exist; {WHAT_TO_GIVE}")
        listed = matching(FileSystems.join(release, "releases", "*", MANIFEST))
        releases = sorted(path.split("/")[-2] for path in listed)
        if releases:  # a refresh's root: told of a stopped run's publish, which does not apply to it
            shown_releases = ", ".join(releases[-3:]) + (f" and {len(releases) - 3} more" if len(releases) > 3 else "")
            raise UsageError(f"{shown} is a refresh's root, which holds releases ({shown_releases}), not a dataset; "
                             f"give one: {FileSystems.join(shown, 'releases', releases[-1])}")
        raise UsageError(f"{shown} holds no manifest.json, so no published dataset (a run stopped while publishing "
                         f"is finished by the next run into the folder); {WHAT_TO_GIVE}")
    problems = [f"{problem.path}: {problem.message}" for problem in verify(release, previous or None)]
    checked = None if problems else _checked(release)
    if not problems and checked is None:  # "OK: 0 files" was said of a dataset whose manifest went as it was checked
        # a path, in Python's quoting as every report line's (`quoted`)
        problems.append(f"{quoted(FileSystems.join(release, MANIFEST))}: unreadable once checked (changed while verify "
                        "ran?)")
    for line in problems:
        print(line)
    note = staging_note(release)
    if note:
        print(note)
    # The folder as typed (pasted from a listing, a script's variable): its escapes drove the terminal, its line
    # break printed a forged verdict line of its own. A message's escaping, not a report line's quoting: it names
    # the dataset the verdict is on, no file to act on.
    print(f"{printable(release)}: {checked or f'{len(problems)} problem(s)'}")
    return 0 if not problems else 1


def _checked(release: str) -> str | None:
    """'OK' with what was checked (a bare 'OK' left a newcomer guessing what it vouched for); None when the manifest
    can no longer be read."""
    # The one verify just found whole and well formed, read again as bounded: replaced since (by a pipe, a link to
    # /dev/zero), the read for this line hung or ran out of memory after every check had passed.
    manifest = manifest_of(release)
    if not isinstance(manifest, dict):  # gone, or replaced by another JSON value (a list) since verify read it
        return None
    totals, files = manifest.get("totals"), manifest.get("files")
    totals, files = totals if isinstance(totals, dict) else {}, files if isinstance(files, list) else []
    said = f"OK: {len(files)} files as manifest.json lists them (size, sha256, records)"
    if all(isinstance(totals.get(key), int) for key in ("input_rows", "kept", "rejected")):
        said += f"; {totals['kept']:,} photos kept and {totals['rejected']:,} rejected of {totals['input_rows']:,} rows"
    return said
