"""The whole job reading from and writing to gs:// through Beam's FileSystems and the real
google-cloud-storage client, against a GCS emulator on 127.0.0.1 that the test starts itself."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pyarrow.parquet as pq
import pytest

from pipeline.cli import main, run
from pipeline.fixtures.demo_world import build_demo_world
from pipeline.fixtures.static_server import StaticServer
from tests.conftest import FAST, runtime

BUCKET = "pass-test-bucket"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
    """Starts gcp-storage-emulator; points google-cloud-storage at it with fake credentials (without
    them google-auth spends ~23 s per process probing for a metadata server)."""
    port = _free_port()
    emulator = Path(sys.executable).with_name("gcp-storage-emulator")
    process = subprocess.Popen([str(emulator), "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory",
                                "--default-bucket", BUCKET, "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    credentials = tmp_path_factory.mktemp("gcs") / "credentials.json"
    credentials.write_text(json.dumps({
        "type": "authorized_user", "client_id": "fake.apps.googleusercontent.com", "client_secret": "fake",
        "refresh_token": "fake", "token": "fake-token", "expiry": "2099-01-01T00:00:00Z"}))
    saved = {name: os.environ.get(name) for name in
             ("STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT")}
    os.environ.update(STORAGE_EMULATOR_HOST=f"http://127.0.0.1:{port}",
                      GOOGLE_APPLICATION_CREDENTIALS=str(credentials), GOOGLE_CLOUD_PROJECT="pass-test")
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the GCS emulator did not start") from None
            time.sleep(0.2)
    from google.cloud import storage

    try:
        yield storage.Client(project="pass-test").bucket(BUCKET)
    finally:
        process.terminate()
        process.wait(timeout=10)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def test_job_reads_and_writes_gcs(gcs, tmp_path, monkeypatch):
    with StaticServer() as server:
        metadata = build_demo_world(server, tmp_path)
        gcs.blob("input/yfcc-demo.tsv").upload_from_filename(str(metadata))
        gcs.blob("lists/takedowns.txt").upload_from_string("photo_id 1005\n")
        stats = run([f"--input=gs://{BUCKET}/input/*.tsv", f"--output=gs://{BUCKET}/release",
                     f"--allowed_hosts={server.host}", f"--blocklist=gs://{BUCKET}/lists/takedowns.txt",
                     "--shards=2", *FAST])
    assert stats["accounted"] and stats["kept"] == 9 and stats["rejections_by_stage"]["blocklist"]
    names = {blob.name for blob in gcs.client.list_blobs(BUCKET, prefix="release/")}
    manifest = json.loads(gcs.blob("release/manifest.json").download_as_bytes())
    for entry in manifest["files"]:  # every file the manifest lists is there, byte for byte
        data = gcs.blob(f"release/{entry['path']}").download_as_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["bytes"]
    assert {f"release/{entry['path']}" for entry in manifest["files"]} | {"release/manifest.json"} == names
    rows = [row for name in sorted(names) if name.startswith("release/parquet/")
            for row in pq.read_table(io.BytesIO(gcs.blob(name).download_as_bytes())).to_pylist()]
    assert len(rows) == 9 and all(row["image"]["bytes"][:2] == b"\xff\xd8" for row in rows)
    assert not any(".tmp-" in name for name in names)
    _verify_streams_from_gcs(gcs, manifest, monkeypatch)


def _verify_streams_from_gcs(gcs, manifest, monkeypatch):
    """verify reads a release on gs:// as one on disk: each file as a stream (a tar member, a TFRecord record, a CSV
    line at a time: no read of such a file is the whole of it), its hash computed as it is read."""
    import pipeline.release.verify as verify_module

    largest: dict[str, int] = {}
    real_open = verify_module.open_regular_file

    def recorded(path):
        handle = real_open(path)
        read = handle.read

        def read_recorded(size=-1):
            data = read(size)
            largest[path] = max(largest.get(path, 0), len(data))
            return data

        handle.read = read_recorded
        return handle

    monkeypatch.setattr(verify_module, "open_regular_file", recorded)
    release = f"gs://{BUCKET}/release"
    assert list(verify_module.verify(release)) == []
    streamed = {entry["path"]: entry["bytes"] for entry in manifest["files"]
                if entry["path"].endswith((".tar", ".tfrecord", ".csv")) and entry["bytes"] > 64 << 10}
    assert streamed and all(largest[f"{release}/{path}"] < size for path, size in streamed.items()), (streamed, largest)
    shard = next(path for path in streamed if path.endswith(".tar"))
    data = bytearray(gcs.blob(f"release/{shard}").download_as_bytes())
    data[600] ^= 0xFF
    gcs.blob(f"release/{shard}").upload_from_string(bytes(data))
    assert (shard, "sha256 differs from the manifest") in {(p.path, p.message) for p in verify_module.verify(release)}


def test_a_star_matches_an_object_name_holding_a_backslash(gcs):
    from pipeline.io.files import matching

    for name in ("globbed/a.tsv", "globbed/b\\c.tsv", "globbed/deeper/d.tsv"):
        gcs.blob(name).upload_from_string("x")
    assert matching(f"gs://{BUCKET}/globbed/*") == [f"gs://{BUCKET}/globbed/a.tsv", f"gs://{BUCKET}/globbed/b\\c.tsv"]
    assert len(matching(f"gs://{BUCKET}/globbed/**")) == 3


def test_ledger_and_index_files_are_read_as_matching_lists_them(gcs):
    """--ledger and --previous_index are read through `ReadParquetFiles`: an object whose name holds a backslash
    is read, one in a deeper folder is not."""
    import apache_beam as beam
    import pyarrow as pa
    from apache_beam.testing.util import assert_that, equal_to

    from pipeline.io.files import ReadParquetFiles
    from tests.conftest import local_pipeline

    for name, photo_id in (("ledgers/a.parquet", "1"), ("ledgers/b\\c.parquet", "2"), ("ledgers/d/e.parquet", "3")):
        table = io.BytesIO()
        pq.write_table(pa.table({"photo_id": [photo_id]}), table)
        gcs.blob(name).upload_from_string(table.getvalue())
    with local_pipeline() as p:
        rows = p | ReadParquetFiles([f"gs://{BUCKET}/ledgers/*.parquet"])
        assert_that(rows | beam.Map(lambda row: row["photo_id"]), equal_to(["1", "2"]))


def test_an_input_object_named_without_a_wildcard_and_gone_is_one_rejection(gcs):
    """As on local disk (test_run.py): an object the launch check saw and the job does not find is read/unreadable_file,
    not an error out of the job."""
    from pipeline.sources.table import _ReadRows, table_layout
    from pipeline.sources.yfcc import _ReadLines

    gone = f"gs://{BUCKET}/gone/x.tsv"
    for read in (_ReadLines(gone).process, _ReadRows(table_layout("csv"), gone).process):
        out = [item.value for item in read(gone)]
        assert [(item.reason, item.source_ref) for item in out] == [("unreadable_file", "x.tsv:1")]


def test_an_evaluation_image_on_gcs_gone_when_it_is_hashed_is_counted_not_an_error_out_of_the_job(gcs, tmp_path):
    """A list of evaluation images on gs:// is checked at launch for its first 100 paths only; one later is counted as
    unreadable when it is hashed (README). An object not there raised the client library's NotFound, no OSError: out
    of the hashing step, the job failed (a benchmark of 50,000 images, one of them deleted or misspelt)."""
    import apache_beam as beam
    from apache_beam.testing.util import assert_that, equal_to

    from pipeline.stages.decontaminate import CHECKED_REMOTE_PATHS, Decontaminate
    from pipeline.stages.image import ImageConfig, normalise
    from tests.conftest import encode, local_pipeline, photo, real_image, real_jpeg

    cfg = ImageConfig()
    gcs.blob("eval/coffee.jpg").upload_from_string(encode(real_image("coffee.jpg").resize((300, 200)), "JPEG"))
    listed = tmp_path / "eval.txt"
    listed.write_text(f"gs://{BUCKET}/eval/coffee.jpg\n" * CHECKED_REMOTE_PATHS + f"gs://{BUCKET}/eval/gone.jpg\n")
    photos = [photo(name, phash=normalise(real_jpeg(f"{name}.jpg"), cfg).phash) for name in ("coffee", "chelsea")]
    pipeline = local_pipeline()
    out = pipeline | beam.Create(photos) | Decontaminate([str(listed)], 4, cfg)
    assert_that(out.kept | beam.Map(lambda kept: kept.photo_id), equal_to(["chelsea"]), label="kept")
    assert_that(out.rejected | beam.Map(lambda rejection: (rejection.photo_id, rejection.reason)),
                equal_to([("coffee", "eval_overlap")]), label="rejected")
    result = pipeline.run()
    result.wait_until_finish()
    counted = result.metrics().query(beam.metrics.MetricsFilter().with_name("eval_images_unreadable"))["counters"]
    assert [counter.committed for counter in counted] == [1]


def test_existing_gcs_release_is_not_overwritten_by_accident(gcs, tmp_path):
    gcs.blob("taken/manifest.json").upload_from_string("{}")
    (tmp_path / "in.tsv").write_text("")
    assert main(["run", f"--input={tmp_path / 'in.tsv'}", f"--output=gs://{BUCKET}/taken"]) == 2


def test_models_and_registries_from_gcs(gcs, tmp_path):
    """A user registry on gs:// whose model file is a gs:// object beside it: read through Beam
    FileSystems, checksum-checked, and run on a real photograph."""
    from pipeline.detectors.handler import create_session, photo_scores
    from pipeline.detectors.registry import BUILTIN_REGISTRY, ChecksumError, load_registry, read_model, select
    from tests.conftest import photo, real_jpeg

    entry = next(e for e in json.loads(BUILTIN_REGISTRY.read_text())["detectors"] if e["name"] == "open_nsfw")
    gcs.blob("models/open-nsfw.onnx").upload_from_filename(str(BUILTIN_REGISTRY.parent / entry["file"]))
    gcs.blob("models/registry.json").upload_from_string(json.dumps(
        {"detectors": [{**entry, "name": "nsfw_from_gcs", "file": "open-nsfw.onnx"}]}))
    spec = select(load_registry(f"gs://{BUCKET}/models/registry.json"), "nsfw_from_gcs")[0]
    assert spec.file == f"gs://{BUCKET}/models/open-nsfw.onnx"
    session = create_session(spec, runtime())
    [scores] = photo_scores(spec, session, [photo(image=real_jpeg("coffee.jpg"))], 0)
    assert scores["nsfw"] < 0.2
    gcs.blob("models/open-nsfw.onnx").upload_from_string(b"tampered")
    with pytest.raises(ChecksumError):
        read_model(spec)


def test_a_registry_on_gcs_names_its_fusion_model_beside_it(gcs):
    """A --model_registry on gs:// whose fusion entry names a model beside it: that model is the run's default, read
    through Beam FileSystems and checked against the entry's sha256 (it was never read: the shipped one decided)."""
    from pipeline.build import models_of
    from pipeline.detectors.fusion import builtin_fusion
    from pipeline.detectors.registry import BUILTIN_REGISTRY, RegistryError
    from pipeline.options import PassOptions

    fitted = (BUILTIN_REGISTRY.parent / "candidate_no_centerface.json").read_bytes()
    digest = hashlib.sha256(fitted).hexdigest()
    gcs.blob("fusing/fitted.json").upload_from_string(fitted)
    gcs.blob("fusing/registry.json").upload_from_string(json.dumps(
        {"fusion": {"file": "fitted.json", "sha256": digest}, "detectors": []}))
    flags = [f"--model_registry=gs://{BUCKET}/fusing/registry.json"]
    [entry] = [m for m in models_of(PassOptions(flags)) if m["name"] == "fusion"]
    assert (entry["file"], entry["sha256"]) == ("fitted.json", digest) and digest != builtin_fusion().sha256
    gcs.blob("fusing/fitted.json").upload_from_string(fitted.replace(b"\n", b" \n", 1))
    refused = f"^gs://{BUCKET}/fusing/registry.json: its fusion entry: fusion model gs://{BUCKET}/fusing/fitted.json"
    with pytest.raises(RegistryError, match=f"{refused} has sha256"):
        models_of(PassOptions(flags))


