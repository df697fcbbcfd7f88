import sys

from pipeline.launch import entry

sys.exit(entry())
