"""`pass-pipeline refresh`: the next release from the previous one (see pipeline/release/refresh.py)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from apache_beam.io.filesystem import BeamIOError
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.build import models_of
from pipeline.commands.run import (
    PublishFinished,
    UsageError,
    launch_options,
    run,
    summary,
)
from pipeline.io import report
from pipeline.io.file_pins import UNCHECKED, Pins
from pipeline.io.file_reads import dot_segment_problem, is_remote, spaced_path_problem
from pipeline.io.files import matching
from pipeline.io.layout import (
    STAGING,
    folder_names_in,
    is_published,
    linked_run_paths,
    misplaced_run_paths,
    release_dir,
    remove_folder,
    remove_staging,
    work_folder,
    work_names,
)
from pipeline.io.lock import LOCK, LOCK_TEMPORARY, OutputLock, OutputLocked, OutputNotWritable
from pipeline.options import DECLARED, GLOB_CHARACTERS, INHERITED, PassOptions
from pipeline.printable import printable
from pipeline.release import refresh as release
from pipeline.release.verify import MANIFEST, UNLISTED, run_leftover, verify


def models_for(argv: Sequence[str]) -> list[dict]:
    return models_of(PipelineOptions(list(argv)).view_as(PassOptions))


_DEFAULTS = {option.name: option.default for option in DECLARED}


def _not_default(arg: str) -> bool:
    """Whether `--key=value` is an inherited option set otherwise than by default (what the refresh names)."""
    key, _, value = arg.removeprefix("--").partition("=")
    default = _DEFAULTS.get(key)
    return key in INHERITED and value != (str(default).lower() if isinstance(default, bool) else str(default))


# The most characters of an inherited flag the refresh shows: a run's own values are paths and short lists.
_SAID_CHARACTERS = 200


def _said(arg: str) -> str:
    """An inherited `--key=value` as the refresh says it: the value comes from the previous release's manifest, outside
    input (a resealed one may hold a terminal escape, a line break and a forged line, or megabytes), so each
    unprintable character is written as Python writes it in a string and the flag is cut."""
    text = printable(arg)
    # cut where no escape is split: cut after escaping, `\x1b` could end as `\x1`, read as other text
    return (text if len(text) <= _SAID_CHARACTERS
            else f"{printable(arg, limit=_SAID_CHARACTERS)}… (cut: {len(arg):,} characters)")


def refresh(args: argparse.Namespace, rest: Sequence[str]) -> int:
    # A value no flag can take is one line now, not Beam's usage when models_for parses it; a typo of refresh's own
    # flags is named as such (--previos was "did you mean --previous_index?", --ouput "refresh needs --output").
    # Before the previous release is read and checked, and before any other gs:// call (`launch_options`)
    launch_options(rest, "refresh", ("previous", "output", "release"))
    if not args.output:
        raise UsageError("refresh needs --output (the releases' root)")
    # Set by the refresh itself after the user's flags, where the last one counts: given, they were ignored unsaid
    given = release.given_options(rest)
    if "cache" in given:
        raise UsageError("refresh keeps its own work cache (ROOT/work/NAME/cache), from which a killed refresh "
                         "resumes: --cache is not taken; leave it out")
    if "release_name" in given:
        raise UsageError("refresh names the release after its folder: give --release=NAME, not --release_name")
    for flag, value in (("--output", args.output), ("--previous", args.previous)):
        if problem := spaced_path_problem(flag, value):
            raise UsageError(problem)
    if problem := dot_segment_problem("--output", args.output):  # the releases' root, written under (as run's)
        raise UsageError(problem)
    if FileSystems.exists(FileSystems.join(args.output, MANIFEST)):
        # A run's dataset given as the root: the refresh made a "first release" under OUTPUT/releases/, from nothing,
        # inside the dataset it was meant to build on (which verify then refused for a folder it does not list).
        raise UsageError(f"--output {args.output[:200]} holds a dataset (manifest.json), not releases: refresh writes "
                         f"ROOT/releases/NAME; to build on that dataset give --previous={args.output[:200]} and "
                         "another --output")
    name = release.check_release_name(args.release or release.default_name())
    if set(args.output) & set(GLOB_CHARACTERS):  # said of the root given, not of the release folder under it
        raise UsageError(f"--output {args.output[:200]!r} holds one of {' '.join(GLOB_CHARACTERS)}, which file "
                         "patterns read as wildcards; name the folder without them")
    target = release.release_dir(args.output, name)
    previous = args.previous.rstrip("/") or None
    if previous == "latest":  # the monthly schedule: whatever was published last (none: the first release)
        previous = release.latest_release(args.output)
        if not previous:  # the schedule's first month, or a root misspelled: said, not a silent first release
            # the root as typed, escaped: its line break printed a forged line of its own
            print(f"refresh: {printable(args.output, limit=200)} holds no published release (--previous=latest): this "
                  "is the first release", flush=True)
        if previous and previous.rstrip("/").rsplit("/", 1)[-1] == name:
            # The rerun of a refresh stopped after it published (exit 143 in its cleanup, retried): this release is
            # `latest` now; that refresh built on the one made before it (compared below, as the release is published)
            previous = release.latest_release(args.output, besides=name)
    elif previous is None and (newest := release.latest_release(args.output)) and \
            newest.rstrip("/").rsplit("/", 1)[-1] != name:  # this very release: refused below as finished
        # --previous forgotten: a "first release" beside the others had none of the last one's takedown list, ledger or
        # carried images, published what that list keeps out, and as `latest` was what the schedule then built on.
        raise UsageError(f"{args.output[:200]} holds published releases (the newest: {newest[:200]}): give "
                         "--previous=latest (or a release's folder) to build on them; a first release is made under a "
                         "root that holds none")
    done = is_published(target)  # compared with this refresh below: its rerun is done, any other refused
    if not done:
        release.check_new_release(target, previous)
    # a typo: "does not match its manifest" misled
    if previous and not FileSystems.exists(FileSystems.join(previous, MANIFEST)):
        raise UsageError(f"--previous {previous[:200]} holds no manifest.json, so no published release: give a "
                         "published release's folder (ROOT/releases/NAME) or --previous=latest")
    # What verify read of the previous release (`file_pins`): the refresh reads those very files (its manifest, the
    # shards, the ledger) or refuses; read again by name, a file replaced or written since got through unchecked.
    pins = Pins()
    if previous and not done:  # a published release is only compared with this refresh: no verify again
        # the schedule's next month, where no rerun finished a publish a kill cut short
        problems, _, held = _problems_once_finished(previous, f"the previous release {printable(previous, limit=200)}:",
                                                    pins)
        if problems:
            raise UsageError(f"the previous release {previous} does not match its manifest "
                             f"({problems[0].path}: {problems[0].message}); run `pass-pipeline verify`{held}")
    # A release records these for the next refresh, which runs elsewhere (the schedule): a relative path would be
    # refused there, month after month, after being taken here.
    parsed = PipelineOptions(list(rest)).view_as(PassOptions)
    for key in INHERITED:
        if relative := release.relative_paths(key, str(getattr(parsed, key) or "")):
            raise UsageError(f"--{key}: {relative[0][:80]!r} is a relative path; a release records it for the next "
                             "refresh, which runs elsewhere: give it absolute")
        if other := release.not_files(key, str(getattr(parsed, key) or "")):
            raise UsageError(f"--{key}: {other[0][:80]!r} is no regular file (a pipe?): a refresh reads it twice (its "
                             "fingerprint, then the run) and a release records it for the next refresh; give a file")
    argv = release.refresh_argv(previous, args.output, name, rest, models_for,
                                pins=pins if previous and not done else UNCHECKED)
    made_by = release.fingerprint(previous, name, argv, rest, models_for)
    if done:
        return _published_earlier(args.output, target, name, made_by)
    inherited = [arg for arg in argv[len(rest):] if _not_default(arg)]
    if inherited:
        # Said first: a flag the user never typed may be what the launch then refuses (a takedown list moved). The
        # folder escaped too: `latest` takes its name from the releases' root, which others may write to.
        print(f"refresh: from {printable(previous or '', limit=200)}: {' '.join(map(_said, inherited))} (give a flag "
              "again to change it)", flush=True)
    if previous:
        _say_what_is_not_checked(PipelineOptions(argv).view_as(PassOptions))
    _tend_other_work(args.output, name)
    finished: list[dict | None] = []
    # Only an unpublished (resumed) release can be here: checked above. finish writes into the run's staging folder,
    # under its lock, so that the changelog, datasheet and release name are published with the run's files, the
    # manifest last: a refresh killed after publishing its files and before its changelog left a folder verify refused.
    try:
        stats = run(argv, overwrite=True, pins=pins, before_publish=lambda staging: finished.append(
            release.finish(staging, previous, name, made_by, pins if previous else UNCHECKED)))
    except PublishFinished as published:
        return _finished_earlier(args.output, target, previous, name, published, made_by)
    log = finished[0]
    print(summary(target, stats))
    if log:
        removed = sum(len(ids) for ids in log["removed"].values())
        print(f"  changes: {len(log['added'])} added, {removed} removed, {log['unchanged']} unchanged "
              f"(CHANGELOG.md)")
    _remove_work_cache(args.output, name)
    return 0  # as for run: a run whose rows are not all accounted for is refused before publishing (exit 4)


def _say_what_is_not_checked(opts: PassOptions) -> None:
    """A refresh takes the takedown list and the licence re-check from the previous release's manifest unless given
    again: a manifest without them (a first release made without, or one resealed with them taken out) made a refresh
    that applied no takedown and re-checked no carried licence, and said nothing of it."""
    unchecked = []
    if not opts.blocklist:
        unchecked.append("no takedown list applies (--blocklist)")
    if not opts.verify_license:
        unchecked.append("the carried photos' licences and deletions on Flickr are not re-checked (--verify_license)")
    if unchecked:
        print(f"refresh: {'; '.join(unchecked)}: neither given nor recorded in the previous release", flush=True)


def _published_earlier(root: str, target: str, name: str, made_by: dict) -> int:
    """The release is published. The rerun of the refresh that made it (a scheduler retrying the exit 143 of a refresh
    stopped in its cleanup, after publishing) is done: exit 0, nothing redone or touched, once verify passes the
    release. Any other refresh of that name (other options, inputs or previous release; or a release without the
    record, or edited by hand) is refused as before, naming why."""
    why = release.made_by_another(target, made_by)
    if why:
        # Said as a release that is whole, not as a failure: how to check it, and how this refresh differs.
        raise UsageError(f"release {name} is already published: {target}; a refresh of that name has finished "
                         f"(`pass-pipeline verify {target}` checks it), but {why}; name another --release to build "
                         "on it")
    # A kill after its manifest was moved in and before its publish plan and lock were removed (SIGKILL, the OOM
    # killer) leaves them in the release, which verify refuses and no run carries out: told done (exit 0), it was not.
    # The root as typed, escaped in the lines printed here (its line break printed a forged line of its own); the
    # refusals' are escaped whole by the command's error line.
    shown = printable(target)
    said = f"release {name} was published by this same refresh: {shown};"
    problems, finished, held = _problems_once_finished(target, said)
    if finished and not problems:
        _remove_work_cache(root, name)
        return 0
    if problems:
        raise UsageError(f"release {name} is already published by this same refresh: {target}, but it does not match "
                         f"its manifest ({problems[0].path}: {problems[0].message}); nothing was done: run "
                         f"`pass-pipeline verify {target}`{held}")
    print(f"refresh: release {name} was already published by this same refresh (the same previous release, inputs "
          f"and options): {shown}; nothing was done (`pass-pipeline verify {shown}` checks it)", flush=True)
    _remove_work_cache(root, name)
    return 0


def _problems_once_finished(release: str, said: str, pins: Pins = UNCHECKED) -> tuple[list, bool, str]:
    """(what verify finds in the published `release`, whether a publish a kill cut short there was finished first
    (`_finish_cut_publish`), which one line then says, `said` first; and where another run's lock kept it from
    that, '; ' and the lock's line: whose lock, which file to remove once that run is gone (the refusal said only
    verify's "_lock.json: not listed in the manifest", and verify says no more); where the disk refused a deletion,
    '; ' and why). Finished only where what a publish leaves (its lock, its staging folder) is all verify finds: the
    release is refused as it is otherwise (an edited file beside them), not refused once they were removed. `pins`:
    gets the versions of the files the last verify read (`file_pins`)."""
    def verified() -> list:
        pins.clear()
        return list(verify(release, pins=pins))

    problems = verified()
    leftovers_only = all(problem.message == UNLISTED and run_leftover(problem.path) for problem in problems)
    if (not problems and not _emptied_staging_left(release)) or not leftovers_only:
        return problems, False, ""
    try:
        if not _finish_cut_publish(release):
            return problems, False, ""
    except OutputLocked as err:
        return problems, False, f"; {err}"
    except OSError as err:  # the disk refused a deletion (a folder of another user): said, not "the job failed"
        return verified() or problems, False, f"; what a kill left of its publish could not be removed: " \
            f"{' '.join(str(err).split())[:300]}"
    problems = verified()
    if not problems:
        print(f"refresh: {said} a kill had left its publish's last step undone (its staging folder, its lock): "
              "finished now", flush=True)
    return problems, True, ""


def _emptied_staging_left(release: str) -> bool:
    """Whether the release holds a staging folder with no file in it: a stop as the publish removed it, its last step
    (the release whole, nothing for verify to find), left it there for good, as no run touches a published release."""
    folder = os.path.join(release, STAGING)
    if is_remote(release) or os.path.islink(folder) or not os.path.isdir(folder):
        return False
    return not any(files for _, _, files in os.walk(folder))


def _finish_cut_publish(target: str) -> bool:
    """Finishes what a kill after the manifest's move left of a publish in the release `target`: the lock of a
    process gone (taken over only on its own machine: `OutputLock`) and the staging folder of a publish whose
    manifest was moved in (`remove_staging` finishes it; any other plan is kept). Whether it could look: False where
    the folder cannot be written; `OutputLocked` where another run holds the lock (on another machine, where no run
    can tell whether it lives; a live one here). Left, they made verify refuse the release for good, and
    `--previous=latest` every later refresh, until someone removed them by hand. Nothing is done where a run folder
    or the staging folder is a link or no folder (a run refuses those before its lock): the staging folders were
    removed through it, wherever it led."""
    # The lock's temporary too: the one left alone where this very repair was killed taking a dead run's lock over (it
    # had removed that lock and not yet linked its own), which acquiring the lock removes as a dead process's.
    if not any(FileSystems.exists(FileSystems.join(target, leftover)) for leftover in (LOCK, STAGING)) and \
            not matching(FileSystems.join(target, f"{LOCK_TEMPORARY}*")):
        return False
    if linked_run_paths(target) or misplaced_run_paths(target):
        return False
    try:
        with OutputLock(target, "refresh (finishing a publish)"):
            remove_staging(target, keep_planned=True)
    except OutputNotWritable:
        return False
    return True


def _finished_earlier(root: str, target: str, previous: str | None, name: str, published: PublishFinished,
                      made_by: dict) -> int:
    """The rerun of this very refresh, killed while publishing, found its release and finished publishing it: the
    release is done (it used to end in exit 2, "a published release", though complete). Only a release of this name
    built on this previous one, by this refresh where it records which (`release.made_by_another`), is this refresh's;
    any other is refused as any run into a release is (`published`): a refresh with other options was told done."""
    manifest = report.read_manifest(target)
    if manifest.get("release") != name or manifest.get("previous_release") != (previous or None):
        raise published
    if release.FINGERPRINT in manifest and (why := release.made_by_another(target, made_by)):
        raise UsageError(f"{published}; {why}") from None
    stats = report.read_stats(target)
    print(f"refresh: release {name} was stopped while publishing; this run finished publishing it", flush=True)
    print(summary(target, stats))
    _remove_work_cache(root, name)
    return 0


def _remove_work_cache(root: str, name: str) -> None:
    """Once the release is published, its refresh's work cache (ROOT/work/NAME, images and scores a killed run resumes
    from) serves nothing: a rerun of this refresh finds the release and runs no job, another refresh names another
    release and another cache, and the next month's carries its images from the release itself. Left, one grew per
    month beside the releases (about the release's size again). A cache that cannot be removed is said and left: the
    release is published either way. Its rerun removes what a stop after the publish left of it."""
    folder = work_folder(root, name)
    # A link someone made there (the cache on a bigger disk): only the link goes (`remove_folder`), said as such
    try:
        linked = os.readlink(folder) if not is_remote(folder) and os.path.islink(folder) else None
        if not remove_folder(folder):
            return
        # Beam's delete of a gs:// folder logs each object the store refuses (a retention policy, a role without
        # delete) and returns: looked for again, not said to be removed while all there
        if is_remote(folder) and (left := matching(FileSystems.join(folder, "**"))):
            raise OSError(f"{len(left):,} of its objects are left, the store refused to delete them")
    except FileNotFoundError:  # removed meanwhile (another refresh removing the same published release's cache)
        return
    except (OSError, BeamIOError) as err:  # a folder of another user, a bucket refusing deletes: said, left
        print(f"refresh: the work cache {printable(folder, limit=200)} could not be removed "
              f"({printable(' '.join(str(err).split()), limit=300)}); the release is published: remove it by hand",
              file=sys.stderr, flush=True)
        return
    if linked is not None:  # never followed: it may lead anywhere
        print(f"refresh: removed the link {printable(folder, limit=200)} that held the work cache (the release is "
              f"published); what it led to, {printable(linked, limit=200)}, is left: remove the cache there by hand",
              flush=True)
        return
    print(f"refresh: removed the work cache {printable(folder, limit=200)} (the release is published)", flush=True)


def _tend_other_work(root: str, name: str) -> None:
    """The work caches under ROOT/work of refreshes other than this one. One whose release is published serves
    nothing (its removal failed, or a stop came between the publish and the removal, and that refresh was not rerun):
    removed, as its own rerun would. One whose release is not published is a refresh stopped before publishing, or
    one running now: said, never touched; so is one whose release's manifest.json is there but no published
    release's (unreadable, or refused by the disk or store: the reason said), said as such. A refresh retried under
    its default --release after midnight at a month's end names the new month: the stopped month's folder was left
    unpublished for good, with its cache (about the release's size), and nothing said so."""
    try:
        others = [other for other in work_names(root) if other != name and release.RELEASE_NAME.fullmatch(other)]
    except Exception as err:  # a notice, the refresh goes on: the store's own errors too (a role without list)
        print(f"refresh: the work caches under {printable(root, limit=200)}/work could not be listed "
              f"({type(err).__name__}: {printable(' '.join(str(err).split()), limit=300)})", file=sys.stderr,
              flush=True)
        return
    unpublished: list[str] = []
    unreadable: dict[str, str] = {}  # each release whose manifest cannot be read: why, where the read failed
    for other in others:
        try:
            if not is_published(release_dir(root, other)):
                # A manifest there that is no published release's (cut, a named pipe, over any run's size): whether
                # the release is published cannot be told. Said as an unpublished one's, "if it is abandoned, remove
                # that folder and ROOT/releases/NAME", a published release whose manifest was damaged went on that word
                if FileSystems.exists(FileSystems.join(release_dir(root, other), MANIFEST)):
                    unreadable[other] = ""
                else:
                    unpublished.append(other)
        except Exception as err:
            # The disk or store refusing this one release's manifest (a file of another user, a role without read):
            # out of the whole look, it left every other release's cache unremoved and unsaid. This one is told apart
            unreadable[other] = (err.strerror if isinstance(err, OSError) and err.strerror else
                                 f"{type(err).__name__}: {' '.join(str(err).split())}")
    for other in others:
        if other not in unpublished and other not in unreadable:
            _remove_work_cache(root, other)
    for other, why in list(unreadable.items())[:_OTHER_WORK_SHOWN]:
        folder = printable(release_dir(root, other), limit=200)
        read = f"({printable(why, limit=300)})" if why else "as a published release's"
        print(f"refresh: {printable(work_folder(root, other), limit=200)} is left: {folder}/{MANIFEST} cannot be read "
              f"{read}, so whether release {other} is published cannot be told (`pass-pipeline verify {folder}` says "
              "what is wrong)", flush=True)
    if len(unreadable) > _OTHER_WORK_SHOWN:
        print(f"refresh: and {len(unreadable) - _OTHER_WORK_SHOWN:,} more work caches under "
              f"{printable(root, limit=200)}/work whose release's manifest cannot be read", flush=True)
    try:  # the release folders there, to name one only where it is (a refresh stopped before its launch made it)
        releases = set(folder_names_in(FileSystems.join(root, "releases"))) if unpublished else set()
    except Exception:  # the listing above read the store: named as if there, as before
        releases = set(unpublished)
    for other in unpublished[:_OTHER_WORK_SHOWN]:
        also = f" and {printable(release_dir(root, other), limit=200)}" if other in releases else ""
        print(f"refresh: {printable(work_folder(root, other), limit=200)} holds the work of a refresh of release "
              f"{other}, which is not published (stopped before publishing, or running now): if it was stopped, rerun "
              f"it with --release={other} to finish it from that work; if it is abandoned, remove that folder{also}",
              flush=True)
    if len(unpublished) > _OTHER_WORK_SHOWN:
        print(f"refresh: and {len(unpublished) - _OTHER_WORK_SHOWN:,} more such folders under "
              f"{printable(root, limit=200)}/work", flush=True)


_OTHER_WORK_SHOWN = 5
