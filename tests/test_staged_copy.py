import pickle

import pytest

from pipeline.io.staged_copy import StagedCopy, stage_copy


def test_a_copy_is_named_by_its_bytes_and_read_back_only_unchanged(tmp_path):
    folder = str(tmp_path / "staging" / "_lists")
    copy = stage_copy("takedowns.txt", b"sha256 " + b"a" * 64 + b"\n", folder)
    again = stage_copy("other name.txt", b"sha256 " + b"a" * 64 + b"\n", folder, suffix=".txt")
    assert copy.path == again.path and copy.name == "takedowns.txt"  # the same bytes share one copy
    assert sorted(p.name for p in (tmp_path / "staging" / "_lists").iterdir()) == [f"{copy.sha256}.txt"]
    worker = pickle.loads(pickle.dumps(copy))  # what travels to a worker: its name, path and hash
    assert worker == copy and len(pickle.dumps(copy)) < 512
    assert worker.read() == b"sha256 " + b"a" * 64 + b"\n"
    with open(copy.path, "ab") as handle:  # someone wrote into the run's staging folder after launch
        handle.write(b"sha256 " + b"b" * 64 + b"\n")
    with pytest.raises(RuntimeError, match=r"the copy of takedowns\.txt the job made at launch .* has changed"):
        worker.read()


def test_a_missing_copy_fails_the_read_instead_of_reading_as_empty(tmp_path):
    copy = StagedCopy("decisions.csv", str(tmp_path / "gone.csv"), "0" * 64)
    with pytest.raises(OSError):
        copy.read()


def test_a_copy_read_as_a_stream_is_checked_as_it_ends_whatever_its_reader_made_of_it(tmp_path):
    """A worker reads the decisions store's copy a MiB at a time (never its bytes whole): a copy changed since launch
    is the RuntimeError of a changed copy as the read ends, also where what it read now fails the reader (not valid
    UTF-8, no CSV) or the reader stopped before its end; an unchanged copy's reader errors are its own."""
    copy = stage_copy("reviews.csv", b"photo_id,decision\n5,accept\n" * 100_000, str(tmp_path / "_lists"))
    with copy.reading() as stream:
        assert stream.read() == b"photo_id,decision\n5,accept\n" * 100_000
    with pytest.raises(ValueError, match="its own"), copy.reading() as stream:
        stream.read(10)
        raise ValueError("its own")
    with open(copy.path, "r+b") as handle:
        handle.seek(2_000_000)
        handle.write(b"\xff")
    for stop in (lambda stream: stream.read().decode(), lambda stream: stream.read(10)):
        with pytest.raises(RuntimeError, match=r"the copy of reviews\.csv the job made at launch .* has changed"), \
                copy.reading() as stream:
            stop(stream)
