"""Entry point of the Flex Template launcher: `pass-pipeline refresh` when the launch names a
previous release (the monthly schedule), otherwise the same `run` as `pass-pipeline run`."""

import sys

from pipeline.cli import main


def command(args: list[str]) -> list[str]:
    refresh = any(arg.startswith("--previous=") or arg == "--previous" for arg in args)
    return ["refresh" if refresh else "run", *args]


if __name__ == "__main__":
    sys.exit(main(command(sys.argv[1:])))
