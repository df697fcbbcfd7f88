"""Entry point of the Flex Template launcher: `pass-pipeline refresh` when the launch names a
previous release (the monthly schedule) or a release name (a first release), otherwise the same `run` as
`pass-pipeline run`."""

import sys

from pipeline.cli import entry


def command(args: list[str]) -> list[str]:
    # A release name alone is a first release, also a refresh's (`run` knows no --release)
    refresh = any(arg.split("=", 1)[0] in ("--previous", "--release") for arg in args)
    return ["refresh" if refresh else "run", *args]


if __name__ == "__main__":
    sys.exit(entry(command(sys.argv[1:])))
