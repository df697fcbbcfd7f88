"""Entry point of the Flex Template launcher: `pass-pipeline refresh` when the launch names a
previous release (the monthly schedule) or a release name (a first release), otherwise the same `run` as
`pass-pipeline run`.

A Flex Template's launch runs this with `--template_location`: Beam's Dataflow runner then only writes the job's spec,
and the launch service makes the job once this program has ended, so no job exists here to wait for, publish or cancel;
`run` and `refresh` refuse it at launch, in one line (`run.refuse_a_job_made_later`; README, "Run on Google Cloud")."""

import sys

from pipeline.cli import entry


def command(args: list[str]) -> list[str]:
    # A release name alone is a first release, also a refresh's (`run` knows no --release)
    refresh = any(arg.split("=", 1)[0] in ("--previous", "--release") for arg in args)
    return ["refresh" if refresh else "run", *args]


if __name__ == "__main__":
    sys.exit(entry(command(sys.argv[1:])))
