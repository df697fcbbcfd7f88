"""Each option's one role, and the lists every other module derives from it."""

import datetime as dt
import time

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline import options
from pipeline.io import work_cache
from pipeline.io.work_cache import shaping_options
from pipeline.options import OPTIONS, PassOptions, Role
from pipeline.stages.image import ImageConfig


def opts(*argv: str) -> PassOptions:
    return PipelineOptions(["--input=x", "--output=y", *argv]).view_as(PassOptions)


def test_every_option_has_a_role_a_section_and_help():
    for option in options.DECLARED:
        assert isinstance(option.role, Role) and option.group in options.GROUPS
        assert option.argparse_kwargs.get("help"), option.name


def test_run_help_states_every_default_a_number_zero_included(capsys):
    """The help left out every default equal to False, as `0 in (None, "", False)` is true: --shards and
    --detect_threads showed none, while --images_per_shard showed its 5000."""
    from pipeline.cli import main

    main(["run", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    numbers = [option for option in options.DECLARED if option.role is not Role.INTERNAL
               and isinstance(option.default, int | float) and not isinstance(option.default, bool)]
    # the filter alone could leave nothing to check: the three the bug was seen on are among them
    assert {"shards", "detect_threads", "images_per_shard"} <= {option.name for option in numbers}
    for option in numbers:
        assert f"(default: {option.default})" in shown.split(f"--{option.name} ", 2)[-1], option.name


def test_derived_lists_nest_as_the_roles_say():
    assert set(options.INHERITED) <= set(options.RECORDED)
    assert set(options.SHAPES_BYTES) | set(options.SHAPES_DETECTION) <= set(options.INHERITED)
    assert not {name for name in options.RECORDED if OPTIONS[name].role is Role.OPERATIONAL}
    # The content-shaping options a refresh used to lose (issue: refreshes reset them to defaults).
    assert {"model_registry", "near_dup_dhash_distance", "detect_thresholds", "review_band",
            "detect_tile_min_side", "max_bytes", "flickr_originals"} <= set(options.INHERITED)
    assert "carry_over" in options.INPUTS and "model_registry" in options.INPUTS


def test_every_option_that_shapes_the_stored_bytes_changes_the_cache_key():
    base = shaping_options(opts())
    changed = {"flickr_originals": "--flickr_originals", "max_bytes": "--max_bytes=1000", "max_side": "--max_side=300",
               "min_side": "--min_side=10", "max_pixels": "--max_pixels=1000", "min_stddev": "--min_stddev=9",
               "jpeg_quality": "--jpeg_quality=70", "draft_supersample": "--draft_supersample=1",
               "resize_reducing_gap": "--resize_reducing_gap=0"}
    assert set(changed) == set(options.SHAPES_BYTES)
    for name, flag in changed.items():
        assert shaping_options(opts(flag)) != base, name
    assert shaping_options(opts("--fetch_threads=3", "--detectors=none")) == base  # not shaping bytes
    # The image stage's whole config, but for how many pixels a process decodes at once (never the bytes)
    assert set(ImageConfig.__dataclass_fields__) - {"decode_pixel_budget"} <= set(options.SHAPES_BYTES)
    assert next(o.role for o in options.DECLARED if o.name == "decode_pixel_budget") is options.Role.OPERATIONAL


def test_a_new_version_of_the_storage_rule_changes_the_cache_key(monkeypatch):
    """The same options under a storage rule that stores some source differently: nothing cached before it
    may be taken, or a build resumed across the change would hold images stored under both rules."""
    base = shaping_options(opts())
    monkeypatch.setattr(work_cache, "STORAGE_RULE_VERSION", work_cache.STORAGE_RULE_VERSION + 1)
    assert shaping_options(opts()) != base


@pytest.mark.parametrize(("low", "high", "problem"), [
    ("2020-09-14", "2020-09-13", "--min_upload_date 2020-09-14 is after --max_upload_date 2020-09-13"),
    ("1600041601", "2020-09-13", "is after --max_upload_date"),  # one second past the last day given
    ("garbage", "2020-09-13", "--min_upload_date 'garbage' is no date"),
    ("2020-09-13", "\u00b2", "--max_upload_date '\u00b2' is no date"),  # a digit to isdigit(), not to int()
    ("2020-02-30", "2020-03-01", "--min_upload_date '2020-02-30' is no date"),
    ("2020-9-13", "2020-09-14", "--min_upload_date '2020-9-13' is no date"),  # strptime takes it: not YYYY-MM-DD
    ("2020-09-13", "\uff12\uff10\uff12\uff10-09-14", "--max_upload_date '\uff12\uff10\uff12\uff10-09-14' is no date"),
    ("1600000000", "99999999999999", "--max_upload_date '99999999999999' is no date"),  # past 9999: no date shows it
    ("1600000000", "9999999999999999999", "--max_upload_date '9999999999999999999' is no date"),
])
def test_an_upload_window_that_is_no_window_is_refused_naming_the_flag(low, high, problem):
    given = PipelineOptions(["--source=flickr", f"--min_upload_date={low}", f"--max_upload_date={high}",
                             "--output=y"]).view_as(PassOptions)
    assert [p for p in options.validate(given) if problem in p], options.validate(given)


def test_an_upload_window_that_ends_after_now_is_refused_naming_the_last_whole_day():
    """A window ending in the future (a typo's year, today) takes uploads not made yet: the same command gave another
    dataset later, and a refresh retried the next day was taken for the same refresh by its record."""
    today = dt.datetime.now(dt.UTC).date()
    yesterday = (today - dt.timedelta(days=1)).isoformat()
    for high in (today.isoformat(), "2999-01-01", str(int(time.time()) + 3600)):
        given = PipelineOptions(["--source=flickr", "--min_upload_date=2020-09-13", f"--max_upload_date={high}",
                                 "--output=y"]).view_as(PassOptions)
        assert options.validate(given) == [
            f"--max_upload_date {high} ends after now: uploads not made yet would make the same command give another "
            f"dataset later; the last whole day is {yesterday} (UTC)"]
    given = PipelineOptions(["--source=flickr", "--min_upload_date=2020-09-13", f"--max_upload_date={yesterday}",
                             "--output=y"]).view_as(PassOptions)
    assert options.validate(given) == []


def test_a_day_is_inclusive_and_seconds_exact():
    from pipeline.options import upload_window

    assert upload_window("2020-09-13", "2020-09-13") == (1599955200, 1599955200 + 86399)
    assert upload_window("1599955200", "1600041599") == (1599955200, 1600041599)
    assert upload_window("1600041599", "2020-09-13") == (1600041599, 1600041599)  # one second: not empty


def test_a_table_format_reads_input_files_and_only_tables_take_a_column_mapping():
    assert not options.validate(opts("--input_format=parquet", "--columns=url=photo_url"))
    assert options.validate(PipelineOptions(["--source=flickr", "--min_upload_date=2024-01-01",
                                             "--max_upload_date=2024-01-02", "--output=y", "--input_format=csv"]
                                            ).view_as(PassOptions)) == [
        "--input_format=csv reads --input files, not --source=flickr"]
    assert options.validate(opts("--columns=url=photo_url")) == [
        "--columns applies to --input_format=csv, tsv, tsv_plain, parquet or jsonl"]
    assert {"input_format", "columns"} <= set(options.INPUTS) and {"input_format", "columns"} <= set(
        options.RECORDED)


@pytest.mark.parametrize("value", ["0", "-1", "1e999", "1e-9", "0.09"])
def test_progress_seconds_must_be_a_number_of_seconds_of_at_least_a_tenth(value):
    """1e-9 passed as positive: the heartbeat then logged a line at every turn of its loop, flooding the log."""
    assert options.validate(opts(f"--progress_seconds={value}")) == [
        "--progress_seconds must be a number of seconds of at least 0.1"]
    assert not options.validate(opts("--progress_seconds=0.5")) and not options.validate(opts("--progress_seconds=0.1"))


@pytest.mark.parametrize("value", ["0.5", "-1", "9", "1e999"])
def test_resize_reducing_gap_is_off_or_one_to_eight(value):
    assert options.validate(opts(f"--resize_reducing_gap={value}")) == [
        "--resize_reducing_gap must be 0 (off) or within 1..8"]
    for fine in ("0", "1", "2.5"):
        assert not options.validate(opts(f"--resize_reducing_gap={fine}"))


@pytest.mark.parametrize(("flag", "message"), [
    ("--connect_timeout=1e999", "--connect_timeout must be a finite number of seconds above 0"),
    ("--read_timeout=-1", "--read_timeout must be a finite number of seconds above 0"),
    ("--fetch_deadline=0", "--fetch_deadline must be a finite number of seconds above 0"),
    ("--fetch_deadline=1e999", "--fetch_deadline must be a finite number of seconds above 0"),
    ("--backoff_base=-1", "--backoff_base must be a finite number, 0 or more"),
    ("--max_backoff=1E+400", "--max_backoff must be a finite number, 0 or more"),
    ("--per_host_rps=-0.5", "--per_host_rps must be a finite number, 0 or more"),
    ("--flickr_calls_per_second=-2", "--flickr_calls_per_second must be a finite number, 0 or more"),
    # an interval longer than a sleep can be: the second call raised OverflowError (pacing.Pacer sleeps it)
    ("--flickr_calls_per_second=1e-10", "--flickr_calls_per_second must be 0 (unpaced) or at least 0.000278"),
    ("--per_host_rps=1e-300", "--per_host_rps must be 0 (unpaced) or at least 0.000278 (one an hour)"),
    ("--min_stddev=255.5", "--min_stddev must be within 0..255 (a pixel's standard deviation)"),
    ("--min_stddev=1e999", "--min_stddev must be within 0..255 (a pixel's standard deviation)"),
    ("--flickr_search_depth=0", "--flickr_search_depth must be at least 1"),
    ("--shards=100000000", "--shards must be at most 100,000"),
    ("--fetch_threads=100000", "--fetch_threads must be at most 1,024"),
    ("--detect_batch_size=1000000", "--detect_batch_size must be at most 4,096"),
    ("--max_side=1000000000", "--max_side must be at most 16,384"),
    ("--near_dup_key_blocks=48", "--near_dup_key_blocks=48 with --near_dup_distance=4 makes 270,725 keys"),
])
def test_numbers_that_are_no_finite_value_or_beyond_any_sensible_bound_fail_at_launch(flag, message):
    """Each ran before: NaN or negative timeouts made every fetch an internal_error (refused after the crawl,
    exit 4), --min_stddev=nan switched the blank check off, --near_dup_key_blocks=48 (with distance 16) hung
    building 4.9e14 keys. Now one line at launch; the defaults and 0 where 0 means 'no limit' pass."""
    problems = options.validate(opts(flag))
    assert len(problems) == 1 and problems[0].startswith(message), problems
    assert not options.validate(opts("--per_host_rps=0", "--backoff_base=0", "--min_stddev=0", "--shards=100000"))
    assert not options.validate(opts("--per_host_rps=0.000278", "--flickr_calls_per_second=0.000278"))


@pytest.mark.parametrize("value", ["4,11,5", "1", "4,40", "", "4,²", "04x", "04", "4.0"])
def test_flickr_licenses_names_cc_by_ids_only(value):
    assert options.validate(opts(f"--flickr_licenses={value}")) == [
        f"--flickr_licenses must name CC BY license ids only: 4 (CC BY 2.0), 11 (CC BY 4.0) (got {value!r})"]
    for fine in ("4", "11", "4,11", "11, 4"):
        assert not options.validate(opts(f"--flickr_licenses={fine}"))


def test_an_output_or_cache_folder_named_with_a_wildcard_is_refused(tmp_path, capsys):
    """Beam matches and deletes an output's files by pattern: `--output=run[1]` ran the whole job, published
    nothing, deleted its staged dataset and left its lock (on gs:// for good)."""
    from pipeline.cli import main

    for flag in ("--output=out/run[1]", "--cache=work/c*", "--output=gs://b/what?"):
        given = PipelineOptions([f"--input={tmp_path}/x.tsv", "--output=y", flag]).view_as(PassOptions)
        assert [p for p in options.validate(given) if "file patterns read as wildcards" in p], flag
    assert not options.validate(opts("--output=gs://b/releases/{YYYY-MM}"))  # the month token stays allowed
    (tmp_path / "x.tsv").write_text("")
    assert main(["run", f"--input={tmp_path / 'x.tsv'}", f"--output={tmp_path / 'run[1]'}"]) == 2
    assert "wildcards" in capsys.readouterr().err and not (tmp_path / "run[1]").exists()
    # A refresh names the root it was given, not the release and cache folders under it
    assert main(["refresh", f"--input={tmp_path / 'x.tsv'}", f"--output={tmp_path / 'root[1]'}", "--release=r1"]) == 2
    err = capsys.readouterr().err
    assert f"--output '{tmp_path / 'root[1]'}' holds" in err and "releases" not in err


def test_a_contact_that_is_no_plain_http_url_is_refused_at_launch():
    """It goes into every request's User-Agent: a trailing newline made every download a connection_error, and
    the run was refused after the whole crawl as if the network had failed."""
    for contact in ("https://example.org/contact\n", "https://example.org/a b", "mailto:x@example.org", ""):
        assert [p for p in options.validate(opts(f"--contact={contact}")) if "--contact" in p], repr(contact)
    assert not options.validate(opts("--contact=https://example.org/pass?about=crawler"))


@pytest.mark.parametrize("flag", ["--near_dup_dhash_distance", "--max_side", "--input", "--formats"])
def test_a_flag_given_the_end_of_flags_marker_as_its_value_is_one_line(tmp_path, capsys, flag):
    """`--near_dup_dhash_distance=--`: argparse reads '--' as the end of the flags and left the option an empty list,
    untyped: the launch failed with "the job failed: TypeError" instead of naming the flag."""
    from pipeline.cli import main

    given = {"--input": str(tmp_path / "x.tsv"), "--output": str(tmp_path / "out"), flag: "--"}
    assert main(["run", *(f"{name}={value}" for name, value in given.items())]) == 2
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and f"{flag} was given '--'" in message, message


def test_max_failure_rate_help_names_every_reason_the_refusal_counts():
    """The help said "connection errors, timeouts, 429/5xx", while the refusal also counts a host name resolving to
    a non-public address (address_not_public) and a download past its deadline: a run refused, exit 4, for
    address_not_public alone was not what the help described."""
    from pipeline.commands.run import ENVIRONMENTAL

    [option] = [option for option in options.DECLARED if option.name == "max_failure_rate"]
    said = " ".join(option.argparse_kwargs["help"].split())
    assert [reason for reason in ENVIRONMENTAL if reason not in said] == []
