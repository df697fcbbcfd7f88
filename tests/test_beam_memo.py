import gc
import hashlib
import json
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.coders import VarIntCoder
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions, TypeOptions
from apache_beam.transforms import userstate
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer

from pipeline import beam_memo
from pipeline.build import build
from pipeline.cli import run
from pipeline.commands.run import pipeline_options
from pipeline.fixtures.demo_world import build_demo_world
from pipeline.fixtures.static_server import StaticServer
from pipeline.options import PassOptions
from tests.conftest import FAST, LOCAL


@pytest.fixture
def unmemoised():
    beam_memo.uninstall()
    yield
    assert beam_memo.install()


class Stateful(beam.DoFn):
    COUNT = ReadModifyWriteStateSpec("count", VarIntCoder())
    EXPIRY = TimerSpec("expiry", beam.TimeDomain.WATERMARK)

    def process(self, element, count=beam.DoFn.StateParam(COUNT), expiry=beam.DoFn.TimerParam(EXPIRY)):  # noqa: B008 (Beam's idiom)
        yield element

    @on_timer(EXPIRY)
    def expired(self):
        return []


def test_the_pipeline_package_installs_the_memos_on_the_checked_beam():
    assert beam.__version__ == beam_memo.CHECKED_BEAM, (
        "a new Beam: re-read get_dofn_specs, view_as and get_signature (and who imports it), move the pin")
    assert beam_memo.installed()


def test_an_unchecked_beam_version_is_left_as_it_is(unmemoised, monkeypatch):  # unpatched first, back last
    monkeypatch.setattr(beam, "__version__", "9.9.9")
    assert not beam_memo.install()
    assert not beam_memo.installed()
    assert userstate.get_dofn_specs is beam_memo._original_get_dofn_specs
    assert all(module.get_signature is beam_memo._original_get_signature for module in beam_memo._SIGNATURE_USERS)


def _dofns_of(pipeline: beam.Pipeline) -> list[beam.DoFn]:
    found = []

    class Visitor(beam.pipeline.PipelineVisitor):
        def visit_transform(self, node):
            if isinstance(node.transform, beam.ParDo):
                found.append(node.transform.fn)

    pipeline.visit(Visitor())
    return found


def test_every_dofn_of_the_job_gets_the_specs_beam_computes(tmp_path):
    """The memo's answers are Beam's own, for each DoFn of a whole job and for a stateful one."""
    with StaticServer() as server:
        metadata = build_demo_world(server, tmp_path)
        options = pipeline_options([f"--input={metadata}", f"--output={tmp_path / 'out'}",
                                    f"--allowed_hosts={server.host}", "--per_owner_cap=1", *LOCAL])
        pipeline = beam.Pipeline(options=options)
        build(pipeline, options.view_as(PassOptions))
    dofns = [*_dofns_of(pipeline), Stateful()]
    assert len(dofns) > 50
    for dofn in dofns:
        assert beam_memo.get_dofn_specs(dofn) == beam_memo._original_get_dofn_specs(dofn)
    state_specs, timer_specs = beam_memo.get_dofn_specs(dofns[-1])
    assert [s.name for s in state_specs] == ["count"] and len(timer_specs) == 1
    assert userstate.is_stateful_dofn(dofns[-1]) and not userstate.is_stateful_dofn(dofns[0])


def test_specs_are_computed_once_per_dofn_and_handed_out_as_copies(monkeypatch):
    calls = []
    monkeypatch.setattr(beam_memo, "_original_get_dofn_specs", lambda dofn: calls.append(dofn) or ({"s"}, {"t"}))
    dofn = Stateful()
    first = beam_memo.get_dofn_specs(dofn)
    first[0].add("changed by a caller")
    assert beam_memo.get_dofn_specs(dofn) == ({"s"}, {"t"}) and calls == [dofn]


def test_a_dead_dofn_is_forgotten():
    dofn = Stateful()
    key = id(dofn)
    beam_memo.get_dofn_specs(dofn)
    assert key in beam_memo._specs
    del dofn
    gc.collect()
    assert key not in beam_memo._specs


def test_signatures_are_beams_own_for_every_callable_of_the_job(tmp_path):
    """For every DoFn method and every function a whole job's transforms hold, a bound method, a
    lambda, and callables the memo does not keep (a class, a builtin, a partial): Beam's answer."""
    import functools

    with StaticServer() as server:
        metadata = build_demo_world(server, tmp_path)
        options = pipeline_options([f"--input={metadata}", f"--output={tmp_path / 'out'}",
                                    f"--allowed_hosts={server.host}", *LOCAL])
        pipeline = beam.Pipeline(options=options)
        build(pipeline, options.view_as(PassOptions))
    callables = [getattr(dofn, name) for dofn in _dofns_of(pipeline) for name in ("process", "setup", "start_bundle")]
    callables += [dofn._fn for dofn in _dofns_of(pipeline) if callable(getattr(dofn, "_fn", None))]
    callables += [Stateful().process, Stateful, len, functools.partial(max, 1), lambda x, *rest, y=2: x]
    assert len(callables) > 150
    for func in callables:
        assert beam_memo.get_signature(func) == beam_memo._original_get_signature(func), func
        assert beam_memo.get_signature(func) == beam_memo.get_signature(func)  # from the memo, the same


