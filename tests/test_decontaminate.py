import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from pipeline.cli import run
from pipeline.fixtures.demo_world import build_demo_world
from pipeline.fixtures.static_server import StaticServer
from pipeline.stages.decontaminate import Decontaminate, expand_eval_source
from pipeline.stages.image import ImageConfig, normalise
from tests.conftest import FAST, encode, local_pipeline, photo, real_image, real_jpeg

CFG = ImageConfig()


@pytest.fixture
def eval_set(tmp_path):
    """A small 'benchmark': a smaller, recompressed coffee photo, a PNG of the rocket, a broken file."""
    folder = tmp_path / "eval"
    folder.mkdir()
    (folder / "val_0001.JPEG").write_bytes(encode(real_image("coffee.jpg").resize((300, 200)), "JPEG", quality=70))
    (folder / "val_0002.png").write_bytes(encode(real_image("rocket.jpg"), "PNG"))
    (folder / "val_0003.JPEG").write_bytes(b"not an image")
    return folder


def test_sources_folder_glob_and_list(tmp_path, eval_set):
    (tmp_path / "eval.txt").write_text("# test split\neval/val_0001.JPEG\n\neval/val_0002.png\n")
    assert [p.rsplit("/", 1)[1] for p in expand_eval_source(str(eval_set))] == [
        "val_0001.JPEG", "val_0002.png", "val_0003.JPEG"]
    assert len(expand_eval_source(str(eval_set / "*.png"))) == 1
    # A folder with class subfolders (ImageNet validation in its training layout): every image below it.
    (eval_set / "n01440764").mkdir()
    (eval_set / "n01440764" / "val_0004.JPEG").write_bytes((eval_set / "val_0001.JPEG").read_bytes())
    below = [p[len(str(eval_set)) + 1:] for p in expand_eval_source(str(eval_set))]
    assert below == ["n01440764/val_0004.JPEG", "val_0001.JPEG", "val_0002.png", "val_0003.JPEG"], below
    assert [p.rsplit("/", 1)[1] for p in expand_eval_source(str(tmp_path / "eval.txt"))] == [
        "val_0001.JPEG", "val_0002.png"]


def test_stage_rejects_near_copies_of_evaluation_images(eval_set):
    def hashed(photo_id, name):
        return photo(photo_id, phash=normalise(real_jpeg(name), CFG).phash)

    photos = [hashed("1", "coffee.jpg"), hashed("2", "rocket.jpg"), hashed("3", "chelsea.jpg")]
    with local_pipeline() as p:
        out = p | beam.Create(photos) | Decontaminate([str(eval_set)], 4, CFG)
        assert_that(out.kept | beam.Map(lambda ph: ph.photo_id), equal_to(["3"]), label="kept")
        assert_that(out.rejected | beam.Map(lambda r: (r.photo_id, r.stage, r.reason, r.detail.rsplit(" ", 1)[1])),
                    equal_to([("1", "decontaminate", "eval_overlap", "val_0001.JPEG"),
                              ("2", "decontaminate", "eval_overlap", "val_0002.png")]), label="rejected")


def test_evaluation_images_are_hashed_by_the_runs_own_decode_and_resize_rule():
    """Every evaluation image is kept (however small or plain), and stored as the run stores its own
    images: the same draft and resize rule, so its pHash is the one a run would compute."""
    from pipeline.stages.decontaminate import _HashEvalImage

    run_cfg = ImageConfig(max_side=256, jpeg_quality=80, draft_supersample=1, resize_reducing_gap=0.0)
    hashing = _HashEvalImage(run_cfg)._cfg
    assert (hashing.min_side, hashing.min_stddev) == (1, 0.0)
    assert (hashing.max_side, hashing.jpeg_quality, hashing.draft_supersample, hashing.resize_reducing_gap) == (
        256, 80, 1, 0.0)


def test_empty_evaluation_source_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="names no image"):
        Decontaminate([str(tmp_path)], 4, CFG)