class _PreconditionProxy(ThreadingHTTPServer):
    """gcp-storage-emulator ignores ifGenerationMatch, on a create and on a delete or a read alike; real GCS answers 412
    when the object exists (ifGenerationMatch=0) or is at another generation than the one named. The emulator also
    serves a ranged read starting at or past an object's end (any range of an empty object) as 206 and no bytes, where
    real GCS answers 416, Requested Range Not Satisfiable, as RFC 9110 says (Content-Range `bytes */SIZE`). This proxy
    adds exactly those rules in front of the emulator and forwards everything else."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.answers_to_drop = 0  # conditional creates carried out upstream whose answer never reaches the client
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path, headers) of each request forwarded
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                proxy.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                query = parse_qs(urlsplit(self.path).query)
                # A multipart upload names its object in the JSON metadata part of the body.
                named = re.search(rb'"name": ?"([^"]+)"', body)
                path = urlsplit(self.path).path
                # a media read's (a mediaLink names the object with its '/' as they are), a delete's, a metadata read's
                in_path = (re.fullmatch(r"/download/storage/v1/b/[^/]+/o/(.+)", path)
                           or re.search(r"/b/[^/]+/o/([^/?]+)", path))
                name = query.get("name", [named.group(1).decode() if named else
                                          unquote(in_path.group(1)) if in_path else ""])[0]
                wanted = query.get("ifGenerationMatch", [None])[0]
                now = proxy.generation(name) if wanted is not None else None
                if wanted is not None and (now is not None if wanted == "0" else now not in (None, wanted)):
                    self._refuse(412, "Precondition Failed")
                    return
                ranged = re.fullmatch(r"bytes=(\d+)-\d*", (self.headers.get("Range") or "").strip())
                if self.command == "GET" and query.get("alt") == ["media"] and ranged:
                    size = proxy.size(name)
                    if size is not None and int(ranged.group(1)) >= size:
                        self._refuse(416, "Requested range not satisfiable", {"Content-Range": f"bytes */{size}"})
                        return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                request = urllib.request.Request(proxy.upstream + self.path, data=body or None, headers=headers,
                                                 method=self.command)
                try:
                    answer = urllib.request.urlopen(request, timeout=10)
                except urllib.error.HTTPError as err:
                    answer = err
                data = answer.read()
                if query.get("alt") != ["media"] and "json" in (answer.headers.get("Content-Type") or ""):
                    # An object's metadata names the emulator in its mediaLink, by which the client reads the object
                    # once it has read its metadata: named the proxy, those reads come through it too (they went to
                    # the emulator, by none of the proxy's rules)
                    data = data.replace(proxy.upstream.encode(), f"http://127.0.0.1:{proxy.server_address[1]}".encode())
                if proxy.answers_to_drop and query.get("ifGenerationMatch") == ["0"]:
                    proxy.answers_to_drop -= 1  # made, then the connection lost before the answer (a network drop)
                    self.close_connection = True
                    return
                self.send_response(answer.status if hasattr(answer, "status") else answer.code)
                for key, value in answer.headers.items():
                    if key.lower() not in ("transfer-encoding", "content-length", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _refuse(self, code: int, message: str, headers: dict[str, str] | None = None) -> None:
                payload = json.dumps({"error": {"code": code, "message": message}}).encode()
                self.send_response(code)
                for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward  # noqa: N815 (http.server names)

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    def generation(self, name: str) -> str | None:
        """The object's generation now, None where there is none (one missing is the upstream's to answer)."""
        found = self._metadata(name)
        return None if found is None else str(found["generation"])

    def size(self, name: str) -> int | None:
        """The object's size now, None where there is none."""
        found = self._metadata(name)
        return None if found is None else int(found["size"])

    def _metadata(self, name: str) -> dict | None:
        url = f"{self.upstream}/storage/v1/b/{BUCKET}/o/{quote(name, safe='')}"
        try:
            return json.loads(urllib.request.urlopen(url, timeout=10).read())
        except urllib.error.HTTPError:
            return None


