"""The chunk-pool family (belt-nlp's method): the segment classifier with a linear classifier on every
segment vector, the segment logits pooled by mean or max over the document."""

from .segment import SegmentFamily


class ChunkPoolFamily(SegmentFamily):
    method = "chunk-pool"