def test_job_with_decontamination(tmp_path, eval_set):
    """The published rejections name each evaluation image by its file name alone: its folder (a home folder's user
    name, a bucket's layout: here pytest's `/tmp/pytest-of-USER/…`) went into the dataset's rejections table."""
    import pyarrow.parquet as pq

    with StaticServer() as server:
        metadata = build_demo_world(server, tmp_path)
        stats = run([f"--input={metadata}", f"--output={tmp_path / 'out'}", f"--allowed_hosts={server.host}",
                     f"--decontaminate={eval_set}", *FAST])
    assert stats["accounted"] and stats["rejections_by_stage"]["decontaminate"] == {"eval_overlap": 2}
    assert stats["kept"] == 8  # the demo world's 10 distinct photos less 2 evaluation images (detection off)
    # the broken evaluation image was only logged: the run looked fully decontaminated
    assert stats["eval_images_unreadable"] == 1
    published = pq.read_table(tmp_path / "out" / "rejections").to_pylist()
    details = sorted(row["detail"] for row in published if row["stage"] == "decontaminate")
    assert [detail.rsplit(" ", 1)[1] for detail in details] == ["val_0001.JPEG", "val_0002.png"], details
    assert all(detail.startswith("pHash distance ") for detail in details), details
    assert not [row for row in published if any(str(tmp_path) in str(value) for value in row.values())]