def test_one_run_at_a_time_per_gcs_output(gcs, monkeypatch):
    """The lock is a conditional create (if_generation_match=0): the second taker is refused."""
    from pipeline.io.lock import LOCK, OutputLock, OutputLocked

    proxy = _PreconditionProxy(os.environ["STORAGE_EMULATOR_HOST"])
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{proxy.server_address[1]}")
    try:
        first = OutputLock(f"gs://{BUCKET}/locked", "run-a")
        first.acquire()
        with pytest.raises(OutputLocked, match="in use by run run-a"):
            OutputLock(f"gs://{BUCKET}/locked", "run-b").acquire()
        first.release()
        assert not gcs.blob(f"locked/{LOCK}").exists()
        with OutputLock(f"gs://{BUCKET}/locked", "run-b"):
            assert gcs.blob(f"locked/{LOCK}").exists()
    finally:
        proxy.shutdown()


def test_a_lock_whose_create_was_answered_only_on_its_retry_is_the_runs_own(gcs, monkeypatch):
    """The client retries a conditional create whose answer was lost (the connection dropped once GCS had made the
    object): the retry finds the object there, 412. That object was this run's own lock, read back as another run's:
    the run was refused as "in use by run run-a" (itself), and the lock it had made stayed on gs://, where no run takes
    a lock over: every later run was refused until someone removed it. A lock holding this very run (its id, host,
    pid, start) is this run's."""
    from pipeline.io.lock import LOCK, OutputLock, OutputLocked

    proxy = _PreconditionProxy(os.environ["STORAGE_EMULATOR_HOST"])
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{proxy.server_address[1]}")
    try:
        proxy.answers_to_drop = 1
        first = OutputLock(f"gs://{BUCKET}/retried", "run-a")
        first.acquire()
        assert proxy.answers_to_drop == 0 and json.loads(gcs.blob(f"retried/{LOCK}").download_as_bytes())[
            "run_id"] == "run-a"
        with pytest.raises(OutputLocked, match="in use by run run-a"):  # another run still refused
            OutputLock(f"gs://{BUCKET}/retried", "run-b").acquire()
        first.release()
        assert not gcs.blob(f"retried/{LOCK}").exists()
    finally:
        proxy.shutdown()


@contextlib.contextmanager
def _preconditions_kept(monkeypatch) -> Iterator[_PreconditionProxy]:
    """The storage client pointed at a `_PreconditionProxy` in front of the emulator for the block."""
    proxy = _PreconditionProxy(os.environ["STORAGE_EMULATOR_HOST"])
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    with monkeypatch.context() as patched:
        patched.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{proxy.server_address[1]}")
        try:
            yield proxy
        finally:
            proxy.shutdown()


def test_a_delete_naming_an_objects_earlier_generation_leaves_the_object_rewritten_since(gcs, monkeypatch):
    """What the lock's release relies on (and the emulator alone does not do, hence the proxy): a delete conditioned on
    the generation read (if_generation_match) is refused, 412, once the object was rewritten, which stays."""
    from google.api_core.exceptions import PreconditionFailed
    from google.cloud import storage

    with _preconditions_kept(monkeypatch):
        bucket = storage.Client(project="pass-test").bucket(BUCKET)
        bucket.blob("conditional/object").upload_from_string(b"first")
        read = bucket.get_blob("conditional/object").generation
        bucket.blob("conditional/object").upload_from_string(b"second")
        with pytest.raises(PreconditionFailed):
            bucket.blob("conditional/object").delete(if_generation_match=read)
        assert bucket.blob("conditional/object").download_as_bytes() == b"second"
        bucket.blob("conditional/object").delete(if_generation_match=bucket.get_blob("conditional/object").generation)
        assert bucket.get_blob("conditional/object") is None


