"""The version of the rule that turns a downloaded image into the stored one (stages/image.py).

Here, below the stage, because the run's report (io/report.py) and the work cache's key (io/work_cache.py) record it
too; the image stage is the one that must bump it.
"""

# Bumped whenever a code change alters the stored bytes of some source under the same options (2: an exact
# integer reduction is a box average on both sides, 2026-12-01; 3: an EXIF orientation that is not an
# integer is ignored, where a drafted JPEG with one was stored squashed, and a PNG's tRNS colour key is
# composited on white like any transparency, 2026-12-01; 4: a 16-bit RGB PNG's colour key is matched on its
# 16-bit samples, an RGB one's is applied beside an ICC profile too, and an MPO index, an EXIF or an ICC float
# pipeline no camera writes is refused, 2026-12-03; 5: an arithmetic-coded JPEG, or a Huffman-coded one with no
# table of its own, whose data libjpeg does not decode cleanly, whose noise was stored, is refused, 2026-12-04; 6: an
# ICC float pipeline whose few elements widen the channels to a costly matrix or CLUT is refused, 2026-12-04; 7: a
# JPEG whose scans pass over its blocks more than MAX_JPEG_BLOCK_PASSES times is refused, 2026-12-04; 8: a JPEG with
# bytes that are no marker before its frame header, which libjpeg skips, is checked for arithmetic coding faults too,
# where such a file's noise was stored, and one that check decodes (arithmetic-coded, or with no Huffman table of its
# own) may make half MAX_JPEG_BLOCK_PASSES, a lossless one two passes, and a lossless JPEG is decoded at full size,
# where drafting one crashed the process, 2026-12-04; 9: an embedded ICC profile converts an image with alpha or a
# palette (composited on white first) and a greyscale one (grey profile) too, where it was ignored, 2026-12-05; 10:
# an ICC profile of more than MAX_ICC_BYTES is refused, 2026-12-05; 11: a grey image with alpha or a colour key is
# converted by its grey profile too (composited on white first), 2026-12-05; 12: an EXIF orientation after an entry
# whose values lie past the EXIF block's end, where Pillow stops reading, is none, as Pillow reads it, 2026-12-05).
# The work cache keys on it with the shaping options, so a build resumed across such a change does not mix images
# stored under both rules.
STORAGE_RULE_VERSION = 12