def test_a_list_is_read_as_a_blocklist_is_and_a_path_not_there_fails_at_launch(tmp_path, eval_set):
    """A byte order mark (Notepad's UTF-8), comments after a path: the list names its images. A path that
    is not there (a case typo) fails with its line: a list naming nothing readable decontaminated nothing,
    and the run exited 0 with the evaluation images in the dataset."""
    from pipeline.stages.decontaminate import expand_eval_source

    names = sorted(path.name for path in eval_set.iterdir())[:2]
    listing = eval_set.parent / "eval.txt"
    listing.write_text("\ufeff# the two evaluation images\n" + f"{eval_set.name}/{names[0]}   # the coffee cup\n"
                       + f"\n{eval_set.name}/{names[1]}\n", encoding="utf-8")
    assert [path.rsplit("/", 1)[1] for path in expand_eval_source(str(listing))] == names
    listing.write_text(f"{eval_set.name}/{names[0]}\n{eval_set.name}/{names[1].upper()}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"eval\.txt:2: '{eval_set.name}/{names[1].upper()}': no such file"):
        expand_eval_source(str(listing))
    # A folder whose name holds " #" is a path, not a comment; a line naming a folder (or cut to one) is no image.
    (eval_set / "class #3").mkdir()
    (eval_set / "class #3" / "img.jpg").write_bytes((eval_set / names[0]).read_bytes())
    listing.write_text(f"{eval_set.name}/class #3/img.jpg\n", encoding="utf-8")
    assert [path.rsplit("/", 2)[-2:] for path in expand_eval_source(str(listing))] == [["class #3", "img.jpg"]]
    listing.write_text(f"{eval_set.name}/class #3\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"eval\.txt:1: .*no such file"):
        expand_eval_source(str(listing))
    listing.write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(ValueError, match="not UTF-8"):
        expand_eval_source(str(listing))


def test_an_evaluation_image_whose_name_is_no_utf8_text_fails_at_launch(tmp_path):
    import os

    from pipeline.stages.decontaminate import expand_eval_source

    os.close(os.open(os.path.join(os.fsencode(tmp_path), b"caf\xe9.jpg"), os.O_CREAT | os.O_WRONLY))
    with pytest.raises(ValueError, match="the file name is no UTF-8 text"):
        expand_eval_source(str(tmp_path))


def test_of_equally_close_evaluation_images_the_same_one_is_named_whatever_order_they_were_hashed_in():
    """Evaluation sets hold copies under two names; the side input lists them in the order the workers hashed them,
    and the first listed was named: the rejections differed from run to run (two workers)."""
    from pipeline.stages.decontaminate import _DropContaminated

    phash = normalise(real_jpeg("coffee.jpg"), CFG).phash
    hashes = [(int(phash, 16), f"eval/{name}.jpg") for name in "abcdefgh"]
    details = set()
    for order in (hashes, hashes[::-1], hashes[3:] + hashes[:3]):
        [rejected] = _DropContaminated(4).process(photo("1", phash=phash), order)
        details.add(rejected.value.detail)
    assert details == {"pHash distance 0 to evaluation image a.jpg"}


def test_a_huge_file_among_the_evaluation_images_is_counted_never_read_whole(tmp_path, monkeypatch):
    """A folder counts every file below it: an archive or a video left there (ImageNet's tar beside its images) was
    read whole into a worker's memory, and one of a few GB ended the job. Past MAX_EVAL_IMAGE_BYTES a file is
    counted as unreadable after reading at most that much (here the limit is made 1 MiB, the file 64 MiB)."""
    from pipeline.stages import decontaminate
    from tests.conftest import peak_bytes_consuming

    monkeypatch.setattr(decontaminate, "MAX_EVAL_IMAGE_BYTES", 1 << 20, raising=False)
    huge = tmp_path / "train.tar"
    with huge.open("wb") as handle:
        handle.truncate(64 << 20)  # sparse: no disk written
    small = tmp_path / "val.jpg"
    small.write_bytes(encode(real_image("coffee.jpg").resize((300, 200)), "JPEG"))
    hashing = decontaminate._HashEvalImage(CFG)
    assert peak_bytes_consuming(hashing.process(str(huge))) < 8 << 20
    assert list(hashing.process(str(huge))) == []
    assert [path for _, path in hashing.process(str(small))] == [str(small)]


def test_an_evaluation_file_named_to_forge_log_lines_is_logged_with_its_name_escaped(tmp_path, caplog):
    """A benchmark's folder comes from elsewhere, and a file name may hold any byte but '/': one that cannot be read was
    logged by its name as it was, a line break printing a forged line of the run's log and a terminal escape driving
    the terminal reading it. Its name is logged with each unprintable character escaped."""
    from pipeline.stages.decontaminate import _HashEvalImage

    name = "val\x1b[2J\nINFO pipeline: every evaluation image hashed.JPEG"
    (tmp_path / name).write_bytes(b"not an image")
    [path] = expand_eval_source(str(tmp_path))
    with caplog.at_level("WARNING", logger="pipeline.stages.decontaminate"):
        assert list(_HashEvalImage(CFG).process(path)) == []
    [logged] = [record.getMessage() for record in caplog.records]
    assert "val\\x1b[2J\\nINFO pipeline" in logged and logged.isprintable(), logged


def test_near_duplicates_off_leaves_decontamination_and_takedowns_at_the_default_distance(tmp_path):
    """--near_dup_distance=-1 turns off the near-duplicate stage only: it made --decontaminate and every pHash
    takedown without a distance match identical pHashes alone, so a near copy of an evaluation image (or of a
    taken-down one) was kept, silently."""
    from pipeline.options import DEFAULT_NEAR_DUP_DISTANCE

    coffee = real_image("coffee.jpg")
    cropped = encode(coffee.crop((coffee.width // 100, coffee.height // 100, *coffee.size)), "JPEG", quality=90)
    gap = (int(normalise(cropped, CFG).phash, 16) ^ int(normalise(real_jpeg("coffee.jpg"), CFG).phash, 16)).bit_count()
    assert 0 < gap <= DEFAULT_NEAR_DUP_DISTANCE  # a near copy (a 1% crop), not an identical pHash
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "val_0001.JPEG").write_bytes(cropped)
    chelsea = int(normalise(real_jpeg("chelsea.jpg"), CFG).phash, 16)
    (tmp_path / "takedowns.txt").write_text(f"phash {chelsea ^ 0b1011:016x}\n")  # 3 bits from chelsea's pHash
    with StaticServer() as server:
        metadata = build_demo_world(server, tmp_path)
        stats = run([f"--input={metadata}", f"--output={tmp_path / 'out'}", f"--allowed_hosts={server.host}",
                     f"--decontaminate={tmp_path / 'eval'}", f"--blocklist={tmp_path / 'takedowns.txt'}",
                     "--near_dup_distance=-1", *FAST])
    assert stats["accounted"] and stats["rejections_by_stage"]["decontaminate"] == {"eval_overlap": 1}  # coffee
    assert stats["rejections_by_stage"]["blocklist_content"] == {"blocklisted": 2}  # chelsea and its re-upload


@pytest.mark.parametrize("inside", ["\u2028", "\x85", "\x0c", "\x1e"])
def test_a_list_ends_its_lines_where_a_takedown_list_does_never_inside_a_path(tmp_path, eval_set, inside):
    """A list's lines end at \\n, \\r\\n or a lone \\r, as a takedown list's do; str.splitlines() also ended one at
    U+2028, NEL, a form feed or a record separator, which a file name may hold: its path was cut in two, neither of
    which is there. The same character after a path's comment would make the path after it part of that comment: it
    fails at launch with its line, as in a takedown list."""
    image = (eval_set / "val_0001.JPEG").read_bytes()
    (eval_set / f"val{inside}a.JPEG").write_bytes(image)
    listing = tmp_path / "eval.txt"
    listing.write_text(f"eval/val_0002.png\reval/val{inside}a.JPEG\r\n{inside}\neval/val_0001.JPEG\n", encoding="utf-8")
    assert [path[len(str(tmp_path)) + 1:] for path in expand_eval_source(str(listing))] == [
        "eval/val_0002.png", f"eval/val{inside}a.JPEG", "eval/val_0001.JPEG"]
    listing.write_text(f"eval/val_0002.png\n# the test split\neval/val_0001.JPEG  # coffee{inside}eval/val_0003.JPEG\n",
                       encoding="utf-8")
    with pytest.raises(ValueError, match=r"eval\.txt:3: a line break .* in a comment"):
        expand_eval_source(str(listing))


def test_a_named_pipe_or_a_device_among_the_evaluation_images_is_counted_not_waited_on(tmp_path):
    """A folder's listing names a named pipe among its files (a benchmark's folder holding one left by a tool), and a
    link to a device: the worker hashing the images opened the pipe and waited for a writer for good, the job with
    it. Either is counted as an image that cannot be read, and logged."""
    import os

    from pipeline.stages.decontaminate import _HashEvalImage

    (tmp_path / "val_0001.JPEG").write_bytes(encode(real_image("coffee.jpg").resize((300, 200)), "JPEG"))
    os.mkfifo(tmp_path / "val_0002.JPEG")  # nothing ever writes it
    os.symlink("/dev/zero", tmp_path / "val_0003.JPEG")
    paths = expand_eval_source(str(tmp_path))
    assert [path.rsplit("/", 1)[1] for path in paths] == ["val_0001.JPEG", "val_0002.JPEG", "val_0003.JPEG"]
    hashing = _HashEvalImage(CFG)
    assert [[name for _, name in hashing.process(path)] for path in paths] == [[paths[0]], [], []]


def test_a_list_file_whose_suffix_is_in_upper_case_is_read_as_a_list(tmp_path, eval_set):
    """`EVAL.TXT` (a name a tool upper-cased) was taken for a folder: nothing below it, the run refused as naming no
    image. The suffix is read in any case, as a compressed input's is."""
    (tmp_path / "EVAL.TXT").write_text("eval/val_0001.JPEG\n")
    (tmp_path / "test.Lst").write_text("eval/val_0002.png\n")
    assert [path.rsplit("/", 1)[1] for source in ("EVAL.TXT", "test.Lst")
            for path in expand_eval_source(str(tmp_path / source))] == ["val_0001.JPEG", "val_0002.png"]


def test_an_evaluation_folder_whose_class_folders_are_links_is_refused_not_read_in_part(tmp_path, eval_set):
    """A benchmark laid out as links to class folders kept elsewhere (`val/n01440764 -> /data/imagenet/…`): the folder's
    listing does not follow links, so their images were never hashed and their near copies kept, the run saying
    nothing. Refused at launch naming the link; the folder it leads to can be given beside it."""
    val = tmp_path / "val"
    val.mkdir()
    (val / "val_0009.JPEG").write_bytes((eval_set / "val_0002.png").read_bytes())
    (val / "n01440764").symlink_to(eval_set, target_is_directory=True)
    with pytest.raises(ValueError, match=r"--decontaminate .*val/n01440764 is a link to a folder"):
        expand_eval_source(str(val))
    assert len(expand_eval_source(str(eval_set))) == 3  # where it leads, given as a source of its own
