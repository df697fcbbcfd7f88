"""Entry point of the Flex Template launcher: the same `run` as `pass-pipeline run`."""

import sys

from pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