def test_a_signature_is_computed_once_per_function_whatever_the_instance(monkeypatch):
    calls = []
    original = beam_memo._original_get_signature
    monkeypatch.setattr(beam_memo, "_original_get_signature", lambda func: calls.append(func) or original(func))

    class Fresh(beam.DoFn):  # a function no earlier test inspected
        def process(self, element, extra=0):
            yield element

    first, second = Fresh(), Fresh()
    assert beam_memo.get_signature(first.process) is beam_memo.get_signature(second.process)
    assert beam_memo.get_signature(Fresh.process) != beam_memo.get_signature(first.process)  # unbound: has self
    assert len(calls) == 2  # the bound method once, the function once
    beam_memo.get_signature(len)
    beam_memo.get_signature(len)
    assert len(calls) == 4  # a builtin is not kept


def test_a_dead_function_is_forgotten():
    def scratch(a, b=1):
        return a

    key = (id(scratch), False)
    beam_memo.get_signature(scratch)
    assert key in beam_memo._signatures
    del scratch
    gc.collect()
    assert key not in beam_memo._signatures


def test_views_share_their_values_as_beams_own_do():
    options = PipelineOptions(["--runner=FnApiRunner", "--pipeline_type_check"])
    standard = options.view_as(StandardOptions)
    assert options.view_as(StandardOptions) is standard  # made once
    standard.runner = "DirectRunner"
    assert options.view_as(StandardOptions).runner == "DirectRunner"
    assert beam_memo._original_view_as(options, StandardOptions).runner == "DirectRunner"
    assert options.view_as(TypeOptions).pipeline_type_check is True
    options.view_as(TypeOptions).pipeline_type_check = False
    assert standard.view_as(TypeOptions).pipeline_type_check is False  # a view of a view sees it too
    assert PipelineOptions(["--runner=FnApiRunner"]).view_as(StandardOptions).runner == "FnApiRunner"


def test_a_view_is_made_afresh_when_the_values_were_replaced():
    options = PipelineOptions(["--runner=FnApiRunner"])
    first = options.view_as(StandardOptions)
    options._all_options = dict(options._all_options, runner="DirectRunner")
    again = options.view_as(StandardOptions)
    assert again is not first and again.runner == "DirectRunner"


class ComparedOptions(PipelineOptions):
    def __eq__(self, other):  # and therefore no __hash__: cannot be a dictionary key
        return self is other


def test_options_that_cannot_be_a_key_get_beams_own_views():
    options = ComparedOptions(["--runner=FnApiRunner"])
    assert options.view_as(StandardOptions).runner == "FnApiRunner"


def test_a_view_is_made_afresh_when_a_value_it_shows_was_deleted():
    options = PipelineOptions(["--runner=FnApiRunner"])
    options.view_as(StandardOptions)
    del options._all_options["streaming"]
    assert options.view_as(StandardOptions).streaming is False  # as Beam's own view_as puts it back


def _files(output: Path) -> dict[str, str]:
    """Every file a run writes, less stats.json's measurements of the run itself and the manifest
    (which names the run: its id and times)."""
    files = {str(path.relative_to(output)): hashlib.sha256(path.read_bytes()).hexdigest()
             for path in sorted(output.rglob("*")) if path.is_file()
             and path.name not in ("stats.json", "manifest.json", "DATASHEET.md", "README.md")}
    stats = json.loads((output / "stats.json").read_text())
    files["stats.json"] = json.dumps({key: value for key, value in stats.items()
                                      if key not in ("steps", "peak_rss_mb", "peak_memory_mb", "run_id",
                                                     "started", "finished", "wall_seconds")}, sort_keys=True)
    return files


def test_a_job_writes_the_same_files_with_and_without_the_memos(tmp_path):
    with StaticServer() as server:
        metadata = build_demo_world(server, tmp_path / "in")
        argv = [f"--input={metadata}", f"--allowed_hosts={server.host}", "--shards=2", "--per_owner_cap=1", *FAST]
        run([*argv, f"--output={tmp_path / 'memo'}"])
        beam_memo.uninstall()
        try:
            run([*argv, f"--output={tmp_path / 'beam'}"])
        finally:
            assert beam_memo.install()
    memoised, plain = _files(tmp_path / "memo"), _files(tmp_path / "beam")
    assert memoised == plain and len(memoised) > 10