def test_a_lock_on_gcs_replaced_between_the_releases_read_and_its_delete_is_left_and_said(gcs, monkeypatch, capsys):
    """The release read the lock, found it this run's, and deleted whatever object was at its name by then: removed by
    hand and retaken by a run on another machine in between, that run's lock was deleted, and a third run could start
    beside it. The delete names the generation read; the lock retaken is left, and a warning says so, its holder
    shown escaped."""
    from pipeline.io import lock
    from pipeline.io.lock import LOCK, OutputLock

    taken_again = json.dumps({"run_id": "run-b\x1b[2J", "host": "elsewhere", "pid": 7,
                              "started": "2026-01-01T00:00:00Z"})
    real_read = lock._holder_for_release

    def retaken_after_the_read(path):
        seen = real_read(path)
        gcs.blob(f"retaken/{LOCK}").delete()  # by hand
        gcs.blob(f"retaken/{LOCK}").upload_from_string(taken_again)  # and by another run, on another machine
        return seen

    with _preconditions_kept(monkeypatch):
        mine = OutputLock(f"gs://{BUCKET}/retaken", "run-a")
        mine.acquire()
        monkeypatch.setattr(lock, "_holder_for_release", retaken_after_the_read)
        mine.release()
    assert gcs.blob(f"retaken/{LOCK}").download_as_bytes().decode() == taken_again
    said = capsys.readouterr().err
    assert f"the lock gs://{BUCKET}/retaken/{LOCK} is no longer this run's" in said, said
    assert "run run-b\\x1b[2J (pid 7 on elsewhere" in said and "\x1b" not in said, said


def test_a_ranged_read_from_an_objects_end_on_is_refused_416_as_real_gcs_refuses_it(gcs, monkeypatch):
    """What the proxy adds to the emulator (which serves such a range as 206 and no bytes): a range starting at or past
    the object's end, any range of an empty object, is answered 416; a range inside it, and a whole read of an empty
    object, are served."""
    from google.api_core.exceptions import RequestRangeNotSatisfiable
    from google.cloud import storage

    with _preconditions_kept(monkeypatch):
        bucket = storage.Client(project="pass-test").bucket(BUCKET)
        bucket.blob("ranged/empty").upload_from_string(b"")
        bucket.blob("ranged/three").upload_from_string(b"abc")
        for name, start in (("ranged/empty", 0), ("ranged/three", 3), ("ranged/three", 7)):
            with pytest.raises(RequestRangeNotSatisfiable):
                bucket.blob(name).download_as_bytes(start=start, end=start + 64)
        assert bucket.blob("ranged/three").download_as_bytes(start=1, end=64) == b"bc"
        assert bucket.blob("ranged/empty").download_as_bytes() == b""


def test_a_lock_on_gcs_emptied_by_hand_before_the_release_is_left_as_no_runs_not_said_unreadable(gcs, monkeypatch,
                                                                                                capsys):
    """The release reads the lock with a ranged download (at most its bound), which real GCS refuses, 416, for an
    object of no bytes: a lock emptied by hand under a run (an object store keeps no half-written object: only a write
    of an empty one makes it) was read three times and said to be a lock that "could not be read to release it". It is
    read as what it is, an empty lock, no run's: left, as another run's lock is, without a word."""
    from pipeline.io.lock import LOCK, OutputLock

    with _preconditions_kept(monkeypatch):
        mine = OutputLock(f"gs://{BUCKET}/emptied", "run-a")
        mine.acquire()
        gcs.blob(f"emptied/{LOCK}").upload_from_string(b"")
        mine.release()
    assert gcs.blob(f"emptied/{LOCK}").download_as_bytes() == b""
    assert capsys.readouterr().err == ""


def test_the_lock_on_gcs_is_taken_released_with_the_identity_the_launchers_other_gcs_calls_use(gcs, monkeypatch):
    """Every other gs:// call of the launcher (its checks, the lock's read) goes through Beam's filesystem, whose
    storage client Beam builds: its credentials, its project (none where the options name none), its headers. The
    lock's create and delete went through a client of their own, `storage.Client()`, which finds a project or fails:
    with default credentials naming none (a user's application-default login), every run into gs:// was refused,
    "cannot write to --output ...: OSError", where the launch's checks had read the bucket. (Against the emulator that
    client goes anonymous: the identity a request carries tells the two apart.) The lock's calls carry Beam's."""
    from apache_beam.internal.gcp import auth

    from pipeline.io.lock import LOCK, OutputLock

    # Beam's credentials as this test's environment gives them (they are kept for the process once read)
    monkeypatch.setattr(auth._Credentials, "_credentials_init", False)
    monkeypatch.setattr(auth._Credentials, "_credentials", None)
    with _preconditions_kept(monkeypatch) as proxy:
        mine = OutputLock(f"gs://{BUCKET}/identity", "run-a")
        mine.acquire()
        mine.release()
    assert not gcs.blob(f"identity/{LOCK}").exists()
    identities = {(method, headers.get("authorization"), headers.get("x-goog-custom-audit-job"))
                  for method, path, headers in proxy.requests if method in ("POST", "DELETE")}
    assert {method for method, _, _ in identities} == {"POST", "DELETE"}, proxy.requests
    assert {identity[1:] for identity in identities} == {("Bearer fake-token", "UNKNOWN")}, identities


def test_write_atomically_replaces_a_gcs_object_in_one_rename(gcs, monkeypatch):
    """On gs:// the rename is a copy over the old object, then a delete of the temporary: the name is
    never left without an object (no delete of the old one first), and no temporary is left behind."""
    from apache_beam.io.filesystems import FileSystems

    from pipeline.io.files import read_bytes, write_atomically

    path = f"gs://{BUCKET}/atomic/manifest.json"
    write_atomically(path, lambda handle: handle.write(b"old"))
    deleted, delete = [], FileSystems.delete
    monkeypatch.setattr(FileSystems, "delete", staticmethod(lambda paths: (deleted.extend(paths), delete(paths))))
    entry = write_atomically(path, lambda handle: handle.write(b"new"))
    assert read_bytes(path) == b"new" and entry["sha256"] == hashlib.sha256(b"new").hexdigest()
    assert deleted == [] and [b.name for b in gcs.list_blobs(prefix="atomic/")] == ["atomic/manifest.json"]


