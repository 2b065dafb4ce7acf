"""The truncate family: the segment classifier reading only a document's first segment (the usual
first-512-token truncation baseline)."""

from .segment import SegmentFamily


class TruncateFamily(SegmentFamily):
    method = "truncate"
