"""`pass-pipeline review apply`: fold a reviewer's decisions into the cumulative store."""

from __future__ import annotations

import os

from apache_beam.io.filesystems import FileSystems

from pipeline.commands.run import UsageError, file_in_path
from pipeline.io.file_reads import spaced_path_problem
from pipeline.io.files import is_remote
from pipeline.io.layout import dataset_folder_above
from pipeline.io.stopping import stops_saying
from pipeline.printable import printable
from pipeline.release.review import Overturned, apply_decisions


def review_apply(decisions: str, store: str) -> int:
    for name, path in (("decisions", decisions), ("--store", store)):
        if problem := spaced_path_problem(name, path):
            raise UsageError(problem)
    # `--store=` (a variable not set) and a store spelled as a folder (`new/`, `new/.`) went on to the write: "the job
    # failed: BeamIOError: Rename operation failed", exit 1, a temporary copy of the decisions left in the working
    # folder, or the folder made and then "IsADirectoryError".
    if store.endswith("/") or store.rsplit("/", 1)[-1] in ("", ".", ".."):
        raise UsageError(f"--store {store!r} names no file: name the CSV file the decisions are kept in "
                         "(reviews.csv)")
    if not FileSystems.exists(decisions):
        raise UsageError(f"no decisions file at {decisions}")
    for name, path in (("decisions", decisions), ("--store", store)):
        if not is_remote(path) and os.path.isdir(path):  # object stores have no folders to mistake
            raise UsageError(f"{name} {path} is a folder, not a CSV file")
    # A store under a file said "cannot write the lock of STORE: cannot write to STORE.lock: File exists" (or "Not a
    # directory", deeper), naming neither the file nor what was wrong with it.
    folder = os.path.dirname(store)
    if not is_remote(store) and folder and (file := file_in_path(folder)):
        raise UsageError(f"--store {store} lies under {file}, which is a file, not a folder: name the CSV file the "
                         "decisions are kept in (its folder is created if missing)")
    # A store inside a dataset's folder (beside its review page, or in a published release) was written there with its
    # lock: a file the manifest does not list, so verify refused the dataset from then on (and a refresh, which
    # verifies its previous release first), and a run into the folder replaces its review/ with the store in it.
    if dataset := dataset_folder_above(store):
        raise UsageError(f"--store {store} lies inside the dataset {dataset}, whose manifest does not list it (verify "
                         "would refuse the dataset) and whose run files a run into it replaces: keep the store "
                         "outside it")
    # What `cli.entry` says of a stop: its line was a run's ("nothing was published unless publishing had begun..."),
    # which told the reviewer nothing of the store. The store is written whole (one rename), and applying the same
    # decisions again gives the same store.
    with stops_saying(lambda: f"{store} is as it was, unless the stop came as it was replaced (then it holds every "
                              f"decision of {decisions}); its lock released: apply the decisions again"):
        applied, total = apply_decisions(decisions, store, overturned := Overturned())
    # An acceptance replacing a rejection may let a photo the store kept out into the next run's dataset: said, so that
    # a reviewer's slip (a row's verdict in the wrong column, an old decisions file applied again) is seen.
    turned = (f"; {overturned.count} of them accept photos it had rejected (e.g. {', '.join(overturned.first)})"
              if overturned.count else "")
    # --store as typed: its escapes drove the reviewer's terminal, its line break printed a forged line of its own
    print(f"review: {applied} decision(s) applied; {printable(store)} now holds {total}{turned}")
    return 0