@pytest.mark.parametrize("name", ["sized1/d1.tsv.gz", "sized2/d[1].tsv.gz", "sized3/d*.tsv.gz"])
def test_an_objects_bounds_are_its_own_size_whatever_its_name(gcs, monkeypatch, name):
    """The bounds on what a file may inflate to and the rows it may give grow with its size: an object whose name
    holds '[' (not itself as a glob) had no size, so the floors alone (256 MiB of data, 100,000 rows) bounded a real
    dump; one named with a '*' took another object's."""
    import gzip

    from pipeline.fixtures.yfcc_rows import yfcc_line
    from pipeline.io.files import size_and_kind
    from pipeline.records import Rejection
    from pipeline.sources import input_files, row_bound
    from pipeline.sources.yfcc import _ReadLines

    data = "".join(yfcc_line(n, str(1000 + n), "http://h/x_ab.jpg") + "\n" for n in range(1, 201)).encode()
    packed = gzip.compress(data)
    gcs.blob(name.replace("[1]", "1").replace("*", "!")).upload_from_string(b"\0" * 10)  # what '[1]' or '*' matches
    gcs.blob(name).upload_from_string(packed)
    assert size_and_kind(f"gs://{BUCKET}/{name}") == (len(packed), "")
    monkeypatch.setattr(row_bound, "ROW_FLOOR", 10)
    monkeypatch.setattr(input_files, "INFLATION_FLOOR", 1000)
    out = [getattr(item, "value", item) for item in _ReadLines(f"gs://{BUCKET}/{name}").process(f"gs://{BUCKET}/{name}")]
    assert len(out) == 200 and not any(isinstance(item, Rejection) for item in out)
    assert size_and_kind(f"gs://{BUCKET}/sized1/gone.tsv.gz") == (None, "")


def test_review_apply_reads_decisions_and_writes_the_store_on_gcs(gcs):
    """`review apply` checked a gs:// decisions file's existence through Beam, then opened it with Python's `open`:
    the apply failed with "No such file" for a file that was there."""
    from pipeline.cli import main

    gcs.blob("review/d1.csv").upload_from_string("photo_id,decision,note\n5,accept,\n7,reject_human,a hand\n")
    store = f"gs://{BUCKET}/review/reviews.csv"
    assert main(["review", "apply", f"gs://{BUCKET}/review/d1.csv", "--store", store]) == 0
    assert gcs.blob("review/reviews.csv").download_as_bytes() == (
        b"photo_id,decision,note,sha256\n5,accept,,\n7,reject_human,a hand,\n")


def test_a_parquet_shards_columns_are_read_from_an_object(gcs):
    """read_parquet reads only the columns asked for, seeking in the object as in a local file (a refresh's
    changelog reads a previous release's ids so, its datasheet the release's figures)."""
    import pyarrow as pa

    from pipeline.io.files import read_parquet
    from pipeline.io.parquet_footer import FooterTooLarge

    buffer = io.BytesIO()
    pq.write_table(pa.table({"photo_id": ["7", "8"], "image": [b"x" * 1000, b"y" * 1000]}), buffer)
    gcs.blob("shards/s.parquet").upload_from_string(buffer.getvalue())
    assert read_parquet(f"gs://{BUCKET}/shards/s.parquet", ["photo_id"]).to_pylist() == [
        {"photo_id": "7"}, {"photo_id": "8"}]
    assert read_parquet(f"gs://{BUCKET}/shards/s.parquet").column("image").to_pylist() == [b"x" * 1000, b"y" * 1000]
    gcs.blob("shards/bad.parquet").upload_from_string(buffer.getvalue()[:-8] + (2**31).to_bytes(4, "little") + b"PAR1")
    with pytest.raises(FooterTooLarge, match=r"bad\.parquet: its Parquet footer"):
        read_parquet(f"gs://{BUCKET}/shards/bad.parquet")


def test_a_release_object_rewritten_since_verify_read_it_is_refused_by_its_generation(gcs, demo_release):
    """A refresh verifies the previous release, then reads its shards, ledger and manifest again: an object rewritten
    in between (another generation: a bucket writer) was read as if verified. What verify read is held by generation,
    which Beam's reader names on each read; a reader finding another generation, or an object added under the folder
    verify read, refuses it, while the objects verify read are read as before."""
    import apache_beam as beam
    import pyarrow as pa
    from apache_beam.testing.util import assert_that, equal_to

    from pipeline.io.file_pins import ChangedSinceChecked, Pins
    from pipeline.io.files import ReadParquetFiles, read_parquet
    from pipeline.release.carry import _read_shard, _shard_ids
    from pipeline.release.refresh import checked_manifest, photo_ids
    from pipeline.release.verify import verify
    from tests.conftest import local_pipeline

    release = f"gs://{BUCKET}/pinned/r1"
    for path in sorted(demo_release.rglob("*")):
        if path.is_file():
            gcs.blob(f"pinned/r1/{path.relative_to(demo_release).as_posix()}").upload_from_filename(str(path))
    pins = Pins()
    assert list(verify(release, pins=pins)) == []
    shards = sorted(path.relative_to(demo_release).as_posix() for path in (demo_release / "parquet").glob("*.parquet")
                    if pq.read_metadata(path).num_rows)
    [ledger] = sorted(path.relative_to(demo_release).as_posix() for path in (demo_release / "ledger").glob("*"))
    ids = photo_ids(release, pins=pins)
    assert len(ids) == 10 and checked_manifest(release, pins)["files"]
    assert len(list(_read_shard(f"{release}/{shards[0]}", pins))) == len(list(_shard_ids(f"{release}/{shards[0]}",
                                                                                          pins)))
    table = pq.read_table(demo_release / shards[0])
    rows = table.to_pylist()
    rows[0]["title"] = "changed after verify"
    changed = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), changed)
    gcs.blob(f"pinned/r1/{shards[0]}").upload_from_string(changed.getvalue())
    for read in (lambda path: list(_read_shard(path, pins)), lambda path: list(_shard_ids(path, pins)),
                 lambda path: read_parquet(path, ["photo_id"], pins)):
        with pytest.raises(ChangedSinceChecked, match=r"changed since verify checked it \(rewritten: generation"):
            read(f"{release}/{shards[0]}")
    with pytest.raises(ChangedSinceChecked, match="changed since verify"):
        photo_ids(release, pins=pins)
    # The same bytes again (another generation, as a rewrite to another storage class makes): what verify read, read
    gcs.blob(f"pinned/r1/{ledger}").upload_from_string((demo_release / ledger).read_bytes())
    with local_pipeline() as p:
        counted = (p | ReadParquetFiles([f"{release}/ledger/*.parquet"], pins)
                   | beam.combiners.Count.Globally())
        assert_that(counted, equal_to([pq.read_metadata(demo_release / ledger).num_rows]))
    gcs.blob(f"pinned/r1/{ledger}").upload_from_string(changed.getvalue())  # other bytes: refused
    with pytest.raises(ChangedSinceChecked, match="changed since verify checked it"), local_pipeline() as p:
        _ = p | ReadParquetFiles([f"{release}/ledger/*.parquet"], pins) | beam.Map(lambda row: row)
    gcs.blob("pinned/r1/parquet/extra.parquet").upload_from_string(changed.getvalue())
    with pytest.raises(ChangedSinceChecked, match="added since verify checked its folder"):
        list(_read_shard(f"{release}/parquet/extra.parquet", pins))



