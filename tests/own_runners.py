"""Runner classes of a user's own, named by a dotted path as --runner takes them (tests/test_run.py): two named as
Beam's runners are but no kin of theirs, two subclasses of Beam's named otherwise."""

from __future__ import annotations

from apache_beam.runners.dataflow.dataflow_runner import DataflowRunner as BeamsDataflowRunner
from apache_beam.runners.direct.direct_runner import DirectRunner as BeamsDirectRunner
from apache_beam.runners.runner import PipelineRunner


class DirectRunner(PipelineRunner):
    """Named as Beam's local runner, runs the job wherever its author sends it."""


class DataflowRunner(PipelineRunner):
    """Named as Beam's remote runner, submits nothing Beam knows of."""


class LoggedDirectRunner(BeamsDirectRunner):
    """Beam's local runner with something of the user's own: runs the job here."""


class LabelledDataflowRunner(BeamsDataflowRunner):
    """Beam's Dataflow runner with something of the user's own: submits the job."""
