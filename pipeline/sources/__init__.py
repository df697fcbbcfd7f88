"""The sources a run reads its photos from (YFCC100M dumps, tables of your own, the Flickr API)."""

# The stage every source's rejections name, whichever source made them: one place, not one per module.
STAGE = "read"