def test_an_output_on_gcs_spelled_with_a_dot_segment_is_refused_before_anything_is_written(gcs, tmp_path, capsys):
    """An object store folds no '.', '..' or empty segment: `--output=gs://B/ds/.` names objects `ds/./…`, inside the
    prefix of the dataset `gs://B/ds`, where the launch checks (which fold them, as a local path's) saw the folder `ds`
    itself and no dataset above it. The run published its manifest and shards among the dataset's, which its manifest
    does not list (verify then refused that dataset), under a lock of its own (`ds/./_lock.json`): a run into `gs://B/ds`
    was not kept out."""
    gcs.blob("dotted/ds/manifest.json").upload_from_string('{"files": []}')
    (tmp_path / "in.tsv").write_text("")
    for output in (f"gs://{BUCKET}/dotted/ds/.", f"gs://{BUCKET}/dotted/ds//more", f"gs://{BUCKET}/dotted/ds/x/.."):
        assert main(["run", f"--input={tmp_path / 'in.tsv'}", f"--output={output}", "--allow_empty"]) == 2
        assert "segment" in capsys.readouterr().err
    assert main(["run", f"--input={tmp_path / 'in.tsv'}", f"--output=gs://{BUCKET}/dotted/out",
                 f"--cache=gs://{BUCKET}/dotted/ds/x/../../c", "--allow_empty"]) == 2
    assert "--cache" in capsys.readouterr().err
    assert main(["refresh", f"--input={tmp_path / 'in.tsv'}", f"--output=gs://{BUCKET}/dotted/ds/./root",
                 "--release=r1", "--allow_empty"]) == 2
    assert "segment" in capsys.readouterr().err
    assert [blob.name for blob in gcs.list_blobs(prefix="dotted/")] == ["dotted/ds/manifest.json"]


def test_an_object_holding_bytes_under_a_folders_name_in_a_release_is_not_listed_by_its_manifest(gcs, demo_release):
    """An object whose name ends in '/' is a folder's placeholder (the console's "create folder", gsutil's) when it
    is empty, and is no file of the release; one holding bytes is an object as any other, which a download of the
    release's prefix takes with the rest. verify skipped every name ending in '/', so bytes put there by a bucket
    writer (a Parquet file, a CSV of other credits) sat in a release that passed."""
    from pipeline.release.verify import UNLISTED, verify

    release = f"gs://{BUCKET}/slashed/r1"
    for path in sorted(demo_release.rglob("*")):
        if path.is_file():
            gcs.blob(f"slashed/r1/{path.relative_to(demo_release).as_posix()}").upload_from_filename(str(path))
    for placeholder in ("slashed/r1/", "slashed/r1/parquet/"):
        gcs.blob(placeholder).upload_from_string(b"")
    assert list(verify(release)) == []
    gcs.blob("slashed/r1/parquet/extra.parquet/").upload_from_string(b"PAR1 not listed")
    assert [(problem.path, problem.message) for problem in verify(release)] == [("parquet/extra.parquet/", UNLISTED)]


def test_a_staging_folder_a_killed_run_left_on_gcs_holding_only_deeper_objects_is_removed(gcs):
    """A run killed in its job leaves objects two levels under its run folder only (`_staging/RUN/_images/SHA.jpg`,
    `_staging/RUN/_lists/SHA.txt`, a shard's temporary): the next run's removal of `_staging` looked for objects one or
    two levels under it, found none, and removed nothing; they stayed beside the dataset, as every later run left them
    (in a refresh's release, which verify refused for files its manifest does not list)."""
    from pipeline.io.layout import remove_folder, remove_staging

    names = ["killed/out/_staging/run-1/_images/" + "a" * 64 + ".jpg", "killed/out/_staging/run-1/_lists/b.txt",
             "killed/out/_staging/run-1/parquet/x.parquet.tmp-" + "c" * 32]
    for name in names:
        gcs.blob(name).upload_from_string(b"x")
    gcs.blob("killed/out/manifest.json").upload_from_string(b"{}")  # beside it: kept
    remove_staging(f"gs://{BUCKET}/killed/out")
    assert [blob.name for blob in gcs.list_blobs(prefix="killed/")] == ["killed/out/manifest.json"]
    for name in names:
        gcs.blob(name).upload_from_string(b"x")
    remove_folder(f"gs://{BUCKET}/killed/out/_staging")
    assert [blob.name for blob in gcs.list_blobs(prefix="killed/")] == ["killed/out/manifest.json"]


def test_a_work_cache_on_gcs_whose_objects_the_store_refuses_to_delete_is_said_left_not_removed(gcs, monkeypatch,
                                                                                               capsys):
    """Beam's delete of a gs:// folder logs a warning for each object the store refuses (a bucket's retention policy,
    a role without delete) and returns, so the refresh said "removed the work cache" of a cache still all there. The
    objects left are said, as a local cache that cannot be removed is; a cache beside it whose name starts with the
    same characters (work/2026-10 beside work/2026-1) is not touched."""
    from apache_beam.io.gcp import gcsio

    from pipeline.commands import refresh as command

    root = f"gs://{BUCKET}/published"
    for name in ("published/work/2026-1/cache/images-0.parquet", "published/work/2026-10/cache/images-0.parquet"):
        gcs.blob(name).upload_from_string(b"cached")
    monkeypatch.setattr(gcsio.GcsIO, "delete_batch",
                        lambda self, paths: [(path, OSError("403 Forbidden: retention policy")) for path in paths])
    command._remove_work_cache(root, "2026-1")
    said = capsys.readouterr()
    assert "removed the work cache" not in said.out
    assert "could not be removed" in said.err and "remove it by hand" in said.err
    monkeypatch.undo()
    command._remove_work_cache(root, "2026-1")
    assert "refresh: removed the work cache" in capsys.readouterr().out
    assert [blob.name for blob in gcs.list_blobs(prefix="published/")] == [
        "published/work/2026-10/cache/images-0.parquet"]


