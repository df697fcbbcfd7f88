"""PASS-style dataset builder: CC BY, human-free, fully attributed image sets from Flickr."""

__version__ = "0.1.0"