def test_the_work_caches_on_gcs_are_listed_by_folder_and_a_published_release_s_removed(gcs, capsys):
    """A refresh looks at the work caches beside the releases (ROOT/work/NAME) of other refreshes: on an object store
    they are found by one listing by folder (a listing of the objects would read every cached image), a published
    release's cache is removed, an unpublished one's said and left; an object directly under work/ and a prefix
    starting with the same letters (workshop/) are no cache."""
    from pipeline.commands import refresh as command
    from pipeline.io.layout import work_names

    root = f"gs://{BUCKET}/tended"
    for name in ("tended/work/2026-10/cache/images-0.parquet", "tended/work/2026-10/cache/deeper/x",
                 "tended/work/2026-11/cache/images-0.parquet", "tended/work/stray-object",
                 "tended/workshop/2026-12/cache/images-0.parquet"):
        gcs.blob(name).upload_from_string(b"cached")
    gcs.blob("tended/releases/2026-10/manifest.json").upload_from_string(json.dumps({"release": "2026-10"}))
    assert work_names(root) == ["2026-10", "2026-11"]
    assert work_names(f"gs://{BUCKET}/nothing-here") == []
    capsys.readouterr()
    command._tend_other_work(root, "2026-12")
    said = capsys.readouterr().out
    assert f"refresh: removed the work cache {root}/work/2026-10" in said, said
    assert f"refresh: {root}/work/2026-11 holds the work of a refresh of release 2026-11, which is not " \
        "published" in said, said
    # no folder releases/2026-11 to remove (a refresh stopped before its launch made it): none is named
    assert "if it is abandoned, remove that folder\n" in said and "releases/2026-11" not in said, said
    assert sorted(blob.name for blob in gcs.list_blobs(prefix="tended/")) == [
        "tended/releases/2026-10/manifest.json", "tended/work/2026-11/cache/images-0.parquet",
        "tended/work/stray-object", "tended/workshop/2026-12/cache/images-0.parquet"]


def test_work_caches_on_gcs_that_cannot_be_listed_are_said_and_the_refresh_goes_on(gcs, monkeypatch, capsys):
    """The look at other refreshes' work caches is a notice: the store refusing the listing (a role without list on
    the bucket, google.api_core's Forbidden, which is no OSError) failed the refresh before its job ran."""
    from google.api_core.exceptions import Forbidden

    from pipeline.commands import refresh as command

    def refused(folder: str) -> list[str]:
        raise Forbidden("caller does not have storage.objects.list access")

    monkeypatch.setattr("pipeline.io.layout.folder_names", refused)
    command._tend_other_work(f"gs://{BUCKET}/refused", "2026-12")
    said = capsys.readouterr()
    assert "could not be listed (Forbidden:" in said.err and "storage.objects.list" in said.err, said.err
    assert said.out == ""


IMPERSONATED = "runner@pass-test.iam.gserviceaccount.com"


class _JsonServer(ThreadingHTTPServer):
    """A Google API as its client reaches it, serving from a thread of its own: each request's path (its query left
    out) and Authorization recorded in `requests`, each answered 200 with `answer()`'s JSON."""

    def __init__(self, answer: Callable[[], bytes]) -> None:
        self.requests: list[tuple[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.requests.append((self.path.split("?")[0], self.headers.get("Authorization", "")))
                payload = answer()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:  # Secret Manager's access
                self._answer()

            def do_POST(self) -> None:  # IAM's generateAccessToken
                self._answer()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


def _token_server() -> _JsonServer:
    """The IAM credentials service as impersonation reaches it: each generateAccessToken call (the service account's
    name in its path, the caller's own token in its Authorization) is recorded and answered with "impersonated-token",
    valid for an hour."""
    def token() -> bytes:
        expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        return json.dumps({"accessToken": "impersonated-token", "expireTime": expires}).encode()

    return _JsonServer(token)


@pytest.fixture
def beams_credentials_afresh(monkeypatch):
    """Beam builds its credentials once for the whole process (`auth._Credentials`), from the options of the first
    storage client it makes: built afresh in the test, as in a process that starts a command, and the test's own
    dropped after it (the credentials earlier tests built are back)."""
    from apache_beam.internal.gcp import auth

    monkeypatch.setattr(auth._Credentials, "_credentials_init", False)
    monkeypatch.setattr(auth._Credentials, "_credentials", None)


@pytest.mark.parametrize("command", ["run", "refresh"])
def test_every_gcs_call_of_a_run_carries_the_service_account_it_impersonates(gcs, monkeypatch, capsys, command,
                                                                            beams_credentials_afresh):
    """Beam's storage client takes its credentials (and its audit header) from the options Beam's filesystems hold,
    which `Pipeline(options)` sets, and keeps the credentials it first builds for the whole process. The launch's
    gs:// calls (its checks of --input and --output, the lock, a refresh's look for the latest release) came first,
    with no options: the run's own credentials were built there without --impersonate_service_account and every
    call after (the job's writes, the publish, the lock's release) went as the user, not as the service account."""
    from google.auth import iam

    tokens = _token_server()
    monkeypatch.setattr(iam, "_IAM_ENDPOINT", f"http://127.0.0.1:{tokens.server_address[1]}/v1/projects/-/"
                                              "serviceAccounts/{}:generateAccessToken")
    gcs.blob(f"impersonated-{command}/in.tsv").upload_from_string(b"")
    root = f"gs://{BUCKET}/impersonated-{command}"
    flags = [f"--input={root}/in.tsv", "--allow_empty", f"--impersonate_service_account={IMPERSONATED}",
             "--job_name=pass-monthly", *FAST]
    try:
        with _preconditions_kept(monkeypatch) as proxy:
            if command == "run":
                assert main(["run", f"--output={root}/out", *flags]) == 0, capsys.readouterr().err
            else:
                assert main(["refresh", f"--output={root}/out", "--release=2026-11", *flags]) == 0, \
                    capsys.readouterr().err
    finally:
        tokens.shutdown()
    published = "out/manifest.json" if command == "run" else "out/releases/2026-11/manifest.json"
    assert gcs.blob(f"impersonated-{command}/{published}").exists()
    assert tokens.requests and set(tokens.requests) == {
        (f"/v1/projects/-/serviceAccounts/{IMPERSONATED}:generateAccessToken", "Bearer fake-token")}
    lock = quote(f"impersonated-{command}/out/{'releases/2026-11/' if command == 'refresh' else ''}_lock.json",
                 safe="")
    calls = {(method, urlsplit(path).path.rsplit("/", 1)[-1]) for method, path, _ in proxy.requests}
    assert {("POST", "o"), ("DELETE", lock), ("GET", "o")} <= calls, calls  # the lock's, a listing
    identities = {(headers.get("authorization"), headers.get("x-goog-custom-audit-job"))
                  for _, _, headers in proxy.requests}
    assert identities == {("Bearer impersonated-token", "pass-monthly")}, identities


@pytest.mark.parametrize("command", ["verify", "review"])
def test_verify_and_review_apply_read_and_write_gcs_as_the_service_account_they_are_given(gcs, monkeypatch, capsys,
                                                                                         command,
                                                                                         beams_credentials_afresh):
    """`verify` and `review apply` took no --impersonate_service_account: a user who may reach the bucket only as the
    run's service account (as a run or refresh given that flag reads and writes it) could not check the release the
    run published nor fold decisions into a store beside it. Given the flag, every gs:// call goes as that account,
    as a run's do; without it, as the user's own credentials, as before."""
    from apache_beam.internal.gcp import auth
    from google.auth import iam

    root = f"gs://{BUCKET}/impersonated-{command}"
    if command == "verify":
        gcs.blob(f"impersonated-{command}/in.tsv").upload_from_string(b"")
        assert main(["run", f"--input={root}/in.tsv", f"--output={root}/out", "--allow_empty", *FAST]) == 0, \
            capsys.readouterr().err
        argv = ["verify", f"{root}/out"]
    else:
        gcs.blob(f"impersonated-{command}/d1.csv").upload_from_string("photo_id,decision,note\n5,accept,\n")
        argv = ["review", "apply", f"{root}/d1.csv", "--store", f"{root}/reviews.csv"]
    monkeypatch.setattr(auth._Credentials, "_credentials_init", False)  # a new process: the run's are not held
    monkeypatch.setattr(auth._Credentials, "_credentials", None)
    tokens = _token_server()
    monkeypatch.setattr(iam, "_IAM_ENDPOINT", f"http://127.0.0.1:{tokens.server_address[1]}/v1/projects/-/"
                                              "serviceAccounts/{}:generateAccessToken")
    capsys.readouterr()
    try:
        with _preconditions_kept(monkeypatch) as proxy:
            assert main([*argv, f"--impersonate_service_account={IMPERSONATED}"]) == 0, capsys.readouterr()
    finally:
        tokens.shutdown()
    assert proxy.requests, "no gs:// call"
    assert {headers.get("authorization") for _, _, headers in proxy.requests} == {"Bearer impersonated-token"}
    assert set(tokens.requests) == {(f"/v1/projects/-/serviceAccounts/{IMPERSONATED}:generateAccessToken",
                                     "Bearer fake-token")}
    if command == "review":
        assert gcs.blob(f"impersonated-{command}/reviews.csv").download_as_bytes() == \
            b"photo_id,decision,note,sha256\n5,accept,,\n"


# Each worker process of a local job (--direct_running_mode=multi_processing) is a fresh interpreter, which the test's
# stand-in IAM endpoint, set in this process, does not reach: a `sitecustomize` on PYTHONPATH sets it there too.
STAND_IN_IAM = """
import os

if os.environ.get("PASS_TEST_IAM_ENDPOINT"):
    from google.auth import iam

    iam._IAM_ENDPOINT = os.environ["PASS_TEST_IAM_ENDPOINT"]
"""


def test_every_gcs_call_of_a_local_job_s_worker_processes_carries_the_service_account_it_impersonates(
        gcs, monkeypatch, capsys, tmp_path, beams_credentials_afresh):
    """With --direct_running_mode=multi_processing a local job's steps run in worker processes, which take their
    options from Beam's local runner (none: it hands its workers no options) and so read and wrote the job's objects
    as the user's own default credentials, not as the --impersonate_service_account the run names (and without its
    --job_name audit header). Every gs:// request of the run, its workers' among them, carries the impersonated
    token."""
    from google.auth import iam

    tokens = _token_server()
    endpoint = f"http://127.0.0.1:{tokens.server_address[1]}/v1/projects/-/serviceAccounts/{{}}:generateAccessToken"
    monkeypatch.setattr(iam, "_IAM_ENDPOINT", endpoint)
    (tmp_path / "sitecustomize.py").write_text(STAND_IN_IAM)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("PASS_TEST_IAM_ENDPOINT", endpoint)
    root = f"gs://{BUCKET}/impersonated-workers"
    gcs.blob("impersonated-workers/in.tsv").upload_from_string(b"")
    try:
        with _preconditions_kept(monkeypatch) as proxy:
            assert main(["run", f"--input={root}/in.tsv", f"--output={root}/out", "--allow_empty",
                         f"--impersonate_service_account={IMPERSONATED}", "--job_name=pass-monthly",
                         "--direct_running_mode=multi_processing", "--direct_num_workers=2", *FAST]) == 0, \
                capsys.readouterr().err
    finally:
        tokens.shutdown()
    assert gcs.blob("impersonated-workers/out/manifest.json").exists()
    # the workers' own requests among them: the input's read (the launch only looks at its metadata)
    reads = [path for method, path, _ in proxy.requests if method == "GET" and "alt=media" in path and "in.tsv" in path]
    assert reads, proxy.requests
    identities = {(headers.get("authorization"), headers.get("x-goog-custom-audit-job"))
                  for _, _, headers in proxy.requests}
    assert identities == {("Bearer impersonated-token", "pass-monthly")}, identities


def test_an_sm_secret_read_at_a_launch_that_impersonates_is_read_as_that_service_account(gcs, monkeypatch,
                                                                                         beams_credentials_afresh):
    """The launch reads an sm:// Flickr credentials secret to check the key before the job. It read it with the
    user's own application-default credentials whatever --impersonate_service_account said, so a user who may only
    act as that account was refused (PermissionDenied) where the job would have read it. Once the launch has handed
    its options to Beam's filesystems (as run and refresh do), the secret is read as the impersonated account; with
    no such option, as before."""
    import base64

    import google_crc32c
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions
    from google.auth import iam

    from pipeline.flickr.credentials import Credentials, load_credentials

    tokens = _token_server()
    monkeypatch.setattr(iam, "_IAM_ENDPOINT", f"http://127.0.0.1:{tokens.server_address[1]}/v1/projects/-/"
                                              "serviceAccounts/{}:generateAccessToken")
    document = json.dumps({"key": "fixture-key", "secret": "fixture-secret"}).encode()
    payload = json.dumps({"name": "projects/p/secrets/flickr/versions/1", "payload": {
        "data": base64.b64encode(document).decode(), "dataCrc32c": str(google_crc32c.value(document))}}).encode()
    secrets = _JsonServer(lambda: payload)
    monkeypatch.setenv("SECRET_MANAGER_EMULATOR_HOST", f"http://127.0.0.1:{secrets.server_address[1]}")
    try:
        expected = (Credentials("fixture-key", "fixture-secret"),)
        assert load_credentials("sm://projects/p/secrets/flickr") == expected
        assert secrets.requests == [("/v1/projects/p/secrets/flickr/versions/latest:access", "")]
        assert tokens.requests == []
        FileSystems.set_options(PipelineOptions([f"--impersonate_service_account={IMPERSONATED}"]))
        assert load_credentials("sm://projects/p/secrets/flickr") == expected
        assert secrets.requests[1] == ("/v1/projects/p/secrets/flickr/versions/latest:access",
                                       "Bearer impersonated-token")
        assert [(IMPERSONATED in path, token) for path, token in tokens.requests] == [(True, "Bearer fake-token")]
    finally:
        secrets.shutdown()
        tokens.shutdown()
